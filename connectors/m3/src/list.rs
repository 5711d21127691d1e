//! MI list transactions as keyed streams (the stream API's [`KeyedStream`]).
//!
//! MI has no cursor: a `Lst*` transaction lists from a key onwards, including the key. The
//! SDK asks again from the last key, drops the repeated first row and stops on a short
//! page; with several pages in flight the listing is cut into key ranges read side by side,
//! and the state keeps the watermark key, so an interrupted full refresh resumes there.

use std::collections::HashMap;
use std::sync::Arc;

use ionport_infor_mi::{MiCall, MiShape, MiType, TypedRows};
use ionport_plugin_sdk::key_ranges::KeyPage;
use ionport_plugin_sdk::stream::{KeyListing, KeyedStream, PageAt, Resume, StreamState};
use ionport_plugin_sdk::{ConnectorError, Host, ReadRequest, RecordWriter, TaskSpec};
use serde_json::Value;

use crate::columns::{self, Col};
use crate::settings::M3Settings;
use crate::tasks::M3Task;

/// The output field types of `program/transaction` from `MRS001MI/LstFields` (v2 answers
/// carry no metadata). An empty map means "use the task's declared types": when M3 lists
/// none, and when `MRS001MI` is missing or refused (HTTP 403/404, or an MI error such as a
/// service account without rights for the program) — then with a warning, so that the read
/// goes on. A body of the wrong shape is still an error.
pub fn field_types(
    host: &Host,
    s: &M3Settings,
    program: &str,
    transaction: &str,
) -> Result<HashMap<String, MiType>, ConnectorError> {
    if s.shape() == MiShape::V1 {
        return Ok(HashMap::new()); // v1 answers carry metadata
    }
    let call = MiCall::new("MRS001MI", "LstFields")
        .input("MINM", program)
        .input("TRNM", transaction)
        .input("TRTP", "O")
        .maxrecs(0);
    let resp = host.gateway(&call.request(s.shape()))?;
    let answer = match call.parse_detailed(&resp) {
        Ok(a) => a,
        Err(e) if !e.unexpected_body && (resp.is_success() || matches!(resp.status, 403 | 404)) => {
            host.warn(&format!(
                "{}; reading {program}/{transaction} with the task's declared field types \
                 (grant the service account MRS001MI to type fields from M3's own metadata)",
                call.error(&e).message()
            ));
            return Ok(HashMap::new());
        }
        Err(e) => return Err(call.error(&e)),
    };
    Ok(answer
        .rows
        .iter()
        .filter_map(|row| {
            let get = |k: &str| {
                row.iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.trim().to_string())
            };
            Some((get("FLNM")?, MiType::from_letter(&get("TYPE")?)))
        })
        .collect())
}

/// An MI list transaction paged by one key field.
#[derive(Debug, Clone, Copy)]
pub struct MiList {
    /// Program.
    pub program: &'static str,
    /// Transaction.
    pub transaction: &'static str,
    /// The key input/output field the listing is paged by.
    pub key: &'static str,
}

