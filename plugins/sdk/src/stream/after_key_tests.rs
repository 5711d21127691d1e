//! Keyed streams listed after a key, and partitions, against a scripted key-ordered API: a
//! checkpoint after every page with the last key, resumption after it, windows when the
//! source gives no next link, smaller pages after a timeout, a state per partition, and
//! states of another shape refused. Expected values are written out by hand.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ionport_plugin_abi::{PluginError, error_kind};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::tests::{Query, checkpoints, ids, items, request, scripted};
use super::*;
use crate::key_ranges::KeyPage;
use crate::{ConnectorError, GatewayRequest, Host, ReadRequest, RecordWriter, SyncMode, TaskSpec};

/// An `api/items` ordered by `id`: `after=` (id above), `since=` (`at` at or above),
/// `limit=`, `offset=` (a window); `hw=1` asks for the highest `at`. With `links`, an
/// answer that is not a window and leaves rows gives `next` (`last id;since`). `part=`
/// is the number of items (the partition's settings).
fn items_api(links: bool) -> impl Fn(&Query) -> Result<(u16, String), PluginError> {
    move |q| {
        let count: u64 = q.get("part").map_or(7, |p| p.parse().unwrap());
        let since = q.get("since").map(String::as_str).unwrap_or("");
        let mut rows: Vec<Value> = items(count)
            .into_iter()
            .filter(|r| r["at"].as_str().unwrap() >= since)
            .collect();
        if q.contains_key("hw") {
            let top: Vec<Value> = rows.last().cloned().into_iter().collect();
            return Ok((200, json!({ "items": top }).to_string()));
        }
        let after: u64 = q.get("after").map_or(0, |a| a.parse().unwrap());
        rows.retain(|r| r["id"].as_u64().unwrap() > after);
        let offset: usize = q.get("offset").map_or(0, |o| o.parse().unwrap());
        let limit: usize = q["limit"].parse().unwrap();
        let page: Vec<Value> = rows.iter().skip(offset).take(limit).cloned().collect();
        let more = rows.len() > offset + limit;
        let next = (links && more && !q.contains_key("offset"))
            .then(|| format!("{};{since}", page.last().unwrap()["id"]));
        Ok((200, json!({ "items": page, "next": next }).to_string()))
    }
}

/// The scripted API's stream; its settings are the partition's item count (`None`: 7).
struct ById {
    windows: bool,
}

fn by_links() -> ById {
    ById { windows: false }
}

fn by_windows() -> ById {
    ById { windows: true }
}

/// One read of the scripted API: a partition's item count, the lower bound, the paging.
struct Items {
    part: Option<u64>,
    since: Option<String>,
    windows: bool,
}

fn with(mut r: GatewayRequest, part: Option<u64>, since: Option<&str>) -> GatewayRequest {
    if let Some(p) = part {
        r = r.query("part", p.to_string());
    }
    if let Some(s) = since.filter(|s| !s.is_empty()) {
        r = r.query("since", s);
    }
    r
}

#[derive(Deserialize)]
struct Body {
    items: Vec<Map<String, Value>>,
    next: Option<String>,
}

/// A record and its key (`[id]`).
type Item = (Map<String, Value>, String);

impl KeyedStream<Option<u64>> for ById {
    type Listing = Items;

    fn spec(&self) -> TaskSpec {
        TaskSpec {
            name: "items".into(),
            description: "items by id".into(),
            record_schema: json!({"type": "object"}),
            primary_key: vec!["id".into()],
            cursor_field: Some("at".into()),
            sync_modes: vec![SyncMode::FullRefresh, SyncMode::Incremental],
            requests_per_1000_records: None,
        }
    }
    fn min_page_size(&self) -> Option<u32> {
        Some(1)
    }
    fn open(
        &self,
        _host: &Host,
        part: &Option<u64>,
        _request: &ReadRequest,
        since: Option<&Value>,
    ) -> Result<Items, ConnectorError> {
        Ok(Items {
            part: *part,
            since: since.and_then(Value::as_str).map(str::to_string),
            windows: self.windows,
        })
    }
}

