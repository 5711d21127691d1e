//! The webhook sender: events wait in a bounded queue, one task hands each to its
//! endpoints, and every delivery runs in its own task (at most [`IN_FLIGHT`] at once per
//! endpoint), tried until a 2xx answer or until the retry time is spent, with
//! exponential backoff (`retry-policies`, the policy crate reqwest-retry uses). Each
//! attempt is signed afresh: `Ionport-Signature: t=UNIX_SECONDS,v1=HEX`, where HEX is
//! HMAC-SHA256 with the endpoint's secret of `t + "." + body`. A receiver that checks
//! `t` against its clock refuses replays.
//!
//! The delivery log survives a restart: every change of a delivery is appended as one
//! JSON line (`{"webhook", "workspace", "delivery"}`, the delivery as it now is) to
//! `$IONPORT_HOME/webhook-deliveries.jsonl`; at start the lines are folded (the last
//! line of a delivery wins), deliveries of deleted endpoints dropped, each endpoint's
//! newest [`KEEP`] kept, and the file rewritten with only those. A delivery still pending
//! when the server stopped is not sent again (its event's body was not kept): it reads
//! `failed`, with a `note` saying so.

use std::collections::{HashMap, VecDeque};
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use hmac::{KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::{Semaphore, mpsc};
use utoipa::ToSchema;

use super::DeliveryPolicy;
use crate::serve::auth::now;
use crate::serve::events::EventKind;

/// Deliveries kept per endpoint (older ones are forgotten first).
pub const KEEP: usize = 200;
/// Deliveries in flight at once to one endpoint.
pub const IN_FLIGHT: usize = 4;
/// Deliveries waiting for one endpoint; past this, new ones are dropped (and logged).
pub const MAX_WAITING: usize = 100;

/// The signature of `body` sent at `t`: lowercase hex HMAC-SHA256 of `t + "." + body`.
pub fn sign(secret: &str, t: u64, body: &str) -> String {
    // A key of any length is accepted by HMAC: `new_from_slice` cannot fail here.
    let mut mac = match hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    crate::serve::auth::hex(&mac.finalize().into_bytes())
}

/// The delivery log in the ionport home.
pub const LOG_FILE: &str = "webhook-deliveries.jsonl";

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Being tried (or waiting for its next attempt).
    Pending,
    /// An attempt got a 2xx answer.
    Delivered,
    /// The retry time was spent without a 2xx answer.
    Failed,
    /// Never tried: too many deliveries were waiting for the endpoint or the queue.
    Dropped,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Attempt {
    /// When it was sent (seconds since the Unix epoch; the signature's `t`).
    pub time: u64,
    /// The answer's status, when there was an answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why it failed without an answer (timeout, refused connection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One event sent (or to be sent) to one endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    /// `dlv_` and 16 hex digits; sent as `Ionport-Delivery`.
    pub id: String,
    /// The event's id (the body's `id`; the same for every endpoint and attempt).
    pub event_id: String,
    pub event: EventKind,
    pub status: DeliveryStatus,
    /// When it was queued.
    pub created: u64,
    /// When an attempt got a 2xx answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered: Option<u64>,
    pub attempts: Vec<Attempt>,
    /// Why its status is what it is, when the attempts do not say (a delivery pending
    /// when the server stopped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An endpoint to send an event to.
#[derive(Debug)]
pub struct Target {
    pub id: String,
    pub workspace: String,
    pub url: String,
    pub secret: SecretString,
}

/// An event for some endpoints.
#[derive(Debug)]
pub struct Outgoing {
    pub event_id: String,
    pub kind: EventKind,
    pub body: String,
    pub targets: Vec<Target>,
}

/// The deliveries of every endpoint, and the file every change is appended to.
#[derive(Debug, Default)]
struct Deliveries {
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

type Log = Arc<Mutex<Deliveries>>;

/// The log of `home`, folded as the module docs say, keeping the endpoints `known`; the
/// file rewritten with what was kept and opened for appending.
fn load(home: &Path, known: &HashMap<String, String>) -> Deliveries {
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

/// The queue's sending side and the delivery logs.
#[derive(Debug)]
pub struct Sender {
    tx: mpsc::Sender<Outgoing>,
    log: Log,
}

fn new_id() -> String {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        b = now().to_le_bytes();
    }
    format!("dlv_{}", crate::serve::auth::hex(&b))
}

fn edit(log: &Log, endpoint: &str, id: &str, f: impl FnOnce(&mut Delivery)) -> bool {
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

fn push(log: &Log, target: &Target, d: Delivery) -> usize {
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

impl Sender {
    /// Starts the task that hands queued events to their endpoints, with the delivery
    /// log of `home` for the endpoints `known` (id → workspace).
    pub fn start(policy: DeliveryPolicy, home: &Path, known: &HashMap<String, String>) -> Self {
        let (tx, rx) = mpsc::channel(super::QUEUE);
        let log: Log = Arc::new(Mutex::new(load(home, known)));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(policy.attempt_timeout)
            .user_agent(concat!("ionport-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        tokio::spawn(dispatch(rx, log.clone(), client, policy));
        Self { tx, log }
    }

    /// Queues an event; when the queue is full it is dropped (and logged as dropped)
    /// rather than waited for.
    pub fn queue(&self, out: Outgoing) {
        if let Err(mpsc::error::TrySendError::Full(out) | mpsc::error::TrySendError::Closed(out)) =
            self.tx.try_send(out)
        {
            tracing::warn!(event = %out.event_id, "the webhook queue is full; the event is dropped");
            for t in &out.targets {
                push(&self.log, t, delivery(&out, DeliveryStatus::Dropped));
            }
        }
    }

    pub fn deliveries(&self, endpoint: &str) -> Vec<Delivery> {
        self.log
            .lock()
            .ok()
            .and_then(|l| {
                l.by_endpoint
                    .get(endpoint)
                    .map(|d| d.iter().cloned().collect())
            })
            .unwrap_or_default()
    }

    /// Drops an endpoint's log; its deliveries under way stop at their next attempt.
    pub fn forget(&self, endpoint: &str) {
        if let Ok(mut l) = self.log.lock() {
            l.by_endpoint.remove(endpoint);
            let workspace = l.workspace.remove(endpoint).unwrap_or_default();
            l.write(&Line {
                webhook: endpoint.to_string(),
                workspace,
                delivery: None,
            });
        }
    }
}

fn delivery(out: &Outgoing, status: DeliveryStatus) -> Delivery {
    Delivery {
        id: new_id(),
        event_id: out.event_id.clone(),
        event: out.kind,
        status,
        created: now(),
        delivered: None,
        attempts: Vec::new(),
        note: None,
    }
}

async fn dispatch(
    mut rx: mpsc::Receiver<Outgoing>,
    log: Log,
    client: reqwest::Client,
    policy: DeliveryPolicy,
) {
    let mut slots: HashMap<String, Arc<Semaphore>> = HashMap::new();
    while let Some(out) = rx.recv().await {
        let body: Arc<str> = Arc::from(out.body.as_str());
        for target in &out.targets {
            let d = delivery(&out, DeliveryStatus::Pending);
            let id = d.id.clone();
            if push(&log, target, d) > MAX_WAITING {
                edit(&log, &target.id, &id, |d| {
                    d.status = DeliveryStatus::Dropped
                });
                tracing::warn!(webhook = %target.id, "too many deliveries waiting; one is dropped");
                continue;
            }
            let slot = slots
                .entry(target.id.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(IN_FLIGHT)))
                .clone();
            let job = Job {
                log: log.clone(),
                client: client.clone(),
                policy,
                endpoint: target.id.clone(),
                url: target.url.clone(),
                secret: target.secret.clone(),
                delivery: id,
                kind: out.kind,
                body: body.clone(),
            };
            tokio::spawn(async move {
                let Ok(_permit) = slot.acquire_owned().await else {
                    return;
                };
                job.run().await;
            });
        }
    }
}

struct Job {
    log: Log,
    client: reqwest::Client,
    policy: DeliveryPolicy,
    endpoint: String,
    url: String,
    secret: SecretString,
    delivery: String,
    kind: EventKind,
    body: Arc<str>,
}

impl Job {
    /// Tries until a 2xx answer, the retry time is spent, or the endpoint is deleted.
    async fn run(self) {
        let mut retries = self.policy.retries();
        loop {
            let t = now();
            let signature = sign(self.secret.expose_secret(), t, &self.body);
            let sent = self
                .client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("Ionport-Signature", format!("t={t},v1={signature}"))
                .header("Ionport-Event", self.kind.as_str())
                .header("Ionport-Delivery", &self.delivery)
                .body(self.body.to_string())
                .send()
                .await;
            let attempt = match &sent {
                Ok(r) => Attempt {
                    time: t,
                    status: Some(r.status().as_u16()),
                    error: None,
                },
                Err(e) => Attempt {
                    time: t,
                    status: None,
                    error: Some(if e.is_timeout() {
                        "no answer in time".into()
                    } else if e.is_connect() {
                        "could not connect".into()
                    } else {
                        "the request failed".into()
                    }),
                },
            };
            let ok = sent.as_ref().is_ok_and(|r| r.status().is_success());
            let known = edit(&self.log, &self.endpoint, &self.delivery, |d| {
                d.attempts.push(attempt);
                if ok {
                    d.status = DeliveryStatus::Delivered;
                    d.delivered = Some(now());
                }
            });
            if ok || !known {
                return;
            }
            if !retries.wait().await {
                edit(&self.log, &self.endpoint, &self.delivery, |d| {
                    d.status = DeliveryStatus::Failed;
                });
                tracing::warn!(webhook = %self.endpoint, delivery = %self.delivery, "a webhook delivery failed for good");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// The signature of a known input, computed independently (Python's
    /// `hmac.new(b"whsec_test", b"1700000000.{}", hashlib.sha256).hexdigest()`).
    #[test]
    fn signature_matches_a_known_value() {
        assert_eq!(
            sign("whsec_test", 1_700_000_000, "{}"),
            "35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }
}
