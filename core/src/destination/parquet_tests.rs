use super::*;
use crate::destination::StreamSpec;
use serde_json::json;

fn table() -> TableSpec {
    let spec = StreamSpec {
        name: "t".into(),
        record_schema: json!({"type": "object", "properties": {
            "id": {"type": "integer"}, "name": {"type": ["string", "null"]},
            "price": {"type": "number"}, "ok": {"type": "boolean"}, "doc": {"type": "object"}
        }}),
        primary_key: vec!["id".into()],
        cursor_field: None,
    };
    TableSpec::new("parquet:test", &spec).unwrap()
}

fn write(lines: &[&str]) -> Result<Vec<Map<String, Value>>, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    let mut out = File::create(&path).unwrap();
    let mut rows = lines.iter().map(|l| Ok(l.to_string()));
    Parquet::write(&table(), None, &mut rows, &mut out)?;
    drop(out);
    Ok(read_dataset(&path).unwrap())
}

#[test]
fn columns_are_built_from_the_text_as_they_were_from_maps() {
    let rows = write(&[
        r#"{"id":1,"name":"a \"q\" \u00e9","price":2,"ok":true,"doc":{ "z": 1, "a": [1, 2.50] }}"#,
        // Another field order, a field twice (the last counts), nulls and a missing field.
        r#"{"ok":false,"id":2,"name":"first","name":"second","price":null,"doc":null}"#,
        r#"{"id":3,"price":1.5e1}"#,
    ])
    .unwrap();
    let want = [
        json!({"id": 1, "name": "a \"q\" é", "price": 2.0, "ok": true,
               "doc": {"a": [1, 2.5], "z": 1}}),
        json!({"id": 2, "name": "second", "ok": false}),
        json!({"id": 3, "price": 15.0}),
    ];
    assert_eq!(rows.len(), want.len());
    for (got, want) in rows.iter().zip(want) {
        assert_eq!(&Value::Object(got.clone()), &want);
    }
}

#[test]
fn a_staged_field_that_is_no_column_is_refused_by_name() {
    let e = write(&[r#"{"id":1,"colour":"red"}"#]).unwrap_err();
    assert!(
        e.contains("`colour`") && e.contains("neither in the record schema nor in the dataset"),
        "{e}"
    );
}

#[test]
fn many_rows_make_several_batches_and_row_groups() {
    // Names that neither a dictionary nor Snappy shrinks (a xorshift's digits).
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = || {
        (0..40)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                format!("{x:016x}")
            })
            .collect::<String>()
    };
    let lines: Vec<String> = (0..20_000)
        .map(|i| format!(r#"{{"id":{i},"name":"{}","price":{i}.25}}"#, noise()))
        .collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    let mut out = File::create(&path).unwrap();
    let mut rows = refs.iter().map(|l| Ok(l.to_string()));
    Parquet::write(&table(), None, &mut rows, &mut out).unwrap();
    drop(out);
    let groups = open_reader(&path).unwrap().metadata().num_row_groups();
    // 20,000 rows of ~640 bytes are over 8 MiB: the byte bound, not the row count
    // (65,536), cuts them into row groups.
    assert!(groups >= 2, "{groups} row groups");
    let back = read_dataset(&path).unwrap();
    assert_eq!(back.len(), 20_000);
    assert_eq!(back[19_999]["id"], json!(19_999));
    assert_eq!(back[19_999]["price"], json!(19_999.25));
}
