//! The stream loop against a scripted host: pages, checkpoints, cancellation, typed state,
//! refused answers, the 504 contract and resumption. Expected values are written out by
//! hand from the test's own data, never computed by the code under test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ionport_plugin_abi::abi_stable::sabi_trait::TD_Opaque;
use ionport_plugin_abi::abi_stable::std_types::{RArc, RResult, RStr};
use ionport_plugin_abi::wire::GatewayRequestHead;
use ionport_plugin_abi::{
    FfiHost, FfiHost_TO, FfiHttpRequest, FfiHttpResponse, LogLevel, PluginError, RecordBatch,
    error_kind,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::*;
use crate::{ConnectionConfig, Connector, Host, ReadRequest, SyncMode};

pub(super) type Query = HashMap<String, String>;
type Serve = dyn Fn(&Query) -> Result<(u16, String), PluginError> + Send + Sync;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Event {
    Records(Vec<Value>),
    Checkpoint(Value),
}

/// A host that answers every request with `serve`, records what the connector hands over,
/// and says "cancelled" once `cancel_after` checkpoints were taken.
pub(super) struct Scripted {
    serve: Box<Serve>,
    pub(super) asked: Mutex<Vec<Query>>,
    pub(super) events: Mutex<Vec<Event>>,
    checkpoints: AtomicUsize,
    cancel_after: usize,
}

impl FfiHost for Scripted {
    fn gateway(&self, request: FfiHttpRequest) -> RResult<FfiHttpResponse, PluginError> {
        let head: GatewayRequestHead = serde_json::from_str(&request.head).unwrap();
        let query: Query = head.query.into_iter().collect();
        self.asked.lock().unwrap().push(query.clone());
        match (self.serve)(&query) {
            Ok((status, body)) => RResult::ROk(FfiHttpResponse {
                status,
                head: "".into(),
                body: body.into_bytes().into(),
            }),
            Err(e) => RResult::RErr(e),
        }
    }
    fn log(&self, _level: LogLevel, _message: RStr<'_>) {}
    fn emit(&self, batch: RecordBatch) -> RResult<(), PluginError> {
        let text = String::from_utf8(batch.ndjson.into_vec()).unwrap();
        let records = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        self.events.lock().unwrap().push(Event::Records(records));
        RResult::ROk(())
    }
    fn checkpoint(&self, state: RStr<'_>) -> RResult<(), PluginError> {
        let v = serde_json::from_str(state.as_str()).unwrap();
        self.events.lock().unwrap().push(Event::Checkpoint(v));
        self.checkpoints.fetch_add(1, Ordering::SeqCst);
        RResult::ROk(())
    }
    fn cancelled(&self) -> bool {
        self.checkpoints.load(Ordering::SeqCst) >= self.cancel_after
    }
}

pub(super) fn scripted(
    cancel_after: usize,
    serve: impl Fn(&Query) -> Result<(u16, String), PluginError> + Send + Sync + 'static,
) -> (Host, RArc<Scripted>) {
    let inner = RArc::new(Scripted {
        serve: Box::new(serve),
        asked: Mutex::new(Vec::new()),
        events: Mutex::new(Vec::new()),
        checkpoints: AtomicUsize::new(0),
        cancel_after,
    });
    (
        Host::new(FfiHost_TO::from_ptr(inner.clone(), TD_Opaque)),
        inner,
    )
}

/// The source: items `1..=count`, item `i` changed at `2026-01-{i:02}`.
pub(super) fn items(count: u64) -> Vec<Value> {
    (1..=count)
        .map(|i| json!({"id": i, "at": format!("2026-01-{i:02}")}))
        .collect()
}

/// An `items?offset=&limit=[&since=]` API over `items(count)`: `{"items": [...]}`.
fn offset_api(count: u64) -> impl Fn(&Query) -> Result<(u16, String), PluginError> {
    move |q| {
        let offset: usize = q["offset"].parse().unwrap();
        let limit: usize = q["limit"].parse().unwrap();
        let rows: Vec<Value> = items(count)
            .into_iter()
            .filter(|r| {
                q.get("since")
                    .is_none_or(|s| r["at"].as_str().unwrap() >= s.as_str())
            })
            .skip(offset)
            .take(limit)
            .collect();
        Ok((200, json!({ "items": rows }).to_string()))
    }
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct Item {
    id: u64,
    at: String,
}

#[derive(Deserialize)]
struct ItemsPage {
    items: Vec<Item>,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct Settings {
    /// The API's path.
    path: String,
}

fn quick() -> RetryPolicy {
    RetryPolicy {
        attempts: 2,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
    }
}

struct Items;

impl RestStream<Settings> for Items {
    type Record = Item;
    type Token = ();
    const NAME: &'static str = "items";
    const DESCRIPTION: &'static str = "Every item.";
    const PRIMARY_KEY: &'static [&'static str] = &["id"];
    const CURSOR: Option<&'static str> = Some("at");

    fn request(&self, s: &Settings, page: &PageRequest<'_, ()>) -> GatewayRequest {
        let r = GatewayRequest::get(&s.path)
            .query("offset", page.offset.to_string())
            .query("limit", page.size.to_string());
        match page.since {
            Some(since) => r.query("since", since),
            None => r,
        }
    }

    fn parse(&self, answer: &Answer<'_>) -> Result<Page<Item>, ConnectorError> {
        Ok(answer.json::<ItemsPage>("a page of items")?.items.into())
    }

    fn retry_policy(&self) -> RetryPolicy {
        quick()
    }
}

fn settings() -> Settings {
    Settings {
        path: "api/items".into(),
    }
}

pub(super) fn request(
    mode: SyncMode,
    page_size: u32,
    in_flight: u32,
    state: Option<Value>,
) -> ReadRequest {
    let mut r = ReadRequest::new(
        ConnectionConfig {
            settings: json!({"path": "api/items"}),
        },
        "items",
        mode,
    );
    r.page_size = Some(page_size);
    r.pages_in_flight = Some(in_flight);
    r.state = state;
    r
}

pub(super) fn ids(events: &[Event]) -> Vec<Vec<u64>> {
    events
        .iter()
        .map(|e| match e {
            Event::Records(rs) => rs.iter().map(|r| r["id"].as_u64().unwrap()).collect(),
            Event::Checkpoint(_) => vec![],
        })
        .collect()
}

pub(super) fn checkpoints(events: &[Event]) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Checkpoint(v) => Some(v.clone()),
            Event::Records(_) => None,
        })
        .collect()
}

