use super::*;
use serde_json::json;

fn parse(text: &str) -> Result<Records, RecordsError> {
    Records::parse("s", text.as_bytes().to_vec())
}

/// What `serde_json` makes of the same value, for differential checks.
fn value_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[test]
fn lines_are_records_and_blank_lines_are_skipped() {
    let r = parse("{\"a\":1}\n\n  \n{\"b\":\"x\"}\r\n{}\n").unwrap();
    assert_eq!(r.len(), 3);
    let lines: Vec<&str> = r.iter().map(|r| r.line()).collect();
    assert_eq!(lines, ["{\"a\":1}", "{\"b\":\"x\"}", "{}"]);
    assert_eq!(parse("").unwrap().len(), 0);
    assert_eq!(
        parse("{\"a\":1}").unwrap().len(),
        1,
        "no line end after the last"
    );
}

#[test]
fn a_malformed_line_is_an_error_naming_the_record() {
    for (text, index) in [
        ("{\"a\":1}\n{\"a\":", 1),
        ("{\"a\":1}\n{\"a\":1}}\n", 1),
        ("{\"a\":1} x\n", 0),
        ("{\"a\" 1}\n", 0),
        ("{\"a\":01}\n", 0),
        ("{\"a\":\"\\x\"}\n", 0),
        ("{\"a\":\"\\ud800\"}\n", 0),
        ("{'a':1}\n", 0),
        ("{\"a\":1,}\n", 0),
        ("\u{c}{\"a\":1}\n", 0),
        ("{}\n{}\nnope\n", 2),
    ] {
        match parse(text) {
            Err(RecordsError::NotJson { index: i, .. }) => assert_eq!(i, index, "{text:?}"),
            other => panic!("{text:?}: {other:?}"),
        }
    }
    let e = parse("{\"a\":1}\n{\"a\":").unwrap_err().to_string();
    assert!(e.contains("record 1") && e.contains("not JSON"), "{e}");
}

#[test]
fn invalid_utf8_is_not_json_naming_the_record() {
    let mut text = b"{\"a\":1}\n{\"a\":\"".to_vec();
    text.extend_from_slice(&[0xff, b'"', b'}', b'\n']);
    match Records::parse("s", text) {
        Err(RecordsError::NotJson { index: 1, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_line_that_is_json_but_not_an_object_is_refused_as_such() {
    for text in ["[1]", "1", "\"x\"", "null", "true", " [ ] "] {
        match parse(&format!("{{}}\n{text}\n")) {
            Err(RecordsError::NotObject { index: 1, .. }) => {}
            other => panic!("{text:?}: {other:?}"),
        }
    }
}

#[test]
fn values_read_as_serde_json_reads_them() {
    let line =
        r#"{"s":"a\"b\\c\n\u00e9\ud83d\ude00","u":"ünïcødé 😀","i":-42,"big":18446744073709551615,
        "huge":123456789012345678901234567890,"f":1.5,"e":1e3,"z":-0,"t":true,"n":null,
        "o":{"x":[1,{"y":null}]},"a":[1,"2",[3]],"esc\tkey":1}"#
            .replace('\n', "");
    let r = parse(&line).unwrap();
    let rec = r.iter().next().unwrap();
    let map = rec.to_map().unwrap();
    assert_eq!(map, value_of(&line).as_object().unwrap().clone());
    let mut seen = 0;
    for (k, v) in rec.fields() {
        let want = &map[k];
        assert_eq!(v.to_value().unwrap(), *want, "{k}");
        assert_eq!(v.as_i64(), want.as_i64(), "{k}");
        assert_eq!(v.as_f64(), want.as_f64(), "{k}");
        assert_eq!(v.as_bool(), want.as_bool(), "{k}");
        assert_eq!(v.as_str().as_deref(), want.as_str(), "{k}");
        assert_eq!(v.is_null(), want.is_null(), "{k}");
        assert_eq!(v.is_number(), want.is_number(), "{k}");
        assert_eq!(v.type_name(), json_type(want), "{k}");
        seen += 1;
    }
    assert_eq!(seen, map.len());
    assert_eq!(rec.get("esc\tkey").map(JsonRef::text), Some("1"));
    assert_eq!(rec.get("s").unwrap().as_str().unwrap(), "a\"b\\c\né😀");
    assert!(matches!(
        rec.get("u").unwrap().as_str(),
        Some(Cow::Borrowed(_))
    ));
    assert_eq!(rec.get("huge").unwrap().as_i64(), None);
    assert_eq!(rec.get("missing"), None);
}

#[test]
fn a_key_written_twice_counts_once_its_last_time() {
    let r = parse("{\"a\":1,\"b\":2,\"a\":3}\n").unwrap();
    let rec = r.iter().next().unwrap();
    assert_eq!(rec.get("a").unwrap().as_i64(), Some(3));
    assert_eq!(rec.fields().count(), 3);
    assert_eq!(
        rec.to_map().unwrap(),
        value_of("{\"a\":3,\"b\":2}").as_object().unwrap().clone()
    );
}

#[test]
fn whitespace_inside_and_around_a_line_is_json_whitespace() {
    let r = parse(" \t{ \"a\" : [ 1 , 2 ] , \"b\" :\"x\" } \r\n").unwrap();
    let rec = r.iter().next().unwrap();
    assert_eq!(rec.line(), "{ \"a\" : [ 1 , 2 ] , \"b\" :\"x\" }");
    assert_eq!(rec.get("a").unwrap().text(), "[ 1 , 2 ]");
    assert_eq!(rec.get("b").unwrap().as_str().unwrap(), "x");
}

#[test]
fn a_huge_count_hint_is_never_needed_nor_trusted() {
    // `Records::parse` takes no count at all: the tables grow with the text.
    let r = parse("{\"a\":1}\n{\"a\":2}\n").unwrap();
    assert_eq!(r.len(), 2);
}

#[test]
fn appended_batches_read_as_one_in_order() {
    let mut all = parse("{\"i\":0}\n{\"i\":1}\n").unwrap();
    all.append(parse("{\"i\":2}\n").unwrap());
    all.append(Records::default());
    all.append(parse("{\"i\":3}\n").unwrap());
    let ids: Vec<i64> = all
        .iter()
        .map(|r| r.get("i").unwrap().as_i64().unwrap())
        .collect();
    assert_eq!(ids, [0, 1, 2, 3]);
    assert_eq!(all.len(), 4);
}

#[test]
fn maps_round_trip() {
    let maps = vec![
        json!({"a": 1, "b": "x\ny", "c": {"d": [1, 2.5]}})
            .as_object()
            .unwrap()
            .clone(),
        json!({}).as_object().unwrap().clone(),
    ];
    let r = Records::from_maps(&maps).unwrap();
    assert_eq!(r.to_maps().unwrap(), maps);
}

#[test]
fn one_record_parsers_reuse_their_buffers() {
    let mut one = Records::default();
    assert_eq!(
        one.reparse_line(b"{\"a\":1}")
            .unwrap()
            .get("a")
            .unwrap()
            .as_i64(),
        Some(1)
    );
    assert_eq!(one.reparse_line(b"{\"b\":2}").unwrap().get("a"), None);
    assert!(one.reparse_line(b"[1]").is_err());
    assert!(one.reparse_line(b"").is_err());
}
