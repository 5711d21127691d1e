//! The Parquet destination: one dataset per stream, `<table>.parquet` under a directory
//! (a single Snappy-compressed file, row groups of at most 65,536 rows or 8 MiB encoded),
//! replaced atomically by `finish` with each key once. Columns are built straight from the
//! records' JSON text, batch by batch: `finish` holds one batch and one row group.
//!
//! Exactly once: see `destination::files` (private) — records are staged in a per-stream
//! JSONL log that is fsynced before the state file that points past it, and sealed into
//! sorted segments; `finish` merges the current dataset (streamed batch by batch, in key
//! order) with the segments into a temporary file, fsyncs it and renames it into place.
//!
//! Types: string → `Utf8`, integer → `Int64`, number → `Float64`, boolean → `Boolean`,
//! object/array/other → `Utf8` holding JSON text (the field's metadata says
//! `ionport:type = json`). Every column is nullable. Columns of the dataset that the
//! record schema no longer lists are kept.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::{Map, Value};

use super::DestinationError;
use super::common::{ColumnType, TableSpec};
use super::files::{FileDestination, Format, Rows};
use super::segments::Line;
use crate::read::{JsonRef, Records};

const BATCH: usize = 8192;
/// A row group is written out once its encoded size reaches this: the writer buffers one
/// row group, so this (not the row count, whose bytes depend on the records' width) is
/// what bounds its memory.
const ROW_GROUP_BYTES: usize = 8 << 20;
const JSON_META: &str = "ionport:type";

/// The Parquet format.
#[derive(Debug)]
pub struct Parquet;

/// One Parquet dataset per stream under a directory.
pub type ParquetDestination = FileDestination<Parquet>;

fn arrow_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Text | ColumnType::Json => DataType::Utf8,
        ColumnType::Integer => DataType::Int64,
        ColumnType::Number => DataType::Float64,
        ColumnType::Boolean => DataType::Boolean,
    }
}

fn field(name: &str, ty: ColumnType) -> Field {
    let f = Field::new(name, arrow_type(ty), true);
    if ty == ColumnType::Json {
        f.with_metadata(HashMap::from([(JSON_META.to_string(), "json".to_string())]))
    } else {
        f
    }
}

/// The column type of an existing field.
fn field_type(f: &Field) -> Option<ColumnType> {
    Some(match f.data_type() {
        DataType::Utf8 if f.metadata().get(JSON_META).map(String::as_str) == Some("json") => {
            ColumnType::Json
        }
        DataType::Utf8 => ColumnType::Text,
        DataType::Int64 => ColumnType::Integer,
        DataType::Float64 => ColumnType::Number,
        DataType::Boolean => ColumnType::Boolean,
        _ => return None,
    })
}