#[test]
fn every_page_is_committed_with_the_checkpoint_that_covers_it() {
    for in_flight in [1, 4] {
        let (host, inner) = scripted(usize::MAX, offset_api(7));
        let summary = read(
            &Items,
            &host,
            &settings(),
            &request(SyncMode::FullRefresh, 3, in_flight, None),
        )
        .unwrap();
        let events = inner.events.lock().unwrap().clone();
        // Records, then the checkpoint covering them, page by page (an empty Vec is a
        // checkpoint): in order whatever the pages in flight.
        assert_eq!(
            ids(&events),
            vec![
                vec![1, 2, 3],
                vec![],
                vec![4, 5, 6],
                vec![],
                vec![7],
                vec![]
            ],
            "pages in flight {in_flight}"
        );
        assert_eq!(
            checkpoints(&events),
            vec![
                json!({"seen": "2026-01-03", "resume": {"offset": 3}}),
                json!({"seen": "2026-01-06", "resume": {"offset": 6}}),
                json!({"cursor": "2026-01-07"}),
            ]
        );
        assert_eq!(summary.records, 7);
        assert_eq!(summary.pages, 3);
        assert_eq!(summary.state, Some(json!({"cursor": "2026-01-07"})));
    }
}

#[test]
fn a_cancel_stops_the_read_between_pages() {
    let (host, inner) = scripted(1, offset_api(100));
    let e = read(
        &Items,
        &host,
        &settings(),
        &request(SyncMode::FullRefresh, 3, 1, None),
    )
    .unwrap_err();
    assert!(e.is_cancelled(), "{e}");
    let events = inner.events.lock().unwrap().clone();
    assert_eq!(ids(&events), vec![vec![1, 2, 3], vec![]]);
    assert_eq!(
        inner.asked.lock().unwrap().len(),
        1,
        "no request after the cancel"
    );
}

