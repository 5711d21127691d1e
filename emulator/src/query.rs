//! Filter expressions shared by the three query languages the emulator understands:
//! EXPORTMI `QERY` (`where F = 'x' and G > 0`), Compass SQL (`WHERE infor.lastmodified() >=
//! '…' AND …`) and OData `$filter` (`Name eq 'x' and Amount gt 5`). One tokenizer, one
//! condition grammar (dialects differ in keywords and operators), one evaluator.

use std::cmp::Ordering;

use crate::data::{Kind, Record, TableDef, Val};
use crate::time::{ms_to_yyyymmdd, parse_iso};

/// A token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Op(&'static str),
    Comma,
    LParen,
    RParen,
    Star,
}

/// Splits a query into tokens.
pub(crate) fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut v = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string literal".into()),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        v.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        v.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(v));
        } else if c == '"' {
            let end = chars[i + 1..]
                .iter()
                .position(|ch| *ch == '"')
                .ok_or("unterminated quoted identifier")?;
            out.push(Tok::Ident(chars[i + 1..i + 1 + end].iter().collect()));
            i += end + 2;
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '.' | ':' | '+' | '-'))
            {
                i += 1;
            }
            out.push(Tok::Num(chars[start..i].iter().collect()));
        } else if c.is_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.' | '$' | '@'))
            {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let op = match two.as_str() {
                ">=" => Some(">="),
                "<=" => Some("<="),
                "<>" => Some("<>"),
                "!=" => Some("!="),
                _ => None,
            };
            if let Some(op) = op {
                out.push(Tok::Op(op));
                i += 2;
                continue;
            }
            out.push(match c {
                '=' => Tok::Op("="),
                '>' => Tok::Op(">"),
                '<' => Tok::Op("<"),
                ',' => Tok::Comma,
                '(' => Tok::LParen,
                ')' => Tok::RParen,
                '*' => Tok::Star,
                other => return Err(format!("unexpected character '{other}'")),
            });
            i += 1;
        }
    }
    Ok(out)
}

/// A cursor over tokens.
#[derive(Debug)]
pub(crate) struct Cursor {
    toks: Vec<Tok>,
    pos: usize,
}

impl Cursor {
    pub fn new(toks: Vec<Tok>) -> Self {
        Self { toks, pos: 0 }
    }

    pub fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    pub fn next_tok(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.toks.len()
    }

    /// Consumes a keyword (case-insensitively when `ci`).
    pub fn keyword(&mut self, kw: &str, ci: bool) -> bool {
        if let Some(Tok::Ident(w)) = self.peek() {
            if (ci && w.eq_ignore_ascii_case(kw)) || (!ci && w == kw) {
                self.pos += 1;
                return true;
            }
        }
        false
    }

    pub fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == Some(t) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
}

/// The left side of a comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Operand {
    /// A table column (index into the table's columns).
    Col(usize),
    /// `infor.lastmodified()`.
    LastModified,
}

/// A literal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Str(String),
    Num(String),
    Bool(bool),
    Null,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    fn holds(self, o: Ordering) -> bool {
        match self {
            CmpOp::Eq => o == Ordering::Equal,
            CmpOp::Ne => o != Ordering::Equal,
            CmpOp::Gt => o == Ordering::Greater,
            CmpOp::Ge => o != Ordering::Less,
            CmpOp::Lt => o == Ordering::Less,
            CmpOp::Le => o != Ordering::Greater,
        }
    }
}

/// A condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(Operand, CmpOp, Lit),
    Between(Operand, Lit, Lit),
}

/// Which query language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// EXPORTMI: lowercase `and`/`or`, symbolic operators.
    ExportMi,
    /// Compass SQL: case-insensitive keywords, symbolic operators, `BETWEEN`, `NOT`.
    Sql,
    /// OData: `eq ne gt ge lt le`, `and or not`.
    OData,
}

/// Parses a condition up to the end of input or a keyword the caller handles (`ORDER`,
/// `LIMIT`). `resolve` maps a column name to an operand.
pub(crate) fn parse_condition(
    cur: &mut Cursor,
    dialect: Dialect,
    resolve: &dyn Fn(&str) -> Option<Operand>,
) -> Result<Expr, String> {
    let p = Parser { dialect, resolve };
    p.or_expr(cur)
}

struct Parser<'a> {
    dialect: Dialect,
    resolve: &'a dyn Fn(&str) -> Option<Operand>,
}

