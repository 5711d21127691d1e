//! The deterministic data generator.
//!
//! A [`Dataset`] is a pure function of `(seed, scale)`: [`Dataset::record`] computes any
//! row from its index, so nothing is held in memory and two emulators (or a test without
//! any emulator) with the same seed and scale see the same records.
//!
//! Logical entities ([`Entity`]) are shared by the systems: the M3 customer `C000000042`
//! of company 100 is LN business partner `C000000042` of LN company 100 and row of the
//! Data Lake tables `OCUSMA` and `tccom100`. Tables ([`tables`]) map an entity's canonical
//! fields onto each system's column names and types.
//!
//! Sizes for scale `s` (company 100; company 200 has `max(1, s / 10)` in place of `s`):
//! customers `s`, items `ceil(s / 2)`, suppliers `ceil(s / 10)`, order heads `s`, order lines
//! `3 × heads`. Base change stamps lie in 2024–2025; records changed through the control
//! endpoint get the wall-clock time of the change (see [`Changes`]).

mod changes;
mod generate;
pub mod schema;
pub mod tables;
mod value;

pub use changes::{Change, ChangeReport, Changes, Selection};
pub use schema::{ColumnRequest, SchemaEdits};
pub use tables::{ColDef, Kind, Surface, TableDef};
pub use value::Val;
pub(crate) use value::write_json_str as value_json_str;

use serde::{Deserialize, Serialize};

/// Order lines per order head.
pub const LINES_PER_ORDER: u64 = 3;

/// A logical business entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    /// M3 customer / LN business partner.
    Customer,
    /// Item.
    Item,
    /// M3 supplier.
    Supplier,
    /// Sales order head (M3 `OOHEAD`, LN sales order).
    OrderHead,
    /// Sales order line (M3 `OOLINE`).
    OrderLine,
}

impl Entity {
    /// All entities.
    pub const ALL: [Entity; 5] = [
        Entity::Customer,
        Entity::Item,
        Entity::Supplier,
        Entity::OrderHead,
        Entity::OrderLine,
    ];

    /// Canonical field names, in the order of [`Record::values`].
    #[must_use]
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Entity::Customer => &fields::CUSTOMER,
            Entity::Item => &fields::ITEM,
            Entity::Supplier => &fields::SUPPLIER,
            Entity::OrderHead => &fields::ORDER_HEAD,
            Entity::OrderLine => &fields::ORDER_LINE,
        }
    }

    /// Index of a canonical field.
    #[must_use]
    pub fn field(self, name: &str) -> Option<usize> {
        self.fields().iter().position(|f| *f == name)
    }

    fn tag(self) -> u64 {
        match self {
            Entity::Customer => 1,
            Entity::Item => 2,
            Entity::Supplier => 3,
            Entity::OrderHead => 4,
            Entity::OrderLine => 5,
        }
    }

    /// The positions of `LMDT`, `LMTS`, `CHNO` and `DELETED` in the canonical fields.
    fn stamps(self) -> (usize, usize, usize, usize) {
        let n = self.fields().len();
        (n - 4, n - 3, n - 2, n - 1)
    }
}

/// Canonical field lists. Every entity ends with `LMDT`, `LMTS`, `CHNO`, `DELETED`.
pub mod fields {
    /// Customer fields.
    pub const CUSTOMER: [&str; 16] = [
        "CONO", "CUNO", "CUNM", "CUA1", "TOWN", "CSCD", "PHNO", "CUCD", "STAT", "CUTP", "CRLM",
        "RGDT", "LMDT", "LMTS", "CHNO", "DELETED",
    ];
    /// Item fields.
    pub const ITEM: [&str; 15] = [
        "CONO", "ITNO", "ITDS", "FUDS", "ITTY", "ITGR", "UNMS", "STAT", "NEWE", "SAPR", "RGDT",
        "LMDT", "LMTS", "CHNO", "DELETED",
    ];
    /// Supplier fields.
    pub const SUPPLIER: [&str; 13] = [
        "CONO", "SUNO", "SUNM", "TOWN", "CSCD", "CUCD", "PHNO", "STAT", "RGDT", "LMDT", "LMTS",
        "CHNO", "DELETED",
    ];
    /// Order head fields.
    pub const ORDER_HEAD: [&str; 12] = [
        "CONO", "DIVI", "ORNO", "CUNO", "ORDT", "ORTP", "ORST", "CUCD", "LMDT", "LMTS", "CHNO",
        "DELETED",
    ];
    /// Order line fields.
    pub const ORDER_LINE: [&str; 16] = [
        "CONO", "DIVI", "ORNO", "PONR", "POSX", "ITNO", "CUNO", "ORQT", "SAPR", "LNAM", "ORST",
        "DWDT", "LMDT", "LMTS", "CHNO", "DELETED",
    ];
}

/// A company of the emulated tenant (M3 `CONO`/`DIVI`; the same numbers are LN companies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Company {
    /// Company number.
    pub cono: u32,
    /// Its one division.
    pub divi: &'static str,
    /// Display name.
    pub name: &'static str,
}

/// The companies: 100 is the default (full scale), 200 is small.
pub const COMPANIES: [Company; 2] = [
    Company {
        cono: 100,
        divi: "AAA",
        name: "ionport Demo AB",
    },
    Company {
        cono: 200,
        divi: "BBB",
        name: "ionport Demo GmbH",
    },
];

/// The default company of the service user.
pub const DEFAULT_COMPANY: u32 = 100;

