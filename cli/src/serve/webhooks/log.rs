//! The delivery log: every delivery to every endpoint, kept across restarts. Every change
//! of a delivery is appended as one JSON line (`{"webhook", "workspace", "delivery"}`, the
//! delivery as it now is) to `$IONPORT_HOME/webhook-deliveries.jsonl`; at start the lines
//! are folded (the last line of a delivery wins), deliveries of deleted endpoints dropped,
//! each endpoint's newest [`KEEP`] kept, and the file rewritten with only those (again
//! every [`COMPACT_AFTER`] lines). A delivery still pending when the server stopped is not
//! sent again (its event's body was not kept): it reads `failed`, with a `note` saying so.
//! Appending one line per change keeps a change cheap where rewriting a JSON file would
//! cost a copy of every kept delivery per attempt.

use std::collections::{HashMap, VecDeque};
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::deliver::{Delivery, DeliveryStatus, KEEP, Target};

/// The delivery log in the ionport home.
pub const LOG_FILE: &str = "webhook-deliveries.jsonl";

/// The deliveries of every endpoint, and the file every change is appended to.
#[derive(Debug, Default)]
pub(super) struct Deliveries {
    by_endpoint: HashMap<String, VecDeque<Delivery>>,
    /// Endpoint → workspace, for the lines written.
    workspace: HashMap<String, String>,
    file: Option<std::fs::File>,
    path: std::path::PathBuf,
    /// Lines appended since the file was last rewritten.
    written: usize,
}

/// Lines appended before the file is rewritten with only what is kept (bounds its size
/// on a server that runs for long: about 25 lines per kept delivery at most).
const COMPACT_AFTER: usize = 20_000;

/// One line of the log file.
#[derive(Debug, Serialize, Deserialize)]
struct Line {
    webhook: String,
    #[serde(default)]
    workspace: String,
    /// The delivery as it now is; absent: the endpoint was deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delivery: Option<Delivery>,
}

impl Deliveries {
    /// Appends `line` (a failed write is logged: the delivery itself goes on).
    fn write(&mut self, line: &Line) {
        let Some(f) = self.file.as_mut() else {
            return;
        };
        let mut text = match serde_json::to_vec(line) {
            Ok(t) => t,
            Err(_) => return,
        };
        text.push(b'\n');
        if let Err(e) = f.write_all(&text) {
            tracing::warn!("the webhook delivery log could not be written: {e}");
        }
        self.written += 1;
        if self.written >= COMPACT_AFTER {
            self.rewrite();
        }
    }

    /// Replaces the file with one line per kept delivery (oldest first, so that folding
    /// it again gives the same order) and appends to it from then on.
    fn rewrite(&mut self) {
        let mut text = String::new();
        for (id, list) in &self.by_endpoint {
            for d in list.iter().rev() {
                let line = Line {
                    webhook: id.clone(),
                    workspace: self.workspace.get(id).cloned().unwrap_or_default(),
                    delivery: Some(d.clone()),
                };
                if let Ok(t) = serde_json::to_string(&line) {
                    text.push_str(&t);
                    text.push('\n');
                }
            }
        }
        self.written = 0;
        self.file = match crate::serve::store::write_private(&self.path, text.as_bytes()) {
            Ok(()) => std::fs::OpenOptions::new()
                .append(true)
                .open(&self.path)
                .map_err(|e| tracing::warn!("the webhook delivery log cannot be appended to: {e}"))
                .ok(),
            Err(e) => {
                tracing::warn!(
                    "the webhook delivery log cannot be written; deliveries are kept in memory only: {e:#}"
                );
                None
            }
        };
    }

    fn persist(&mut self, endpoint: &str, d: &Delivery) {
        let line = Line {
            webhook: endpoint.to_string(),
            workspace: self.workspace.get(endpoint).cloned().unwrap_or_default(),
            delivery: Some(d.clone()),
        };
        self.write(&line);
    }
}

pub(super) type Log = Arc<Mutex<Deliveries>>;

/// The log of `home`, folded as the module docs say, keeping the endpoints `known`; the
/// file rewritten with what was kept and opened for appending.
pub(super) fn load(home: &Path, known: &HashMap<String, String>) -> Deliveries {
    let path = home.join(LOG_FILE);
    let mut by_endpoint: HashMap<String, VecDeque<Delivery>> = HashMap::new();
    if let Ok(text) = std::fs::read_to_string(&path) {
        for (i, raw) in text.lines().enumerate() {
            if raw.trim().is_empty() {
                continue;
            }
            // A torn last line (a crash mid-write) loses that one change, not the log.
            let Ok(line) = serde_json::from_str::<Line>(raw) else {
                tracing::warn!(
                    "{} line {}: not a delivery record; skipped",
                    path.display(),
                    i + 1
                );
                continue;
            };
            let Some(d) = line.delivery else {
                by_endpoint.remove(&line.webhook);
                continue;
            };
            let list = by_endpoint.entry(line.webhook).or_default();
            match list.iter_mut().find(|x| x.id == d.id) {
                Some(x) => *x = d,
                None => list.push_front(d),
            }
        }
    }
    by_endpoint.retain(|id, _| known.contains_key(id));
    for list in by_endpoint.values_mut() {
        list.truncate(KEEP);
        for d in list.iter_mut() {
            if d.status == DeliveryStatus::Pending {
                d.status = DeliveryStatus::Failed;
                d.note = Some(
                    "the server stopped before an attempt got a 2xx answer; it was not sent again"
                        .into(),
                );
            }
        }
    }
    let mut d = Deliveries {
        by_endpoint,
        workspace: known.clone(),
        file: None,
        path,
        written: 0,
    };
    d.rewrite();
    d
}

