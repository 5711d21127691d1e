//! One keyed stream listed after a key, read from several partitions of a source
//! (accounts, companies, regions — a request header or parameter apart) into one stream:
//! the partitions one after the other, each exactly as a read of its own
//! ([`super::read_keyed`]), each with its own state, so one partition's cursor never moves
//! another's (singer-sdk's `partitions`).
//!
//! The state keeps each partition's [`AfterKeyState`] under a field the connector names:
//! - complete: `{"<field>": {"100": {"cursor": "…"}, "200": {"cursor": "…"}}}`;
//! - during a read: also `mode` and `done` (the partitions this read finished, in order),
//!   and the partition being read has its in-read state. A read of the same mode that
//!   restarts skips the partitions done and goes on in the one it stopped in.
//!
//! A state of another shape (a single stream's) is refused, never read as "no state".

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::after_key::{AfterKeyState, Part, read_part, writer};
use super::keyed::{KeyListing, KeyStart, KeyedStream};
use crate::{ConnectorError, Host, ReadRequest, ReadSummary, SyncMode};

/// One partition: its id (in the state), its settings (what its requests are built from)
/// and how messages name it.
#[derive(Debug, Clone)]
pub struct Partition<P, S> {
    /// The partition's id, a key of the state's map.
    pub id: P,
    /// The settings its requests are built from.
    pub settings: S,
    /// How messages name it (`company 100`).
    pub label: String,
}

/// The state of a stream read from several partitions ([`read_partitioned`]): each
/// partition's [`AfterKeyState`] by id and, while a read is under way, its mode and the
/// partitions it has finished.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionedState<P: Ord> {
    /// Each partition's state, by id.
    pub parts: BTreeMap<P, AfterKeyState>,
    /// While a read runs: its sync mode.
    pub mode: Option<SyncMode>,
    /// While a read runs: the partitions it has finished, in order.
    pub done: Vec<P>,
}

impl<P: Ord> Default for PartitionedState<P> {
    fn default() -> Self {
        Self {
            parts: BTreeMap::new(),
            mode: None,
            done: Vec::new(),
        }
    }
}

/// The fields beside the partitions' map.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "P: Deserialize<'de>"))]
struct Around<P> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mode: Option<SyncMode>,
    #[serde(default = "Vec::new", skip_serializing_if = "Vec::is_empty")]
    done: Vec<P>,
}

impl<P: Ord + Clone + Serialize + DeserializeOwned> PartitionedState<P> {
    /// The state as JSON, the partitions' map under `field`.
    pub fn to_json(&self, field: &str) -> Result<Value, ConnectorError> {
        let encode = |e: serde_json::Error| ConnectorError::connector(format!("a state: {e}"));
        let mut v = serde_json::to_value(Around {
            mode: self.mode,
            done: self.done.clone(),
        })
        .map_err(encode)?;
        let parts = serde_json::to_value(&self.parts).map_err(encode)?;
        if let Value::Object(o) = &mut v {
            o.insert(field.into(), parts);
        }
        Ok(v)
    }

    /// A task's state read as a partitioned one whose map is under `field` (`None`: none).
    pub fn from_json(
        task: &str,
        field: &str,
        state: Option<&Value>,
    ) -> Result<Option<Self>, ConnectorError> {
        let Some(Value::Object(o)) = state else {
            return match state {
                None | Some(Value::Null) => Ok(None),
                Some(other) => Err(refused(task, field, other, "it is not an object")),
            };
        };
        let mut rest = o.clone();
        let parts = rest
            .remove(field)
            .unwrap_or(Value::Object(Default::default()));
        let parts: BTreeMap<P, AfterKeyState> = serde_json::from_value(parts)
            .map_err(|e| refused(task, field, &Value::Object(o.clone()), &e.to_string()))?;
        let around: Around<P> = serde_json::from_value(Value::Object(rest))
            .map_err(|e| refused(task, field, &Value::Object(o.clone()), &e.to_string()))?;
        Ok(Some(Self {
            parts,
            mode: around.mode,
            done: around.done,
        }))
    }
}

fn refused(task: &str, field: &str, state: &Value, why: &str) -> ConnectorError {
    let mut text = state.to_string();
    if let Some((at, _)) = text.char_indices().nth(200) {
        text.truncate(at);
        text.push('…');
    }
    ConnectorError::invalid_input(format!(
        "the state of task '{task}' is not a state of several {field} ({why}); it is {text}. \
         A state saved with other settings cannot be resumed: reset the task's state to \
         read it again from the start"
    ))
}

/// Reads `stream` (listed after a key) from every partition of `parts`, in their order,
/// into one stream; the state's map of partitions is under `field` (`companies`), which
/// messages also use.
pub fn read_partitioned<S, P, K>(
    stream: &K,
    host: &Host,
    request: &ReadRequest,
    field: &str,
    parts: &[Partition<P, S>],
) -> Result<ReadSummary, ConnectorError>
where
    P: Ord + Clone + Serialize + DeserializeOwned,
    K: KeyedStream<S> + ?Sized,
{
    let name = stream.spec().name;
    // A partition's state is a read's after a key; a listing from a key keeps another.
    if K::Listing::START != KeyStart::AfterKey {
        return Err(ConnectorError::connector(format!(
            "{name}: only a listing after a key is read from several {field}"
        )));
    }
    let prior: PartitionedState<P> =
        PartitionedState::from_json(&request.task, field, request.state.as_ref())?
            .unwrap_or_default();
    // A read of the same kind that stopped half-way: the partitions it finished stay done.
    let resuming = prior.mode == Some(request.sync_mode);
    let mut state = PartitionedState {
        parts: prior.parts,
        mode: Some(request.sync_mode),
        done: if resuming { prior.done } else { Vec::new() },
    };
    let mut out = writer(stream, host, request, &name);
    let mut pages = 0;
    for (i, part) in parts.iter().enumerate() {
        host.check_cancelled()?;
        if state.done.contains(&part.id) {
            host.info(&format!(
                "{} ({}): read before the interruption, kept",
                name, part.label
            ));
            continue;
        }
        let prior = state.parts.get(&part.id).cloned().unwrap_or_default();
        let before = out.written();
        let (done, n) = {
            let around = &state;
            let checkpoint = |s: &AfterKeyState| {
                let mut all = around.clone();
                all.parts.insert(part.id.clone(), s.clone());
                all.to_json(field)
            };
            let this = Part {
                name: &name,
                label: Some(part.label.clone()),
                checkpoint: &checkpoint,
            };
            read_part(
                stream,
                host,
                &part.settings,
                request,
                prior,
                &mut out,
                &this,
            )?
        };
        pages += n;
        state.parts.insert(part.id.clone(), done);
        state.done.push(part.id.clone());
        // The last partition's end is the read's: the final state below says it.
        if i + 1 < parts.len() {
            out.commit(&state.to_json(field)?)?;
        }
        host.info(&format!(
            "{} ({}): {} records in {n} pages",
            name,
            part.label,
            out.written() - before
        ));
    }
    let end = PartitionedState {
        mode: None,
        done: Vec::new(),
        ..state
    }
    .to_json(field)?;
    out.commit(&end)?;
    let records = out.written();
    host.info(&format!(
        "{}: {records} records in {pages} pages from {} {field}",
        name,
        parts.len()
    ));
    Ok(ReadSummary {
        records,
        pages,
        state: Some(end),
    })
}
