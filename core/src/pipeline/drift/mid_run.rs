//! A field that arrives mid-run, outside the schema the read started with: [`MidRun`]
//! meets it under the task's policy.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::{ChangeAction, ChangeKind, SchemaChange, SchemaPolicy};
use crate::destination::{Column, ColumnType, Destination, DestinationError, StreamSpec};
use crate::read::{JsonRef, Records};

/// At most this many fields one commit unit may add or drop mid-run: past it the unit
/// fails (a connector emitting ever new names is broken, not evolving).
const MAX_NEW_FIELDS: usize = 64;

/// A task's destination that meets a field its stream's schema lacks mid-run (a column
/// that appeared at the source after the schema was read, or one a source sends without
/// declaring it): under `evolve` the field's column is added (typed by the unit's values)
/// and the unit committed again; under `freeze` the field is dropped from the records; under
/// `fail` the unit fails as before. Every such change is reported as at the start. Only the
/// typed [`DestinationError::UnknownField`] is acted on, never a message.
#[derive(Debug)]
pub struct MidRun {
    inner: Arc<dyn Destination>,
    policy: SchemaPolicy,
    pipeline: String,
    spec: Mutex<StreamSpec>,
    dropped: Mutex<Vec<String>>,
    changes: Mutex<Vec<SchemaChange>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The column type of a value.
pub(super) fn value_type(v: JsonRef<'_>) -> ColumnType {
    if v.is_string() {
        ColumnType::Text
    } else if v.as_i64().is_some() {
        ColumnType::Integer
    } else if v.is_number() {
        ColumnType::Number
    } else if v.as_bool().is_some() {
        ColumnType::Boolean
    } else {
        ColumnType::Json
    }
}

/// `records` without the fields `dropped`, each kept field's text as it came.
pub(super) fn without(
    stream: &str,
    records: &Records,
    dropped: &[String],
) -> Result<Records, String> {
    let mut out = Vec::with_capacity(records.len() * 128);
    for r in records.iter() {
        out.push(b'{');
        let mut first = true;
        for (name, value) in r.fields() {
            if dropped.iter().any(|d| d == name) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(
                serde_json::to_string(name)
                    .map_err(|e| e.to_string())?
                    .as_bytes(),
            );
            out.push(b':');
            out.extend_from_slice(value.text().as_bytes());
        }
        out.extend_from_slice(b"}\n");
    }
    Records::parse(stream, out).map_err(|e| e.to_string())
}

impl MidRun {
    /// `inner` for the stream `spec` (as prepared) under `policy`.
    pub fn new(
        inner: Arc<dyn Destination>,
        policy: SchemaPolicy,
        pipeline: &str,
        spec: StreamSpec,
    ) -> Self {
        MidRun {
            inner,
            policy,
            pipeline: pipeline.to_string(),
            spec: Mutex::new(spec),
            dropped: Mutex::new(Vec::new()),
            changes: Mutex::new(Vec::new()),
        }
    }

    /// The changes met mid-run so far.
    pub fn changes(&self) -> Vec<SchemaChange> {
        locked(&self.changes).clone()
    }

    /// The stream's spec as it now is (with the columns added mid-run).
    pub fn spec(&self) -> StreamSpec {
        locked(&self.spec).clone()
    }

    fn report(&self, c: SchemaChange) {
        tracing::warn!(target: "ionport::schema", pipeline = %self.pipeline, stream = %c.stream, column = %c.column, change = c.change.as_str(), action = c.action.as_str(), "schema change: {c} (mid-run)");
        locked(&self.changes).push(c);
    }

