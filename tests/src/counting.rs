//! [`Counting`]: core's host (a [`Recorder`]) with the gateway calls outstanding at once
//! counted, and a fault that can be installed once a read took a number of checkpoints (a
//! failure half-way). Every call is passed on to the recorder unchanged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use ionport_core::host::{HostCallbacks, HostResponse};
use ionport_plugin_abi::wire::GatewayRequestHead;
use ionport_plugin_abi::{LogLevel, PluginError, RecordBatch};

use crate::recorder::{Recorded, Recorder};

/// A fault to install once the read took this many checkpoints.
type Arm = (u64, Box<dyn FnOnce() + Send>);

/// Core's host (the `Recorder`) with the gateway calls outstanding at once counted.
pub struct Counting {
    inner: Arc<Recorder>,
    now: AtomicU64,
    most: AtomicU64,
    checkpoints: AtomicU64,
    arm: Mutex<Option<Arm>>,
    /// The query parameters of each gateway request (the recorder keeps the path only).
    queries: Mutex<Vec<Vec<(String, String)>>>,
}

impl std::fmt::Debug for Counting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counting")
            .field("most", &self.most)
            .finish_non_exhaustive()
    }
}

impl Counting {
    /// Counts the calls of `inner`.
    pub fn new(inner: Arc<Recorder>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            now: AtomicU64::new(0),
            most: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            arm: Mutex::new(None),
            queries: Mutex::new(Vec::new()),
        })
    }

    /// Runs `fault` once `after` checkpoints were taken.
    pub fn arm(&self, after: u64, fault: impl FnOnce() + Send + 'static) {
        *self.arm.lock().unwrap_or_else(PoisonError::into_inner) = Some((after, Box::new(fault)));
    }

    /// The query parameters of the gateway requests since the last call, in order.
    pub fn take_queries(&self) -> Vec<Vec<(String, String)>> {
        std::mem::take(&mut *self.queries.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// What was recorded, and the most gateway calls outstanding at once; starts afresh.
    pub fn take(&self) -> (Recorded, u64) {
        self.checkpoints.store(0, Ordering::SeqCst);
        (self.inner.take(), self.most.swap(0, Ordering::SeqCst))
    }
}

impl HostCallbacks for Counting {
    fn gateway(
        &self,
        head: GatewayRequestHead,
        body: Vec<u8>,
    ) -> Result<HostResponse, PluginError> {
        self.queries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(head.query.clone());
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        let r = self.inner.gateway(head, body);
        self.now.fetch_sub(1, Ordering::SeqCst);
        r
    }

    fn emit(&self, batch: RecordBatch) -> Result<(), PluginError> {
        self.inner.emit(batch)
    }

    fn checkpoint(&self, state: &str) -> Result<(), PluginError> {
        self.inner.checkpoint(state)?;
        let n = self.checkpoints.fetch_add(1, Ordering::SeqCst) + 1;
        let mut arm = self.arm.lock().unwrap_or_else(PoisonError::into_inner);
        if arm.as_ref().is_some_and(|(after, _)| n >= *after)
            && let Some((_, fault)) = arm.take()
        {
            fault();
        }
        Ok(())
    }

    fn cancelled(&self) -> bool {
        self.inner.cancelled()
    }

    fn log(&self, plugin: &str, level: LogLevel, message: &str) {
        self.inner.log(plugin, level, message);
    }
}
