//! The common v2 answer — `results` of record lists, no error fields — read straight into
//! rows that borrow from the body ([`super::rows`]), without a `serde_json::Value` tree
//! and without an allocation per key or value.
//!
//! Anything else (an error field in a result, a record that is not an object, a body of
//! another shape, a body that is not UTF-8) is not decided here: [`decode`] returns `None`
//! and the caller reads the answer the general way, which names what is wrong. Both ways
//! give the same rows: fields in key order, a key written twice counting with its last
//! value.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::rows::{Builder, Decoded, Order};

/// The rows of a v2 answer of the common shape, or `None` when it is not one.
pub(super) fn decode(body: &[u8]) -> Option<Decoded<'_>> {
    // One check of the whole body: the strings are then taken as they are, not checked
    // one by one.
    let text = std::str::from_utf8(body).ok()?;
    // A struct visitor would also take an array: only an object is an MI answer.
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let mut rows = Builder::new(Order::ByName);
    de.deserialize_map(AnswerVisitor(&mut rows))
        .ok()?
        .then_some(())?;
    de.end().ok()?;
    Some(rows.finish())
}

/// The rows of a v2 answer of the common shape as owned pairs (the [`super::MiAnswer`]
/// form), or `None` when it is not one.
pub(super) fn rows(body: &[u8]) -> Option<Vec<Vec<(String, String)>>> {
    let decoded = decode(body)?;
    Some(
        decoded
            .iter()
            .map(|row| {
                row.fields()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .collect(),
    )
}

/// A key or a text, borrowed from the body unless it had escapes.
struct Text;

impl<'de> DeserializeSeed<'de> for Text {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Text {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
}

/// The top-level object: its `results` (once), every other key ignored; `false` when it
/// is not of the common shape.
struct AnswerVisitor<'b, 'de>(&'b mut Builder<'de>);

impl<'de> Visitor<'de> for AnswerVisitor<'_, 'de> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an MI v2 answer")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut results = None;
        while let Some(key) = map.next_key_seed(Text)? {
            if key == "results" {
                if results.is_some() {
                    return Ok(false);
                }
                results = Some(map.next_value_seed(ResultsSeed(&mut *self.0))?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(results == Some(true))
    }
}

/// `results`: a non-empty array of result objects, each of the common shape.
struct ResultsSeed<'b, 'de>(&'b mut Builder<'de>);

impl<'de> DeserializeSeed<'de> for ResultsSeed<'_, 'de> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ResultsSeed<'_, 'de> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of results")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut any = false;
        while let Some(common) = seq.next_element_seed(ResultSeed(&mut *self.0))? {
            any = true;
            if !common {
                return Ok(false);
            }
        }
        Ok(any)
    }
}

/// One result object; `true` when it is of the common shape (its rows added).
struct ResultSeed<'b, 'de>(&'b mut Builder<'de>);

impl<'de> DeserializeSeed<'de> for ResultSeed<'_, 'de> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ResultSeed<'_, 'de> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a result object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut records = false;
        // Answers carry the error fields empty: kept, and judged as the general reader does.
        let mut errors = serde_json::Map::new();
        while let Some(key) = map.next_key_seed(Text)? {
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
struct RecordsSeed<'b, 'de>(&'b mut Builder<'de>);

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.reserve(seq.size_hint().unwrap_or(0));
        while seq.next_element_seed(RowSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

/// One record object, its fields added to the builder.
struct RowSeed<'b, 'de>(&'b mut Builder<'de>);

impl<'de> DeserializeSeed<'de> for RowSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(Text)? {
            let text = map.next_value_seed(TextSeed)?;
            self.0.field(key, text);
        }
        self.0.end_row();
        Ok(())
    }
}

/// A field's value as text: a string without its trailing blanks, `null` as empty, any
/// other value as its JSON text.
struct TextSeed;

impl<'de> DeserializeSeed<'de> for TextSeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TextSeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v.trim_end()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.trim_end().to_string()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(""))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Cow::Owned(Value::from(v).to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Cow::Owned(Value::from(v).to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Cow::Owned(Value::from(v).to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Cow::Owned(Value::from(v).to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let v: Value = serde::Deserialize::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Cow::Owned(v.to_string()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let v: Value = serde::Deserialize::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Cow::Owned(v.to_string()))
    }
}
