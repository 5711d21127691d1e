//! Schema drift: what changed between a stream's schema at the source and the table the
//! destination holds, and what a pipeline's `schema_changes` policy does about it.
//!
//! When a task starts, the runner compares the stream's columns (after column selection)
//! with the destination's ([`crate::destination::Destination::columns`]) and [`apply`]
//! decides the read to make:
//!
//! - `evolve` (the default): new columns are added; a changed type becomes the wider of
//!   the two by [`ColumnType::wider`] (a narrowing is never applied: the destination keeps
//!   its wider column, which holds the new values too);
//! - `freeze`: the destination's columns stay as they are: new fields are not even asked of
//!   the source (the read's column selection is narrowed to the existing columns); a type
//!   whose values the existing column would not hold fails the task;
//! - `fail`: a new column or a wider type stops the task before it reads, naming each.
//!
//! A column gone at the source is never dropped from the destination: it is reported and
//! kept (its new rows are null), under every policy; so is a type the destination's
//! column already holds (it is never narrowed). Every change is reported, whatever the
//! policy: one WARN line each under the `ionport::schema` target, and in the task's
//! outcome. A field that arrives mid-run, outside the schema the read started with, is met
//! by [`MidRun`] under the same policy.

use ionport_plugin_abi::wire::{ReadRequest, TaskSpec};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::destination::{Column, ColumnType, Destination, StreamSpec, stream_columns};

/// What a pipeline (or one task) does when a stream's schema changed at the source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SchemaPolicy {
    /// Add new columns to the destination and widen changed types (the default).
    #[default]
    Evolve,
    /// Keep the destination's columns: new fields are not read; a type change whose values
    /// the existing column would not hold fails the task.
    Freeze,
    /// Stop the task before it reads on a new column or a wider type (a column gone at the
    /// source, or a type the destination's column already holds, is only reported).
    Fail,
}

impl SchemaPolicy {
    /// As the pipeline file writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaPolicy::Evolve => "evolve",
            SchemaPolicy::Freeze => "freeze",
            SchemaPolicy::Fail => "fail",
        }
    }
}

/// What changed in one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// The source has a column the destination does not.
    Added,
    /// The column's type differs.
    TypeChanged,
    /// The destination has a column the source no longer offers.
    Removed,
}

impl ChangeKind {
    /// As serialized: `added`, `type_changed`, `removed`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::TypeChanged => "type_changed",
            ChangeKind::Removed => "removed",
        }
    }
}

/// What was done about one change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeAction {
    /// The column was added to the destination (`evolve`).
    AddedColumn,
    /// The destination's column was widened to the new type (`evolve`).
    Widened,
    /// The destination's column was kept as it is: it already holds the new values (a
    /// narrowing, or a column gone at the source).
    Kept,
    /// The field is not read (`freeze`).
    Dropped,
    /// The task stopped before it read (`fail`, or `freeze` with values that would not
    /// fit).
    Stopped,
}

impl ChangeAction {
    /// As serialized: `added_column`, `widened`, `kept`, `dropped`, `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeAction::AddedColumn => "added_column",
            ChangeAction::Widened => "widened",
            ChangeAction::Kept => "kept",
            ChangeAction::Dropped => "dropped",
            ChangeAction::Stopped => "stopped",
        }
    }
}

/// One change of a stream's schema and what was done about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SchemaChange {
    /// The stream (task) name.
    pub stream: String,
    /// The column (field) name.
    pub column: String,
    /// What changed.
    pub change: ChangeKind,
    /// The destination's type before the run (`None` for a new column).
    pub old_type: Option<String>,
    /// The source's type now (`None` for a column gone at the source).
    pub new_type: Option<String>,
    /// What was done.
    pub action: ChangeAction,
}