    /// What to do about `field` in `records`: the next spec, or the records without it.
    fn meet(
        &self,
        spec: &mut StreamSpec,
        records: &Records,
        field: &str,
    ) -> Result<Option<Records>, DestinationError> {
        let ty = records
            .iter()
            .filter_map(|r| r.get(field).filter(|v| !v.is_null()))
            .map(value_type)
            .reduce(ColumnType::wider)
            .unwrap_or(ColumnType::Text);
        let change = |action| SchemaChange {
            stream: spec.name.clone(),
            column: field.to_string(),
            change: ChangeKind::Added,
            old_type: None,
            new_type: Some(ty.schema_name().to_string()),
            action,
        };
        match self.policy {
            SchemaPolicy::Evolve => {
                if let Some(props) = spec
                    .record_schema
                    .get_mut("properties")
                    .and_then(Value::as_object_mut)
                {
                    let prop = match ty {
                        ColumnType::Json => json!({}),
                        t => json!({ "type": [t.schema_name(), "null"] }),
                    };
                    props.insert(field.to_string(), prop);
                }
                self.inner.prepare(spec)?;
                *locked(&self.spec) = spec.clone();
                self.report(change(ChangeAction::AddedColumn));
                Ok(None)
            }
            SchemaPolicy::Freeze => {
                let dropped = {
                    let mut d = locked(&self.dropped);
                    d.push(field.to_string());
                    d.clone()
                };
                self.report(change(ChangeAction::Dropped));
                without(&spec.name, records, &dropped)
                    .map(Some)
                    .map_err(|message| DestinationError::Record {
                        destination: self.inner.describe(),
                        stream: spec.name.clone(),
                        message,
                    })
            }
            SchemaPolicy::Fail => Ok(None),
        }
    }
}

impl Destination for MidRun {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn prepare(&self, _stream: &StreamSpec) -> Result<(), DestinationError> {
        self.inner.prepare(&locked(&self.spec))
    }

    fn commit(
        &self,
        _stream: &StreamSpec,
        records: &Records,
        state: &Value,
    ) -> Result<(), DestinationError> {
        let mut spec = locked(&self.spec).clone();
        let dropped = locked(&self.dropped).clone();
        let mut owned = if dropped.is_empty() {
            None
        } else {
            Some(without(&spec.name, records, &dropped).map_err(|message| {
                DestinationError::Record {
                    destination: self.inner.describe(),
                    stream: spec.name.clone(),
                    message,
                }
            })?)
        };
        for _ in 0..MAX_NEW_FIELDS {
            let unit = owned.as_ref().unwrap_or(records);
            match self.inner.commit(&spec, unit, state) {
                Err(DestinationError::UnknownField { field, .. })
                    if self.policy != SchemaPolicy::Fail =>
                {
                    if let Some(next) = self.meet(&mut spec, unit, &field)? {
                        owned = Some(next);
                    }
                }
                Err(e @ DestinationError::UnknownField { .. }) => {
                    if let DestinationError::UnknownField {
                        field, value_type, ..
                    } = &e
                    {
                        self.report(SchemaChange {
                            stream: spec.name.clone(),
                            column: field.clone(),
                            change: ChangeKind::Added,
                            old_type: None,
                            new_type: Some(value_type.to_string()),
                            action: ChangeAction::Stopped,
                        });
                    }
                    return Err(e);
                }
                other => return other,
            }
        }
        self.inner
            .commit(&spec, owned.as_ref().unwrap_or(records), state)
    }

    fn load_state(&self, stream: &str) -> Result<Option<Value>, DestinationError> {
        self.inner.load_state(stream)
    }

    fn states(&self) -> Result<Vec<(String, Value)>, DestinationError> {
        self.inner.states()
    }

    fn reset_state(&self, stream: Option<&str>) -> Result<(), DestinationError> {
        self.inner.reset_state(stream)
    }

    fn finish(&self, _stream: &StreamSpec) -> Result<(), DestinationError> {
        self.inner.finish(&locked(&self.spec))
    }

    fn columns(&self, stream: &StreamSpec) -> Result<Option<Vec<Column>>, DestinationError> {
        self.inner.columns(stream)
    }

    fn mark_deleted(
        &self,
        _stream: &StreamSpec,
        live_keys: &std::collections::HashSet<String>,
        at: &str,
    ) -> Result<u64, DestinationError> {
        self.inner.mark_deleted(&locked(&self.spec), live_keys, at)
    }
}
