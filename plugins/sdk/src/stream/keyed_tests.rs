//! Keyed streams against a scripted host: a listing by key (`from` included, the MI
//! rule), its watermark checkpoints, resumption, incremental bounds, sub-requests per
//! parent row, timeouts, key ranges in flight and an older state migrated. Expected values
//! are written out from the test's own data, never computed by the code under test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ionport_plugin_abi::abi_stable::std_types::RArc;
use ionport_plugin_abi::{PluginError, error_kind};
use serde_json::{Value, json};

use super::tests::{Event, Query, Scripted};
use super::*;
use crate::key_ranges::KeyPage;
use crate::{
    ConnectionConfig, GatewayRequest, Host, ReadRequest, RecordWriter, SyncMode, TaskSpec,
};

/// The stream API's scripted host, every answer an HTTP 200 with `serve`'s body.
fn scripted(
    cancel_after: usize,
    serve: impl Fn(&Query) -> Result<String, PluginError> + Send + Sync + 'static,
) -> (Host, RArc<Scripted>) {
    super::tests::scripted(cancel_after, move |q| serve(q).map(|body| (200, body)))
}

/// The records handed over, in order.
fn records(inner: &Scripted) -> Vec<Value> {
    let events = inner.events.lock().unwrap();
    events
        .iter()
        .filter_map(|e| match e {
            Event::Records(rs) => Some(rs.clone()),
            Event::Checkpoint(_) => None,
        })
        .flatten()
        .collect()
}

/// The checkpoints, each with the number of records handed over before it.
fn checkpoints(inner: &Scripted) -> Vec<(Value, usize)> {
    let mut emitted = 0;
    let mut out = Vec::new();
    for e in inner.events.lock().unwrap().iter() {
        match e {
            Event::Records(rs) => emitted += rs.len(),
            Event::Checkpoint(v) => out.push((v.clone(), emitted)),
        }
    }
    out
}

/// The checkpoints' states.
fn states(inner: &Scripted) -> Vec<Value> {
    checkpoints(inner).into_iter().map(|(v, _)| v).collect()
}

/// `rows?from=&end=&limit=&since=` over keys `K001..=K{count}`, row `i` stamped `100 + i`
/// (so the stamps are not the keys' order reversed, only offset); `from` included, `end`
/// excluded, `since` a lower bound on the stamp. `lines?order=K003`: two lines per row.
fn api(count: u32) -> impl Fn(&Query) -> Result<String, PluginError> {
    move |q| {
        if q.contains_key("order") {
            let order = &q["order"];
            return Ok(json!({"rows": [
                {"key": format!("{order}-1"), "at": 0},
                {"key": format!("{order}-2"), "at": 0},
            ]})
            .to_string());
        }
        let limit: usize = q["limit"].parse().unwrap();
        let since: Option<u64> = q.get("since").map(|s| s.parse().unwrap());
        let rows: Vec<Value> = (1..=count)
            .map(|i| (format!("K{i:03}"), u64::from(100 + i)))
            .filter(|(k, _)| q.get("from").is_none_or(|f| k >= f))
            .filter(|(k, _)| q.get("end").is_none_or(|e| k < e))
            .filter(|(_, at)| since.is_none_or(|s| *at >= s))
            .take(limit)
            .map(|(k, at)| json!({"key": k, "at": at}))
            .collect();
        Ok(json!({ "rows": rows }).to_string())
    }
}

/// The stream: `rows`, keyed by `key`, cursor `at`, paged as `paging` says; `parents`:
/// each row stands for its lines (`lines?order=`), one request per row.
struct Rows {
    paging: KeyPaging,
    parents: bool,
}

struct Listing {
    since: Option<String>,
    paging: KeyPaging,
    parents: bool,
}

/// A row: its key, its stamp, the record.
type Row = (String, Value, Value);

impl KeyedStream<()> for Rows {
    type Listing = Listing;

    fn spec(&self) -> TaskSpec {
        TaskSpec {
            name: "rows".into(),
            description: "rows by key".into(),
            record_schema: json!({"type": "object"}),
            primary_key: vec!["key".into()],
            cursor_field: Some("at".into()),
            sync_modes: vec![SyncMode::FullRefresh, SyncMode::Incremental],
            requests_per_1000_records: None,
        }
    }

