//! One task read from several LN companies (`companies = [100, 200]`): the companies one
//! after the other, each exactly as a single-company read (its own `X-Infor-LnCompany`,
//! high-water mark, key paging and pages in flight), into one stream whose records carry
//! their `company`.
//!
//! The state (JSON) keeps each company's own state, so one company's cursor never moves
//! another's:
//! - complete: `{"companies": {"100": {"cursor": "…"}, "200": {"cursor": "…"}}}`;
//! - during a read: also `"mode"` and `"done"` (the companies this read finished), and the
//!   company being read has its in-read state (`mode`, `next_cursor`, `after`). A read of
//!   the same mode that restarts skips the companies done and resumes the one it stopped
//!   in after its last key.

use std::collections::BTreeMap;

use ionport_plugin_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::LnSettings;
use crate::read::{
    DEFAULT_PAGE_SIZE, LnState, Paging, Target, company_text, parse_state, read_company,
};

/// The state of a task read from several companies.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CompaniesState {
    /// Each company's state, by company number.
    #[serde(default)]
    pub companies: BTreeMap<u16, LnState>,
    /// While a read runs: its sync mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<SyncMode>,
    /// While a read runs: the companies it has finished, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done: Vec<u16>,
}

/// One company being read, and the state of all companies around it.
#[derive(Debug)]
pub struct Fan<'a> {
    /// The company in `X-Infor-LnCompany`, written into every record.
    pub company: u16,
    /// The task's state as it stands, this company's entry aside.
    pub all: &'a CompaniesState,
}

impl Fan<'_> {
    /// The task's state with `state` as this company's.
    pub fn with(&self, state: LnState) -> CompaniesState {
        let mut all = self.all.clone();
        all.companies.insert(self.company, state);
        all
    }
}

/// Reads `target` from every company of `companies`, in their order.
pub fn read(
    host: &Host,
    req: &ReadRequest,
    settings: &LnSettings,
    target: &Target,
    paging: Paging,
    companies: &[u16],
) -> Result<ReadSummary, ConnectorError> {
    let prior: CompaniesState = parse_state(req, target)?;
    // A read of the same kind that stopped half-way: the companies it finished stay done.
    let resuming = prior.mode == Some(req.sync_mode);
    let mut state = CompaniesState {
        companies: prior.companies,
        mode: Some(req.sync_mode),
        done: if resuming { prior.done } else { Vec::new() },
    };
    let initial = req.page_size.unwrap_or(DEFAULT_PAGE_SIZE).max(1);
    let mut out = RecordWriter::new(host, &target.stream, initial.max(100) as usize);
    let mut pages = 0;
    for (i, &company) in companies.iter().enumerate() {
        host.check_cancelled()?;
        let one = settings.for_company(company);
        if state.done.contains(&company) {
            host.info(&format!(
                "{} ({}): read before the interruption, kept",
                target.stream,
                company_text(&one)
            ));
            continue;
        }
        let prior = state.companies.get(&company).cloned().unwrap_or_default();
        let before = out.written();
        let (done, n) = {
            let fan = Fan {
                company,
                all: &state,
            };
            read_company(host, req, &one, target, paging, prior, &mut out, Some(&fan))?
        };
        pages += n;
        state.companies.insert(company, done);
        state.done.push(company);
        // The last company's end is the read's: the final state below says it.
        if i + 1 < companies.len() {
            out.commit(&state)?;
        }
        host.info(&format!(
            "{} ({}): {} records in {n} pages",
            target.stream,
            company_text(&one),
            out.written() - before
        ));
    }
    let final_state = CompaniesState {
        mode: None,
        done: Vec::new(),
        ..state
    };
    out.commit(&final_state)?;
    let records = out.written();
    host.info(&format!(
        "{}: {records} records in {pages} pages from {} companies",
        target.stream,
        companies.len()
    ));
    Ok(ReadSummary {
        records,
        pages,
        state: Some(serde_json::to_value(&final_state).unwrap_or(Value::Null)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_keeps_each_company_apart() {
        let mut all = CompaniesState::default();
        all.companies.insert(
            100,
            LnState {
                cursor: Some("2026-01-01T00:00:00Z".into()),
                ..LnState::default()
            },
        );
        let fan = Fan {
            company: 200,
            all: &all,
        };
        let s = fan.with(LnState {
            after: Some(vec![Value::from("BP9")]),
            mode: Some(SyncMode::Incremental),
            ..LnState::default()
        });
        let v = serde_json::to_value(&s).unwrap_or_default();
        assert_eq!(
            v.pointer("/companies/100/cursor"),
            Some(&Value::from("2026-01-01T00:00:00Z"))
        );
        assert_eq!(
            v.pointer("/companies/200/after/0"),
            Some(&Value::from("BP9"))
        );
        let back: CompaniesState = serde_json::from_value(v).unwrap_or_default();
        assert_eq!(back.companies.len(), 2);
    }
}