impl KeyListing for Items {
    type Row = Item;
    const START: KeyStart = KeyStart::AfterKey;

    fn paging(&self) -> KeyPaging {
        if self.windows {
            KeyPaging::Windows
        } else {
            KeyPaging::Links
        }
    }
    fn page(&self, host: &Host, at: &PageAt<'_>) -> Result<KeyPage<Item>, ConnectorError> {
        let mut r = GatewayRequest::get("api/items").query("limit", at.size.to_string());
        let r = match at.next {
            Some(next) => {
                let (after, since) = next.split_once(';').unwrap();
                with(r.query("after", after), self.part, Some(since))
            }
            None => {
                if let Some(key) = at.key {
                    let values: Vec<Value> = serde_json::from_str(key).unwrap();
                    r = r.query("after", values[0].to_string());
                }
                if let Some(o) = at.window {
                    r = r.query("offset", o.to_string());
                }
                with(r, self.part, self.since.as_deref())
            }
        };
        let body: Body = host.gateway(&r)?.json("a page with an `items` array")?;
        let mut rows = Vec::new();
        for mut record in body.items {
            let key = record_key(&record, &["id".to_string()], "items")?;
            if let Some(p) = self.part {
                record.insert("part".into(), p.into());
            }
            rows.push((record, key));
        }
        Ok(KeyPage {
            rows,
            asked: at.size,
            next: body.next,
        })
    }
    fn key<'r>(&self, row: &'r Item) -> &'r str {
        &row.1
    }
    fn high_water(&self, host: &Host) -> Result<Option<String>, ConnectorError> {
        let r = with(
            GatewayRequest::get("api/items").query("hw", "1"),
            self.part,
            self.since.as_deref(),
        );
        let body: Body = host.gateway(&r)?.json("a page with an `items` array")?;
        Ok(body
            .items
            .first()
            .and_then(|r| r.get("at"))
            .and_then(Value::as_str)
            .map(str::to_owned))
    }
    fn write(
        &self,
        _host: &Host,
        row: &Item,
        out: &mut RecordWriter,
    ) -> Result<u64, ConnectorError> {
        out.push(&row.0)?;
        Ok(0)
    }
}

fn pages(events: &[super::tests::Event]) -> Vec<Vec<u64>> {
    ids(events).into_iter().filter(|p| !p.is_empty()).collect()
}

#[test]
fn tokens_are_followed_with_a_checkpoint_after_every_page_and_the_mark_taken_first() {
    let (host, inner) = scripted(usize::MAX, items_api(true));
    let req = request(SyncMode::FullRefresh, 3, 1, None);
    let summary = read_keyed(&by_links(), &host, &None, &req).unwrap();
    assert_eq!(summary.records, 7);
    let events = inner.events.lock().unwrap();
    assert_eq!(pages(&events), vec![vec![1, 2, 3], vec![4, 5, 6], vec![7]]);
    let during =
        |after: u64| json!({"mode": "full_refresh", "next_cursor": "2026-01-07", "after": [after]});
    assert_eq!(
        checkpoints(&events),
        vec![
            during(3),
            during(6),
            during(7),
            json!({"cursor": "2026-01-07"})
        ]
    );
    assert_eq!(summary.state, Some(json!({"cursor": "2026-01-07"})));
    let asked = inner.asked.lock().unwrap();
    assert!(asked[0].contains_key("hw"), "{asked:?}");
    assert_eq!(asked[2].get("after").map(String::as_str), Some("3"));
}

#[test]
fn an_interrupted_read_goes_on_after_its_last_key_and_keeps_its_mark() {
    let (host, inner) = scripted(usize::MAX, items_api(true));
    let state = json!({"mode": "full_refresh", "next_cursor": "2026-01-06", "after": [3]});
    let req = request(SyncMode::FullRefresh, 3, 1, Some(state));
    let summary = read_keyed(&by_links(), &host, &None, &req).unwrap();
    let events = inner.events.lock().unwrap();
    assert_eq!(pages(&events), vec![vec![4, 5, 6], vec![7]]);
    // The mark of the read that started it, not one asked now.
    assert_eq!(summary.state, Some(json!({"cursor": "2026-01-06"})));
    let asked = inner.asked.lock().unwrap();
    assert!(!asked.iter().any(|q| q.contains_key("hw")), "{asked:?}");
    assert_eq!(asked[0].get("after").map(String::as_str), Some("3"));
}

