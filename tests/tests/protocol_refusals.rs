//! Protocol inputs that used to be read as something else, refused or classified as the
//! user's mistake (`config_error`), against the emulator through the `ionport` binary:
//!
//! - a config whose integer field is written `100.0` (the standard JSON Schema rule
//!   accepts it; the connector's `u16` did not, and discover said `system_error`);
//! - an Airbyte configured catalog naming a stream twice (every record was emitted twice);
//! - a Singer catalog with two entries for one stream;
//! - an unknown stream: its trace and the closing trace are `config_error`s.

#![allow(clippy::unwrap_used)]

use std::ffi::OsStr;
use std::process::Output;

use ionport_tests::protocol_fixture::{Fixture, assert_no_canary};
use serde_json::{Value, json};

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn run(fx: &Fixture, args: &[&OsStr]) -> Output {
    let out = fx.ionport(args);
    assert_no_canary(&String::from_utf8_lossy(&out.stdout), "stdout");
    assert_no_canary(&String::from_utf8_lossy(&out.stderr), "stderr");
    out
}

/// stdout as JSON lines; a line that is not JSON fails the test.
fn messages(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The `error` objects of the ERROR traces.
fn errors(msgs: &[Value]) -> Vec<&Value> {
    msgs.iter()
        .filter(|m| m["type"] == "TRACE" && m["trace"]["type"] == "ERROR")
        .map(|m| &m["trace"]["error"])
        .collect()
}

fn count(msgs: &[Value], kind: &str) -> usize {
    msgs.iter().filter(|m| m["type"] == kind).count()
}

fn configured(name: &str) -> Value {
    json!({
        "stream": {"name": name, "json_schema": {}, "supported_sync_modes": ["full_refresh"]},
        "sync_mode": "full_refresh",
        "destination_sync_mode": "overwrite",
    })
}

#[test]
fn an_integer_written_as_a_float_is_a_config_error_naming_the_field() {
    let fx = Fixture::start(20);
    for connector in ["infor-m3", "infor-ln"] {
        let config = fx.config_with(connector, |v| v["company"] = json!(100.0));
        let out = run(
            &fx,
            &[
                os("airbyte"),
                os(connector),
                os("discover"),
                os("--config"),
                config.as_os_str(),
            ],
        );
        assert!(!out.status.success());
        let msgs = messages(&out);
        let errs = errors(&msgs);
        assert_eq!(errs.len(), 1, "{msgs:?}");
        assert_eq!(
            errs[0]["failure_type"], "config_error",
            "{connector}: {msgs:?}"
        );
        let msg = errs[0]["message"].as_str().unwrap();
        assert!(
            msg.contains(&format!("{connector}.config.json"))
                && msg.contains("company")
                && msg.contains("integer"),
            "{msg}"
        );
        assert_eq!(count(&msgs, "CATALOG"), 0);

        // The same value written as an integer is discovered.
        let config = fx.config_with(connector, |v| v["company"] = json!(100));
        let out = run(
            &fx,
            &[
                os("airbyte"),
                os(connector),
                os("discover"),
                os("--config"),
                config.as_os_str(),
            ],
        );
        assert!(out.status.success(), "{:?}", messages(&out));
        assert_eq!(count(&messages(&out), "CATALOG"), 1);
    }
}

#[test]
fn a_configured_catalog_naming_a_stream_twice_is_refused_before_reading() {
    let fx = Fixture::start(20);
    let config = fx.config("infor-m3");
    let catalog = fx.write(
        "twice.json",
        &json!({"streams": [configured("customers"), configured("suppliers"), configured("customers")]}),
    );
    let out = run(
        &fx,
        &[
            os("airbyte"),
            os("infor-m3"),
            os("read"),
            os("--config"),
            config.as_os_str(),
            os("--catalog"),
            catalog.as_os_str(),
        ],
    );
    assert!(!out.status.success());
    let msgs = messages(&out);
    let errs = errors(&msgs);
    assert_eq!(errs.len(), 1, "{msgs:?}");
    assert_eq!(errs[0]["failure_type"], "config_error");
    let msg = errs[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("twice.json") && msg.contains("streams[2]") && msg.contains("customers"),
        "{msg}"
    );
    // Nothing was read: no status, no record.
    assert_eq!(count(&msgs, "RECORD"), 0, "{msgs:?}");
    assert_eq!(msgs.len(), 1, "{msgs:?}");
}

#[test]
fn an_unknown_stream_is_a_config_error_and_the_others_are_read() {
    let fx = Fixture::start(20);
    let config = fx.config("infor-m3");
    let catalog = fx.write(
        "unknown.json",
        &json!({"streams": [configured("customerz"), configured("suppliers")]}),
    );
    let out = run(
        &fx,
        &[
            os("airbyte"),
            os("infor-m3"),
            os("read"),
            os("--config"),
            config.as_os_str(),
            os("--catalog"),
            catalog.as_os_str(),
        ],
    );
    assert!(!out.status.success());
    let msgs = messages(&out);
    let errs = errors(&msgs);
    assert_eq!(errs.len(), 2, "{msgs:?}");
    assert_eq!(errs[0]["stream_descriptor"]["name"], "customerz");
    assert_eq!(errs[0]["failure_type"], "config_error", "{msgs:?}");
    // The closing trace: every failed stream failed for the configuration.
    assert!(errs[1].get("stream_descriptor").is_none());
    assert_eq!(errs[1]["failure_type"], "config_error", "{msgs:?}");
    assert!(
        msgs.iter()
            .any(|m| m["type"] == "RECORD" && m["record"]["stream"] == "suppliers"),
        "the known stream was not read"
    );
}

#[test]
fn a_singer_catalog_with_two_entries_for_one_stream_is_refused() {
    let fx = Fixture::start(20);
    let config = fx.config("infor-m3");
    let out = run(
        &fx,
        &[
            os("singer"),
            os("infor-m3"),
            os("--config"),
            config.as_os_str(),
            os("--discover"),
        ],
    );
    assert!(out.status.success());
    let mut catalog: Value = serde_json::from_slice(&out.stdout).unwrap();
    let streams = catalog["streams"].as_array_mut().unwrap();
    let mut customers = streams
        .iter()
        .find(|s| s["tap_stream_id"] == "customers")
        .cloned()
        .unwrap();
    customers["metadata"][0]["metadata"]["selected"] = json!(true);
    let both = vec![customers.clone(), customers];
    *streams = both;
    let path = fx.write("singer-twice.json", &catalog);
    let out = run(
        &fx,
        &[
            os("singer"),
            os("infor-m3"),
            os("--config"),
            config.as_os_str(),
            os("--catalog"),
            path.as_os_str(),
        ],
    );
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("singer-twice.json")
            && stderr.contains("streams[1]")
            && stderr.contains("customers"),
        "{stderr}"
    );
}

#[test]
fn discover_with_a_password_the_gateway_refuses_is_a_config_error() {
    let fx = Fixture::start(20);
    let wrong = "CANARY-wrong-password-5be0";
    for connector in ["infor-m3", "infor-datalake"] {
        let config = fx.config_with(connector, |v| v["credentials"]["password"] = json!(wrong));
        let out = run(
            &fx,
            &[
                os("airbyte"),
                os(connector),
                os("discover"),
                os("--config"),
                config.as_os_str(),
            ],
        );
        assert!(!out.status.success());
        assert!(!String::from_utf8_lossy(&out.stdout).contains(wrong));
        let msgs = messages(&out);
        let errs = errors(&msgs);
        assert_eq!(errs.len(), 1, "{msgs:?}");
        assert_eq!(
            errs[0]["failure_type"], "config_error",
            "{connector}: {msgs:?}"
        );
    }
}
