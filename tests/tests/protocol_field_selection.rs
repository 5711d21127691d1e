//! The field selection of an Airbyte configured catalog (a `json_schema` without the
//! fields the user left out) and of a Singer catalog (properties with `selected: false`)
//! reaches the source like a pipeline's `columns`: the emulator's recorded MI request
//! names only those fields plus the key, and the records carry no other field.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::ffi::OsStr;

use ionport_tests::protocol_fixture::Fixture;
use serde_json::{Value, json};

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// The `returncols` of every `CRS610MI/LstByNumber` request since the last clear.
fn returncols(fx: &Fixture) -> Vec<BTreeSet<String>> {
    fx.emu
        .emu
        .requests()
        .iter()
        .filter(|r| r.path.contains("CRS610MI/LstByNumber"))
        .map(|r| {
            r.query
                .iter()
                .find(|(k, _)| k == "returncols")
                .map(|(_, v)| v.split(',').map(str::to_string).collect())
                .unwrap_or_default()
        })
        .collect()
}

/// The field names of every record message (`record` finds the record in a line).
fn record_fields(stdout: &[u8], record: impl Fn(&Value) -> Option<&Value>) -> BTreeSet<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|m| record(&m).and_then(Value::as_object).cloned())
        .flat_map(|r| r.keys().cloned().collect::<Vec<_>>())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn an_airbyte_catalog_without_some_fields_asks_the_source_for_the_rest_only() {
    let fx = Fixture::start(30);
    let config = fx.config("infor-m3");
    let catalog = fx.write(
        "catalog.json",
        &json!({"streams": [{
            "stream": {
                "name": "customers",
                "json_schema": {"type": "object", "properties": {
                    "CONO": {"type": "integer"}, "CUNO": {"type": "string"},
                    "CUNM": {"type": ["string", "null"]}
                }},
                "supported_sync_modes": ["full_refresh"]
            },
            "sync_mode": "full_refresh",
            "destination_sync_mode": "overwrite"
        }]}),
    );
    fx.emu.control("DELETE", "requests", None);
    let out = fx.ionport(&[
        os("airbyte"),
        os("infor-m3"),
        os("read"),
        os("--config"),
        config.as_os_str(),
        os("--catalog"),
        catalog.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let asked = returncols(&fx);
    assert!(!asked.is_empty(), "the customers list was read");
    for cols in &asked {
        assert_eq!(cols, &set(&["CONO", "CUNM", "CUNO"]), "{asked:?}");
    }
    let fields = record_fields(&out.stdout, |m| {
        (m["type"] == "RECORD").then(|| &m["record"]["data"])
    });
    assert_eq!(fields, set(&["CONO", "CUNM", "CUNO"]));
}

#[test]
fn a_singer_catalog_with_deselected_properties_asks_the_source_for_the_rest_only() {
    let fx = Fixture::start(30);
    let config = fx.config("infor-m3");
    let out = fx.ionport(&[
        os("singer"),
        os("infor-m3"),
        os("--config"),
        config.as_os_str(),
        os("--discover"),
    ]);
    assert!(out.status.success());
    let mut catalog: Value = serde_json::from_slice(&out.stdout).unwrap();
    let keep = ["CONO", "CUNO", "TOWN"];
    for entry in catalog["streams"].as_array_mut().unwrap() {
        let is_customers = entry["tap_stream_id"] == "customers";
        for md in entry["metadata"].as_array_mut().unwrap() {
            let crumb = md["breadcrumb"].as_array().unwrap().clone();
            if crumb.is_empty() {
                md["metadata"]["selected"] = json!(is_customers);
            } else if is_customers {
                let name = crumb[1].as_str().unwrap();
                md["metadata"]["selected"] = json!(keep.contains(&name));
            }
        }
    }
    let catalog = fx.write("singer-catalog.json", &catalog);
    fx.emu.control("DELETE", "requests", None);
    let out = fx.ionport(&[
        os("singer"),
        os("infor-m3"),
        os("--config"),
        config.as_os_str(),
        os("--catalog"),
        catalog.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let asked = returncols(&fx);
    assert!(!asked.is_empty(), "the customers list was read");
    for cols in &asked {
        assert_eq!(cols, &set(&keep), "{asked:?}");
    }
    let fields = record_fields(&out.stdout, |m| {
        (m["type"] == "RECORD").then(|| &m["record"])
    });
    assert_eq!(fields, set(&keep));
}
