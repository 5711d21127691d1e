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

    /// Adds one record that is already JSON text (one object, no newline), as a source
    /// answered it: no value is built. The host still checks that it is an object.
    pub fn push_line(&mut self, json: &[u8]) -> Result<(), ConnectorError> {
        if json.contains(&b'\n') {
            return Err(ConnectorError::connector(
                "a record's JSON text holds a line break",
            ));
        }
        self.buf.extend_from_slice(json);
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
        // The next batch is about as long as this one: room for it at once, not grown
        // (and copied) in steps.
        let capacity = self.buf.len().max(64 * 1024);
        let batch = std::mem::replace(&mut self.buf, Vec::with_capacity(capacity));
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

    /// Adds one record written field by field by `f` straight into the batch as JSON
    /// text: no map, no value tree, no allocation per field. When `f` or a value fails,
    /// nothing of the record stays in the batch. Flushes when the batch is full.
    pub fn write_row(
        &mut self,
        f: impl FnOnce(&mut RowWriter<'_>) -> Result<(), ConnectorError>,
    ) -> Result<(), ConnectorError> {
        let start = self.buf.len();
        let mut row = RowWriter::open(&mut self.buf);
        let result = f(&mut row).and_then(|()| row.close());
        if let Err(e) = result {
            self.buf.truncate(start);
            return Err(e);
        }
        self.pending += 1;
        if self.pending as usize >= self.batch_size {
            self.flush()?;
        }
        Ok(())
    }

    /// Records handed to the host so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}

/// One record being written into a batch ([`RecordWriter::write_row`]).
///
/// Field methods chain and do not fail one by one: the first error (a value serde_json
/// refuses) is kept and ends the record when it is closed. A key written twice is written
/// twice; the host reads the last one.
#[derive(Debug)]
pub struct RowWriter<'b> {
    buf: &'b mut Vec<u8>,
    fields: usize,
    error: Option<String>,
}

impl<'b> RowWriter<'b> {
    /// A record opened in `buf` (a decoder's own buffer; [`RecordWriter::write_row`] opens
    /// one in its batch). End it with [`RowWriter::close`].
    pub fn open(buf: &'b mut Vec<u8>) -> Self {
        buf.push(b'{');
        RowWriter {
            buf,
            fields: 0,
            error: None,
        }
    }

    /// Ends the object and the line, or returns the first error.
    pub fn close(&mut self) -> Result<(), ConnectorError> {
        if let Some(e) = self.error.take() {
            return Err(ConnectorError::connector(format!("encoding a record: {e}")));
        }
        self.buf.extend_from_slice(b"}\n");
        Ok(())
    }

    fn key(&mut self, key: &str) {
        if self.fields > 0 {
            self.buf.push(b',');
        }
        self.fields += 1;
        self.json(key);
        self.buf.push(b':');
    }

    /// A key written as JSON before ([`EncodedKey`]): rows that repeat their names escape
    /// them once.
    pub fn encoded_key(&mut self, key: &EncodedKey) -> &mut Self {
        if self.fields > 0 {
            self.buf.push(b',');
        }
        self.fields += 1;
        self.buf.extend_from_slice(&key.0);
        self
    }

    /// A string value that needs no escaping ([`Plain`]), after its key.
    pub fn plain_value(&mut self, value: Plain<'_>) {
        self.buf.push(b'"');
        self.buf.extend_from_slice(value.0.as_bytes());
        self.buf.push(b'"');
    }

    /// Any value, after its key.
    pub fn value_after_key<T: Serialize + ?Sized>(&mut self, value: &T) {
        self.json(value);
    }

    /// `null`, after its key.
    pub fn null_after_key(&mut self) {
        self.buf.extend_from_slice(b"null");
    }

    fn json<T: Serialize + ?Sized>(&mut self, value: &T) {
        if let Err(e) = serde_json::to_writer(&mut *self.buf, value) {
            self.error.get_or_insert_with(|| e.to_string());
        }
    }

    /// A text field.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        self.json(value);
        self
    }

    /// An integer field.
    pub fn i64(&mut self, key: &str, value: i64) -> &mut Self {
        self.key(key);
        self.json(&value);
        self
    }

    /// A number field (written as serde_json writes an `f64`: `null` when not finite).
    pub fn f64(&mut self, key: &str, value: f64) -> &mut Self {
        self.key(key);
        self.json(&value);
        self
    }

    /// A boolean field.
    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key);
        self.json(&value);
        self
    }

    /// A `null` field.
    pub fn null(&mut self, key: &str) -> &mut Self {
        self.key(key);
        self.buf.extend_from_slice(b"null");
        self
    }

    /// A field of any serialisable value (nested objects, arrays, `serde_json::Value`).
    pub fn value<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> &mut Self {
        self.key(key);
        self.json(value);
        self
    }
}

