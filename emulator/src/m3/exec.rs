//! Running one MI transaction: input validation, company/division, the handlers. The result
//! is shape-neutral; `v1` and `v2` render it.

use std::collections::HashMap;

use super::programs::{self, FieldDef, Handler, OutField, PROGRAMS, TransDef};
use crate::data::{Dataset, Entity, LINES_PER_ORDER, Record, TableDef};
use crate::state::AppState;

/// An MI error (`@type`, `@code`, `@field`, `@cfg`, `Message`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MiError {
    pub kind: &'static str,
    pub code: Option<String>,
    pub field: Option<String>,
    pub cfg: Option<String>,
    pub message: String,
}

impl MiError {
    pub fn nok(code: &str, field: &str, message: String) -> Self {
        Self {
            kind: "ServerReturnedNOK",
            code: Some(code.to_owned()),
            field: (!field.is_empty()).then(|| field.to_owned()),
            cfg: None,
            message,
        }
    }
}

/// The outcome of a transaction.
#[derive(Debug)]
pub(crate) struct MiOutput {
    pub program: &'static str,
    pub transaction: String,
    pub fields: Vec<OutField>,
    /// Values aligned with `fields`, text right-padded to the field length.
    pub rows: Vec<Vec<String>>,
    pub error: Option<MiError>,
    /// The error came after some records (`ErrorMessage` beside `MIRecord`).
    pub partial: bool,
}

/// How a call was made.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallOptions {
    /// `None`: the default (100); `Some(0)`: no limit.
    pub maxrecs: Option<u64>,
    pub cono: Option<String>,
    pub divi: Option<String>,
}

pub(crate) const DEFAULT_MAXRECS: u64 = 100;

/// Runs a transaction; `Err` when the program does not exist (a bare HTTP 400).
pub(crate) fn execute(
    st: &AppState,
    program: &str,
    transaction: &str,
    inputs: &HashMap<String, String>,
    opts: &CallOptions,
) -> Result<MiOutput, String> {
    let prog =
        programs::program(program).ok_or_else(|| format!("Program {program} does not exist"))?;
    let mut out = MiOutput {
        program: prog.name,
        transaction: transaction.to_owned(),
        fields: Vec::new(),
        rows: Vec::new(),
        error: None,
        partial: false,
    };
    let Some(trans) = prog.transaction(transaction) else {
        out.error = Some(MiError {
            kind: "TransactionNotFound",
            code: None,
            field: None,
            cfg: None,
            message: format!(
                "Transaction {transaction} does not exist in program {}",
                prog.name
            ),
        });
        return Ok(out);
    };
    out.transaction = trans.name.to_owned();
    out.fields = trans.output_fields();
    if let Err(e) = validate(trans.inputs, inputs) {
        out.error = Some(e);
        return Ok(out);
    }
    let limit = match opts.maxrecs {
        Some(0) => u64::MAX,
        Some(n) => n,
        None => DEFAULT_MAXRECS,
    };
    let ctx = Ctx {
        st,
        inputs,
        limit,
        trans,
    };
    let cono = match company(inputs, opts) {
        Ok(c) => c,
        Err(e) => {
            out.error = Some(e);
            return Ok(out);
        }
    };
    match ctx.run(cono, &mut out) {
        Ok(()) => {}
        Err(e) => {
            out.partial = !out.rows.is_empty();
            out.error = Some(e);
        }
    }
    Ok(out)
}

fn validate(defs: &[FieldDef], inputs: &HashMap<String, String>) -> Result<(), MiError> {
    for d in defs {
        let v = inputs.get(d.name).map(|s| s.trim_end()).unwrap_or_default();
        if v.chars().count() > usize::from(d.len) {
            return Err(MiError {
                kind: "InputFieldTooLong",
                code: None,
                field: Some(d.name.to_owned()),
                cfg: None,
                message: format!(
                    "Input field {} is too long: maximum length is {}",
                    d.name, d.len
                ),
            });
        }
        if d.mandatory && v.trim().is_empty() {
            return Err(MiError {
                kind: "MandatoryInputFieldNotFound",
                code: None,
                field: Some(d.name.to_owned()),
                cfg: None,
                message: format!("Mandatory input field {} not found", d.name),
            });
        }
    }
    Ok(())
}

