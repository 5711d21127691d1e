//! The shared state of one running emulator.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::config::EmulatorConfig;
use crate::counters::Counters;
use crate::data::{Changes, Dataset, SchemaEdits, TableDef};
use crate::datalake::JobStore;
use crate::faults::FaultState;
use crate::quota::QuotaTracker;
use crate::recorded::RequestLog;
use crate::tokens::TokenStore;

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct AppState {
    pub config: EmulatorConfig,
    pub base_url: String,
    pub data: Dataset,
    pub changes: RwLock<Changes>,
    pub tokens: Mutex<TokenStore>,
    pub counters: Mutex<Counters>,
    pub quota: Mutex<QuotaTracker>,
    pub faults: Mutex<FaultState>,
    pub jobs: Mutex<JobStore>,
    pub requests: Mutex<RequestLog>,
    /// Columns added or retyped at the source (`POST /__emulator/columns`).
    pub schema: Mutex<SchemaEdits>,
}

pub(crate) type Shared = Arc<AppState>;

/// Locks a mutex, ignoring poisoning (a panicked handler must not wedge the emulator).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AppState {
    pub fn new(config: EmulatorConfig, base_url: String) -> Self {
        let data = Dataset::new(config.seed, config.scale);
        let faults = FaultState::new(config.seed);
        Self {
            config,
            base_url,
            data,
            changes: RwLock::new(Changes::default()),
            tokens: Mutex::default(),
            counters: Mutex::default(),
            quota: Mutex::default(),
            faults: Mutex::new(faults),
            jobs: Mutex::default(),
            requests: Mutex::default(),
            schema: Mutex::default(),
        }
    }

    /// Updates the counters.
    pub fn count(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut lock(&self.counters));
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        lock(&self.counters).clone()
    }

    pub fn changes(&self) -> RwLockReadGuard<'_, Changes> {
        self.changes.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn changes_mut(&self) -> RwLockWriteGuard<'_, Changes> {
        self.changes.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets tokens, counters, quota windows, faults, record changes, jobs, recorded
    /// requests and schema edits.
    pub fn reset(&self) {
        lock(&self.requests).clear();
        *lock(&self.tokens) = TokenStore::default();
        *lock(&self.counters) = Counters::default();
        lock(&self.quota).clear();
        *lock(&self.faults) = FaultState::new(self.config.seed);
        *self.changes_mut() = Changes::default();
        *lock(&self.jobs) = JobStore::default();
        *lock(&self.schema) = SchemaEdits::default();
    }

    /// A Data Lake (and EXPORTMI) table by name, with the columns added or retyped through
    /// the control endpoint.
    pub fn lake_table(&self, name: &str) -> Option<&'static TableDef> {
        lock(&self.schema).table(name)
    }

    /// The Data Catalog's JSON Schema of `table` (without the columns it does not list).
    pub fn catalog_schema(&self, table: &TableDef) -> serde_json::Value {
        lock(&self.schema).catalog_schema(table)
    }
}