impl std::fmt::Display for SchemaChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let old = self.old_type.as_deref().unwrap_or("?");
        let new = self.new_type.as_deref().unwrap_or("?");
        let what = match self.change {
            ChangeKind::Added => format!("column `{}` added at the source ({new})", self.column),
            ChangeKind::TypeChanged => {
                format!("column `{}` changed type from {old} to {new}", self.column)
            }
            ChangeKind::Removed => {
                format!("column `{}` ({old}) gone at the source", self.column)
            }
        };
        let done = match self.action {
            ChangeAction::AddedColumn => "added to the destination".to_string(),
            ChangeAction::Widened => format!("the destination's column widened to {new}"),
            ChangeAction::Kept => match self.change {
                ChangeKind::Removed => "kept in the destination (new rows hold null)".into(),
                _ => format!("the destination's {old} column kept (it holds {new} values)"),
            },
            ChangeAction::Dropped => "not read (schema_changes = \"freeze\")".into(),
            ChangeAction::Stopped => "the task stopped".into(),
        };
        write!(f, "stream '{}': {what}: {done}", self.stream)
    }
}

/// Why a task cannot read under its policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriftError {
    /// `schema_changes = "fail"` and the schema changed.
    #[error(
        "the schema of stream '{stream}' changed at the source and schema_changes = \"fail\": {}; nothing was read. To take the changes, set schema_changes = \"evolve\" (adds columns, widens types) or \"freeze\" (keeps the destination's columns) on the pipeline or the task",
        list(.changes)
    )]
    Changed {
        /// The stream.
        stream: String,
        /// Every change.
        changes: Vec<SchemaChange>,
    },
    /// `schema_changes = "freeze"` and a column's new values would not fit its column.
    #[error(
        "stream '{stream}': schema_changes = \"freeze\" keeps column `{column}` as {old_type}, but the source now sends {new_type} values, which it cannot hold; nothing was read. Set schema_changes = \"evolve\" to widen the column to {wider}"
    )]
    WouldNotFit {
        /// The stream.
        stream: String,
        /// The column.
        column: String,
        /// The destination's type.
        old_type: String,
        /// The source's type.
        new_type: String,
        /// The type evolving would give it.
        wider: String,
    },
}