/// A list task, read for the company.
#[derive(Debug, Clone, Copy)]
pub struct ListStream(pub &'static M3Task, pub MiList);

impl KeyedStream<M3Settings> for ListStream {
    type Listing = Listing;

    fn spec(&self) -> TaskSpec {
        self.0.spec()
    }

    fn open(
        &self,
        host: &Host,
        s: &M3Settings,
        request: &ReadRequest,
        _since: Option<&Value>,
    ) -> Result<Listing, ConnectorError> {
        let list = self.1;
        Ok(Listing {
            list,
            // The listing's paging key is read whatever is selected.
            rows: ReadColumns::open(host, s, self.0, request, list, Some(list.key))?,
        })
    }

    /// The state an earlier version saved: `{"complete": false, "last_key": K}` goes on
    /// after `K`; `{"complete": true}` was a finished read.
    fn migrate_state(
        &self,
        _host: &Host,
        state: &Value,
    ) -> Result<Option<StreamState<()>>, ConnectorError> {
        Ok(legacy_complete(state, "last_key"))
    }
}

/// The columns one read asks of an MI transaction and how their values are typed: the
/// types M3 lists for the transaction (v2), else the task's declared ones. A list task and
/// the order lines per order read their rows alike.
#[derive(Debug)]
pub struct ReadColumns {
    cono: String,
    cols: Vec<Col>,
    shape: MiShape,
    /// Field types from `MRS001MI` (v2), empty when M3 gave none.
    listed: HashMap<String, MiType>,
    /// The task's declared types.
    fallback: HashMap<String, MiType>,
}

impl ReadColumns {
    /// The columns of `task` the read selects (with `paging`, a listing's key) and the
    /// types of `list`'s output fields.
    pub fn open(
        host: &Host,
        s: &M3Settings,
        task: &M3Task,
        request: &ReadRequest,
        list: MiList,
        paging: Option<&'static str>,
    ) -> Result<Self, ConnectorError> {
        let cols = task.columns(request, paging)?;
        Ok(Self {
            cono: s.cono(),
            shape: s.shape(),
            listed: field_types(host, s, list.program, list.transaction)?,
            fallback: columns::types(&cols),
            cols,
        })
    }

    /// `list`'s call for up to `size` rows (0: all) of the selected columns, for the
    /// company.
    pub fn call(&self, list: MiList, size: u32) -> MiCall {
        MiCall::new(list.program, list.transaction)
            .maxrecs(size)
            .returncols(columns::names(&self.cols))
            .input("CONO", self.cono.clone())
    }

    /// `call`'s answer, its rows typed (v1 answers carry their own metadata; v2 use the
    /// types read before the listing).
    pub fn rows(&self, host: &Host, call: &MiCall) -> Result<TypedRows, ConnectorError> {
        let resp = host.gateway(&call.request(self.shape))?;
        Ok(call.parse_rows(resp)?.typed(&self.listed, &self.fallback))
    }
}

/// `{"complete": false, <field>: K}` (an interrupted read of an earlier version) as a
/// stream state resuming after `K`; `{"complete": true}` as a finished read; `None` for
/// any other state.
pub fn legacy_complete(state: &Value, field: &str) -> Option<StreamState<()>> {
    state.get("complete")?;
    Some(StreamState {
        resume: match (&state["complete"], state.get(field)) {
            (Value::Bool(false), Some(Value::String(k))) => Some(Resume::Key(k.clone())),
            _ => None,
        },
        ..StreamState::default()
    })
}

/// One read of a list transaction for the company.
#[derive(Debug)]
pub struct Listing {
    list: MiList,
    rows: ReadColumns,
}

/// A listed row: its page (the answer's body, its rows borrowing from it, their field
/// types resolved once for the page) and its position there. Typed only when written into
/// the batch, so no record is built as a map and no field is copied.
pub type Keyed = (Arc<TypedRows>, usize);

impl KeyListing for Listing {
    type Row = Keyed;
    fn page(&self, host: &Host, at: &PageAt<'_>) -> Result<KeyPage<Keyed>, ConnectorError> {
        let mut call = self.rows.call(self.list, at.size);
        if let Some(from) = at.key {
            call = call.input(self.list.key, from);
        }
        let page = Arc::new(self.rows.rows(host, &call)?);
        let rows = (0..page.rows().len()).map(|i| (page.clone(), i)).collect();
        Ok(KeyPage::new(rows, at.size))
    }

    /// The key of a listed row (trimmed, as MI answers and takes it; empty when missing).
    fn key<'r>(&self, (page, i): &'r Keyed) -> &'r str {
        page.rows()
            .row(*i)
            .and_then(|row| row.get(self.list.key))
            .unwrap_or_default()
    }

    fn write(
        &self,
        _host: &Host,
        (page, i): &Keyed,
        out: &mut RecordWriter,
    ) -> Result<u64, ConnectorError> {
        out.write_row(|w| page.write(*i, w))?;
        Ok(0)
    }
}