#[test]
fn an_incremental_read_asks_from_the_cursor_of_the_last_one() {
    let (host, inner) = scripted(usize::MAX, items_api(true));
    let req = request(
        SyncMode::Incremental,
        2,
        1,
        Some(json!({"cursor": "2026-01-05"})),
    );
    let summary = read_keyed(&by_links(), &host, &None, &req).unwrap();
    let events = inner.events.lock().unwrap();
    assert_eq!(pages(&events), vec![vec![5, 6], vec![7]]);
    assert_eq!(summary.state, Some(json!({"cursor": "2026-01-07"})));
    let asked = inner.asked.lock().unwrap();
    assert!(
        asked
            .iter()
            .all(|q| q.get("since").map(String::as_str) == Some("2026-01-05")),
        "{asked:?}"
    );
}

#[test]
fn a_full_page_without_a_token_goes_on_by_windows_in_flight() {
    let (host, inner) = scripted(usize::MAX, items_api(false));
    let req = request(SyncMode::FullRefresh, 2, 3, None);
    let summary = read_keyed(&by_links(), &host, &None, &req).unwrap();
    assert_eq!(summary.records, 7);
    let events = inner.events.lock().unwrap();
    assert_eq!(
        pages(&events),
        vec![vec![1, 2], vec![3, 4], vec![5, 6], vec![7]]
    );
    let asked = inner.asked.lock().unwrap();
    let mut offsets: Vec<u64> = asked
        .iter()
        .filter_map(|q| q.get("offset").map(|o| o.parse().unwrap()))
        .collect();
    offsets.sort_unstable();
    // Windows of the query the first page started (no `after`), from the rows it read;
    // pages in flight may have asked for one or two past the end.
    assert!(offsets.starts_with(&[2, 4, 6]), "{offsets:?}");
    assert!(
        asked
            .iter()
            .filter(|q| q.contains_key("offset"))
            .all(|q| !q.contains_key("after"))
    );

    let (host, inner) = scripted(usize::MAX, items_api(true));
    read_keyed(&by_windows(), &host, &None, &req).unwrap();
    let asked = inner.asked.lock().unwrap();
    assert!(
        asked
            .iter()
            .any(|q| q.get("offset").map(String::as_str) == Some("0")),
        "{asked:?}"
    );
}

#[test]
fn a_page_that_keeps_timing_out_is_halved_and_the_query_starts_again_after_the_last_key() {
    let (host, inner) = scripted(usize::MAX, |q| {
        let limit: u32 = q.get("limit").map_or(0, |l| l.parse().unwrap());
        if limit > 2 && q.contains_key("after") {
            return Err(PluginError::new(
                error_kind::TIMEOUT,
                "GET api/items: timed out twice",
            ));
        }
        items_api(true)(q)
    });
    let req = request(SyncMode::FullRefresh, 4, 1, None);
    let summary = read_keyed(&by_links(), &host, &None, &req).unwrap();
    assert_eq!(summary.records, 7);
    let events = inner.events.lock().unwrap();
    assert_eq!(pages(&events), vec![vec![1, 2, 3, 4], vec![5, 6], vec![7]]);

    // At the smallest page the timeout ends the read, saying so.
    let (host, _) = scripted(usize::MAX, |_| {
        Err(PluginError::new(error_kind::TIMEOUT, "timed out"))
    });
    let req = request(SyncMode::FullRefresh, 1, 1, Some(json!({"cursor": "x"})));
    let e = read_keyed(&by_links(), &host, &None, &req).unwrap_err();
    assert!(e.is_timeout(), "{e}");
}

