use super::*;
use crate::destination::StreamSpec;
use crate::read::Records;
use serde_json::{Map, Value, json};

fn table(key: &[&str]) -> TableSpec {
    let spec = StreamSpec {
        name: "s".into(),
        record_schema: json!({"properties": {
            "id": {"type": "integer"}, "code": {"type": "string"}, "n": {"type": ["number", "null"]},
            "b": {"type": "boolean"}, "o": {"type": "object"}, "t": {"type": ["string", "null"]}
        }}),
        primary_key: key.iter().map(|k| k.to_string()).collect(),
        cursor_field: None,
    };
    TableSpec::new("d", &spec).unwrap()
}

fn records(lines: &str) -> Records {
    Records::parse("s", lines.as_bytes().to_vec()).unwrap()
}

fn check(t: &TableSpec, line: &str) -> Result<Vec<Option<String>>, String> {
    let r = records(line);
    let rec = r.iter().next().unwrap();
    let mut cols = Columns::new("d", t);
    let mut out = Vec::new();
    cols.values(&rec, &mut out).map_err(|e| e.to_string())?;
    Ok(out
        .iter()
        .map(|v| v.map(|v| v.text().to_string()))
        .collect())
}

#[test]
fn values_land_in_column_order_whatever_the_field_order() {
    let t = table(&["id"]);
    let r = records(
        "{\"id\":1,\"code\":\"a\",\"n\":1.5}\n{\"n\":2,\"id\":2}\n{\"code\":\"c\",\"id\":3,\"code\":\"d\"}\n",
    );
    let mut cols = Columns::new("d", &t);
    let mut out = Vec::new();
    let mut got = Vec::new();
    for rec in r.iter() {
        cols.values(&rec, &mut out).unwrap();
        let by_name = |name: &str| {
            let (i, _) = t.column(name).unwrap();
            out[i].map(|v| v.text().to_string())
        };
        got.push((by_name("id"), by_name("code"), by_name("n")));
    }
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        got,
        [
            (s("1"), s("\"a\""), s("1.5")),
            (s("2"), None, s("2")),
            (s("3"), s("\"d\""), None),
        ]
    );
}

#[test]
fn a_value_of_the_wrong_type_is_refused_naming_field_and_types() {
    let t = table(&["id"]);
    for (line, field, got, column) in [
        ("{\"id\":\"1\"}", "id", "string", "integer"),
        ("{\"id\":1.5}", "id", "number", "integer"),
        ("{\"id\":1e2}", "id", "number", "integer"),
        ("{\"id\":9223372036854775808}", "id", "integer", "integer"),
        ("{\"id\":1,\"n\":\"5\"}", "n", "string", "number"),
        ("{\"id\":1,\"b\":1}", "b", "integer", "boolean"),
        ("{\"id\":1,\"t\":[\"x\"]}", "t", "array", "string"),
        (
            "{\"id\":1,\"code\":\"ok\",\"code\":{}}",
            "code",
            "object",
            "string",
        ),
    ] {
        let e = check(&t, line).unwrap_err();
        assert!(
            e.contains(&format!(
                "field `{field}`: a {got} value does not fit its {column} column"
            )),
            "{line}: {e}"
        );
    }
    assert!(
        check(
            &t,
            "{\"id\":1,\"o\":[1,{\"a\":null}],\"t\":null,\"b\":false,\"n\":-0}"
        )
        .is_ok()
    ); // A string column takes numbers and booleans as their JSON text: what a column kept
    // wider than the source's type holds (schema drift, `ColumnType::wider`).
    assert!(check(&t, "{\"id\":1,\"code\":5,\"t\":true}").is_ok());
}

#[test]
fn unknown_fields_and_missing_or_null_keys_are_refused() {
    let t = table(&["id", "code"]);
    let e = check(&t, "{\"id\":1,\"code\":\"a\",\"extra\":1}").unwrap_err();
    assert!(
        e.contains("field `extra` (integer) is not in the stream's record schema"),
        "{e}"
    );
    let e = check(&t, "{\"id\":1}").unwrap_err();
    assert!(e.contains("primary key field `code` is missing"), "{e}");
    let e = check(&t, "{\"id\":null,\"code\":\"a\"}").unwrap_err();
    assert!(e.contains("primary key field `id` is null"), "{e}");
    assert!(check(&t, "{\"code\":\"a\",\"id\":1}").is_ok());
    // Without a key, an empty record fits.
    assert!(check(&table(&[]), "{}").is_ok());
}

/// The key text read from JSON text equals the key text of the same record as a map: the
/// merge compares the two.
#[test]
fn key_text_equals_the_maps_key_text() {
    let values = [
        "1",
        "-7",
        "0",
        "-0",
        "9223372036854775807",
        "18446744073709551615",
        "1e300",
        "1.0",
        "2.5",
        "1E2",
        "\"x\"",
        "\"é😀\"",
        "\"a\\\"b\"",
        "\"\\u00e9\"",
        "\"tab\\tx\"",
        "\"\\/\"",
        "null",
        "true",
        "false",
        "[1,{\"b\":2,\"a\":1}]",
        "{\"z\":1,\"a\":[]}",
        "\"\"",
    ];
    for key in [&["id"][..], &["code"], &["n"], &["b"], &["o"], &["t", "id"]] {
        let t = table(key);
        for v in values {
            for w in ["1", "\"k\""] {
                let fields: Vec<String> = key
                    .iter()
                    .enumerate()
                    .map(|(i, k)| format!("\"{k}\":{}", if i == 0 { v } else { w }))
                    .collect();
                let line = format!("{{{}}}", fields.join(","));
                let r = records(&line);
                let rec = r.iter().next().unwrap();
                let map: Map<String, Value> = serde_json::from_str(&line).unwrap();
                assert_eq!(
                    record_key(&t, &rec).unwrap(),
                    t.key_string(&map),
                    "{key:?} {line}"
                );
            }
        }
    }
}

#[test]
fn only_the_last_record_of_a_key_is_kept_in_the_order_of_last_occurrences() {
    let t = table(&["id"]);
    let r =
        records("{\"id\":1}\n{\"id\":2}\n{\"id\":1,\"code\":\"x\"}\n{\"id\":3}\n{\"id\":2.0}\n");
    // `2.0` is not the integer 2: it is another key, as it was for maps.
    assert_eq!(last_by_key("d", &t, &r).unwrap(), [1, 2, 3, 4]);
    let r = records("{\"id\":1}\n{\"id\":2}\n{\"id\":1}\n");
    assert_eq!(last_by_key("d", &t, &r).unwrap(), [1, 2]);
    assert_eq!(last_by_key("d", &table(&[]), &r).unwrap(), [0, 1, 2]);
}
