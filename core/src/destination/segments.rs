//! Sorted segments of a file destination: sealing a log into them (by key, the last
//! occurrence of a key winning, only keys and offsets in memory), reading them back, and
//! the streaming k-way merge of an output with its segments. See `files` for the layout
//! and the crash-safety protocol around them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::common::TableSpec;
use super::files::Rows;
use super::row::record_key;
use crate::read::{Records, RecordsError};

/// A line of a file that is not what ionport wrote there.
#[derive(Debug)]
pub(crate) struct Damage {
    pub(crate) file: PathBuf,
    pub(crate) line: u64,
    pub(crate) message: String,
}

#[derive(Debug)]
pub(crate) enum SealError {
    Damaged(Damage),
    Io(std::io::Error),
}

impl From<std::io::Error> for SealError {
    fn from(e: std::io::Error) -> Self {
        SealError::Io(e)
    }
}

/// Where a repair puts the damaged lines of a log (created on the first one), and what it
/// counted.
#[derive(Debug)]
pub(crate) struct SetAside {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    kept: u64,
    damaged: u64,
}

impl SetAside {
    pub(crate) fn new(path: PathBuf) -> Self {
        SetAside {
            path,
            out: None,
            kept: 0,
            damaged: 0,
        }
    }

    /// (lines kept, lines set aside).
    pub(crate) fn counts(&self) -> (u64, u64) {
        (self.kept, self.damaged)
    }

    fn put(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.out.is_none() {
            self.out = Some(BufWriter::new(File::create(&self.path)?));
        }
        if let Some(w) = &mut self.out {
            w.write_all(line)?;
            w.write_all(b"\n")?;
        }
        self.damaged += 1;
        Ok(())
    }

    /// Makes the set-aside lines durable (before the state forgets them).
    fn sync(&mut self) -> std::io::Result<()> {
        if let Some(w) = &mut self.out {
            w.flush()?;
            w.get_ref().sync_all()?;
        }
        Ok(())
    }
}

/// One record of a window being sealed: where its line is, and where its key is in the
/// window's key text. No allocation per key: a window's keys are one string, so sealing
/// costs the keys' bytes plus 24 bytes a record and leaves no small blocks behind.
struct Entry {
    offset: u64,
    key: u32,
    key_len: u32,
    len: u32,
}

/// The records of a window being sealed.
#[derive(Default)]
struct Window {
    keys: String,
    entries: Vec<Entry>,
}

impl Window {
    fn key(&self, e: &Entry) -> &str {
        let start = e.key as usize;
        self.keys
            .get(start..start + e.key_len as usize)
            .unwrap_or_default()
    }

    /// Whether a key of `len` more bytes still has a 32-bit place in `keys`.
    fn fits(&self, len: usize) -> bool {
        u32::try_from(self.keys.len() + len).is_ok()
    }

    fn push(&mut self, key: &str, offset: u64, len: u32) {
        // `fits` was asked first: both are under 4 GiB.
        let at = self.keys.len() as u32;
        self.keys.push_str(key);
        self.entries.push(Entry {
            offset,
            key: at,
            key_len: key.len() as u32,
            len,
        });
    }

    fn clear(&mut self) {
        self.keys.clear();
        self.entries.clear();
    }
}