#[test]
fn a_typed_state_round_trips_and_a_wrong_shaped_one_is_an_error() {
    let state = StreamState {
        cursor: Some(json!("2026-01-02")),
        seen: Some(json!("2026-01-09")),
        resume: Some(Resume::Token("page-3".to_string())),
    };
    let text = serde_json::to_value(&state).unwrap();
    assert_eq!(
        text,
        json!({"cursor": "2026-01-02", "seen": "2026-01-09", "resume": {"token": "page-3"}})
    );
    let req = request(SyncMode::Incremental, 3, 1, Some(text));
    assert_eq!(req.state::<StreamState<String>>().unwrap(), Some(state));
    assert_eq!(
        request(SyncMode::Incremental, 3, 1, None)
            .state::<StreamState<String>>()
            .unwrap(),
        None
    );
    let bad = request(SyncMode::Incremental, 3, 1, Some(json!({"skip": 3})));
    let e = bad.state::<StreamState<()>>().unwrap_err();
    assert_eq!(e.kind(), error_kind::INVALID_INPUT);
    assert!(e.message().contains("task 'items'"), "{e}");
    assert!(e.message().contains("StreamState"), "{e}");
    assert!(e.message().contains("unknown field `skip`"), "{e}");
    // A read with such a state fails before it asks anything.
    let (host, inner) = scripted(usize::MAX, offset_api(7));
    assert!(read(&Items, &host, &settings(), &bad).is_err());
    assert!(inner.asked.lock().unwrap().is_empty());
}

