//! [`Records`]: a plugin's NDJSON batches, parsed once and kept as text.
//!
//! Why not a `serde_json::Map` per record: building one costs an allocation per key and
//! per value, and every consumer then turns the map into something else again (bound SQL
//! values, a log line, a protocol message). Here a batch keeps the plugin's bytes; the one
//! parse checks that every line is a JSON object and notes where each field's key and
//! value are. Consumers read the values borrowed ([`JsonRef`]), write the line as it came
//! ([`Record::line`]), or ask for a map when they want one ([`Record::to_map`]).
//!
//! A plugin's `count` never sizes an allocation: the tables grow with what the text holds.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Why a batch was refused. Messages name the record (its line in the batch), never its
/// content.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// A line is not JSON text (or not UTF-8).
    #[error("record {index} of a batch of {stream} is not JSON: {message}")]
    NotJson {
        /// The stream.
        stream: String,
        /// The line's index in the batch (0-based).
        index: usize,
        /// The parser's message.
        message: String,
    },
    /// A line is JSON, but not an object.
    #[error("record {index} of a batch of {stream} is not a JSON object")]
    NotObject {
        /// The stream.
        stream: String,
        /// The line's index in the batch (0-based).
        index: usize,
    },
    /// Offsets within a batch are 32-bit.
    #[error("a batch of {stream} holds {len} bytes, more than a batch may (4 GiB)")]
    TooLarge {
        /// The stream.
        stream: String,
        /// Its size.
        len: usize,
    },
    /// A map could not be written as JSON (only [`Records::from_maps`]).
    #[error("a record cannot be written as JSON: {0}")]
    Encode(String),
}

/// Where a field's key is: a span of the text, or (`DECODED`, i) for the i-th key decoded
/// aside because it held escapes. Two words, no enum tag: the tables of a wide batch are
/// several times its text (16 bytes a field, not 20).
#[derive(Debug, Clone, Copy)]
struct KeyAt(u32, u32);

impl KeyAt {
    /// Never a text offset: the text is shorter than 4 GiB.
    const DECODED: u32 = u32::MAX;
}

#[derive(Debug, Clone, Copy)]
struct Field {
    key: KeyAt,
    value: (u32, u32),
}

#[derive(Debug, Clone, Copy)]
struct Row {
    line: (u32, u32),
    fields: (u32, u32),
}

/// One NDJSON buffer with its tables.
#[derive(Debug, Default)]
struct Chunk {
    text: String,
    rows: Vec<Row>,
    fields: Vec<Field>,
    keys: Vec<String>,
}

/// Records of one stream: one batch as a plugin emitted it, or several appended into a
/// commit unit. Iterate with [`Records::iter`].
#[derive(Debug, Default)]
pub struct Records {
    chunks: Vec<Chunk>,
    len: usize,
}

impl Records {
    /// Parses `ndjson` (a batch of `stream`, for messages). Every non-blank line must be a
    /// JSON object.
    pub fn parse(stream: &str, ndjson: Vec<u8>) -> Result<Self, RecordsError> {
        let mut chunk = Chunk::default();
        chunk.parse(stream, ndjson)?;
        let len = chunk.rows.len();
        Ok(Records {
            chunks: vec![chunk],
            len,
        })
    }

    /// Records written from maps (for tests, embedding and tools that build records).
    pub fn from_maps<'a>(
        maps: impl IntoIterator<Item = &'a Map<String, Value>>,
    ) -> Result<Self, RecordsError> {
        let mut text = Vec::new();
        for m in maps {
            serde_json::to_writer(&mut text, m).map_err(|e| RecordsError::Encode(e.to_string()))?;
            text.push(b'\n');
        }
        Self::parse("records", text)
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Moves `other`'s records after these (no copy of their text).
    pub fn append(&mut self, mut other: Records) {
        self.len += other.len;
        self.chunks.append(&mut other.chunks);
    }

    /// The records in order.
    pub fn iter(&self) -> impl Iterator<Item = Record<'_>> + '_ {
        self.chunks
            .iter()
            .flat_map(|c| c.rows.iter().map(move |row| Record { chunk: c, row }))
    }

    /// Every record as a map (a convenience: it costs what this type avoids).
    pub fn to_maps(&self) -> Result<Vec<Map<String, Value>>, RecordsError> {
        self.iter().map(|r| r.to_map()).collect()
    }

    /// Parses one more line into a reusable one-record value (for readers of logs, which
    /// see one line at a time): the previous record is forgotten, capacity is kept.
    pub(crate) fn reparse_line(&mut self, line: &[u8]) -> Result<Record<'_>, RecordsError> {
        self.chunks.truncate(1);
        if self.chunks.is_empty() {
            self.chunks.push(Chunk::default());
        }
        let chunk = &mut self.chunks[0];
        let mut text = std::mem::take(&mut chunk.text).into_bytes();
        text.clear();
        text.extend_from_slice(line);
        chunk.parse("log", text)?;
        self.len = chunk.rows.len();
        let chunk = &self.chunks[0];
        match chunk.rows.first() {
            Some(row) => Ok(Record { chunk, row }),
            None => Err(RecordsError::NotObject {
                stream: "log".into(),
                index: 0,
            }),
        }
    }
}