fn list(changes: &[SchemaChange]) -> String {
    changes
        .iter()
        .filter(|c| c.action == ChangeAction::Stopped)
        .map(|c| match c.change {
            ChangeKind::Added => format!(
                "column `{}` added ({})",
                c.column,
                c.new_type.as_deref().unwrap_or("?")
            ),
            ChangeKind::TypeChanged => format!(
                "column `{}` changed type from {} to {}",
                c.column,
                c.old_type.as_deref().unwrap_or("?"),
                c.new_type.as_deref().unwrap_or("?")
            ),
            ChangeKind::Removed => format!(
                "column `{}` ({}) gone",
                c.column,
                c.old_type.as_deref().unwrap_or("?")
            ),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A change before a policy decided about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The column.
    pub column: String,
    /// What changed.
    pub change: ChangeKind,
    /// The destination's type.
    pub old: Option<ColumnType>,
    /// The source's type.
    pub new: Option<ColumnType>,
}

/// The differences between the destination's columns and the source's: `read` are the
/// columns this run reads (after column selection), `offered` every column the source
/// offers (a column the user left out of the selection has not gone at the source).
pub fn compare(existing: &[Column], read: &[Column], offered: &[String]) -> Vec<Difference> {
    let old: BTreeMap<&str, ColumnType> =
        existing.iter().map(|c| (c.name.as_str(), c.ty)).collect();
    let mut out = Vec::new();
    for c in read {
        match old.get(c.name.as_str()) {
            None => out.push(Difference {
                column: c.name.clone(),
                change: ChangeKind::Added,
                old: None,
                new: Some(c.ty),
            }),
            Some(&ty) if ty != c.ty => out.push(Difference {
                column: c.name.clone(),
                change: ChangeKind::TypeChanged,
                old: Some(ty),
                new: Some(c.ty),
            }),
            Some(_) => {}
        }
    }
    for c in existing {
        if !offered.iter().any(|o| o == &c.name) {
            out.push(Difference {
                column: c.name.clone(),
                change: ChangeKind::Removed,
                old: Some(c.ty),
                new: None,
            });
        }
    }
    out
}

/// What a task reads after its policy decided: the columns to ask for (`None`: as the
/// user chose), the type each read column gets in the destination where it differs from
/// the source's, and the changes with what was done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// `Some`: read only these columns (`freeze` with new fields at the source).
    pub columns: Option<Vec<String>>,
    /// Columns whose destination type is not the source's: the wider one is kept or made.
    pub types: BTreeMap<String, ColumnType>,
    /// Every change, with what was done.
    pub changes: Vec<SchemaChange>,
}

/// Decides what `policy` does with `differences` of `stream`. `read` are the columns the
/// run reads, in order (for `freeze`, the columns kept are those of them the destination
/// has).
pub fn decide(
    policy: SchemaPolicy,
    stream: &str,
    read: &[Column],
    differences: Vec<Difference>,
) -> Result<Decision, DriftError> {
    let change = |d: &Difference, action| SchemaChange {
        stream: stream.to_string(),
        column: d.column.clone(),
        change: d.change,
        old_type: d.old.map(|t| t.schema_name().to_string()),
        new_type: d.new.map(|t| t.schema_name().to_string()),
        action,
    };
    let mut out = Decision::default();
    let mut dropped = Vec::new();
    let mut stopped = false;
    for d in &differences {
        // What needs nothing of the destination (a column gone at the source, a type its
        // column already holds) is kept under every policy: it would otherwise stop a
        // `fail` task on every run from then on, since the destination never drops or
        // narrows a column.
        let action = match (d.change, d.old, d.new) {
            (ChangeKind::TypeChanged, Some(old), Some(new)) if old.wider(new) == old => {
                out.types.insert(d.column.clone(), old);
                ChangeAction::Kept
            }
            (ChangeKind::Added | ChangeKind::TypeChanged, _, _) if policy == SchemaPolicy::Fail => {
                stopped = true;
                ChangeAction::Stopped
            }
            (ChangeKind::Added, _, _) if policy == SchemaPolicy::Freeze => {
                dropped.push(d.column.as_str());
                ChangeAction::Dropped
            }
            (ChangeKind::Added, _, _) => ChangeAction::AddedColumn,
            (ChangeKind::TypeChanged, Some(old), Some(new)) => {
                let wider = old.wider(new);
                if policy == SchemaPolicy::Freeze {
                    return Err(DriftError::WouldNotFit {
                        stream: stream.to_string(),
                        column: d.column.clone(),
                        old_type: old.schema_name().into(),
                        new_type: new.schema_name().into(),
                        wider: wider.schema_name().into(),
                    });
                } else {
                    if wider != new {
                        out.types.insert(d.column.clone(), wider);
                    }
                    ChangeAction::Widened
                }
            }
            _ => ChangeAction::Kept,
        };
        out.changes.push(change(d, action));
    }
    if stopped {
        return Err(DriftError::Changed {
            stream: stream.to_string(),
            changes: out.changes,
        });
    }
    if !dropped.is_empty() {
        out.columns = Some(
            read.iter()
                .filter(|c| !dropped.contains(&c.name.as_str()))
                .map(|c| c.name.clone())
                .collect(),
        );
    }
    Ok(out)
}

/// `spec` with the given columns' types replaced (the destination's, or the wider one):
/// what the destination is prepared with and checks records against.
pub fn retype(spec: &TaskSpec, types: &BTreeMap<String, ColumnType>) -> TaskSpec {
    let mut spec = spec.clone();
    if types.is_empty() {
        return spec;
    }
    if let Some(props) = spec
        .record_schema
        .get_mut("properties")
        .and_then(Value::as_object_mut)
    {
        for (name, ty) in types {
            let Some(prop) = props.get_mut(name) else {
                continue;
            };
            let key = spec.primary_key.contains(name);
            *prop = match (ty, key) {
                // A JSON column: a property without one definite type.
                (ColumnType::Json, _) => json!({}),
                (t, true) => json!({ "type": t.schema_name() }),
                (t, false) => json!({ "type": [t.schema_name(), "null"] }),
            };
        }
    }
    spec
}

/// What a task reads after its stream's schema was compared with the destination's: the
/// request (its column selection narrowed under `freeze`), the spec the destination is
/// prepared with (retyped where the destination keeps or makes a wider type), and every
/// change with what was done.
#[derive(Debug)]
pub struct Applied {
    /// The read request.
    pub request: ReadRequest,
    /// The spec of what will arrive, as the destination holds it.
    pub spec: TaskSpec,
    /// Every change.
    pub changes: Vec<SchemaChange>,
}

/// Why a task stops before it reads: the message, and the changes (all `stopped`) when the
/// policy stopped it.
#[derive(Debug)]
pub struct Stopped {
    /// What to show.
    pub message: String,
    /// The changes that stopped it (empty when the comparison itself failed).
    pub changes: Vec<SchemaChange>,
}

/// Compares the stream `narrowed` (the source's schema after column selection; `source`
/// is its whole schema) with what `dest` holds and applies `policy`. Logs one WARN line
/// per change under the `ionport::schema` target. Blocking (the destination is asked).
pub fn apply(
    policy: SchemaPolicy,
    pipeline: &str,
    source: &TaskSpec,
    request: ReadRequest,
    narrowed: TaskSpec,
    dest: &dyn Destination,
) -> Result<Applied, Stopped> {
    let unchanged = |request, spec| Applied {
        request,
        spec,
        changes: Vec::new(),
    };
    let stream = StreamSpec {
        name: narrowed.name.clone(),
        record_schema: narrowed.record_schema.clone(),
        primary_key: narrowed.primary_key.clone(),
        cursor_field: narrowed.cursor_field.clone(),
    };
    let stop = |message: String| Stopped {
        message,
        changes: Vec::new(),
    };
    let Some(mut existing) = dest.columns(&stream).map_err(|e| stop(e.to_string()))? else {
        return Ok(unchanged(request, narrowed));
    };
    // ionport's own column (`deletes = "soft"`) is no column of the source.
    existing.retain(|c| c.name != crate::destination::DELETED_AT_COLUMN);
    // A schema the destination cannot make a table of fails in `prepare`, as before.
    let Ok(read) = stream_columns(&stream) else {
        return Ok(unchanged(request, narrowed));
    };
    let offered = crate::read::schema_columns(source);
    let differences = compare(&existing, &read, &offered);
    let decision = match decide(policy, &narrowed.name, &read, differences) {
        Ok(d) => d,
        Err(e) => {
            let changes = match &e {
                DriftError::Changed { changes, .. } => changes.clone(),
                DriftError::WouldNotFit { .. } => Vec::new(),
            };
            for c in &changes {
                tracing::warn!(target: "ionport::schema", pipeline, stream = %c.stream, column = %c.column, change = c.change.as_str(), action = c.action.as_str(), "schema change: {c}");
            }
            return Err(Stopped {
                message: e.to_string(),
                changes,
            });
        }
    };
    for c in &decision.changes {
        tracing::warn!(target: "ionport::schema", pipeline, stream = %c.stream, column = %c.column, change = c.change.as_str(), action = c.action.as_str(), "schema change: {c}");
    }
    let (request, narrowed) = match &decision.columns {
        Some(cols) => crate::read::with_columns(request, source, Some(cols))
            .map_err(|e| stop(format!("columns: {e}")))?,
        None => (request, narrowed),
    };
    Ok(Applied {
        request,
        spec: retype(&narrowed, &decision.types),
        changes: decision.changes,
    })
}

mod mid_run;
pub use mid_run::MidRun;

#[cfg(test)]
mod tests;
