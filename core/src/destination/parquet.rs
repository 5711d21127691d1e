//! The Parquet destination: one dataset per stream, `<table>.parquet` under a directory
//! (a single Snappy-compressed file, row groups of at most 65,536 rows), replaced
//! atomically by `finish` with each key once.
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

const BATCH: usize = 8192;
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

/// Builds one column of `rows`.
fn build(ty: ColumnType, name: &str, rows: &[Map<String, Value>]) -> ArrayRef {
    match ty {
        ColumnType::Text | ColumnType::Json => {
            let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
            for r in rows {
                match (ty, r.get(name)) {
                    (_, None | Some(Value::Null)) => b.append_null(),
                    (ColumnType::Text, Some(Value::String(s))) => b.append_value(s),
                    (_, Some(v)) => b.append_value(v.to_string()),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Integer => {
            let mut b = Int64Builder::with_capacity(rows.len());
            for r in rows {
                b.append_option(r.get(name).and_then(Value::as_i64));
            }
            Arc::new(b.finish())
        }
        ColumnType::Number => {
            let mut b = Float64Builder::with_capacity(rows.len());
            for r in rows {
                b.append_option(r.get(name).and_then(Value::as_f64));
            }
            Arc::new(b.finish())
        }
        ColumnType::Boolean => {
            let mut b = BooleanBuilder::with_capacity(rows.len());
            for r in rows {
                b.append_option(r.get(name).and_then(Value::as_bool));
            }
            Arc::new(b.finish())
        }
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
            if let Ok(f) = schema.field_with_name(&c.name)
                && f.data_type() != &arrow_type(c.ty)
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
            .build();
        let mut w =
            ArrowWriter::try_new(out, schema.clone(), Some(props)).map_err(|e| e.to_string())?;

        let mut chunk: Vec<Map<String, Value>> = Vec::with_capacity(BATCH);
        let flush = |chunk: &mut Vec<Map<String, Value>>,
                     w: &mut ArrowWriter<&mut File>|
         -> Result<(), String> {
            if chunk.is_empty() {
                return Ok(());
            }
            for r in chunk.iter() {
                if let Some(k) = r.keys().find(|k| !types.iter().any(|(n, _)| n == *k)) {
                    return Err(format!(
                        "a staged record has field `{k}`, which is neither in the record schema nor in the dataset"
                    ));
                }
            }
            let cols: Vec<ArrayRef> = types.iter().map(|(n, ty)| build(*ty, n, chunk)).collect();
            let batch = RecordBatch::try_new(schema.clone(), cols).map_err(|e| e.to_string())?;
            w.write(&batch).map_err(|e| e.to_string())?;
            chunk.clear();
            Ok(())
        };
        for r in rows {
            // Arrow columns are built from maps: Parquet is not on the cheap path yet.
            chunk.push(serde_json::from_str(&r?).map_err(|e| e.to_string())?);
            if chunk.len() == BATCH {
                flush(&mut chunk, &mut w)?;
            }
        }
        flush(&mut chunk, &mut w)?;
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
