//! The overlay of changed records: what the control endpoint's "change N records" did.
//! Small by construction (one entry per changed record), so a million-row dataset stays
//! generated on demand.

use std::collections::HashMap;

use serde::Serialize;

use super::{Dataset, Entity, Record, Val};
use crate::rng::{SplitMix64, mix};
use crate::time::ms_to_yyyymmdd;

/// A change to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Change {
    /// New last-modified time, epoch milliseconds.
    pub lmts: i64,
    /// How many times the record was changed (added to `CHNO`).
    pub times: i64,
    /// Whether the record is now deleted.
    pub deleted: bool,
}

/// Changed records by `(entity, company, index)`.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    map: HashMap<(Entity, u32, u64), Change>,
    last_ms: i64,
    rounds: u64,
}

/// Which records a change request picks.
#[derive(Debug, Clone, Copy)]
pub enum Selection<'a> {
    /// This many pseudo-randomly chosen live records.
    Count(u64),
    /// These record indices.
    Indices(&'a [u64]),
}

/// What one change request did.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeReport {
    /// Number of records changed.
    pub changed: u64,
    /// Their keys (at most 1000).
    pub keys: Vec<String>,
    /// Their indices (at most 1000).
    pub indices: Vec<u64>,
    /// Their new last-modified time, ISO-8601.
    #[serde(rename = "lastModified")]
    pub last_modified: String,
    /// Their new last-modified time, epoch milliseconds.
    #[serde(rename = "lastModifiedMs")]
    pub last_modified_ms: i64,
}

impl Changes {
    /// Applies the overlay to a generated record.
    pub fn apply(&self, r: &mut Record) {
        if self.map.is_empty() {
            return;
        }
        if let Some(c) = self.map.get(&(r.entity, r.cono, r.index)) {
            let (lmdt, lmts, chno, deleted) = r.entity.stamps();
            r.values[lmts] = Val::Ts(c.lmts);
            r.values[lmdt] = Val::Date(ms_to_yyyymmdd(c.lmts));
            if let Val::Int(n) = r.values[chno] {
                r.values[chno] = Val::Int(n + c.times);
            }
            r.values[deleted] = Val::Bool(c.deleted);
        }
    }

    /// Whether a record is deleted by the overlay.
    #[must_use]
    pub fn is_deleted(&self, entity: Entity, cono: u32, index: u64) -> bool {
        !self.map.is_empty()
            && self
                .map
                .get(&(entity, cono, index))
                .is_some_and(|c| c.deleted)
    }

    /// Whether any record of `entity` is deleted by the overlay (a Compass query that
    /// leaves deleted records out must then look at each record).
    #[must_use]
    pub fn any_deleted(&self, entity: Entity) -> bool {
        self.map
            .iter()
            .any(|((e, _, _), c)| *e == entity && c.deleted)
    }

    /// Number of changed records.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing was changed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Changes `count` pseudo-randomly chosen (deterministic per seed and round) live records
    /// of an entity in a company, or the given indices: their `LMTS` becomes `now_ms`
    /// (strictly increasing over rounds), `CHNO` goes up by one; `delete` marks them deleted.
    pub fn change(
        &mut self,
        ds: &Dataset,
        entity: Entity,
        cono: u32,
        which: Selection<'_>,
        delete: bool,
        now_ms: i64,
    ) -> ChangeReport {
        let ms = now_ms.max(self.last_ms + 1);
        self.last_ms = ms;
        self.rounds += 1;
        let total = ds.count(entity, cono);
        let mut chosen: Vec<u64> = match which {
            Selection::Indices(ix) => ix.iter().copied().filter(|i| *i < total).collect(),
            Selection::Count(count) => {
                let want = count.min(total);
                let mut rng = SplitMix64::new(mix(ds.seed() ^ 0x0C4A_76E5, self.rounds));
                let mut set = std::collections::BTreeSet::new();
                let mut tries = 0u64;
                while (set.len() as u64) < want && tries < want * 20 + 100 {
                    tries += 1;
                    let i = rng.below(total);
                    if !self.is_deleted(entity, cono, i) {
                        set.insert(i);
                    }
                }
                // Dense requests: fill up in order.
                let mut i = 0;
                while (set.len() as u64) < want && i < total {
                    if !self.is_deleted(entity, cono, i) {
                        set.insert(i);
                    }
                    i += 1;
                }
                set.into_iter().collect()
            }
        };
        chosen.sort_unstable();
        chosen.dedup();
        for &i in &chosen {
            let e = self.map.entry((entity, cono, i)).or_insert(Change {
                lmts: ms,
                times: 0,
                deleted: false,
            });
            e.lmts = ms;
            e.times += 1;
            e.deleted = e.deleted || delete;
        }
        ChangeReport {
            changed: chosen.len() as u64,
            keys: chosen
                .iter()
                .take(1000)
                .map(|i| ds.key(entity, *i))
                .collect(),
            indices: chosen.iter().take(1000).copied().collect(),
            last_modified: crate::time::ms_to_iso(ms),
            last_modified_ms: ms,
        }
    }
}