    fn open(
        &self,
        _host: &Host,
        _settings: &(),
        _request: &ReadRequest,
        since: Option<&Value>,
    ) -> Result<Listing, ConnectorError> {
        Ok(Listing {
            since: since.map(Value::to_string),
            paging: self.paging,
            parents: self.parents,
        })
    }

    fn migrate_state(
        &self,
        _host: &Host,
        state: &Value,
    ) -> Result<Option<StreamState<()>>, ConnectorError> {
        // The earlier shape: {"done": false, "last": "K004"}.
        Ok(match (state.get("done"), state.get("last")) {
            (Some(Value::Bool(false)), Some(Value::String(last))) => Some(StreamState {
                resume: Some(Resume::Key(last.clone())),
                ..StreamState::default()
            }),
            (Some(_), _) => Some(StreamState::default()),
            (None, _) => None,
        })
    }
}

impl KeyListing for Listing {
    type Row = Row;
    fn paging(&self) -> KeyPaging {
        self.paging
    }

    fn page(&self, host: &Host, at: &PageAt<'_>) -> Result<KeyPage<Row>, ConnectorError> {
        let mut r = GatewayRequest::get("rows").query("limit", at.size.to_string());
        if let Some(f) = at.key {
            r = r.query("from", f);
        }
        if let Some(e) = at.end {
            r = r.query("end", e);
        }
        if let Some(s) = &self.since {
            r = r.query("since", s.as_str());
        }
        let page: Value = host.gateway(&r)?.json("rows")?;
        let rows = page["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["key"].as_str().unwrap().to_string(),
                    v["at"].clone(),
                    v.clone(),
                )
            })
            .collect();
        Ok(KeyPage::new(rows, at.size))
    }

    fn key<'r>(&self, row: &'r Row) -> &'r str {
        &row.0
    }

    fn cursor<'r>(&self, row: &'r Row) -> Option<&'r Value> {
        Some(&row.1)
    }

    fn write(&self, host: &Host, row: &Row, out: &mut RecordWriter) -> Result<u64, ConnectorError> {
        if !self.parents {
            out.push(&row.2)?;
            return Ok(0);
        }
        let lines: Value = host
            .gateway(&GatewayRequest::get("lines").query("order", row.0.as_str()))?
            .json("lines")?;
        for line in lines["rows"].as_array().unwrap() {
            out.push(line)?;
        }
        Ok(1)
    }

    fn pages_in_flight(&self, asked: usize) -> usize {
        if self.parents { 1 } else { asked }
    }
}

fn request(mode: SyncMode, page: u32, in_flight: u32, state: Option<Value>) -> ReadRequest {
    let mut r = ReadRequest::new(
        ConnectionConfig {
            settings: json!({}),
        },
        "rows",
        mode,
    );
    r.page_size = Some(page);
    r.pages_in_flight = Some(in_flight);
    r.state = state;
    r
}

fn keys(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_string())
        .collect()
}

fn plain() -> Rows {
    Rows {
        paging: KeyPaging::Ranges,
        parents: false,
    }
}

#[test]
fn a_listing_is_read_page_by_page_from_the_last_key_with_a_watermark_per_page() {
    let (host, inner) = scripted(usize::MAX, api(7));
    let summary = read_keyed(
        &plain(),
        &host,
        &(),
        &request(SyncMode::FullRefresh, 3, 1, None),
    )
    .unwrap();
    assert_eq!(
        keys(&records(&inner)),
        ["K001", "K002", "K003", "K004", "K005", "K006", "K007"]
    );
    assert_eq!(summary.records, 7);
    // Pages from K003 (3 rows, the repeated K003 dropped), K005, K007 (1 row: the end).
    let froms: Vec<Option<String>> = inner
        .asked
        .lock()
        .unwrap()
        .iter()
        .map(|q| q.get("from").cloned())
        .collect();
    assert_eq!(
        froms,
        [
            None,
            Some("K003".into()),
            Some("K005".into()),
            Some("K007".into())
        ]
    );
    assert_eq!(summary.pages, 4);
    let checkpoints = states(&inner);
    assert_eq!(
        checkpoints[0],
        json!({"seen": 103, "resume": {"key": "K003"}})
    );
    assert_eq!(
        checkpoints[1],
        json!({"seen": 105, "resume": {"key": "K005"}})
    );
    // The end: the highest stamp is the next incremental read's start.
    assert_eq!(checkpoints.last().unwrap(), &json!({"cursor": 107}));
    assert_eq!(summary.state, Some(json!({"cursor": 107})));
}