impl Chunk {
    fn parse(&mut self, stream: &str, ndjson: Vec<u8>) -> Result<(), RecordsError> {
        self.rows.clear();
        self.fields.clear();
        self.keys.clear();
        if u32::try_from(ndjson.len()).is_err() {
            return Err(RecordsError::TooLarge {
                stream: stream.into(),
                len: ndjson.len(),
            });
        }
        self.text = match String::from_utf8(ndjson) {
            Ok(t) => t,
            Err(e) => {
                let bad = e.utf8_error().valid_up_to();
                let index = e.as_bytes()[..bad].iter().filter(|b| **b == b'\n').count();
                return Err(RecordsError::NotJson {
                    stream: stream.into(),
                    index,
                    message: "invalid UTF-8".into(),
                });
            }
        };
        let text = self.text.as_str();
        let base = text.as_ptr() as usize;
        let mut start = 0usize;
        for (index, line) in text.split('\n').enumerate() {
            let line_start = start;
            start += line.len() + 1;
            if line.bytes().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            // JSON's own whitespace only: anything else is the parser's to refuse.
            let trimmed = line.trim_matches([' ', '\t', '\r']);
            let first = self.fields.len();
            let mut sink = FieldSink {
                base,
                fields: &mut self.fields,
                keys: &mut self.keys,
            };
            if let Err(e) = parse_object(trimmed, &mut sink) {
                return Err(if trimmed.starts_with('{') || !is_json(trimmed) {
                    RecordsError::NotJson {
                        stream: stream.into(),
                        index,
                        message: e.to_string(),
                    }
                } else {
                    RecordsError::NotObject {
                        stream: stream.into(),
                        index,
                    }
                });
            }
            let at = line_start + (trimmed.as_ptr() as usize - line.as_ptr() as usize);
            if self.rows.is_empty() {
                // Size the tables once from the first record, so a batch's tables are not
                // grown by doubling (which copies them and holds up to twice their size).
                let fields = self.fields.len() - first;
                reserve_like(
                    &mut self.rows,
                    &mut self.fields,
                    text.len(),
                    trimmed.len(),
                    fields,
                );
            }
            // Fits: the whole text is under 4 GiB (checked above).
            self.rows.push(Row {
                line: (at as u32, (at + trimmed.len()) as u32),
                fields: (first as u32, self.fields.len() as u32),
            });
        }
        Ok(())
    }

    fn span(&self, (a, b): (u32, u32)) -> &str {
        self.text.get(a as usize..b as usize).unwrap_or_default()
    }
}

/// Room for the records of a text of `len` bytes whose first record takes `line` bytes
/// and has `fields` fields, with an eighth to spare for longer records.
fn reserve_like(rows: &mut Vec<Row>, all: &mut Vec<Field>, len: usize, line: usize, fields: usize) {
    let n = len / (line + 1) + 1;
    let n = n + n / 8;
    rows.reserve(n.saturating_sub(rows.len()));
    all.reserve((n * fields).saturating_sub(all.len()));
}

fn is_json(text: &str) -> bool {
    serde_json::from_str::<IgnoredAny>(text).is_ok()
}

/// Parses one line that must be an object, noting its fields in the sink.
fn parse_object(line: &str, sink: &mut FieldSink<'_>) -> Result<(), serde_json::Error> {
    if !line.starts_with('{') {
        return Err(de::Error::custom("not an object"));
    }
    let mut de = serde_json::Deserializer::from_str(line);
    de::Deserializer::deserialize_map(&mut de, ObjectVisitor(sink))?;
    de.end()?;
    // Values are skipped, not decoded, and skipping lets a `\u` escape of a lone
    // surrogate through; decoding the (rare) lines with such escapes refuses it.
    if line.as_bytes().contains(&b'\\') && line.contains("\\u") {
        serde_json::from_str::<Value>(line)?;
    }
    Ok(())
}

struct FieldSink<'s> {
    base: usize,
    fields: &'s mut Vec<Field>,
    keys: &'s mut Vec<String>,
}

impl FieldSink<'_> {
    fn offset(&self, s: &str) -> u32 {
        // Every text handed here lies inside the chunk's text, which is under 4 GiB.
        (s.as_ptr() as usize - self.base) as u32
    }
}

struct ObjectVisitor<'a, 's>(&'a mut FieldSink<'s>);

