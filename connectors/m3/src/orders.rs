//! Customer order lines order by order (`customer_order_lines_by_order`): the orders of
//! the company from `OOHEAD` (EXPORTMI, paged by order number), then `OIS100MI/LstLine`
//! for each order — a request per order. The state keeps the last order whose lines were
//! all emitted, so a restart resumes after it.
//!
//! This path used to be `customer_order_lines`, which now reads `OOLINE` in bulk; a
//! state it saved under that name is recognised there ([`unless_per_order_state`]).

use ionport_infor_mi::MiCall;
use ionport_plugin_sdk::paging::AdaptivePageSize;
use ionport_plugin_sdk::{ConnectorError, Host, RecordWriter};
use serde_json::{Value, json};

use crate::columns::{self, Col};
use crate::export::SEPARATOR;
use crate::list::field_types;
use crate::settings::M3Settings;

fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

/// Reads every order line of the company (and division, when set).
pub fn read_order_lines(
    host: &Host,
    s: &M3Settings,
    stream: &str,
    cols: &[Col],
    page: &mut AdaptivePageSize,
    state: Option<&Value>,
) -> Result<(u64, u64, Value), ConnectorError> {
    let types = field_types(host, s, "OIS100MI", "LstLine")?;
    let fallback = columns::types(cols);
    let mut last_order = state
        .filter(|st| st.get("complete") == Some(&Value::Bool(false)))
        .and_then(|st| st.get("last_order"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut out = RecordWriter::new(host, stream, 1000);
    let mut pages = 0u64;
    loop {
        host.check_cancelled()?;
        let mut query = format!("OAORNO from OOHEAD where OACONO = {}", s.company);
        if let Some(d) = s.divi() {
            query.push_str(&format!(" and OADIVI = {}", quote(d)));
        }
        if let Some(o) = &last_order {
            query.push_str(&format!(" and OAORNO > {}", quote(o)));
        }
        let call_for = |n: u32| {
            MiCall::new("EXPORTMI", "Select")
                .input("SEPC", SEPARATOR)
                .input("HDRS", "0")
                .input("QERY", query.clone())
                .maxrecs(n)
        };
        let (resp, size) = page.fetch(host, |n| call_for(n).request(s.shape()))?;
        let call = call_for(size);
        let answer = call.parse(&resp)?;
        // This loop pages by itself (no SDK helper): each page is reported as it is read.
        pages += 1;
        host.report_pages(1);
        let orders: Vec<String> = answer
            .rows
            .iter()
            .filter_map(|r| {
                r.iter()
                    .find(|(k, _)| k == "REPL")
                    .map(|(_, v)| v.trim().to_string())
            })
            .filter(|o| !o.is_empty())
            .collect();
        for order in &orders {
            host.check_cancelled()?;
            let lines = MiCall::new("OIS100MI", "LstLine")
                .input("CONO", s.cono())
                .input("ORNO", order.clone())
                .maxrecs(0)
                .returncols(columns::names(cols));
            // v1 answers carry their own metadata; v2 use the types read before.
            let answer = lines
                .parse_rows(host.gateway(&lines.request(s.shape()))?)?
                .typed(&types, &fallback);
            pages += 1;
            host.report_pages(1);
            for i in 0..answer.rows().len() {
                out.write_row(|w| answer.write(i, w))?;
            }
            last_order = Some(order.clone());
        }
        if orders.len() < size as usize {
            break;
        }
        out.commit(&json!({ "complete": false, "last_order": last_order }))?;
    }
    let done = json!({ "complete": true });
    out.commit(&done)?;
    Ok((out.written(), pages, done))
}

/// `state`, unless it is one this per-order path saved (`{"complete": …}`) under a task
/// name that now reads in bulk: its `last_order` means nothing to a key-paged listing
/// and it holds no change stamp, so the bulk read starts over with a full pass (which
/// loses nothing; records read again upsert by key) and says so.
pub fn unless_per_order_state<'s>(
    host: &Host,
    task: &str,
    state: Option<&'s Value>,
) -> Option<&'s Value> {
    let per_order = state.is_some_and(|st| st.get("complete").is_some() && st.get("run").is_none());
    if per_order {
        host.warn(&format!(
            "{task}: the saved state is the per-order path's (now customer_order_lines_by_order); \
             this read is a full pass over OOLINE, after which reads are incremental on LMTS"
        ));
        return None;
    }
    state
}
