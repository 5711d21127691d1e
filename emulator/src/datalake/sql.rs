//! The Compass SQL subset: `SELECT cols|* FROM table [WHERE cond] [ORDER BY col|infor.lastmodified()
//! [ASC|DESC], …] [LIMIT n]`, with `=`, `<>`, `>`, `>=`, `<`, `<=`, `BETWEEN`, `AND`, `OR`,
//! `NOT`, and `infor.lastmodified()` (the row's last modification, UTC).
//!
//! Variations as Compass has them: a query returns the highest variation of each record
//! *excluding* those whose highest variation is a deletion (the default), or *including*
//! them (`deleted = true`) when its table is written `FROM infor.include_deleted(TABLE)`
//! — [`INCLUDE_DELETED`], the form the Data Lake connector sends.

use crate::data::TableDef;
use crate::query::{Cursor, Dialect, Expr, Operand, Tok, parse_condition, tokenize};

/// A parsed query.
#[derive(Debug)]
pub(crate) struct SqlQuery {
    pub table: &'static TableDef,
    pub cols: Vec<usize>,
    pub filter: Option<Expr>,
    pub order: Vec<(Operand, bool)>,
    pub limit: Option<u64>,
    /// `FROM infor.include_deleted(TABLE)`: deleted records are in the result.
    pub include_deleted: bool,
}

/// The table function that asks for the highest variation of each record including
/// deleted ones.
pub(crate) const INCLUDE_DELETED: &str = "infor.include_deleted";

fn ident(cur: &mut Cursor, what: &str) -> Result<String, String> {
    match cur.next_tok() {
        Some(Tok::Ident(n)) => Ok(n),
        other => Err(format!(
            "expected {what}, found {}",
            describe(other.as_ref())
        )),
    }
}

fn describe(t: Option<&Tok>) -> String {
    match t {
        None => "end of query".into(),
        Some(Tok::Ident(s) | Tok::Num(s)) => format!("'{s}'"),
        Some(Tok::Str(s)) => format!("'{s}'"),
        Some(Tok::Op(o)) => format!("'{o}'"),
        Some(Tok::Comma) => "','".into(),
        Some(Tok::LParen) => "'('".into(),
        Some(Tok::RParen) => "')'".into(),
        Some(Tok::Star) => "'*'".into(),
    }
}

fn operand(table: &TableDef, name: &str, cur: &mut Cursor) -> Result<Operand, String> {
    if name.eq_ignore_ascii_case("infor.lastmodified") {
        if cur.eat(&Tok::LParen) && cur.eat(&Tok::RParen) {
            return Ok(Operand::LastModified);
        }
        return Err("infor.lastmodified needs ()".into());
    }
    table
        .column(name)
        .map(Operand::Col)
        .ok_or_else(|| format!("column '{name}' does not exist in table {}", table.name))
}

/// Parses a query; the error is the reason a job fails.
/// Parses `sql` against the built-in tables.
#[cfg(test)]
pub(crate) fn parse(sql: &str) -> Result<SqlQuery, String> {
    parse_in(sql, &crate::data::tables::lake_table)
}