/// One generated row: canonical field values of an entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Its entity.
    pub entity: Entity,
    /// Its company.
    pub cono: u32,
    /// Its index within the entity and company (key order).
    pub index: u64,
    /// Values in the order of [`Entity::fields`].
    pub values: Vec<Val>,
}

impl Record {
    /// Value of a canonical field by index.
    #[must_use]
    pub fn get(&self, field: usize) -> &Val {
        &self.values[field]
    }

    /// Value of a canonical field by name.
    #[must_use]
    pub fn by_name(&self, name: &str) -> Option<&Val> {
        self.entity.field(name).map(|i| &self.values[i])
    }

    /// Last modification, epoch milliseconds (`LMTS`).
    #[must_use]
    pub fn last_modified_ms(&self) -> i64 {
        match self.values[self.entity.stamps().1] {
            Val::Ts(ms) | Val::Int(ms) => ms,
            _ => 0,
        }
    }

    /// Whether the record is deleted (only the Data Lake still shows it).
    #[must_use]
    pub fn deleted(&self) -> bool {
        matches!(self.values[self.entity.stamps().3], Val::Bool(true))
    }
}

/// The generator: all records of all companies for a seed and a scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dataset {
    seed: u64,
    scale: u64,
}

impl Dataset {
    /// The dataset of a seed and a scale (number of customers of company 100).
    #[must_use]
    pub fn new(seed: u64, scale: u64) -> Self {
        Self {
            seed,
            scale: scale.max(1),
        }
    }

    /// The seed.
    #[must_use]
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The scale.
    #[must_use]
    pub fn scale(&self) -> u64 {
        self.scale
    }

    /// The company with this number, if the tenant has it.
    #[must_use]
    pub fn company(cono: u32) -> Option<&'static Company> {
        COMPANIES.iter().find(|c| c.cono == cono)
    }

    fn company_scale(&self, cono: u32) -> u64 {
        if cono == DEFAULT_COMPANY {
            self.scale
        } else {
            (self.scale / 10).max(1)
        }
    }

    /// Number of records (deleted ones included) of an entity in a company; 0 for an
    /// unknown company.
    #[must_use]
    pub fn count(&self, entity: Entity, cono: u32) -> u64 {
        if Self::company(cono).is_none() {
            return 0;
        }
        let s = self.company_scale(cono);
        match entity {
            Entity::Customer | Entity::OrderHead => s,
            Entity::Item => s.div_ceil(2),
            Entity::Supplier => s.div_ceil(10),
            Entity::OrderLine => s * LINES_PER_ORDER,
        }
    }

    /// Number of rows of a table over all companies (what the Data Lake holds; deleted rows
    /// included).
    #[must_use]
    pub fn table_rows(&self, table: &TableDef) -> u64 {
        COMPANIES
            .iter()
            .map(|c| self.count(table.entity, c.cono))
            .sum()
    }

    /// The key string of a record (`CUNO`, `ITNO`, `SUNO`, `ORNO`; an order line's `ORNO`).
    #[must_use]
    pub fn key(&self, entity: Entity, index: u64) -> String {
        match entity {
            Entity::Customer => format!("C{:09}", index + 1),
            Entity::Item => format!("I{:09}", index + 1),
            Entity::Supplier => format!("S{:09}", index + 1),
            Entity::OrderHead => format!("O{:09}", index + 1),
            Entity::OrderLine => format!("O{:09}", index / LINES_PER_ORDER + 1),
        }
    }

    /// The first index whose key is `>= key` (the count when there is none): where a
    /// key-paged list starts.
    #[must_use]
    pub fn lower_bound(&self, entity: Entity, cono: u32, key: &str) -> u64 {
        let (mut lo, mut hi) = (0, self.count(entity, cono));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.key(entity, mid).as_str() < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The index of the record with exactly this key (first line for order lines).
    #[must_use]
    pub fn find(&self, entity: Entity, cono: u32, key: &str) -> Option<u64> {
        let i = self.lower_bound(entity, cono, key);
        (i < self.count(entity, cono) && self.key(entity, i) == key.trim_end()).then_some(i)
    }

    /// Generates a record as the generator made it (without changes).
    #[must_use]
    pub fn record(&self, entity: Entity, cono: u32, index: u64) -> Record {
        generate::record(self, entity, cono, index)
    }

    /// Generates a record and applies the changes overlay.
    #[must_use]
    pub fn record_with(&self, changes: &Changes, entity: Entity, cono: u32, index: u64) -> Record {
        let mut r = self.record(entity, cono, index);
        changes.apply(&mut r);
        r
    }

    pub(crate) fn rng(&self, entity: Entity, cono: u32, index: u64) -> crate::rng::SplitMix64 {
        use crate::rng::mix;
        crate::rng::SplitMix64::new(mix(
            mix(mix(self.seed, entity.tag()), u64::from(cono)),
            index,
        ))
    }

    /// A checksum over the projection of every row of a lake table, in row order (company
    /// 100 first), without changes. Tests use it to compare what a client read.
    #[must_use]
    pub fn checksum(&self, table: &TableDef) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325_u64;
        for c in &COMPANIES {
            for i in 0..self.count(table.entity, c.cono) {
                let r = self.record(table.entity, c.cono, i);
                for col in table.columns {
                    for b in r.get(col.field).plain(col.kind, table.surface).bytes() {
                        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
                    }
                    h = (h ^ 0x1f).wrapping_mul(0x100_0000_01b3);
                }
            }
        }
        h
    }
}