impl Parser<'_> {
    fn ci(&self) -> bool {
        self.dialect == Dialect::Sql
    }

    fn or_expr(&self, cur: &mut Cursor) -> Result<Expr, String> {
        let mut left = self.and_expr(cur)?;
        while cur.keyword("or", self.ci()) {
            let right = self.and_expr(cur)?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&self, cur: &mut Cursor) -> Result<Expr, String> {
        let mut left = self.unary(cur)?;
        while cur.keyword("and", self.ci()) {
            let right = self.unary(cur)?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&self, cur: &mut Cursor) -> Result<Expr, String> {
        if self.dialect != Dialect::ExportMi && cur.keyword("not", self.ci()) {
            return Ok(Expr::Not(Box::new(self.unary(cur)?)));
        }
        if cur.eat(&Tok::LParen) {
            let e = self.or_expr(cur)?;
            if !cur.eat(&Tok::RParen) {
                return Err("missing ')'".into());
            }
            return Ok(e);
        }
        self.predicate(cur)
    }

    fn predicate(&self, cur: &mut Cursor) -> Result<Expr, String> {
        let name = match cur.next_tok() {
            Some(Tok::Ident(n)) => n,
            Some(t) => return Err(format!("expected a column name, found {t:?}")),
            None => return Err("expected a condition".into()),
        };
        let operand = if name.eq_ignore_ascii_case("infor.lastmodified") {
            if !(cur.eat(&Tok::LParen) && cur.eat(&Tok::RParen)) {
                return Err("infor.lastmodified needs ()".into());
            }
            Operand::LastModified
        } else {
            (self.resolve)(&name).ok_or_else(|| format!("unknown column '{name}'"))?
        };
        if self.dialect == Dialect::Sql && cur.keyword("between", true) {
            let lo = self.literal(cur)?;
            if !cur.keyword("and", true) {
                return Err("BETWEEN needs AND".into());
            }
            let hi = self.literal(cur)?;
            return Ok(Expr::Between(operand, lo, hi));
        }
        let op = match (self.dialect, cur.next_tok()) {
            (Dialect::OData, Some(Tok::Ident(w))) => match w.as_str() {
                "eq" => CmpOp::Eq,
                "ne" => CmpOp::Ne,
                "gt" => CmpOp::Gt,
                "ge" => CmpOp::Ge,
                "lt" => CmpOp::Lt,
                "le" => CmpOp::Le,
                other => return Err(format!("unsupported operator '{other}'")),
            },
            (Dialect::ExportMi | Dialect::Sql, Some(Tok::Op(o))) => match o {
                "=" => CmpOp::Eq,
                "<>" | "!=" => CmpOp::Ne,
                ">" => CmpOp::Gt,
                ">=" => CmpOp::Ge,
                "<" => CmpOp::Lt,
                _ => CmpOp::Le,
            },
            (_, t) => return Err(format!("expected an operator after '{name}', found {t:?}")),
        };
        Ok(Expr::Cmp(operand, op, self.literal(cur)?))
    }

    fn literal(&self, cur: &mut Cursor) -> Result<Lit, String> {
        match cur.next_tok() {
            Some(Tok::Str(s)) => Ok(Lit::Str(s)),
            Some(Tok::Num(n)) => Ok(Lit::Num(n)),
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("true") => Ok(Lit::Bool(true)),
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("false") => Ok(Lit::Bool(false)),
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("null") => Ok(Lit::Null),
            Some(t) => Err(format!("expected a value, found {t:?}")),
            None => Err("expected a value".into()),
        }
    }
}

fn lit_text(l: &Lit) -> Option<&str> {
    match l {
        Lit::Str(s) | Lit::Num(s) => Some(s),
        _ => None,
    }
}

fn cmp_f64(a: f64, b: f64) -> Option<Ordering> {
    a.partial_cmp(&b)
}

/// Compares a value of a column kind with a literal.
pub(crate) fn compare(v: &Val, kind: Kind, lit: &Lit) -> Option<Ordering> {
    match (v, lit) {
        (_, Lit::Null) => None,
        (Val::Bool(b), Lit::Bool(l)) => Some(b.cmp(l)),
        (Val::Bool(b), l) => {
            let t = lit_text(l)?.trim().to_ascii_lowercase();
            let l = matches!(t.as_str(), "true" | "1");
            Some(b.cmp(&l))
        }
        (_, Lit::Bool(_)) => None,
        (Val::Str(s), l) => Some(s.trim_end().cmp(lit_text(l)?.trim_end())),
        (Val::Ts(ms), l) if kind == Kind::Ts => match l {
            Lit::Num(n) if n.parse::<i64>().is_ok_and(|x| x > 99_999_999) && !n.contains('-') => {
                Some(ms.cmp(&n.parse::<i64>().ok()?))
            }
            _ => Some(ms.cmp(&parse_iso(lit_text(l)?)?)),
        },
        (Val::Date(d), l) => {
            let t = lit_text(l)?;
            let other = match t.parse::<u32>() {
                Ok(n) => n,
                Err(_) => ms_to_yyyymmdd(parse_iso(t)?),
            };
            Some(d.cmp(&other))
        }
        (v, l) => cmp_f64(v.as_f64()?, lit_text(l)?.trim().parse().ok()?),
    }
}

fn compare_operand(op: Operand, table: &TableDef, rec: &Record, lit: &Lit) -> Option<Ordering> {
    match op {
        Operand::Col(c) => {
            let col = &table.columns[c];
            compare(rec.get(col.field), col.kind, lit)
        }
        Operand::LastModified => compare(&Val::Ts(rec.last_modified_ms()), Kind::Ts, lit),
    }
}

/// Evaluates a condition on a record of a table.
pub(crate) fn eval(e: &Expr, table: &TableDef, rec: &Record) -> bool {
    match e {
        Expr::And(a, b) => eval(a, table, rec) && eval(b, table, rec),
        Expr::Or(a, b) => eval(a, table, rec) || eval(b, table, rec),
        Expr::Not(a) => !eval(a, table, rec),
        Expr::Cmp(op, c, lit) => compare_operand(*op, table, rec, lit).is_some_and(|o| c.holds(o)),
        Expr::Between(op, lo, hi) => {
            compare_operand(*op, table, rec, lo).is_some_and(|o| o != Ordering::Less)
                && compare_operand(*op, table, rec, hi).is_some_and(|o| o != Ordering::Greater)
        }
    }
}

/// A lower bound on a key column implied by a top-level conjunction (`key >= 'x'`,
/// `key > 'x'`, `key = 'x'`): lets a scan start there instead of at the first row.
pub(crate) fn key_lower_bound(e: &Expr, key_col: usize) -> Option<String> {
    match e {
        Expr::And(a, b) => match (key_lower_bound(a, key_col), key_lower_bound(b, key_col)) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        },
        Expr::Cmp(Operand::Col(c), CmpOp::Eq | CmpOp::Ge | CmpOp::Gt, Lit::Str(s))
            if *c == key_col =>
        {
            Some(s.trim_end().to_owned())
        }
        Expr::Between(Operand::Col(c), Lit::Str(s), _) if *c == key_col => {
            Some(s.trim_end().to_owned())
        }
        _ => None,
    }
}

