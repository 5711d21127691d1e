//! The manifest's parse and checks: line numbers written out by hand from the texts.

#![allow(clippy::unwrap_used)]

use crate::manifest::{PagingStyle, parse};

const GOOD: &str = r#"
[[streams]]
name = "items"
description = "Items."
path = "CSI/items"
records = "/data/items"
paging = { style = "page", page_param = "pg" }
primary_key = ["id"]
cursor = { field = "updated", param = "since" }
schema = { id = "string", updated = "string" }
"#;

fn error(text: &str) -> String {
    parse("m.toml", text).unwrap_err().message().to_string()
}

#[test]
fn the_builtin_manifest_parses() {
    let m = parse("builtin.toml", crate::BUILTIN).unwrap();
    assert_eq!(m.streams[0].get_ref().name, "service_account");
    assert_eq!(crate::builtin().len(), 1);
}

#[test]
fn a_good_manifest_parses() {
    let m = parse("m.toml", GOOD).unwrap();
    let s = m.streams[0].get_ref();
    assert_eq!(s.paging.style, PagingStyle::Page);
    assert_eq!(s.cursor.as_ref().unwrap().param, "since");
}

#[test]
fn a_wrong_type_an_unknown_key_and_a_missing_field_name_their_line() {
    let wrong_type = GOOD.replace(r#"records = "/data/items""#, "records = 3");
    let e = error(&wrong_type);
    assert!(e.starts_with("m.toml:6:"), "{e}");
    let unknown = GOOD.replace(r#"path = "CSI/items""#, "pathh = \"CSI/items\"");
    let e = error(&unknown);
    assert!(e.starts_with("m.toml:5:") && e.contains("pathh"), "{e}");
    let missing = GOOD.replace("primary_key = [\"id\"]\n", "");
    let e = error(&missing);
    // A missing field is reported at the table that lacks it.
    assert!(
        e.starts_with("m.toml:2:") && e.contains("primary_key"),
        "{e}"
    );
    let style = GOOD.replace(r#"style = "page""#, r#"style = "pages""#);
    let e = error(&style);
    assert!(e.starts_with("m.toml:7:") && e.contains("pages"), "{e}");
}

#[test]
fn checks_beyond_the_types_name_the_stream_s_line() {
    let e = error(&GOOD.replace(r#"["id"]"#, r#"["nope"]"#));
    assert!(e.starts_with("m.toml:2:") && e.contains("'nope'"), "{e}");
    let e = error(&GOOD.replace(r#"page_param = "pg""#, r#"key_param = "k""#));
    assert!(e.contains("key_param belongs to paging style key"), "{e}");
    let e = error(&GOOD.replace(r#""/data/items""#, r#""data""#));
    assert!(e.contains("not a JSON pointer"), "{e}");
    let e = error(&format!("{GOOD}\n{GOOD}"));
    assert!(e.starts_with("m.toml:13:") && e.contains("twice"), "{e}");
    let e = error("");
    assert!(e.contains("streams"), "{e}");
}
