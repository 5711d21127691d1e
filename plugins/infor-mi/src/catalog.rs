//! The MI programs and transactions a tenant offers (`MRS001MI`): what `discover` says a
//! task needs and the tenant lacks.

use ionport_plugin_sdk::{ConnectorError, Host};
use serde_json::{Map, Value, json};

use crate::{MiCall, MiShape, field};

/// The tenant's programs, and the transactions of those asked about so far.
#[derive(Debug, Clone)]
pub struct MiCatalog {
    shape: MiShape,
    /// Program name and description (`MRS001MI/LstPrograms`).
    pub programs: Vec<(String, String)>,
    /// Program name → its transaction names (`MRS001MI/LstTransactions`).
    transactions: Map<String, Value>,
}

impl MiCatalog {
    /// Lists the programs.
    pub fn read(host: &Host, shape: MiShape) -> Result<Self, ConnectorError> {
        let call = MiCall::new("MRS001MI", "LstPrograms").maxrecs(0);
        let answer = call.parse(&host.gateway(&call.request(shape))?)?;
        let programs = answer
            .rows
            .iter()
            .map(|r| (field(r, "MINM").to_string(), field(r, "TX40").to_string()))
            .collect();
        Ok(Self {
            shape,
            programs,
            transactions: Map::new(),
        })
    }

    /// Whether the tenant has `program`.
    pub fn has_program(&self, program: &str) -> bool {
        self.programs.iter().any(|(p, _)| p == program)
    }

    /// What of `needed` (program, transaction) the tenant lacks, a sentence each; a
    /// program's transactions are listed the first time one of them is asked about.
    pub fn missing(
        &mut self,
        host: &Host,
        needed: &[(&str, &str)],
    ) -> Result<Vec<String>, ConnectorError> {
        let mut missing = Vec::new();
        for &(p, t) in needed {
            if !self.has_program(p) {
                missing.push(format!("{p} is not available"));
                continue;
            }
            if !self.transactions.contains_key(p) {
                let call = MiCall::new("MRS001MI", "LstTransactions")
                    .input("MINM", p)
                    .maxrecs(0);
                let answer = call.parse(&host.gateway(&call.request(self.shape))?)?;
                let names = answer.rows.iter().map(|r| field(r, "TRNM").into());
                self.transactions
                    .insert(p.to_string(), Value::Array(names.collect()));
            }
            let has = (self.transactions.get(p))
                .and_then(Value::as_array)
                .is_some_and(|l| l.iter().any(|x| x.as_str() == Some(t)));
            if !has {
                missing.push(format!("{p}/{t} is not available"));
            }
        }
        Ok(missing)
    }

    /// `{"programs": [{"program", "description"}], "transactions": {program: [names]}}`.
    pub fn details(&self) -> Value {
        let programs: Vec<Value> = self
            .programs
            .iter()
            .map(|(p, d)| json!({ "program": p, "description": d }))
            .collect();
        json!({ "programs": programs, "transactions": self.transactions })
    }
}