/// An upper bound on a key column implied by a top-level conjunction (`key < 'x'`): a
/// scan in key order can stop there, as an index range scan does.
pub(crate) fn key_upper_bound(e: &Expr, key_col: usize) -> Option<String> {
    match e {
        Expr::And(a, b) => match (key_upper_bound(a, key_col), key_upper_bound(b, key_col)) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        },
        Expr::Cmp(Operand::Col(c), CmpOp::Lt, Lit::Str(s)) if *c == key_col => {
            Some(s.trim_end().to_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(n: &str) -> Option<Operand> {
        crate::data::tables::OCUSMA.column(n).map(Operand::Col)
    }

    #[test]
    fn parses_the_three_dialects() {
        let mut c = Cursor::new(
            tokenize("OKCUNO >= 'C1' and OKCRLM > 5 or OKSTAT = '90'").unwrap_or_default(),
        );
        assert!(parse_condition(&mut c, Dialect::ExportMi, &resolve).is_ok());
        let mut c = Cursor::new(
            tokenize("infor.lastmodified() >= '2026-01-01T00:00:00.000Z' AND deleted = false")
                .unwrap_or_default(),
        );
        assert!(parse_condition(&mut c, Dialect::Sql, &resolve).is_ok());
        let mut c = Cursor::new(
            tokenize("OKCUNO ge 'C1' and OKLMTS lt 2026-01-01T00:00:00Z").unwrap_or_default(),
        );
        assert!(parse_condition(&mut c, Dialect::OData, &resolve).is_ok());
        let mut c = Cursor::new(tokenize("OKCUNO = 'x' AND OKSTAT = '20'").unwrap_or_default());
        let e = parse_condition(&mut c, Dialect::ExportMi, &resolve);
        assert!(
            e.is_ok() && !c.at_end(),
            "uppercase AND is not an EXPORTMI keyword"
        );
    }

    #[test]
    fn compares_types() {
        assert_eq!(
            compare(&Val::Str("AB  ".into()), Kind::A, &Lit::Str("AB".into())),
            Some(Ordering::Equal)
        );
        assert_eq!(
            compare(&Val::Dec(550, 2), Kind::N(2), &Lit::Num("5".into())),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare(
                &Val::Date(20250101),
                Kind::D,
                &Lit::Str("2025-01-02".into())
            ),
            Some(Ordering::Less)
        );
        let ms = parse_iso("2026-01-01T00:00:00Z").unwrap_or_default();
        assert_eq!(
            compare(
                &Val::Ts(ms),
                Kind::Ts,
                &Lit::Num("2026-01-01T00:00:00Z".into())
            ),
            Some(Ordering::Equal)
        );
    }
}