impl<'de> Visitor<'de> for ObjectVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value: &'de RawValue = map.next_value()?;
            let sink = &mut *self.0;
            let key = match key {
                Key::Borrowed(k) => {
                    let at = sink.offset(k);
                    KeyAt(at, at + k.len() as u32)
                }
                Key::Owned(k) => {
                    sink.keys.push(k);
                    KeyAt(KeyAt::DECODED, sink.keys.len() as u32 - 1)
                }
            };
            let v = value.get();
            let at = sink.offset(v);
            sink.fields.push(Field {
                key,
                value: (at, at + v.len() as u32),
            });
        }
        Ok(())
    }
}

enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Key<'de>, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key::Owned(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key::Owned(v))
    }
}

/// One record of a [`Records`], borrowed.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    chunk: &'a Chunk,
    row: &'a Row,
}

impl fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The fields' names only: values may be data that should not reach a log.
        let names: Vec<&str> = self.fields().map(|(k, _)| k).collect();
        f.debug_struct("Record").field("fields", &names).finish()
    }
}

impl<'a> Record<'a> {
    /// The record's JSON text as the plugin wrote it (one object, no line end).
    pub fn line(&self) -> &'a str {
        self.chunk.span(self.row.line)
    }

    /// The fields in the order the plugin wrote them. A key written twice comes twice;
    /// the last one counts, as in a JSON map.
    pub fn fields(&self) -> impl Iterator<Item = (&'a str, JsonRef<'a>)> + 'a {
        let chunk = self.chunk;
        let (a, b) = self.row.fields;
        chunk
            .fields
            .get(a as usize..b as usize)
            .unwrap_or_default()
            .iter()
            .map(move |f| {
                let key = match f.key {
                    KeyAt(KeyAt::DECODED, i) => {
                        chunk.keys.get(i as usize).map_or("", String::as_str)
                    }
                    KeyAt(a, b) => chunk.span((a, b)),
                };
                (key, JsonRef(chunk.span(f.value)))
            })
    }

    /// The value of field `name` (its last occurrence).
    pub fn get(&self, name: &str) -> Option<JsonRef<'a>> {
        self.fields()
            .filter(|(k, _)| *k == name)
            .last()
            .map(|(_, v)| v)
    }

    /// The record as a map.
    pub fn to_map(&self) -> Result<Map<String, Value>, RecordsError> {
        serde_json::from_str(self.line()).map_err(|e| RecordsError::NotJson {
            stream: "records".into(),
            index: 0,
            message: e.to_string(),
        })
    }
}

/// One JSON value of a record, as its text (already checked to be valid JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonRef<'a>(&'a str);

impl<'a> JsonRef<'a> {
    /// The value's JSON text.
    pub fn text(self) -> &'a str {
        self.0
    }

    /// Whether it is `null`.
    pub fn is_null(self) -> bool {
        self.0 == "null"
    }

    /// Whether it is a number.
    pub fn is_number(self) -> bool {
        self.0.starts_with(|c: char| c == '-' || c.is_ascii_digit())
    }

    /// Whether it is a string.
    pub fn is_string(self) -> bool {
        self.0.starts_with('"')
    }

    /// The boolean, when it is one.
    pub fn as_bool(self) -> Option<bool> {
        match self.0 {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }

    /// The integer, when it is one that fits `i64` (written without fraction or exponent,
    /// as `serde_json` reads it).
    pub fn as_i64(self) -> Option<i64> {
        if !self.is_number() || self.0.contains(['.', 'e', 'E']) || self.0 == "-0" {
            return None;
        }
        self.0.parse().ok()
    }

    /// The number as a float, when it is a number.
    pub fn as_f64(self) -> Option<f64> {
        if !self.is_number() {
            return None;
        }
        self.0.parse().ok()
    }

    /// The string, decoded (borrowed when it holds no escapes).
    pub fn as_str(self) -> Option<Cow<'a, str>> {
        let inner = self.0.strip_prefix('"')?.strip_suffix('"')?;
        if !inner.contains('\\') {
            return Some(Cow::Borrowed(inner));
        }
        serde_json::from_str::<String>(self.0).ok().map(Cow::Owned)
    }

    /// The value parsed.
    pub fn to_value(self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(self.0)
    }

    /// The JSON type, for messages (never the value): `null`, `boolean`, `integer`,
    /// `number`, `string`, `array`, `object`.
    pub fn type_name(self) -> &'static str {
        match self.0.as_bytes().first() {
            Some(b'n') => "null",
            Some(b't' | b'f') => "boolean",
            Some(b'"') => "string",
            Some(b'[') => "array",
            Some(b'{') => "object",
            _ if self.as_i64().is_some() || self.as_u64().is_some() => "integer",
            _ => "number",
        }
    }

    fn as_u64(self) -> Option<u64> {
        if self.0.contains(['.', 'e', 'E']) {
            return None;
        }
        self.0.parse().ok()
    }
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