fn company(inputs: &HashMap<String, String>, opts: &CallOptions) -> Result<u32, MiError> {
    let raw = inputs
        .get("CONO")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .or(opts
            .cono
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty()));
    let cono = match raw {
        None => crate::data::DEFAULT_COMPANY,
        Some(s) => s.parse::<u32>().map_err(|_| {
            MiError::nok("XAU0008", "CONO", format!("Not authorized for company {s}"))
        })?,
    };
    let comp = Dataset::company(cono).ok_or_else(|| {
        MiError::nok(
            "XAU0008",
            "CONO",
            format!("Not authorized for company {cono}"),
        )
    })?;
    let divi = inputs
        .get("DIVI")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .or(opts
            .divi
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty()));
    if let Some(d) = divi {
        if d != comp.divi {
            return Err(MiError::nok(
                "XDI0001",
                "DIVI",
                format!("Division {d} does not exist in company {cono}"),
            ));
        }
    }
    Ok(cono)
}

struct Ctx<'a> {
    st: &'a AppState,
    inputs: &'a HashMap<String, String>,
    limit: u64,
    trans: &'static TransDef,
}

impl Ctx<'_> {
    fn input(&self, name: &str) -> &str {
        self.inputs.get(name).map_or("", |s| s.trim())
    }

    fn row_of(&self, fields: &[OutField], table: &TableDef, rec: &Record) -> Vec<String> {
        fields
            .iter()
            .map(|f| match f.col {
                Some(c) => rec.get(table.columns[c].field).mi(f.len, true),
                None => String::new(),
            })
            .collect()
    }

    fn fixed_row(fields: &[OutField], values: &[String]) -> Vec<String> {
        fields
            .iter()
            .zip(values)
            .map(|(f, v)| {
                if f.ty == "A" {
                    crate::data::Val::Str(v.clone()).mi(f.len, true)
                } else {
                    v.clone()
                }
            })
            .collect()
    }

    fn run(&self, cono: u32, out: &mut MiOutput) -> Result<(), MiError> {
        let ds = &self.st.data;
        match self.trans.handler {
            Handler::List(table, key) => {
                let changes = self.st.changes();
                let n = ds.count(table.entity, cono);
                let mut i = ds.lower_bound(table.entity, cono, self.input(key));
                while i < n && (out.rows.len() as u64) < self.limit {
                    if !changes.is_deleted(table.entity, cono, i) {
                        let r = ds.record_with(&changes, table.entity, cono, i);
                        out.rows.push(self.row_of(&out.fields, table, &r));
                    }
                    i += 1;
                }
                Ok(())
            }
            Handler::Get(table, key) => {
                let changes = self.st.changes();
                let k = self.input(key);
                let found = ds
                    .find(table.entity, cono, k)
                    .filter(|i| !changes.is_deleted(table.entity, cono, *i));
                let Some(i) = found else {
                    return Err(not_found(table.entity, key, k));
                };
                let r = ds.record_with(&changes, table.entity, cono, i);
                out.rows.push(self.row_of(&out.fields, table, &r));
                Ok(())
            }
            Handler::OrderLines => {
                let changes = self.st.changes();
                let orno = self.input("ORNO");
                let head = ds
                    .find(Entity::OrderHead, cono, orno)
                    .filter(|i| !changes.is_deleted(Entity::OrderHead, cono, *i))
                    .ok_or_else(|| not_found(Entity::OrderHead, "ORNO", orno))?;
                let from: u64 = self.input("PONR").parse().unwrap_or(0);
                let table = &crate::data::tables::OOLINE;
                for line in 0..LINES_PER_ORDER {
                    let i = head * LINES_PER_ORDER + line;
                    if line + 1 < from || changes.is_deleted(Entity::OrderLine, cono, i) {
                        continue;
                    }
                    if (out.rows.len() as u64) >= self.limit {
                        break;
                    }
                    let r = ds.record_with(&changes, Entity::OrderLine, cono, i);
                    out.rows.push(self.row_of(&out.fields, table, &r));
                }
                Ok(())
            }
            Handler::LstPrograms => {
                for p in PROGRAMS
                    .iter()
                    .take(usize::try_from(self.limit).unwrap_or(usize::MAX))
                {
                    out.rows.push(Self::fixed_row(
                        &out.fields,
                        &[p.name.into(), p.desc.into()],
                    ));
                }
                Ok(())
            }
            Handler::LstTransactions => {
                let minm = self.input("MINM");
                let p = programs::program(minm).ok_or_else(|| {
                    MiError::nok("WMI0001", "MINM", format!("Program {minm} does not exist"))
                })?;
                for t in p.transactions {
                    let multi = if t.multi { "1" } else { "0" };
                    out.rows.push(Self::fixed_row(
                        &out.fields,
                        &[p.name.into(), t.name.into(), t.desc.into(), multi.into()],
                    ));
                }
                Ok(())
            }
            Handler::LstFields => self.lst_fields(out),
            Handler::ExportSelect => {
                super::export::select(self.st, cono, self.inputs, self.limit, out)
            }
            Handler::UserData => {
                let c = Dataset::company(cono).map_or("", |c| c.divi);
                let values = [
                    "IONPORTSVC",
                    "ionport service account",
                    &cono.to_string(),
                    c,
                    "GB",
                    "YMD",
                    ".",
                    "UTC",
                ]
                .map(str::to_owned);
                out.rows.push(Self::fixed_row(&out.fields, &values));
                Ok(())
            }
            Handler::TestLst10 => self.test_lst10(out),
        }
    }

    fn lst_fields(&self, out: &mut MiOutput) -> Result<(), MiError> {
        let (minm, trnm, trtp) = (self.input("MINM"), self.input("TRNM"), self.input("TRTP"));
        let p = programs::program(minm).ok_or_else(|| {
            MiError::nok("WMI0001", "MINM", format!("Program {minm} does not exist"))
        })?;
        let t = p.transaction(trnm).ok_or_else(|| {
            MiError::nok(
                "WTR0001",
                "TRNM",
                format!("Transaction {trnm} does not exist"),
            )
        })?;
        let fields: Vec<(&str, &str, u16, bool, &str)> = match trtp {
            "I" | "i" => t
                .inputs
                .iter()
                .map(|f| (f.name, f.desc, f.len, f.mandatory, f.ty))
                .collect(),
            "O" | "o" => t
                .output_fields()
                .iter()
                .map(|f| (f.name, f.desc, f.len, false, f.ty))
                .collect(),
            other => {
                return Err(MiError::nok(
                    "WTR0002",
                    "TRTP",
                    format!("Transaction type {other} is invalid, use I or O"),
                ));
            }
        };
        let mut pos = 1u32;
        for (name, desc, len, mand, ty) in fields {
            let to = pos + u32::from(len) - 1;
            let values = [
                p.name.to_owned(),
                t.name.to_owned(),
                trtp.to_ascii_uppercase(),
                name.to_owned(),
                desc.to_owned(),
                pos.to_string(),
                to.to_string(),
                len.to_string(),
                if mand { "1" } else { "0" }.to_owned(),
                ty.to_owned(),
            ];
            out.rows.push(Self::fixed_row(&out.fields, &values));
            pos = to + 1;
        }
        Ok(())
    }

    /// Infor KB 2159861's test transaction: `RCNT` records of ten 8-digit fields; a negative
    /// `RCNT` fails after that many records, a non-blank `RETT` fails at once.
    fn test_lst10(&self, out: &mut MiOutput) -> Result<(), MiError> {
        if !self.input("RETT").is_empty() {
            return Err(MiError {
                kind: "ServerReturnedNOK",
                code: Some("CPF9898".into()),
                field: Some("RETT".into()),
                cfg: None,
                message: "Designed to fail!".into(),
            });
        }
        let raw = self.input("RCNT");
        let rcnt: i64 = if raw.is_empty() {
            5
        } else {
            raw.parse().unwrap_or(5)
        };
        for r in 0..rcnt.unsigned_abs().min(self.limit) {
            let values: Vec<String> = (0..10).map(|j| format!("{:08}", r + j + 1)).collect();
            out.rows.push(values);
        }
        if rcnt < 0 {
            return Err(MiError {
                kind: "ServerReturnedNOK",
                code: Some("CPF9898".into()),
                field: Some("RCNT      ".into()),
                cfg: Some("97".into()),
                message: format!("Designed to fail! Record count was:'{raw:<8}'"),
            });
        }
        Ok(())
    }
}

fn not_found(entity: Entity, field: &str, key: &str) -> MiError {
    let (code, what) = match entity {
        Entity::Customer => ("WCU0203", "Customer"),
        Entity::Item => ("WIT0203", "Item number"),
        Entity::Supplier => ("WSU0203", "Supplier"),
        Entity::OrderHead | Entity::OrderLine => ("WOR0203", "Order number"),
    };
    MiError::nok(code, field, format!("{what} {key} does not exist"))
}