/// A field name as JSON with its colon (`"name":`), escaped once for every row that has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedKey(Box<[u8]>);

impl EncodedKey {
    pub fn new(name: &str) -> Self {
        let mut json = Vec::with_capacity(name.len() + 3);
        // Writing a `str` into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut json, name);
        json.push(b':');
        Self(json.into_boxed_slice())
    }
}

/// Text that JSON takes between quotes as it is: no `"`, `\` or control character. What
/// serde_json hands over borrowed from a body it parsed is such text (it had no escapes,
/// and serde_json refuses raw control characters in strings), and so is any part of it.
/// Only for text of that origin: text with a quote written as `Plain` would change the
/// record's JSON (debug builds assert against it, so a decoder's tests catch the misuse).
#[derive(Debug, Clone, Copy)]
pub struct Plain<'a>(&'a str);

impl<'a> Plain<'a> {
    /// `text`, which the caller knows needs no escaping (checked in debug builds).
    pub fn trusted(text: &'a str) -> Self {
        debug_assert!(
            !text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'),
            "{text:?} needs escaping"
        );
        Self(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn line(f: impl FnOnce(&mut RowWriter<'_>)) -> Result<String, ConnectorError> {
        let mut buf = Vec::new();
        let mut row = RowWriter::open(&mut buf);
        f(&mut row);
        row.close()?;
        Ok(String::from_utf8(buf).unwrap())
    }

    #[test]
    fn a_row_is_one_json_object_per_line_with_its_types() {
        let text = line(|r| {
            r.str("s", "a\"b\\c\n\u{1}é")
                .i64("i", i64::MIN)
                .f64("f", 5.0)
                .f64("nan", f64::NAN)
                .bool("b", true)
                .null("n")
                .value("o", &json!({"x": [1, null]}))
                .str("k\"ey", "");
        })
        .unwrap();
        assert!(
            text.ends_with("}\n") && text.matches('\n').count() == 1,
            "{text}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            json!({"s": "a\"b\\c\n\u{1}é", "i": i64::MIN, "f": 5.0, "nan": null, "b": true,
                   "n": null, "o": {"x": [1, null]}, "k\"ey": ""})
        );
        assert!(text.contains("\"f\":5.0"), "a float stays a float: {text}");
        assert_eq!(line(|_| {}).unwrap(), "{}\n");
    }

    #[test]
    fn encoded_keys_and_plain_values_write_what_the_escaping_writer_writes() {
        let fields = [("a", "x y"), ("k\"ey\n", "é ☃ ~\u{7f}"), ("", "")];
        let escaping = line(|r| {
            for (k, v) in fields {
                r.str(k, v);
            }
        })
        .unwrap();
        let encoded = line(|r| {
            for (k, v) in fields {
                r.encoded_key(&EncodedKey::new(k));
                if v.contains('\u{7f}') {
                    r.value_after_key(v);
                } else {
                    r.plain_value(Plain::trusted(v));
                }
            }
            r.encoded_key(&EncodedKey::new("n")).null_after_key();
        })
        .unwrap();
        assert_eq!(encoded, escaping.replace("}\n", ",\"n\":null}\n"));
        assert_eq!(
            serde_json::from_str::<Value>(&encoded).unwrap(),
            json!({"a": "x y", "k\"ey\n": "é ☃ ~\u{7f}", "": "", "n": null})
        );
    }

    #[test]
    fn a_value_serde_json_refuses_fails_the_row() {
        let mut bad = std::collections::BTreeMap::new();
        bad.insert(vec![1u8], 1);
        let e = line(|r| {
            r.str("a", "x").value("m", &bad);
        })
        .unwrap_err();
        assert!(e.message().contains("encoding a record"), "{e:?}");
    }
}
