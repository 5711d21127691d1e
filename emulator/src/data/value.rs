//! Field values and how each system renders them.

use std::fmt::Write as _;

use super::tables::{Kind, Surface};
use crate::time::{ms_to_iso, ms_to_yyyymmdd, yyyymmdd_to_iso};

/// A generated field value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// Text (never padded here; M3 pads on output).
    Str(String),
    /// Integer.
    Int(i64),
    /// Decimal: the value times 10^decimals, and the decimals.
    Dec(i64, u8),
    /// Date as `yyyyMMdd`.
    Date(u32),
    /// Timestamp, epoch milliseconds UTC.
    Ts(i64),
    /// Boolean.
    Bool(bool),
}

fn dec_string(v: i64, d: u8) -> String {
    if d == 0 {
        return v.to_string();
    }
    let p = 10i64.pow(u32::from(d));
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    let p = p.unsigned_abs();
    format!("{sign}{}.{:0width$}", a / p, a % p, width = usize::from(d))
}

impl Val {
    /// Numeric view (for comparisons).
    #[must_use]
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Val::Int(v) | Val::Ts(v) => Some(v as f64),
            Val::Dec(v, d) => Some(v as f64 / 10f64.powi(i32::from(d))),
            Val::Date(d) => Some(f64::from(d)),
            Val::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
            Val::Str(ref s) => s.trim().parse().ok(),
        }
    }

    /// The value as M3 MI returns it: text right-padded to the field length when `pad`,
    /// numbers as digits, dates `yyyyMMdd`, timestamps as epoch milliseconds.
    #[must_use]
    pub fn mi(&self, len: u16, pad: bool) -> String {
        match self {
            Val::Str(s) => {
                if pad {
                    let mut out = s.clone();
                    let n = s.chars().count();
                    out.extend(std::iter::repeat_n(' ', usize::from(len).saturating_sub(n)));
                    out
                } else {
                    s.trim_end().to_owned()
                }
            }
            Val::Int(v) | Val::Ts(v) => v.to_string(),
            Val::Dec(v, d) => dec_string(*v, *d),
            Val::Date(d) => d.to_string(),
            Val::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
        }
    }

    /// The value as plain text for CSV and checksums on a surface.
    #[must_use]
    pub fn plain(&self, kind: Kind, surface: Surface) -> String {
        match (self, kind) {
            (Val::Str(s), _) => s.trim_end().to_owned(),
            (Val::Ts(ms), Kind::Ts) => ms_to_iso(*ms),
            (Val::Ts(ms), Kind::D) => date_text(ms_to_yyyymmdd(*ms), surface),
            (Val::Date(d), _) => date_text(*d, surface),
            (Val::Bool(b), _) => b.to_string(),
            (v, _) => v.mi(0, false),
        }
    }

    /// Appends the value as JSON for a surface (Data Lake rows, LN entities).
    pub fn write_json(&self, kind: Kind, surface: Surface, out: &mut String) {
        match (self, kind) {
            (Val::Str(s), _) => write_json_str(s.trim_end(), out),
            (Val::Int(v), _) => {
                let _ = write!(out, "{v}");
            }
            (Val::Ts(ms), Kind::Ts) => write_json_str(&ms_to_iso(*ms), out),
            (Val::Ts(ms), _) => {
                let _ = write!(out, "{ms}");
            }
            (Val::Dec(v, d), _) => out.push_str(&dec_string(*v, *d)),
            (Val::Date(d), _) => match surface {
                Surface::M3 => {
                    let _ = write!(out, "{d}");
                }
                _ => write_json_str(&yyyymmdd_to_iso(*d), out),
            },
            (Val::Bool(b), _) => out.push_str(if *b { "true" } else { "false" }),
        }
    }

    /// The value as a `serde_json::Value` for a surface.
    #[must_use]
    pub fn to_json(&self, kind: Kind, surface: Surface) -> serde_json::Value {
        let mut s = String::new();
        self.write_json(kind, surface, &mut s);
        serde_json::from_str(&s).unwrap_or(serde_json::Value::Null)
    }
}

fn date_text(d: u32, surface: Surface) -> String {
    match surface {
        Surface::M3 => d.to_string(),
        _ => yyyymmdd_to_iso(d),
    }
}

/// Appends a JSON string literal.
pub(crate) fn write_json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders() {
        assert_eq!(Val::Dec(12345, 2).mi(0, false), "123.45");
        assert_eq!(Val::Dec(-5, 2).mi(0, false), "-0.05");
        assert_eq!(Val::Str("AB".into()).mi(5, true), "AB   ");
        let mut s = String::new();
        Val::Date(20250301).write_json(Kind::D, Surface::LnOData, &mut s);
        assert_eq!(s, "\"2025-03-01\"");
    }
}