#[test]
fn an_interrupted_read_resumes_after_its_watermark_and_reads_nothing_twice() {
    let (host, inner) = scripted(2, api(7));
    let e = read_keyed(
        &plain(),
        &host,
        &(),
        &request(SyncMode::FullRefresh, 3, 1, None),
    )
    .unwrap_err();
    assert!(e.is_cancelled(), "{e}");
    let state = states(&inner).last().cloned().unwrap();
    assert_eq!(state, json!({"seen": 105, "resume": {"key": "K005"}}));
    let (host, rest) = scripted(usize::MAX, api(7));
    read_keyed(
        &plain(),
        &host,
        &(),
        &request(SyncMode::FullRefresh, 3, 1, Some(state)),
    )
    .unwrap();
    assert_eq!(keys(&records(&rest)), ["K006", "K007"]);
    assert_eq!(rest.asked.lock().unwrap()[0]["from"], "K005");
}

#[test]
fn an_incremental_read_filters_from_the_cursor_which_advances_only_at_the_end() {
    let (host, inner) = scripted(usize::MAX, api(7));
    let state = Some(json!({"cursor": 105}));
    let summary = read_keyed(
        &plain(),
        &host,
        &(),
        &request(SyncMode::Incremental, 2, 1, state.clone()),
    )
    .unwrap();
    assert_eq!(keys(&records(&inner)), ["K005", "K006", "K007"]);
    for q in inner.asked.lock().unwrap().iter() {
        assert_eq!(q["since"], "105");
    }
    let checkpoints = states(&inner);
    // Under way: the bound it started from, the highest stamp so far, the watermark.
    assert_eq!(
        checkpoints[0],
        json!({"cursor": 105, "seen": 106, "resume": {"key": "K006"}})
    );
    assert_eq!(summary.state, Some(json!({"cursor": 107})));
    // A full refresh sends no bound, and a later one with nothing new keeps the cursor.
    let (host, full) = scripted(usize::MAX, api(7));
    read_keyed(
        &plain(),
        &host,
        &(),
        &request(SyncMode::FullRefresh, 10, 1, state),
    )
    .unwrap();
    assert!(
        full.asked
            .lock()
            .unwrap()
            .iter()
            .all(|q| !q.contains_key("since"))
    );
    let (host, _) = scripted(usize::MAX, api(0));
    let empty = read_keyed(
        &plain(),
        &host,
        &(),
        &request(SyncMode::Incremental, 10, 1, Some(json!({"cursor": 107}))),
    )
    .unwrap();
    assert_eq!(empty.state, Some(json!({"cursor": 107})));
}

#[test]
fn rows_that_stand_for_records_of_their_own_requests_count_them_as_pages() {
    let (host, inner) = scripted(usize::MAX, api(3));
    let rows = Rows {
        paging: KeyPaging::Ranges,
        parents: true,
    };
    let summary = read_keyed(
        &rows,
        &host,
        &(),
        &request(SyncMode::FullRefresh, 2, 8, None),
    )
    .unwrap();
    assert_eq!(
        keys(&records(&inner)),
        ["K001-1", "K001-2", "K002-1", "K002-2", "K003-1", "K003-2"]
    );
    // Three pages of parents (from the start, from K002, from K003: the short one that
    // ends the listing) and one request per parent.
    assert_eq!(summary.pages, 3 + 3);
    assert_eq!(summary.records, 6);
    let lines = inner
        .asked
        .lock()
        .unwrap()
        .iter()
        .filter(|q| q.contains_key("order"))
        .count();
    assert_eq!(lines, 3);
}

