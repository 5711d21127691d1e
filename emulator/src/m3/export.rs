//! `EXPORTMI/Select`: `QERY = "F1,F2 from TABLE where F3 = 'x' and F4 > 0"` over one M3
//! table of the current company; one delimited row per record in `REPL`.

use std::collections::HashMap;

use super::exec::{MiError, MiOutput};
use crate::data::{Kind, Surface, TableDef};
use crate::query::{
    Cursor, Dialect, Expr, Operand, Tok, eval, key_lower_bound, key_upper_bound, parse_condition,
    tokenize,
};
use crate::state::AppState;

struct Query {
    table: &'static TableDef,
    cols: Vec<usize>,
    filter: Option<Expr>,
}

fn invalid(msg: &str) -> MiError {
    MiError::nok("XQE0001", "QERY", format!("Invalid query: {msg}"))
}

fn parse(st: &AppState, qery: &str) -> Result<Query, MiError> {
    let toks = tokenize(qery).map_err(|e| invalid(&e))?;
    let mut cur = Cursor::new(toks);
    let mut names = Vec::new();
    let mut star = false;
    loop {
        match cur.next_tok() {
            Some(Tok::Star) => star = true,
            Some(Tok::Ident(n)) if n == "from" => return Err(invalid("no columns before 'from'")),
            Some(Tok::Ident(n)) => names.push(n),
            other => return Err(invalid(&format!("expected a column, found {other:?}"))),
        }
        if cur.eat(&Tok::Comma) {
            continue;
        }
        if cur.keyword("from", false) {
            break;
        }
        return Err(invalid("expected ',' or 'from' (keywords are lowercase)"));
    }
    let tname = match cur.next_tok() {
        Some(Tok::Ident(n)) => n,
        _ => return Err(invalid("expected a table after 'from'")),
    };
    let table = st
        .lake_table(&tname)
        .filter(|t| t.surface == Surface::M3)
        .ok_or_else(|| MiError::nok("XQE0002", "QERY", format!("Table {tname} does not exist")))?;
    let usable = |i: &usize| table.columns[*i].kind != Kind::Bool;
    let cols: Vec<usize> = if star {
        (0..table.columns.len()).filter(usable).collect()
    } else {
        names
            .iter()
            .map(|n| {
                table.column(n).filter(usable).ok_or_else(|| {
                    MiError::nok(
                        "XQE0003",
                        "QERY",
                        format!("Field {n} does not exist in table {}", table.name),
                    )
                })
            })
            .collect::<Result<_, _>>()?
    };
    let filter = if cur.keyword("where", false) {
        let resolve = |n: &str| table.column(n).filter(usable).map(Operand::Col);
        Some(parse_condition(&mut cur, Dialect::ExportMi, &resolve).map_err(|e| invalid(&e))?)
    } else {
        None
    };
    if !cur.at_end() {
        return Err(invalid(&format!(
            "unexpected {:?} (keywords are lowercase: from, where, and, or)",
            cur.peek()
        )));
    }
    Ok(Query {
        table,
        cols,
        filter,
    })
}

pub(crate) fn select(
    st: &AppState,
    cono: u32,
    inputs: &HashMap<String, String>,
    limit: u64,
    out: &mut MiOutput,
) -> Result<(), MiError> {
    let qery = inputs.get("QERY").map_or("", |s| s.trim());
    let q = parse(st, qery)?;
    let sep = inputs
        .get("SEPC")
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(";");
    let headers = inputs.get("HDRS").is_some_and(|h| h.trim() == "1");
    // REPL is not padded to its 3000 characters.
    let push = |out: &mut MiOutput, line: String| out.rows.push(vec![line]);
    if headers {
        let line = q
            .cols
            .iter()
            .map(|c| q.table.columns[*c].name)
            .collect::<Vec<_>>()
            .join(sep);
        push(out, line);
    }
    let ds = &st.data;
    let changes = st.changes();
    let entity = q.table.entity;
    let key_col = q.table.key.get(1).copied().unwrap_or(0);
    // `key < 'x'` ends the scan there (rows come in key order): a range's last page costs
    // what it holds, not a scan to the end of the table.
    let n = q
        .filter
        .as_ref()
        .and_then(|f| key_upper_bound(f, key_col))
        .map_or(ds.count(entity, cono), |k| ds.lower_bound(entity, cono, &k));
    let mut i = q
        .filter
        .as_ref()
        .and_then(|f| key_lower_bound(f, key_col))
        .map_or(0, |k| ds.lower_bound(entity, cono, &k));
    let mut found = 0u64;
    while i < n && found < limit {
        if !changes.is_deleted(entity, cono, i) {
            let r = ds.record_with(&changes, entity, cono, i);
            if q.filter.as_ref().is_none_or(|f| eval(f, q.table, &r)) {
                let line = q
                    .cols
                    .iter()
                    .map(|c| {
                        let col = &q.table.columns[*c];
                        r.get(col.field).mi(col.len, false)
                    })
                    .collect::<Vec<_>>()
                    .join(sep);
                push(out, line);
                found += 1;
            }
        }
        i += 1;
    }
    Ok(())
}
