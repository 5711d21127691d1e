//! The JSONL destination: one `<table>.jsonl` file per stream under a directory, each
//! line one record (as the connector emitted it), each key once after `finish`.
//!
//! Exactly once: see `destination::files` (private) — records go to a per-stream log that is fsynced
//! before the state file that points past it is renamed into place; `finish` merges the
//! log into the output atomically.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use serde_json::{Map, Value};

use super::common::TableSpec;
use super::files::{FileDestination, Format};

/// The JSONL format.
#[derive(Debug)]
pub struct Jsonl;

impl Format for Jsonl {
    const KIND: &'static str = "jsonl";
    const EXT: &'static str = "jsonl";

    fn merge(
        table: &TableSpec,
        base: Option<&Path>,
        replaced: &HashSet<String>,
        new_rows: &mut dyn Iterator<Item = Result<Map<String, Value>, String>>,
        out: &mut File,
    ) -> Result<(), String> {
        let mut w = BufWriter::with_capacity(1 << 16, out);
        if let Some(base) = base {
            let f = File::open(base).map_err(|e| format!("cannot open {}: {e}", base.display()))?;
            for line in BufReader::with_capacity(1 << 16, f).lines() {
                let line = line.map_err(|e| format!("cannot read {}: {e}", base.display()))?;
                if line.trim().is_empty() {
                    continue;
                }
                if !replaced.is_empty() {
                    let r: Map<String, Value> = serde_json::from_str(&line).map_err(|e| {
                        format!("{}: a line is not a JSON object: {e}", base.display())
                    })?;
                    if replaced.contains(&table.key_string(&r)) {
                        continue;
                    }
                }
                w.write_all(line.as_bytes())
                    .and_then(|()| w.write_all(b"\n"))
                    .map_err(|e| e.to_string())?;
            }
        }
        for r in new_rows {
            serde_json::to_writer(&mut w, &r?).map_err(|e| e.to_string())?;
            w.write_all(b"\n").map_err(|e| e.to_string())?;
        }
        w.flush().map_err(|e| e.to_string())
    }
}

/// One JSONL file per stream under a directory.
pub type JsonlDestination = FileDestination<Jsonl>;
