//! Customer order lines order by order (`customer_order_lines_by_order`): a keyed stream
//! whose listing is the company's orders from `OOHEAD` (EXPORTMI, paged by order number)
//! and whose records are each order's lines, `OIS100MI/LstLine` — a sub-request per order.
//! The SDK's state keeps the last order whose lines were all emitted, so a restart
//! resumes after it.
//!
//! This path used to be `customer_order_lines`, which now reads `OOLINE` in bulk; a
//! state it saved under that name is recognised there ([`per_order_state`]).

use ionport_infor_mi::MiType;
use ionport_plugin_sdk::key_ranges::KeyPage;
use ionport_plugin_sdk::stream::{KeyListing, KeyedStream, PageAt, StreamState};
use ionport_plugin_sdk::{ConnectorError, Host, ReadRequest, RecordWriter, TaskSpec};
use serde_json::Value;

use crate::export::{Export, Row, quote};
use crate::list::{MiList, ReadColumns, legacy_complete};
use crate::settings::M3Settings;
use crate::tasks::M3Task;

/// `customer_order_lines_by_order`: the orders are the listing, each order's lines its
/// records (a sub-request per order).
#[derive(Debug, Clone, Copy)]
pub struct OrderLinesStream(pub &'static M3Task);

impl KeyedStream<M3Settings> for OrderLinesStream {
    type Listing = Orders;

    fn spec(&self) -> TaskSpec {
        self.0.spec()
    }

    fn open(
        &self,
        host: &Host,
        s: &M3Settings,
        request: &ReadRequest,
        _since: Option<&Value>,
    ) -> Result<Orders, ConnectorError> {
        let order = ("OAORNO".to_string(), "OAORNO".to_string(), MiType::Alpha);
        let division = s.divi().map(|d| format!("OADIVI = {}", quote(d)));
        let key = vec!["OACONO".into(), "OAORNO".into()];
        Ok(Orders {
            heads: Export::new(s, "OOHEAD", [order].into_iter(), division, key, None),
            lines: ReadColumns::open(host, s, self.0, request, LINES, None)?,
        })
    }

    /// `{"complete": false, "last_order": O}` (an earlier version's) goes on after `O`.
    fn migrate_state(
        &self,
        _host: &Host,
        state: &Value,
    ) -> Result<Option<StreamState<()>>, ConnectorError> {
        Ok(legacy_complete(state, "last_order"))
    }
}

/// One read: the company's orders (`OOHEAD`, listed by EXPORTMI) and, per order, its
/// lines.
#[derive(Debug)]
pub struct Orders {
    heads: Export,
    lines: ReadColumns,
}

/// An order's lines.
const LINES: MiList = MiList {
    program: "OIS100MI",
    transaction: "LstLine",
    key: "ORNO",
};

impl KeyListing for Orders {
    /// An order head: its key is the order number.
    type Row = Row;
    fn page(&self, host: &Host, at: &PageAt<'_>) -> Result<KeyPage<Row>, ConnectorError> {
        self.heads.page(host, at)
    }

    fn key<'r>(&self, head: &'r Row) -> &'r str {
        self.heads.key(head)
    }

    /// The order's lines: one `OIS100MI/LstLine`.
    fn write(
        &self,
        host: &Host,
        head: &Row,
        out: &mut RecordWriter,
    ) -> Result<u64, ConnectorError> {
        let order = self.heads.key(head);
        if order.is_empty() {
            return Ok(0);
        }
        let lines = self.lines.call(LINES, 0).input(LINES.key, order);
        let answer = self.lines.rows(host, &lines)?;
        for i in 0..answer.rows().len() {
            out.write_row(|w| answer.write(i, w))?;
        }
        Ok(1)
    }

    /// One page at a time: the orders' lines are asked for on the reading thread anyway.
    fn pages_in_flight(&self, _asked: usize) -> usize {
        1
    }
}

/// `state`, unless it is one this per-order path saved (`{"complete": …}`) under a task
/// name that now reads in bulk: its `last_order` means nothing to a key-paged listing
/// and it holds no change stamp, so the bulk read starts over with a full pass (which
/// loses nothing; records read again upsert by key) and says so.
pub fn per_order_state(host: &Host, task: &str, state: &Value) -> Option<StreamState<()>> {
    let per_order = state.get("complete").is_some() && state.get("run").is_none();
    if per_order {
        host.warn(&format!(
            "{task}: the saved state is the per-order path's (now customer_order_lines_by_order); \
             this read is a full pass over OOLINE, after which reads are incremental on LMTS"
        ));
        return Some(StreamState::default());
    }
    None
}