#[test]
fn a_wrong_shaped_answer_is_an_error_not_the_end_of_the_data() {
    let (host, inner) = scripted(usize::MAX, |q| {
        if q["offset"] == "0" {
            offset_api(10)(q)
        } else {
            Ok((200, r#"{"error":"try later"}"#.into()))
        }
    });
    let e = read(
        &Items,
        &host,
        &settings(),
        &request(SyncMode::FullRefresh, 3, 1, None),
    )
    .unwrap_err();
    assert!(e.is_unexpected_body(), "{e}");
    assert!(e.message().contains("a page of items"), "{e}");
    assert!(
        e.message().contains("GET api/items?offset=3&limit=3"),
        "{e}"
    );
    let events = inner.events.lock().unwrap().clone();
    assert_eq!(
        ids(&events),
        vec![vec![1, 2, 3], vec![]],
        "the first page only"
    );
    let offsets: Vec<String> = inner
        .asked
        .lock()
        .unwrap()
        .iter()
        .map(|q| q["offset"].clone())
        .collect();
    assert_eq!(
        offsets,
        ["0", "3", "3"],
        "the refused page asked twice (the policy's attempts)"
    );
    // A status other than 2xx is an error naming the request and the status.
    let (host, _) = scripted(usize::MAX, |_| Ok((404, "no such API".into())));
    let e = read(
        &Items,
        &host,
        &settings(),
        &request(SyncMode::FullRefresh, 3, 1, None),
    )
    .unwrap_err();
    assert!(
        e.message().contains("answered HTTP 404: no such API"),
        "{e}"
    );
}

#[test]
fn a_page_that_keeps_timing_out_is_asked_again_halved_from_the_last_commit() {
    // The host's half of the contract: after its retries, a 504 comes as a `timeout` error.
    let (host, inner) = scripted(usize::MAX, |q| {
        let limit: u32 = q["limit"].parse().unwrap();
        let offset: u32 = q["offset"].parse().unwrap();
        if limit > 2 && offset >= 4 {
            Err(PluginError::new(
                error_kind::TIMEOUT,
                "GET api/items: timed out twice",
            ))
        } else {
            offset_api(9)(q)
        }
    });
    let summary = read(
        &Items,
        &host,
        &settings(),
        &request(SyncMode::FullRefresh, 4, 3, None),
    )
    .unwrap();
    assert_eq!(summary.records, 9);
    let events = inner.events.lock().unwrap().clone();
    let all: Vec<u64> = ids(&events).concat();
    assert_eq!(all, (1..=9).collect::<Vec<u64>>());
    let asked: Vec<(String, String)> = inner
        .asked
        .lock()
        .unwrap()
        .iter()
        .map(|q| (q["offset"].clone(), q["limit"].clone()))
        .filter(|(_, l)| l == "2")
        .collect();
    // After the timeout: from the last commit (4), pages of 2, one at a time.
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(asked, pairs(&[("4", "2"), ("6", "2"), ("8", "2")]));
    // At the smallest page there is nothing left to halve: the read ends in the timeout.
    let (host, _) = scripted(usize::MAX, |_| {
        Err(PluginError::new(
            error_kind::TIMEOUT,
            "GET api/items: timed out twice",
        ))
    });
    let e = read(
        &Items,
        &host,
        &settings(),
        &request(SyncMode::FullRefresh, 1, 1, None),
    )
    .unwrap_err();
    assert!(e.is_timeout(), "{e}");
    assert!(e.message().contains("even pages of 1 records"), "{e}");
}

#[test]
fn an_interrupted_incremental_read_resumes_from_its_state() {
    // The last run started from 2026-01-03, committed 3 records of that query (3, 4, 5)
    // and stopped.
    let state = json!({"cursor": "2026-01-03", "seen": "2026-01-05", "resume": {"offset": 3}});
    let (host, inner) = scripted(usize::MAX, offset_api(8));
    let summary = read(
        &Items,
        &host,
        &settings(),
        &request(SyncMode::Incremental, 2, 1, Some(state)),
    )
    .unwrap();
    let first = inner.asked.lock().unwrap()[0].clone();
    assert_eq!(first["offset"], "3");
    assert_eq!(first["since"], "2026-01-03");
    let events = inner.events.lock().unwrap().clone();
    assert_eq!(ids(&events).concat(), vec![6, 7, 8]);
    assert_eq!(summary.state, Some(json!({"cursor": "2026-01-08"})));
    // The next incremental read starts from that cursor, from the top of its query.
    let (host, inner) = scripted(usize::MAX, offset_api(8));
    read(
        &Items,
        &host,
        &settings(),
        &request(SyncMode::Incremental, 2, 1, summary.state),
    )
    .unwrap();
    let first = inner.asked.lock().unwrap()[0].clone();
    assert_eq!(
        (first["offset"].as_str(), first["since"].as_str()),
        ("0", "2026-01-08")
    );
    // A full refresh ignores the cursor and the resume point of an incremental query.
    let state = json!({"cursor": "2026-01-03", "resume": {"offset": 3}});
    let (host, inner) = scripted(usize::MAX, offset_api(8));
    read(
        &Items,
        &host,
        &settings(),
        &request(SyncMode::FullRefresh, 4, 1, Some(state)),
    )
    .unwrap();
    let first = inner.asked.lock().unwrap()[0].clone();
    assert_eq!(first["offset"], "0");
    assert!(!first.contains_key("since"));
}

#[test]
fn fields_outside_the_read_s_columns_are_dropped() {
    let (host, inner) = scripted(usize::MAX, offset_api(2));
    let mut req = request(SyncMode::FullRefresh, 5, 1, None);
    req.columns = Some(vec!["id".into()]);
    let summary = read(&Items, &host, &settings(), &req).unwrap();
    let events = inner.events.lock().unwrap().clone();
    assert_eq!(
        events[0],
        Event::Records(vec![json!({"id": 1}), json!({"id": 2})])
    );
    // The cursor is still tracked from the whole record.
    assert_eq!(summary.state, Some(json!({"cursor": "2026-01-02"})));
}

/// A token-paged API: `items?limit=[&after=ID]` answers `{"data": [...], "next": ID|null}`.
struct Linked;

#[derive(Deserialize)]
struct LinkedPage {
    data: Vec<Item>,
    next: Option<u64>,
}

impl RestStream<Settings> for Linked {
    type Record = Item;
    type Token = u64;
    const NAME: &'static str = "linked";
    const DESCRIPTION: &'static str = "Every item, by link.";
    const PRIMARY_KEY: &'static [&'static str] = &["id"];
    const PAGING: Paging = Paging::Token;

    fn request(&self, s: &Settings, page: &PageRequest<'_, u64>) -> GatewayRequest {
        let r = GatewayRequest::get(&s.path).query("limit", page.size.to_string());
        match page.token {
            Some(after) => r.query("after", after.to_string()),
            None => r,
        }
    }

    fn parse(&self, answer: &Answer<'_>) -> Result<Page<Item, u64>, ConnectorError> {
        let p: LinkedPage = answer.json("a linked page")?;
        Ok(Page {
            records: p.data,
            next: p.next,
        })
    }

    fn retry_policy(&self) -> RetryPolicy {
        quick()
    }
}

fn linked_api(q: &Query) -> Result<(u16, String), PluginError> {
    let after: u64 = q.get("after").map_or(0, |a| a.parse().unwrap());
    let limit: u64 = q["limit"].parse().unwrap();
    let rows: Vec<Value> = items(5)
        .into_iter()
        .skip(after as usize)
        .take(limit as usize)
        .collect();
    let last = rows.last().and_then(|r| r["id"].as_u64());
    let next = last.filter(|l| *l < 5);
    Ok((200, json!({"data": rows, "next": next}).to_string()))
}

#[test]
fn token_paging_follows_the_tokens_and_resumes_from_one() {
    let (host, inner) = scripted(usize::MAX, linked_api);
    let mut req = request(SyncMode::FullRefresh, 2, 4, None);
    req.task = "linked".into();
    read(&Linked, &host, &settings(), &req).unwrap();
    let events = inner.events.lock().unwrap().clone();
    assert_eq!(
        ids(&events),
        vec![vec![1, 2], vec![], vec![3, 4], vec![], vec![5], vec![]]
    );
    assert_eq!(
        checkpoints(&events),
        vec![
            json!({"resume": {"token": 2}}),
            json!({"resume": {"token": 4}}),
            json!({})
        ]
    );
    req.state = Some(json!({"resume": {"token": 4}}));
    let (host, inner) = scripted(usize::MAX, linked_api);
    read(&Linked, &host, &settings(), &req).unwrap();
    assert_eq!(
        inner.asked.lock().unwrap()[0]
            .get("after")
            .map(String::as_str),
        Some("4")
    );
    assert_eq!(ids(&inner.events.lock().unwrap()).concat(), vec![5]);
    // An answer whose next token is the one it was asked with is an error, not a loop.
    let (host, inner) = scripted(usize::MAX, |_| {
        Ok((
            200,
            json!({"data": [{"id": 1, "at": "x"}], "next": 7}).to_string(),
        ))
    });
    req.state = None;
    let e = read(&Linked, &host, &settings(), &req).unwrap_err();
    assert!(e.is_unexpected_body(), "{e}");
    assert!(
        e.message()
            .contains("next token is the one it was asked with"),
        "{e}"
    );
    assert_eq!(inner.asked.lock().unwrap().len(), 2);
    assert_eq!(
        checkpoints(&inner.events.lock().unwrap()),
        vec![json!({"resume": {"token": 7}})]
    );
}

struct Shop;

impl StreamConnector for Shop {
    type Settings = Settings;
    fn info(&self) -> crate::ConnectorInfo {
        crate::ConnectorInfo {
            id: "shop".into(),
            name: "Shop".into(),
            version: "0.1.0".into(),
            description: "A test shop.".into(),
        }
    }
    fn streams(&self) -> Vec<Box<dyn AnyStream<Settings>>> {
        vec![Box::new(Items), Box::new(Linked)]
    }
}

#[test]
fn the_adapter_declares_tasks_and_form_and_checks_and_reads_by_name() {
    let c = Streams(Shop);
    let tasks = c.tasks();
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0].name, "items");
    assert_eq!(tasks[0].primary_key, ["id"]);
    assert_eq!(tasks[0].cursor_field.as_deref(), Some("at"));
    assert_eq!(
        tasks[0].sync_modes,
        [SyncMode::FullRefresh, SyncMode::Incremental]
    );
    assert_eq!(tasks[1].sync_modes, [SyncMode::FullRefresh]);
    assert_eq!(
        tasks[0].record_schema["properties"]["id"]["type"],
        "integer"
    );
    let form = c.connection_form();
    assert_eq!(form["title"], "Shop connection");
    assert_eq!(form["additionalProperties"], false);
    assert_eq!(form["properties"]["path"]["type"], "string");
    assert!(form["properties"]["credentials"].is_object(), "{form}");
    assert!(
        crate::conformance::check_form(&form).is_empty(),
        "{:?}",
        crate::conformance::check_form(&form)
    );
    assert!(crate::conformance::check_tasks(&tasks).is_empty());

    let (host, inner) = scripted(usize::MAX, |_| Ok((403, "forbidden".into())));
    let conn = ConnectionConfig {
        settings: json!({"path": "api/items"}),
    };
    let report = c.check(&host, &conn).unwrap();
    assert!(!report.success);
    assert_eq!(report.failed_part.as_deref(), Some("rights"));
    assert!(
        report
            .message
            .contains("GET ifsservice/usermgt/v2/users/me answered HTTP 403"),
        "{}",
        report.message
    );
    assert_eq!(inner.asked.lock().unwrap().len(), 1);
    let (host, _) = scripted(usize::MAX, |_| Ok((200, "{}".into())));
    assert!(c.check(&host, &conn).unwrap().success);
    let report = c
        .check(
            &host,
            &ConnectionConfig {
                settings: json!({"pth": 1}),
            },
        )
        .unwrap();
    assert_eq!(report.failed_part.as_deref(), Some("settings"));
    assert!(
        report.message.contains("missing field `path`"),
        "{}",
        report.message
    );

    let (host, _) = scripted(usize::MAX, offset_api(2));
    let mut req = request(SyncMode::FullRefresh, 5, 1, None);
    assert_eq!(c.read(&host, &req).unwrap().records, 2);
    req.task = "nothing".into();
    assert!(
        c.read(&host, &req)
            .unwrap_err()
            .message()
            .contains("no stream named 'nothing'")
    );
    assert_eq!(c.discover(&host, &conn).unwrap().streams.len(), 2);
}

fn page_at(offset: u64, size: u32) -> PageRequest<'static, ()> {
    PageRequest {
        size,
        offset,
        token: None,
        since: None,
        columns: None,
    }
}

#[test]
fn a_page_number_counts_from_one_and_refuses_an_offset_between_pages() {
    assert_eq!(page_at(0, 10).page_number(), Some(1));
    assert_eq!(page_at(30, 10).page_number(), Some(4));
    // After a timeout halved the page, the offset is still a whole number of pages.
    assert_eq!(page_at(30, 5).page_number(), Some(7));
    assert_eq!(page_at(25, 10).page_number(), None);
    let e = page_at(25, 10).page_number_or_error().unwrap_err();
    assert!(
        e.message().contains("record 25") && e.message().contains("10"),
        "{e:?}"
    );
}
