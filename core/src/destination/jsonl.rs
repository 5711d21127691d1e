//! The JSONL destination: one `<table>.jsonl` file per stream under a directory, each
//! line one record (the connector's own JSON text, fields in its order), each key once
//! after `finish`.
//!
//! Exactly once: see `destination::files` (private) — records go to a per-stream log that
//! is fsynced before the state file that points past it is renamed into place; `finish`
//! merges the sorted segments of the log into the output atomically. The output is in key
//! order (the JSON text of the key values), or in arrival order without a key.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::common::TableSpec;
use super::files::{FileDestination, Format, Rows};
use super::segments::read_jsonl;

/// The JSONL format.
#[derive(Debug)]
pub struct Jsonl;

impl Format for Jsonl {
    const KIND: &'static str = "jsonl";
    const EXT: &'static str = "jsonl";

    fn read_output(output: &Path) -> Result<Rows, String> {
        read_jsonl(output)
    }

    fn write(
        _table: &TableSpec,
        _base: Option<&Path>,
        rows: &mut dyn Iterator<Item = Result<String, String>>,
        out: &mut File,
    ) -> Result<(), String> {
        let mut w = BufWriter::with_capacity(1 << 16, out);
        for r in rows {
            w.write_all(r?.as_bytes())
                .and_then(|()| w.write_all(b"\n"))
                .map_err(|e| e.to_string())?;
        }
        w.flush().map_err(|e| e.to_string())
    }
}

/// One JSONL file per stream under a directory.
pub type JsonlDestination = FileDestination<Jsonl>;
