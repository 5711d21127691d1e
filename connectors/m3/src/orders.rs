//! Customer order lines order by order (`customer_order_lines_by_order`): a keyed stream
//! whose listing is the company's orders from `OOHEAD` (EXPORTMI, paged by order number)
//! and whose records are each order's lines, `OIS100MI/LstLine` — a sub-request per order.
//! The SDK's state keeps the last order whose lines were all emitted, so a restart
//! resumes after it.
//!
//! This path used to be `customer_order_lines`, which now reads `OOLINE` in bulk; a
//! state it saved under that name is recognised there ([`per_order_state`]).

use std::collections::HashMap;

use ionport_infor_mi::{MiCall, MiShape, MiType};
use ionport_plugin_sdk::key_ranges::KeyPage;
use ionport_plugin_sdk::stream::{KeyListing, KeyedStream, StreamState};
use ionport_plugin_sdk::{ConnectorError, Host, ReadRequest, RecordWriter, TaskSpec};
use serde_json::Value;

use crate::columns::{self, Col};
use crate::export::{Export, Row, quote};
use crate::list::{field_types, legacy_complete};
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
        let cols = self.0.columns(request, None)?;
        let order = ("OAORNO".to_string(), "OAORNO".to_string(), MiType::Alpha);
        let division = s.divi().map(|d| format!("OADIVI = {}", quote(d)));
        let key = vec!["OACONO".into(), "OAORNO".into()];
        Ok(Orders {
            heads: Export::new(s, "OOHEAD", [order].into_iter(), division, key, None),
            cono: s.cono(),
            shape: s.shape(),
            types: field_types(host, s, "OIS100MI", "LstLine")?,
            fallback: columns::types(&cols),
            cols,
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
    cono: String,
    shape: MiShape,
    cols: Vec<Col>,
    /// `OIS100MI/LstLine`'s field types from `MRS001MI` (v2), empty when M3 gave none.
    types: HashMap<String, MiType>,
    fallback: HashMap<String, MiType>,
}

impl KeyListing for Orders {
    /// An order head: its key is the order number.
    type Row = Row;

    fn page(
        &self,
        host: &Host,
        size: u32,
        from: Option<&str>,
        end: Option<&str>,
    ) -> Result<KeyPage<Row>, ConnectorError> {
        self.heads.page(host, size, from, end)
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
        let lines = MiCall::new("OIS100MI", "LstLine")
            .input("CONO", self.cono.clone())
            .input("ORNO", order)
            .maxrecs(0)
            .returncols(columns::names(&self.cols));
        // v1 answers carry their own metadata; v2 use the types read before.
        let answer = lines
            .parse_rows(host.gateway(&lines.request(self.shape))?)?
            .typed(&self.types, &self.fallback);
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
