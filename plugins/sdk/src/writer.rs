//! Batching records before they cross to the host.

use serde::Serialize;

use crate::{ConnectorError, Host};

/// Buffers records of one stream as NDJSON and hands them to the host in batches, so
/// that the ABI is crossed once per batch, never once per record.
///
/// [`RecordWriter::commit`] flushes and checkpoints in one step: the host commits the
/// records and the state together.
#[derive(Debug)]
pub struct RecordWriter {
    host: Host,
    stream: String,
    batch_size: usize,
    buf: Vec<u8>,
    pending: u64,
    written: u64,
}

impl RecordWriter {
    /// A writer for `stream` that flushes every `batch_size` records.
    pub fn new(host: &Host, stream: impl Into<String>, batch_size: usize) -> Self {
        Self {
            host: host.clone(),
            stream: stream.into(),
            batch_size: batch_size.max(1),
            buf: Vec::with_capacity(64 * 1024),
            pending: 0,
            written: 0,
        }
    }

    /// Adds one record; flushes when the batch is full.
    pub fn push<T: Serialize + ?Sized>(&mut self, record: &T) -> Result<(), ConnectorError> {
        serde_json::to_writer(&mut self.buf, record)
            .map_err(|e| ConnectorError::connector(format!("encoding a record: {e}")))?;
        self.buf.push(b'\n');
        self.pending += 1;
        if self.pending as usize >= self.batch_size {
            self.flush()?;
        }
        Ok(())
    }

    /// Hands the buffered records to the host.
    pub fn flush(&mut self) -> Result<(), ConnectorError> {
        if self.pending == 0 {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.buf, Vec::with_capacity(64 * 1024));
        self.host.emit_ndjson(&self.stream, self.pending, batch)?;
        self.written += self.pending;
        self.pending = 0;
        Ok(())
    }

    /// Flushes, then checkpoints `state`: the records and the state are committed together.
    pub fn commit<S: Serialize>(&mut self, state: &S) -> Result<(), ConnectorError> {
        self.flush()?;
        self.host.checkpoint(state)
    }

    /// Records handed to the host so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}