fn body(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The key text of a log line, read without building a map; `one` is reused.
fn line_key(one: &mut Records, table: &TableSpec, line: &[u8]) -> Result<String, String> {
    let record = one.reparse_line(line).map_err(|e| match e {
        RecordsError::NotJson { message, .. } => format!("not a JSON object ({message})"),
        _ => "not a JSON object".to_string(),
    })?;
    if table.key_len == 0 {
        return Ok(String::new());
    }
    record_key(table, &record)
}

/// Seals the first `len` bytes of the JSONL file `src` into segments of at most `window`
/// bytes each, sorted by `table`'s key with each key once (its last occurrence), or in
/// arrival order without a key. Segment `i` is written to `path_of(i)` and fsynced.
/// Returns how many were written. A line that is not a JSON object is an error, or goes
/// to `set_aside` when given.
pub(crate) fn seal(
    src: &Path,
    len: u64,
    table: &TableSpec,
    window: u64,
    path_of: &mut dyn FnMut(u64) -> PathBuf,
    mut set_aside: Option<&mut SetAside>,
) -> Result<u64, SealError> {
    let mut reader = BufReader::with_capacity(1 << 16, File::open(src)?.take(len));
    let mut lines = File::open(src)?;
    let mut held = Window::default();
    let (mut offset, mut line_no, mut bytes, mut written) = (0u64, 0u64, 0u64, 0u64);
    let mut buf = Vec::new();
    let mut one = Records::default();
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)? as u64;
        if n == 0 {
            break;
        }
        line_no += 1;
        let start = offset;
        offset += n;
        let line = body(&buf);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let damage = if buf.last() != Some(&b'\n') {
            Some("cut short (no line end)".to_string())
        } else {
            match (line_key(&mut one, table, line), u32::try_from(line.len())) {
                (Ok(key), Ok(line_len)) => {
                    if !held.fits(key.len()) {
                        write_segment(&mut lines, &mut held, table, &path_of(written))?;
                        written += 1;
                        bytes = 0;
                    }
                    held.push(&key, start, line_len);
                    bytes += n;
                    if let Some(a) = set_aside.as_deref_mut() {
                        a.kept += 1;
                    }
                    None
                }
                (Err(e), _) => Some(e),
                (_, Err(_)) => Some("longer than 4 GiB".to_string()),
            }
        };
        if let Some(message) = damage {
            match set_aside.as_deref_mut() {
                Some(a) => a.put(line)?,
                None => {
                    return Err(SealError::Damaged(Damage {
                        file: src.to_path_buf(),
                        line: line_no,
                        message,
                    }));
                }
            }
        }
        if bytes >= window {
            write_segment(&mut lines, &mut held, table, &path_of(written))?;
            written += 1;
            bytes = 0;
        }
    }
    if !held.entries.is_empty() {
        write_segment(&mut lines, &mut held, table, &path_of(written))?;
        written += 1;
    }
    if let Some(a) = set_aside {
        a.sync()?;
    }
    Ok(written)
}

fn write_segment(
    src: &mut File,
    held: &mut Window,
    table: &TableSpec,
    path: &Path,
) -> std::io::Result<()> {
    let mut entries = std::mem::take(&mut held.entries);
    if table.key_len > 0 {
        // Stable: records of one key stay in arrival order, and the last one is kept.
        entries.sort_by(|a, b| held.key(a).cmp(held.key(b)));
    }
    let mut w = BufWriter::with_capacity(1 << 16, File::create(path)?);
    let mut line = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if table.key_len > 0
            && entries
                .get(i + 1)
                .is_some_and(|next| held.key(next) == held.key(e))
        {
            continue;
        }
        line.resize(e.len as usize, 0);
        src.seek(SeekFrom::Start(e.offset))?;
        src.read_exact(&mut line)?;
        w.write_all(&line)?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    w.get_ref().sync_all()?;
    // The next window reuses the allocations.
    held.entries = entries;
    held.clear();
    Ok(())
}

/// Merges sorted segments (oldest first) into one, `out`, fsynced: each key once, the
/// newest version winning (concatenated in order without a key).
pub(crate) fn merge_into(table: &TableSpec, sources: &[PathBuf], out: &Path) -> Result<(), String> {
    let mut rows = Vec::with_capacity(sources.len());
    for p in sources {
        rows.push((p.display().to_string(), read_jsonl(p)?));
    }
    let shown = out.display();
    let io = |e: std::io::Error| format!("cannot write {shown}: {e}");
    let mut w = BufWriter::with_capacity(1 << 16, File::create(out).map_err(io)?);
    for row in Merge::new(table, rows) {
        w.write_all(row?.as_bytes())
            .and_then(|()| w.write_all(b"\n"))
            .map_err(io)?;
    }
    w.into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)
}

/// The first line of `src[..len]` that is not a JSON object, if any.
pub(crate) fn scan(src: &Path, len: u64) -> std::io::Result<Option<u64>> {
    let mut reader = BufReader::with_capacity(1 << 16, File::open(src)?.take(len));
    let mut buf = Vec::new();
    let mut one = Records::default();
    let mut line_no = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(None);
        }
        line_no += 1;
        let line = body(&buf);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if buf.last() != Some(&b'\n') || one.reparse_line(line).is_err() {
            return Ok(Some(line_no));
        }
    }
}

/// One row read back from an output or a segment: its JSON text (not yet checked) and
/// its place in the file, for messages.
#[derive(Debug)]
pub struct Line {
    /// The JSON text.
    pub text: String,
    /// Its line (or row) number in its file, from 1.
    pub at: u64,
}

