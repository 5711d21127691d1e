//! A task read in partitions (`partitions = N`): each partition is a read of its own
//! ([`ReadRequest::partition`](ionport_plugin_abi::wire::ReadRequest::partition)) into the
//! stream's table, with a state of its own in the destination — committed with its
//! records ([`Destination::commit_as`]) under the key [`state_key`] — so a partition
//! interrupted anywhere resumes from its own last checkpoint, whoever runs it.

use std::collections::HashSet;

pub use ionport_plugin_abi::wire::ReadPartition;
use serde_json::Value;

use crate::destination::{Column, Destination, DestinationError, StreamSpec};
use crate::read::Records;

/// The state key of partition `p` of `stream`: `customers#1/3`. The count is part of it: a
/// task read in another number of partitions pages differently, so it starts over.
pub fn state_key(stream: &str, p: ReadPartition) -> String {
    format!("{stream}#{}/{}", p.index, p.count)
}

/// Resets the state of `task` and the states of its partitions (every count it was ever
/// read in), or, for `None`, every state of the destination. Every reset (the CLI's, the
/// API's, the console's) goes through here, so that no partition state is left behind to
/// resume a task the user asked to start over.
pub fn reset_task_states(d: &dyn Destination, task: Option<&str>) -> Result<(), DestinationError> {
    d.reset_state(task)?;
    if let Some(t) = task {
        let prefix = format!("{t}#");
        for (key, _) in d.states()? {
            if key.starts_with(&prefix) {
                d.reset_state(Some(&key))?;
            }
        }
    }
    Ok(())
}

/// The partitions of a task read in `count`, in order.
pub fn all(count: u32) -> impl Iterator<Item = ReadPartition> {
    (0..count).map(move |index| ReadPartition { index, count })
}

/// A destination as one partition of a stream sees it: the stream's table, the
/// partition's state.
#[derive(Debug)]
pub(super) struct PartitionState {
    pub(super) inner: std::sync::Arc<dyn Destination>,
    pub(super) key: String,
}

impl Destination for PartitionState {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn prepare(&self, stream: &StreamSpec) -> Result<(), DestinationError> {
        self.inner.prepare(stream)
    }
    fn commit(
        &self,
        stream: &StreamSpec,
        records: &Records,
        state: &Value,
    ) -> Result<(), DestinationError> {
        self.inner.commit_as(stream, records, state, &self.key)
    }
    fn commit_as(
        &self,
        stream: &StreamSpec,
        records: &Records,
        state: &Value,
        state_key: &str,
    ) -> Result<(), DestinationError> {
        self.inner.commit_as(stream, records, state, state_key)
    }
    fn load_state(&self, _stream: &str) -> Result<Option<Value>, DestinationError> {
        self.inner.load_state(&self.key)
    }
    fn states(&self) -> Result<Vec<(String, Value)>, DestinationError> {
        self.inner.states()
    }
    fn reset_state(&self, _stream: Option<&str>) -> Result<(), DestinationError> {
        self.inner.reset_state(Some(&self.key))
    }
    fn finish(&self, stream: &StreamSpec) -> Result<(), DestinationError> {
        self.inner.finish(stream)
    }
    fn columns(&self, stream: &StreamSpec) -> Result<Option<Vec<Column>>, DestinationError> {
        self.inner.columns(stream)
    }
    fn mark_deleted(
        &self,
        stream: &StreamSpec,
        live_keys: &HashSet<String>,
        at: &str,
    ) -> Result<u64, DestinationError> {
        self.inner.mark_deleted(stream, live_keys, at)
    }
}
