//! A read's column selection ([`ReadRequest::columns`]) applied to what a source offers.
//!
//! The host has already checked the selection against the stream's schema and added the
//! key and cursor; these helpers check again (a consumer may build a request by hand) and
//! add the columns a connector's own paging needs, so that a selection can never break a
//! read.

use ionport_plugin_abi::wire::ReadRequest;

use crate::ConnectorError;

/// The columns to ask the source for, in the source's order (`offered`): `None` when the
/// request selects none (read every column), else the selected ones and `keep` (the key,
/// the cursor, a paging column). A selected column the source does not offer is an
/// `invalid_input` error naming it and the stream.
pub fn select(
    req: &ReadRequest,
    offered: &[&str],
    keep: &[&str],
) -> Result<Option<Vec<String>>, ConnectorError> {
    let Some(selected) = &req.columns else {
        return Ok(None);
    };
    let unknown: Vec<&str> = selected
        .iter()
        .map(String::as_str)
        .filter(|c| !offered.contains(c))
        .collect();
    if !unknown.is_empty() {
        return Err(ConnectorError::invalid_input(format!(
            "{}: no column {} (the stream has: {})",
            req.task,
            unknown.join(", "),
            offered.join(", ")
        )));
    }
    Ok(Some(
        offered
            .iter()
            .filter(|c| selected.iter().any(|s| s == *c) || keep.contains(c))
            .map(|c| (*c).to_string())
            .collect(),
    ))
}

/// The same where the connector does not know the stream's columns before it reads (a
/// stream the host discovered and checked): the selection as given, then `keep`.
pub fn requested(req: &ReadRequest, keep: &[&str]) -> Option<Vec<String>> {
    let selected = req.columns.as_ref()?;
    let mut out = selected.clone();
    for k in keep {
        if !out.iter().any(|c| c == k) {
            out.push((*k).to_string());
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ionport_plugin_abi::wire::{ConnectionConfig, SyncMode};

    fn req(columns: Option<&[&str]>) -> ReadRequest {
        ReadRequest {
            connection: ConnectionConfig::default(),
            task: "customers".into(),
            sync_mode: SyncMode::FullRefresh,
            state: None,
            page_size: None,
            pages_in_flight: None,
            options: serde_json::Value::Null,
            columns: columns.map(|c| c.iter().map(|s| (*s).to_string()).collect()),
            include_deleted: false,
            partition: None,
        }
    }

    const OFFERED: &[&str] = &["CONO", "CUNO", "CUNM", "TOWN", "LMTS"];

    #[test]
    fn no_selection_reads_every_column() {
        assert_eq!(select(&req(None), OFFERED, &["CUNO"]).unwrap(), None);
        assert_eq!(requested(&req(None), &["CUNO"]), None);
    }

    #[test]
    fn a_selection_keeps_the_key_in_the_sources_order() {
        let got = select(&req(Some(&["TOWN", "CUNM"])), OFFERED, &["CONO", "CUNO"]).unwrap();
        assert_eq!(got.unwrap(), ["CONO", "CUNO", "CUNM", "TOWN"]);
        let got = requested(&req(Some(&["TOWN", "CUNO"])), &["CONO", "CUNO"]).unwrap();
        assert_eq!(got, ["TOWN", "CUNO", "CONO"]);
    }

    #[test]
    fn an_unknown_column_is_an_error_naming_it() {
        let e = select(&req(Some(&["CUNM", "NOPE"])), OFFERED, &[]).unwrap_err();
        assert!(e.message().contains("no column NOPE"), "{e}");
        assert!(e.message().contains("customers"), "{e}");
    }
}