/// The lines of a JSONL file, in file order, as they are (the merge checks them as it
/// reads their keys); errors name the file and the line.
pub(crate) fn read_jsonl(path: &Path) -> Result<Rows, String> {
    let f = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let shown = path.display().to_string();
    let mut line_no = 0u64;
    Ok(Box::new(
        BufReader::with_capacity(1 << 16, f)
            .split(b'\n')
            .filter_map(move |line| {
                line_no += 1;
                match line {
                    Err(e) => Some(Err(format!("cannot read {shown}: {e}"))),
                    Ok(l) if body(&l).iter().all(u8::is_ascii_whitespace) => None,
                    Ok(mut l) => {
                        let len = body(&l).len();
                        l.truncate(len);
                        Some(
                            String::from_utf8(l)
                                .map(|text| Line { text, at: line_no })
                                .map_err(|_| format!("{shown} line {line_no}: not UTF-8")),
                        )
                    }
                }
            }),
    ))
}

struct Source {
    name: String,
    rows: Rows,
    head: Option<String>,
    last: Option<String>,
}

/// The streaming merge of sorted sources (oldest first): each key once, from the newest
/// source that has it. Without a key: every row of every source, in order.
pub(crate) struct Merge<'a> {
    table: &'a TableSpec,
    sources: Vec<Source>,
    heap: BinaryHeap<(Reverse<String>, usize)>,
    started: bool,
    current: usize,
    /// Parses each line once, for its key and to refuse what is not a record.
    one: Records,
}

impl<'a> Merge<'a> {
    /// `sources`: (name for messages, rows), oldest first.
    pub(crate) fn new(table: &'a TableSpec, sources: Vec<(String, Rows)>) -> Self {
        Merge {
            table,
            sources: sources
                .into_iter()
                .map(|(name, rows)| Source {
                    name,
                    rows,
                    head: None,
                    last: None,
                })
                .collect(),
            heap: BinaryHeap::new(),
            started: false,
            current: 0,
            one: Records::default(),
        }
    }

    /// The key text of a line of source `i`; an error names the file and the line.
    fn key_of(&mut self, i: usize, line: &Line) -> Result<String, String> {
        line_key(&mut self.one, self.table, line.text.as_bytes()).map_err(|e| {
            let name = self.sources.get(i).map_or("", |s| s.name.as_str());
            format!("{name} line {}: {e}", line.at)
        })
    }

    fn advance(&mut self, i: usize) -> Result<(), String> {
        let Some(next) = self.sources.get_mut(i).map(|s| s.rows.next()) else {
            return Ok(());
        };
        match next {
            None => {
                if let Some(s) = self.sources.get_mut(i) {
                    s.head = None;
                }
            }
            Some(Err(e)) => return Err(e),
            Some(Ok(line)) => {
                let key = self.key_of(i, &line)?;
                let Some(s) = self.sources.get_mut(i) else {
                    return Ok(());
                };
                if s.last.as_ref().is_some_and(|last| key <= *last) {
                    return Err(format!(
                        "{} is not in key order at line {} (it was not written by this version of ionport)",
                        s.name, line.at
                    ));
                }
                s.last = Some(key.clone());
                s.head = Some(line.text);
                self.heap.push((Reverse(key), i));
            }
        }
        Ok(())
    }

    fn next_keyed(&mut self) -> Result<Option<String>, String> {
        if !self.started {
            self.started = true;
            for i in 0..self.sources.len() {
                self.advance(i)?;
            }
        }
        let Some((Reverse(key), newest)) = self.heap.pop() else {
            return Ok(None);
        };
        let row = self.sources[newest].head.take();
        self.advance(newest)?;
        while self.heap.peek().is_some_and(|(Reverse(k), _)| *k == key) {
            if let Some((_, older)) = self.heap.pop() {
                self.sources[older].head = None;
                self.advance(older)?;
            }
        }
        Ok(row)
    }
}

impl Iterator for Merge<'_> {
    /// A record's JSON text, checked to be a record.
    type Item = Result<String, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.table.key_len > 0 {
            return self.next_keyed().transpose();
        }
        let i = self.current;
        let next = self.sources.get_mut(i)?.rows.next();
        match next {
            Some(Ok(line)) => Some(self.key_of(i, &line).map(|_| line.text)),
            Some(Err(e)) => Some(Err(e)),
            None => {
                self.current += 1;
                self.next()
            }
        }
    }
}
