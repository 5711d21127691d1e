//! One line-delimited JSON message stream on stdout, shared by the read's blocking thread
//! and the command. Both protocols are line protocols: one JSON object per line.

use std::io::{BufWriter, Stdout, Write};
use std::sync::Mutex;

use ionport_core::read::Records;
use serde::Serialize;

/// Buffered stdout; flushed at every state message and at the end, so a consumer sees a
/// state only after the records it covers.
#[derive(Debug)]
pub struct Out(Mutex<BufWriter<Stdout>>);

impl Out {
    /// Stdout, buffered.
    pub fn stdout() -> Self {
        Self(Mutex::new(BufWriter::with_capacity(
            256 * 1024,
            std::io::stdout(),
        )))
    }

    /// Writes `message` as one line. An error (e.g. the consumer went away) is returned
    /// as text, which stops a read.
    pub fn emit(&self, message: &impl Serialize) -> Result<(), String> {
        let mut w = self
            .0
            .lock()
            .map_err(|_| "stdout's lock is poisoned".to_string())?;
        serde_json::to_writer(&mut *w, message).map_err(|e| format!("writing stdout: {e}"))?;
        w.write_all(b"\n")
            .map_err(|e| format!("writing stdout: {e}"))
    }

    /// Writes one line per record of `records`: `before`, the record's JSON text as the
    /// connector wrote it, `after` — under one lock, with no map built per record.
    pub fn emit_records(&self, records: &Records, before: &str, after: &str) -> Result<(), String> {
        let mut w = self
            .0
            .lock()
            .map_err(|_| "stdout's lock is poisoned".to_string())?;
        for r in records.iter() {
            w.write_all(before.as_bytes())
                .and_then(|()| w.write_all(r.line().as_bytes()))
                .and_then(|()| w.write_all(after.as_bytes()))
                .and_then(|()| w.write_all(b"\n"))
                .map_err(|e| format!("writing stdout: {e}"))?;
        }
        Ok(())
    }

    /// Flushes what was written.
    pub fn flush(&self) -> Result<(), String> {
        let mut w = self
            .0
            .lock()
            .map_err(|_| "stdout's lock is poisoned".to_string())?;
        w.flush().map_err(|e| format!("writing stdout: {e}"))
    }
}