#[test]
fn key_ranges_in_flight_hand_every_record_over_once_and_checkpoint_a_true_watermark() {
    for bounded in [false, true] {
        let (host, inner) = scripted(usize::MAX, api(300));
        let rows = Rows {
            paging: if bounded {
                KeyPaging::BoundedRanges
            } else {
                KeyPaging::Ranges
            },
            parents: false,
        };
        let summary = read_keyed(
            &rows,
            &host,
            &(),
            &request(SyncMode::FullRefresh, 10, 4, None),
        )
        .unwrap();
        let mut got = keys(&records(&inner));
        got.sort();
        got.dedup();
        let all: Vec<String> = (1..=300).map(|i| format!("K{i:03}")).collect();
        assert_eq!(got, all, "bounded {bounded}");
        assert_eq!(summary.records, 300, "bounded {bounded}: nothing twice");
        let records = records(&inner);
        // Each checkpoint's key: every record at or below it was emitted before it.
        let checkpoints = checkpoints(&inner);
        assert!(checkpoints.len() > 2);
        let mut emitted_before = 0usize;
        for (cp, emitted) in &checkpoints {
            if let Some(mark) = cp["resume"]["key"].as_str() {
                let n: usize = mark[1..].parse().unwrap();
                emitted_before = emitted_before.max(n);
                let before = keys(&records[..*emitted]);
                for i in 1..=n {
                    assert!(before.contains(&format!("K{i:03}")), "{mark}");
                }
            }
        }
        assert!(emitted_before > 0);
        // Requests were made from several range starts, not one page after the other.
        let ends = inner
            .asked
            .lock()
            .unwrap()
            .iter()
            .filter(|q| q.contains_key("end"))
            .count();
        assert_eq!(ends > 0, bounded, "bounded {bounded}");
    }
}

#[test]
fn a_page_that_times_out_is_asked_again_smaller() {
    let (host, inner) = scripted(usize::MAX, |q| {
        if q["limit"] == "8" {
            Err(PluginError::new(
                error_kind::TIMEOUT,
                "GET rows: timed out twice",
            ))
        } else {
            api(5)(q)
        }
    });
    let summary = read_keyed(
        &plain(),
        &host,
        &(),
        &request(SyncMode::FullRefresh, 8, 1, None),
    )
    .unwrap();
    assert_eq!(summary.records, 5);
    let limits: Vec<String> = inner
        .asked
        .lock()
        .unwrap()
        .iter()
        .map(|q| q["limit"].clone())
        .collect();
    assert_eq!(limits[..2], ["8".to_string(), "4".to_string()]);
}

#[test]
fn an_older_state_is_migrated_and_one_of_another_shape_refused() {
    let (host, inner) = scripted(usize::MAX, api(7));
    read_keyed(
        &plain(),
        &host,
        &(),
        &request(
            SyncMode::FullRefresh,
            3,
            1,
            Some(json!({"done": false, "last": "K004"})),
        ),
    )
    .unwrap();
    assert_eq!(keys(&records(&inner)), ["K005", "K006", "K007"]);
    let (host, _) = scripted(usize::MAX, api(7));
    let e = read_keyed(
        &plain(),
        &host,
        &(),
        &request(SyncMode::FullRefresh, 3, 1, Some(json!({"offset": 12}))),
    )
    .unwrap_err();
    assert_eq!(e.kind(), error_kind::INVALID_INPUT, "{e}");
    assert!(e.message().contains("task 'rows'"), "{e}");
    let (host, _) = scripted(usize::MAX, api(7));
    let e = read_keyed(
        &plain(),
        &host,
        &(),
        &request(
            SyncMode::FullRefresh,
            3,
            1,
            Some(json!({"resume": {"offset": 12}})),
        ),
    )
    .unwrap_err();
    assert!(e.message().contains("not a key"), "{e}");
}

#[test]
fn a_listing_from_a_key_paged_as_one_after_a_key_is_refused_before_any_request() {
    for paging in [KeyPaging::Links, KeyPaging::Windows] {
        let (host, inner) = scripted(usize::MAX, api(7));
        let rows = Rows {
            paging,
            parents: false,
        };
        let request = request(SyncMode::FullRefresh, 3, 1, None);
        let e = read_keyed(&rows, &host, &(), &request).unwrap_err();
        assert_eq!(e.kind(), error_kind::CONNECTOR, "{e}");
        assert!(e.message().contains("FromKey"), "{e}");
        assert!(inner.asked.lock().unwrap().is_empty());
    }
}
