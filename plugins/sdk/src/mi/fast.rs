//! The common v2 answer — `results` of record lists, no error fields — read straight into
//! rows, without the `serde_json::Value` tree that costs an allocation per key and value.
//!
//! Anything else (an error field in a result, a record that is not an object, a body of
//! another shape) is not decided here: [`rows`] returns `None` and the caller reads the
//! answer the general way, which names what is wrong. Both ways give the same rows: fields
//! in key order, a key written twice counting with its last value.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// The rows of a v2 answer of the common shape, or `None` when it is not one.
pub(super) fn rows(body: &[u8]) -> Option<Vec<Vec<(String, String)>>> {
    // A struct visitor would also take an array: only an object is an MI answer.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let rows = de.deserialize_map(AnswerVisitor).ok()??;
    de.end().ok()?;
    Some(rows)
}

/// The top-level object: its `results` (once), every other key ignored.
struct AnswerVisitor;

impl<'de> Visitor<'de> for AnswerVisitor {
    type Value = Option<Vec<Vec<(String, String)>>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an MI v2 answer")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut rows = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "results" {
                if rows.is_some() {
                    return Ok(None);
                }
                rows = Some(map.next_value_seed(ResultsSeed)?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(rows.flatten())
    }
}

/// `results`: a non-empty array of result objects, each of the common shape.
struct ResultsSeed;

impl<'de> DeserializeSeed<'de> for ResultsSeed {
    type Value = Option<Vec<Vec<(String, String)>>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ResultsSeed {
    type Value = Option<Vec<Vec<(String, String)>>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of results")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut rows = Vec::new();
        let mut any = false;
        while let Some(result) = seq.next_element_seed(ResultSeed(&mut rows))? {
            any = true;
            if !result {
                return Ok(None);
            }
        }
        Ok(any.then_some(rows))
    }
}

/// One result object; `true` when it is of the common shape (its rows appended).
struct ResultSeed<'r>(&'r mut Vec<Vec<(String, String)>>);

impl<'de> DeserializeSeed<'de> for ResultSeed<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ResultSeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a result object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut records = false;
        // Answers carry the error fields empty: kept, and judged as the general reader does.
        let mut errors = serde_json::Map::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "records" if !records => {
                    records = true;
                    map.next_value_seed(RecordsSeed(&mut *self.0))?;
                }
                // `records` twice: the general reader decides.
                "records" => return Ok(false),
                "errorMessage" | "errorCode" | "errorField" | "errorType" | "notProcessed" => {
                    errors.insert(key.into_owned(), map.next_value::<Value>()?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(records && super::v2_result_error(&Value::Object(errors)).is_none())
    }
}

/// `records`: an array of record objects.
struct RecordsSeed<'r>(&'r mut Vec<Vec<(String, String)>>);

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(row) = seq.next_element_seed(RowSeed)? {
            self.0.push(row);
        }
        Ok(())
    }
}

/// One record object as (name, text) pairs, text as the general reader makes it.
struct RowSeed;

impl<'de> DeserializeSeed<'de> for RowSeed {
    type Value = Vec<(String, String)>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed {
    type Value = Vec<(String, String)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut row: Vec<(String, String)> = Vec::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(key) = map.next_key::<String>()? {
            let text = map.next_value_seed(TextSeed)?;
            row.push((key, text));
        }
        // As a map reads it: fields in key order, the last of a key counting.
        if !row.windows(2).all(|w| w[0].0 < w[1].0) {
            row.sort_by(|a, b| a.0.cmp(&b.0));
            let mut deduped: Vec<(String, String)> = Vec::with_capacity(row.len());
            for field in row {
                match deduped.last_mut() {
                    Some(last) if last.0 == field.0 => *last = field,
                    _ => deduped.push(field),
                }
            }
            row = deduped;
        }
        Ok(row)
    }
}

/// A field's value as text: a string without its trailing blanks, `null` as empty, any
/// other value as its JSON text.
struct TextSeed;

impl<'de> DeserializeSeed<'de> for TextSeed {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TextSeed {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.trim_end().to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Ok(String::new())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(Value::from(v).to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(Value::from(v).to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(Value::from(v).to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(Value::from(v).to_string())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<String, A::Error> {
        let v: Value = serde::Deserialize::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(v.to_string())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<String, A::Error> {
        let v: Value = serde::Deserialize::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(v.to_string())
    }
}
