//! Typed state: what a stream checkpoints, and a read request's state as a Rust type.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ConnectorError, ReadRequest};

/// A read request's state as the type its connector checkpoints.
pub trait TypedState {
    /// The state of the last checkpoint as `T` (`None`: no state, a first read). A state
    /// of another shape is an error naming `T` — never read as "no state", which would
    /// silently start over.
    fn state<T: DeserializeOwned>(&self) -> Result<Option<T>, ConnectorError>;
}

impl TypedState for ReadRequest {
    fn state<T: DeserializeOwned>(&self) -> Result<Option<T>, ConnectorError> {
        match &self.state {
            None | Some(Value::Null) => Ok(None),
            Some(v) => T::deserialize(v).map(Some).map_err(|e| {
                ConnectorError::invalid_input(format!(
                    "the state of task '{}' is not a {}: {e}; it is {}",
                    self.task,
                    std::any::type_name::<T>(),
                    head(v)
                ))
            }),
        }
    }
}

fn head(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// Where an interrupted read goes on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resume<T> {
    /// After this many records of the listing ([`super::Paging::Offset`]).
    Offset(u64),
    /// With this token ([`super::Paging::Token`]).
    Token(T),
    /// After this key: every record at or below it was handed over (a
    /// [`super::KeyListing`] from a key's watermark).
    Key(String),
}

/// What a stream of the stream API checkpoints after every page.
///
/// While a read is under way, `resume` says where it goes on and `cursor` is the value it
/// started from (its filter); `seen` is the highest cursor value handed over so far. When a
/// read ends, `resume` and `seen` are gone and `cursor` is the high-water mark: where the
/// next incremental read starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "T: Deserialize<'de>"))]
pub struct StreamState<T> {
    /// Where an incremental read starts (the read under way started from it too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Value>,
    /// The highest cursor value of the read under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<Value>,
    /// Where the read under way goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resume<T>>,
}

impl<T> Default for StreamState<T> {
    fn default() -> Self {
        Self {
            cursor: None,
            seen: None,
            resume: None,
        }
    }
}