fn open_reader(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, String> {
    let f = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The value of row `row` of `col`, as JSON (JSON-text columns parsed when `parse_json`).
fn cell(col: &ArrayRef, ty: ColumnType, row: usize, parse_json: bool) -> Value {
    if col.is_null(row) {
        return Value::Null;
    }
    let any = col.as_any();
    match ty {
        ColumnType::Text | ColumnType::Json => {
            let Some(a) = any.downcast_ref::<StringArray>() else {
                return Value::Null;
            };
            let s = a.value(row);
            if ty == ColumnType::Json && parse_json {
                serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
            } else {
                Value::String(s.to_string())
            }
        }
        ColumnType::Integer => any
            .downcast_ref::<Int64Array>()
            .map_or(Value::Null, |a| Value::from(a.value(row))),
        ColumnType::Number => any
            .downcast_ref::<Float64Array>()
            .and_then(|a| serde_json::Number::from_f64(a.value(row)))
            .map_or(Value::Null, Value::Number),
        ColumnType::Boolean => any
            .downcast_ref::<BooleanArray>()
            .map_or(Value::Null, |a| Value::Bool(a.value(row))),
    }
}

/// One column of the batch being built, appended straight from the records' text.
enum Builder {
    Text(StringBuilder),
    Json(StringBuilder),
    Integer(Int64Builder),
    Number(Float64Builder),
    Boolean(BooleanBuilder),
}

/// serde_json's own text of a value (object keys sorted, numbers normalised): what a JSON
/// column, or a text column given a non-string, held when columns were built from maps.
fn canonical(v: JsonRef<'_>) -> Result<String, String> {
    v.to_value()
        .map(|v| v.to_string())
        .map_err(|e| e.to_string())
}

impl Builder {
    fn new(ty: ColumnType) -> Self {
        match ty {
            ColumnType::Text => Builder::Text(StringBuilder::with_capacity(BATCH, BATCH * 16)),
            ColumnType::Json => Builder::Json(StringBuilder::with_capacity(BATCH, BATCH * 16)),
            ColumnType::Integer => Builder::Integer(Int64Builder::with_capacity(BATCH)),
            ColumnType::Number => Builder::Number(Float64Builder::with_capacity(BATCH)),
            ColumnType::Boolean => Builder::Boolean(BooleanBuilder::with_capacity(BATCH)),
        }
    }

    /// Appends one row's value. A value of another type than the column's is null in a
    /// typed column and its JSON text in a text column (commits check types; this is what
    /// staged records of an older schema get).
    fn append(&mut self, v: Option<JsonRef<'_>>) -> Result<(), String> {
        let v = v.filter(|v| !v.is_null());
        match self {
            Builder::Text(b) => match v {
                None => b.append_null(),
                Some(v) => match v.as_str() {
                    Some(s) => b.append_value(s),
                    None => b.append_value(canonical(v)?),
                },
            },
            Builder::Json(b) => match v {
                None => b.append_null(),
                Some(v) => b.append_value(canonical(v)?),
            },
            Builder::Integer(b) => b.append_option(v.and_then(JsonRef::as_i64)),
            Builder::Number(b) => b.append_option(v.and_then(JsonRef::as_f64)),
            Builder::Boolean(b) => b.append_option(v.and_then(JsonRef::as_bool)),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Text(b) | Builder::Json(b) => Arc::new(b.finish()),
            Builder::Integer(b) => Arc::new(b.finish()),
            Builder::Number(b) => Arc::new(b.finish()),
            Builder::Boolean(b) => Arc::new(b.finish()),
        }
    }
}

/// Record batches built from records' JSON text: one borrowed parse per record, its
/// values appended column by column (no map per record).
struct Batches<'c> {
    columns: &'c [(String, ColumnType)],
    index: HashMap<&'c str, usize>,
    /// The column of each field position, as last seen (records of a stream list their
    /// fields in one order: the name is only confirmed).
    hints: Vec<usize>,
    builders: Vec<Builder>,
    one: Records,
    rows: usize,
}

impl<'c> Batches<'c> {
    fn new(columns: &'c [(String, ColumnType)]) -> Self {
        Batches {
            columns,
            index: columns
                .iter()
                .enumerate()
                .map(|(i, (n, _))| (n.as_str(), i))
                .collect(),
            hints: Vec::new(),
            builders: columns.iter().map(|(_, ty)| Builder::new(*ty)).collect(),
            one: Records::default(),
            rows: 0,
        }
    }

    fn push(&mut self, text: &str) -> Result<(), String> {
        let record = self
            .one
            .reparse_line(text.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut values: Vec<Option<JsonRef<'_>>> = vec![None; self.columns.len()];
        for (i, (name, value)) in record.fields().enumerate() {
            let hinted = self
                .hints
                .get(i)
                .copied()
                .filter(|&c| self.columns.get(c).is_some_and(|(n, _)| n == name));
            let c = match hinted {
                Some(c) => c,
                None => {
                    let Some(&c) = self.index.get(name) else {
                        return Err(format!(
                            "a staged record has field `{name}`, which is neither in the record schema nor in the dataset"
                        ));
                    };
                    match self.hints.get_mut(i) {
                        Some(h) => *h = c,
                        None => self.hints.push(c),
                    }
                    c
                }
            };
            // A field written twice counts with its last value, as in a map.
            if let Some(slot) = values.get_mut(c) {
                *slot = Some(value);
            }
        }
        for (b, v) in self.builders.iter_mut().zip(values) {
            b.append(v)?;
        }
        self.rows += 1;
        Ok(())
    }

    /// The rows pushed since the last batch, as one batch.
    fn take(&mut self, schema: &SchemaRef) -> Result<RecordBatch, String> {
        let cols: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        self.rows = 0;
        RecordBatch::try_new(schema.clone(), cols).map_err(|e| e.to_string())
    }
}

/// Row `row` of `batch` as a JSON record (JSON-text columns parsed back, nulls omitted).
fn row_of(
    batch: &RecordBatch,
    schema: &SchemaRef,
    types: &[Option<ColumnType>],
    row: usize,
) -> Map<String, Value> {
    let mut m = Map::new();
    for (i, f) in schema.fields().iter().enumerate() {
        let Some(ty) = types[i] else { continue };
        let v = cell(batch.column(i), ty, row, true);
        if !v.is_null() {
            m.insert(f.name().clone(), v);
        }
    }
    m
}

impl Format for Parquet {
    const KIND: &'static str = "parquet";
    const EXT: &'static str = "parquet";

    fn check_existing(output: &Path, table: &TableSpec) -> Result<(), String> {
        let reader = open_reader(output)?;
        let schema = reader.schema();
        for c in &table.columns {
            // A widening (schema drift, `evolve`) rewrites the column in the wider type at
            // `finish`: older rows' values are converted as they are read back.
            if let Ok(f) = schema.field_with_name(&c.name)
                && f.data_type() != &arrow_type(c.ty)
                && !field_type(f).is_some_and(|t| t.widens_to(c.ty))
            {
                return Err(format!(
                    "column `{}` of {} is {} but the record schema now says {}; nothing is altered: remove the dataset to change a type",
                    c.name,
                    output.display(),
                    f.data_type(),
                    c.ty.name()
                ));
            }
        }
        Ok(())
    }

    fn output_columns(output: &Path) -> Result<Option<Vec<super::common::Column>>, String> {
        let reader = open_reader(output)?;
        Ok(Some(
            reader
                .schema()
                .fields()
                .iter()
                .map(|f| super::common::Column {
                    name: f.name().clone(),
                    ty: field_type(f).unwrap_or(ColumnType::Json),
                })
                .collect(),
        ))
    }

    fn read_output(output: &Path) -> Result<Rows, String> {
        let reader = open_reader(output)?;
        let schema = reader.schema().clone();
        let types: Vec<Option<ColumnType>> =
            schema.fields().iter().map(|f| field_type(f)).collect();
        let shown = output.display().to_string();
        let batches = reader
            .with_batch_size(BATCH)
            .build()
            .map_err(|e| format!("cannot read {shown}: {e}"))?;
        let mut at = 0u64;
        Ok(Box::new(batches.flat_map(move |batch| {
            let rows: Vec<Result<Line, String>> = match batch {
                Err(e) => vec![Err(format!("cannot read {shown}: {e}"))],
                Ok(batch) => (0..batch.num_rows())
                    .map(|row| {
                        at += 1;
                        serde_json::to_string(&row_of(&batch, &schema, &types, row))
                            .map(|text| Line { text, at })
                            .map_err(|e| format!("cannot read {shown}: {e}"))
                    })
                    .collect(),
            };
            rows
        })))
    }

    fn write(
        table: &TableSpec,
        base: Option<&Path>,
        rows: &mut dyn Iterator<Item = Result<String, String>>,
        out: &mut File,
    ) -> Result<(), String> {
        // The output's columns: the table's, then any the dataset has that it no longer lists.
        let mut fields: Vec<Field> = table.columns.iter().map(|c| field(&c.name, c.ty)).collect();
        let mut types: Vec<(String, ColumnType)> = table
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.ty))
            .collect();
        if let Some(base) = base {
            for f in open_reader(base)?.schema().fields() {
                if table.column(f.name()).is_none() {
                    let ty = field_type(f).ok_or_else(|| {
                        format!(
                            "column `{}` has an unsupported type {}",
                            f.name(),
                            f.data_type()
                        )
                    })?;
                    fields.push(f.as_ref().clone());
                    types.push((f.name().clone(), ty));
                }
            }
        }
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(65_536))
            .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
            .build();
        let mut w =
            ArrowWriter::try_new(out, schema.clone(), Some(props)).map_err(|e| e.to_string())?;

        let mut batches = Batches::new(&types);
        for r in rows {
            batches.push(&r?)?;
            if batches.rows == BATCH {
                w.write(&batches.take(&schema)?)
                    .map_err(|e| e.to_string())?;
            }
        }
        if batches.rows > 0 {
            w.write(&batches.take(&schema)?)
                .map_err(|e| e.to_string())?;
        }
        w.close().map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Every row of a Parquet dataset written by this destination, as JSON records (JSON-text
/// columns parsed back; null values omitted). For tests and checks: it holds the whole
/// dataset in memory.
pub fn read_dataset(path: &Path) -> Result<Vec<Map<String, Value>>, DestinationError> {
    let err = |message: String| DestinationError::Write {
        destination: format!("parquet:{}", path.display()),
        message,
    };
    let reader = open_reader(path).map_err(err)?;
    let schema = reader.schema().clone();
    let types: Vec<Option<ColumnType>> = schema.fields().iter().map(|f| field_type(f)).collect();
    let mut out = Vec::new();
    for batch in reader
        .with_batch_size(BATCH)
        .build()
        .map_err(|e| err(e.to_string()))?
    {
        let batch = batch.map_err(|e| err(e.to_string()))?;
        out.extend((0..batch.num_rows()).map(|row| row_of(&batch, &schema, &types, row)));
    }
    Ok(out)
}

#[cfg(test)]
#[path = "parquet_tests.rs"]
mod tests;