pub(super) fn edit(log: &Log, endpoint: &str, id: &str, f: impl FnOnce(&mut Delivery)) -> bool {
    let Ok(mut log) = log.lock() else {
        return false;
    };
    let changed = match log
        .by_endpoint
        .get_mut(endpoint)
        .and_then(|l| l.iter_mut().find(|d| d.id == id))
    {
        Some(d) => {
            f(d);
            d.clone()
        }
        None => return false,
    };
    log.persist(endpoint, &changed);
    true
}

pub(super) fn push(log: &Log, target: &Target, d: Delivery) -> usize {
    let Ok(mut log) = log.lock() else {
        return 0;
    };
    log.workspace
        .entry(target.id.clone())
        .or_insert_with(|| target.workspace.clone());
    // In memory first: a rewrite of the file while persisting keeps what memory holds.
    let line = d.clone();
    let list = log.by_endpoint.entry(target.id.clone()).or_default();
    list.push_front(d);
    while list.len() > KEEP {
        list.pop_back();
    }
    let pending = list
        .iter()
        .filter(|d| d.status == DeliveryStatus::Pending)
        .count();
    log.persist(&target.id, &line);
    pending
}

/// The deliveries to `endpoint`, newest first.
pub(super) fn list(log: &Log, endpoint: &str) -> Vec<Delivery> {
    log.lock()
        .ok()
        .and_then(|l| {
            l.by_endpoint
                .get(endpoint)
                .map(|d| d.iter().cloned().collect())
        })
        .unwrap_or_default()
}

/// Drops `endpoint`'s deliveries (a deleted endpoint), in memory and in the file.
pub(super) fn forget(log: &Log, endpoint: &str) {
    if let Ok(mut l) = log.lock() {
        l.by_endpoint.remove(endpoint);
        let workspace = l.workspace.remove(endpoint).unwrap_or_default();
        l.write(&Line {
            webhook: endpoint.to_string(),
            workspace,
            delivery: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::events::EventKind;
    use crate::serve::webhooks::deliver::{Outgoing, delivery};
    use secrecy::SecretString;

    fn target(id: &str) -> Target {
        Target {
            id: id.into(),
            workspace: "acme".into(),
            url: "http://127.0.0.1:9/".into(),
            secret: SecretString::from("whsec_x"),
        }
    }

    fn delivery_of(event: &str) -> Delivery {
        delivery(
            &Outgoing {
                event_id: event.into(),
                kind: EventKind::Finished,
                body: "{}".into(),
                targets: Vec::new(),
            },
            DeliveryStatus::Pending,
        )
    }

    /// The log read back after a restart: the last state of each delivery, newest first;
    /// a delivery left pending reads failed with a note; a deleted endpoint's and a torn
    /// line are dropped; the file is rewritten with what was kept.
    #[test]
    fn the_log_is_folded_at_start() {
        let home = tempfile::tempdir().expect("a directory");
        let known: HashMap<String, String> = [("wh_a".to_string(), "acme".to_string())].into();
        let log: Log = Arc::new(Mutex::new(load(home.path(), &known)));
        let (first, second) = (delivery_of("evt_1"), delivery_of("evt_2"));
        let (id1, id2) = (first.id.clone(), second.id.clone());
        push(&log, &target("wh_a"), first);
        push(&log, &target("wh_a"), second);
        push(&log, &target("wh_gone"), delivery_of("evt_3"));
        assert!(edit(&log, "wh_a", &id1, |d| {
            d.status = DeliveryStatus::Delivered;
            d.delivered = Some(7);
        }));
        let path = home.path().join(LOG_FILE);
        {
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .expect("the file");
            f.write_all(b"{\"webhook\": \"wh_a\", \"deliv")
                .expect("a torn line");
        }
        drop(log);
        let again = load(home.path(), &known);
        let list: Vec<&Delivery> = again.by_endpoint["wh_a"].iter().collect();
        assert_eq!(
            list.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
            [id2.as_str(), id1.as_str()]
        );
        assert_eq!(list[1].status, DeliveryStatus::Delivered);
        assert_eq!(list[1].delivered, Some(7));
        assert_eq!(list[0].status, DeliveryStatus::Failed);
        assert!(list[0].note.as_deref().unwrap_or("").contains("stopped"));
        assert!(!again.by_endpoint.contains_key("wh_gone"));
        let text = std::fs::read_to_string(&path).expect("the file");
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("\"workspace\":\"acme\""), "{text}");
    }
}