/// Parses `sql`, its table found by `lookup` (the emulator's tables as they are now).
pub(crate) fn parse_in(
    sql: &str,
    lookup: &dyn Fn(&str) -> Option<&'static TableDef>,
) -> Result<SqlQuery, String> {
    let sql = sql.trim().trim_end_matches(';');
    let toks = tokenize(sql).map_err(|e| format!("Syntax error: {e}"))?;
    let mut cur = Cursor::new(toks);
    if !cur.keyword("select", true) {
        return Err("Syntax error: only SELECT statements are supported".into());
    }
    let mut names = Vec::new();
    let mut star = false;
    loop {
        match cur.next_tok() {
            Some(Tok::Star) => star = true,
            Some(Tok::Ident(n)) if !n.eq_ignore_ascii_case("from") => names.push(n),
            other => {
                return Err(format!(
                    "Syntax error: expected a column, found {}",
                    describe(other.as_ref())
                ));
            }
        }
        if cur.eat(&Tok::Comma) {
            continue;
        }
        if cur.keyword("from", true) {
            break;
        }
        return Err(format!(
            "Syntax error: expected ',' or FROM, found {}",
            describe(cur.peek())
        ));
    }
    let mut tname = ident(&mut cur, "a table name").map_err(|e| format!("Syntax error: {e}"))?;
    let include_deleted = tname.eq_ignore_ascii_case(INCLUDE_DELETED);
    if include_deleted {
        if !cur.eat(&Tok::LParen) {
            return Err(format!(
                "Syntax error: {INCLUDE_DELETED} needs ( and a table name"
            ));
        }
        tname = ident(&mut cur, "a table name").map_err(|e| format!("Syntax error: {e}"))?;
        if !cur.eat(&Tok::RParen) {
            return Err(format!(
                "Syntax error: expected ')' after {INCLUDE_DELETED}({tname}, found {}",
                describe(cur.peek())
            ));
        }
    }
    let short = tname.rsplit('.').next().unwrap_or(&tname);
    let table = lookup(short).ok_or_else(|| format!("Table '{tname}' not found"))?;
    let cols = if star {
        (0..table.columns.len()).collect()
    } else {
        names
            .iter()
            .map(|n| {
                table
                    .column(n)
                    .ok_or_else(|| format!("column '{n}' does not exist in table {}", table.name))
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    let mut q = SqlQuery {
        table,
        cols,
        filter: None,
        order: Vec::new(),
        limit: None,
        include_deleted,
    };
    if cur.keyword("where", true) {
        let resolve = |n: &str| table.column(n).map(Operand::Col);
        q.filter = Some(
            parse_condition(&mut cur, Dialect::Sql, &resolve)
                .map_err(|e| format!("Syntax error in WHERE: {e}"))?,
        );
    }
    if cur.keyword("order", true) {
        if !cur.keyword("by", true) {
            return Err("Syntax error: ORDER needs BY".into());
        }
        loop {
            let name = ident(&mut cur, "a column").map_err(|e| format!("Syntax error: {e}"))?;
            let op = operand(table, &name, &mut cur)?;
            let desc = if cur.keyword("desc", true) {
                true
            } else {
                cur.keyword("asc", true);
                false
            };
            q.order.push((op, desc));
            if !cur.eat(&Tok::Comma) {
                break;
            }
        }
    }
    if cur.keyword("limit", true) {
        match cur.next_tok() {
            Some(Tok::Num(n)) => {
                q.limit = Some(
                    n.parse()
                        .map_err(|_| format!("Syntax error: LIMIT '{n}'"))?,
                )
            }
            other => {
                return Err(format!(
                    "Syntax error: LIMIT needs a number, found {}",
                    describe(other.as_ref())
                ));
            }
        }
    }
    if !cur.at_end() {
        return Err(format!("Syntax error: unexpected {}", describe(cur.peek())));
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let q = parse(
            "select OKCUNO, okcunm from OCUSMA where infor.lastmodified() >= '2026-01-01T00:00:00.000Z' and deleted = false order by infor.lastmodified() desc, OKCUNO limit 10;",
        );
        let q = q.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.cols.len(), 2);
        assert_eq!(q.order.len(), 2);
        assert_eq!(q.limit, Some(10));
        assert!(parse("SELECT * FROM nope").is_err());
        assert!(parse("SELECT OKCUNO FROM OCUSMA WHERE").is_err());
        assert!(parse("DELETE FROM OCUSMA").is_err());
        assert!(!parse("SELECT * FROM OCUSMA").unwrap().include_deleted);
        let q = parse("SELECT * FROM infor.include_deleted(OCUSMA) WHERE deleted = true");
        assert!(q.unwrap_or_else(|e| panic!("{e}")).include_deleted);
        assert!(parse("SELECT * FROM infor.include_deleted(OCUSMA").is_err());
    }
}