#[test]
fn a_state_of_another_shape_is_refused_never_read_as_none() {
    let (host, _) = scripted(usize::MAX, items_api(true));
    let partitioned = json!({"companies": {"1": {"cursor": "2026-01-02"}}});
    let req = request(SyncMode::Incremental, 3, 1, Some(partitioned));
    let e = read_keyed(&by_links(), &host, &None, &req).unwrap_err();
    assert_eq!(e.kind(), error_kind::INVALID_INPUT);
    assert!(e.message().contains("companies"), "{e}");

    let single = json!({"cursor": "2026-01-02"});
    let req = request(SyncMode::Incremental, 3, 1, Some(single));
    let parts = [Partition {
        id: 1u16,
        settings: Some(4),
        label: "part 1".into(),
    }];
    let e = read_partitioned(&by_links(), &host, &req, "parts", &parts).unwrap_err();
    assert_eq!(e.kind(), error_kind::INVALID_INPUT);
    assert!(e.message().contains("not a state of several parts"), "{e}");
}

fn two_parts() -> [Partition<u16, Option<u64>>; 2] {
    [
        Partition {
            id: 1,
            settings: Some(4),
            label: "part 1".into(),
        },
        Partition {
            id: 2,
            settings: Some(6),
            label: "part 2".into(),
        },
    ]
}

#[test]
fn partitions_keep_a_state_each_and_an_interrupted_read_goes_on_in_the_one_it_stopped_in() {
    let parts = two_parts();
    // Part 1: [1,2] [3,4], the window after its full last page and its end; part 2
    // stops after its first page (the fifth checkpoint).
    let (host, inner) = scripted(5, items_api(true));
    let req = request(SyncMode::FullRefresh, 2, 1, None);
    let e = read_partitioned(&by_links(), &host, &req, "parts", &parts).unwrap_err();
    assert!(e.is_cancelled(), "{e}");
    let events = inner.events.lock().unwrap().clone();
    let state = checkpoints(&events).last().cloned().unwrap();
    assert_eq!(state["done"], json!([1]), "{state}");
    assert_eq!(state["mode"], "full_refresh");
    assert_eq!(state["parts"]["1"], json!({"cursor": "2026-01-04"}));
    assert_eq!(state["parts"]["2"]["after"], json!([2]), "{state}");
    let first: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            super::tests::Event::Records(rs) => Some(rs.clone()),
            super::tests::Event::Checkpoint(_) => None,
        })
        .flatten()
        .map(|r| (r["part"].as_u64().unwrap(), r["id"].as_u64().unwrap()))
        .collect();
    // Each record with its partition's `part` (its item count, 4 or 6).
    assert_eq!(first, vec![(4, 1), (4, 2), (4, 3), (4, 4), (6, 1), (6, 2)]);

    let (host, inner) = scripted(usize::MAX, items_api(true));
    let req = request(SyncMode::FullRefresh, 2, 1, Some(state));
    let summary = read_partitioned(&by_links(), &host, &req, "parts", &parts).unwrap();
    let events = inner.events.lock().unwrap();
    assert_eq!(pages(&events), vec![vec![3, 4], vec![5, 6]]);
    assert_eq!(
        summary.state,
        Some(json!({"parts": {
            "1": {"cursor": "2026-01-04"},
            "2": {"cursor": "2026-01-06"},
        }}))
    );
}

#[test]
fn a_next_link_after_an_empty_page_or_back_to_itself_is_an_error_not_an_endless_read() {
    let row = items(1).remove(0);
    for (answer, says) in [
        (
            json!({"items": [], "next": "1;"}),
            "an empty page with a next link",
        ),
        (
            json!({"items": [row], "next": "1;"}),
            "a page whose next link is the link it was asked with",
        ),
    ] {
        let body = answer.to_string();
        let (host, _inner) = scripted(usize::MAX, move |q: &Query| {
            if q.contains_key("hw") {
                return Ok((200, json!({"items": []}).to_string()));
            }
            Ok((200, body.clone()))
        });
        let req = request(SyncMode::FullRefresh, 3, 1, None);
        let e = read_keyed(&by_links(), &host, &None, &req).unwrap_err();
        assert_eq!(e.kind(), error_kind::UNEXPECTED_BODY, "{e}");
        assert!(e.message().contains(says), "{e}");
    }
}
