//! The plugin ABI end to end: real cdylibs loaded through abi_stable.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use ionport_core::host::{HostCallbacks, HostResponse, OfflineHost};
use ionport_core::plugin::{PluginRegistry, RefusedPlugin};
use ionport_plugin_abi::load::LoadError;
use ionport_plugin_abi::wire::{ConnectionConfig, GatewayRequestHead, ReadRequest, SyncMode};
use ionport_plugin_abi::{ABI_VERSION, PluginError, RecordBatch};
use ionport_tests::{connector_libs, ionport, non_plugin_library, plugin_lib};
use serde_json::{Value, json};

fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

fn read_json(path: PathBuf) -> Value {
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run `cargo xtask schemas`)", path.display()));
    serde_json::from_str(&text).expect("schema files are JSON")
}

#[test]
fn the_three_connectors_load_and_match_schemas_dir() {
    let reg = PluginRegistry::load_from(&connector_libs());
    assert!(reg.refused().is_empty(), "refused: {:?}", reg.refused());
    let mut ids: Vec<&str> = reg.plugins().iter().map(|p| p.id()).collect();
    ids.sort();
    assert_eq!(ids, ["infor-datalake", "infor-ln", "infor-m3"]);
    for p in reg.plugins() {
        let dir = schemas_dir().join("connectors").join(p.id());
        assert_eq!(p.manifest().abi_version, ABI_VERSION);
        // The form and every task round-trip through JSON and equal the checked-in files.
        assert_eq!(
            p.connection_form(),
            &read_json(dir.join("connection-form.schema.json"))
        );
        for t in p.tasks() {
            let file = read_json(dir.join("tasks").join(format!("{}.json", t.name)));
            assert_eq!(serde_json::to_value(t).unwrap(), file, "task {}", t.name);
        }
        // Secrets are marked in every form.
        let secrets = ionport_plugin_sdk::form::secret_fields(p.connection_form());
        assert_eq!(
            secrets,
            ["credentials.client_secret", "credentials.password"],
            "{}",
            p.id()
        );
    }
    let m3 = reg.get("infor-m3").unwrap();
    let props = m3.connection_form()["properties"].as_object().unwrap();
    assert!(props.contains_key("company") && props.contains_key("division"));
    let ln = reg.get("infor-ln").unwrap();
    let props = ln.connection_form()["properties"].as_object().unwrap();
    assert!(props.contains_key("company") && props.contains_key("language"));
}

#[test]
fn an_incompatible_abi_is_refused_naming_both_versions_and_the_path_and_others_still_load() {
    let bad = plugin_lib("ionport_test_plugin_incompatible");
    let mut entries = vec![bad.clone()];
    entries.extend(connector_libs());
    let reg = PluginRegistry::load_from(&entries);
    assert_eq!(reg.plugins().len(), 3, "the good plugins still load");
    assert_eq!(reg.refused().len(), 1);
    let refusal = &reg.refused()[0];
    assert!(
        matches!(
            refusal,
            RefusedPlugin::Load(LoadError::IncompatibleAbi { .. })
        ),
        "{refusal:?}"
    );
    let msg = refusal.to_string();
    assert!(msg.contains(&bad.display().to_string()), "{msg}");
    assert!(msg.contains("2.0.0") && msg.contains(ABI_VERSION), "{msg}");
}

#[test]
fn a_non_plugin_a_missing_file_and_a_truncated_file_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("libnothing_connector.so");
    let truncated = dir.path().join("libtruncated_connector.so");
    let whole = std::fs::read(plugin_lib("ionport_connector_m3")).unwrap();
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    let garbage = dir.path().join("libgarbage_connector.so");
    std::fs::write(&garbage, b"this is not a library").unwrap();
    let not_plugin = non_plugin_library();

    let mut reg = PluginRegistry::default();
    let e = reg.load(&missing).unwrap_err().to_string();
    assert!(
        e.contains("no such file") && e.contains("libnothing_connector.so"),
        "{e}"
    );
    let e = reg.load(&truncated).unwrap_err().to_string();
    assert!(
        e.contains("truncated") && e.contains("libtruncated_connector.so"),
        "{e}"
    );
    let e = reg.load(&garbage).unwrap_err().to_string();
    assert!(e.contains("not a loadable shared library"), "{e}");
    let e = reg.load(&not_plugin).unwrap_err().to_string();
    assert!(e.contains("not an ionport plugin"), "{e}");
    // The host is still fine and loads a good plugin after all that.
    assert!(reg.load(&plugin_lib("ionport_connector_ln")).is_ok());
    assert_eq!(reg.refused().len(), 4);
}

#[test]
fn a_broken_descriptor_is_refused_with_every_problem() {
    let mut reg = PluginRegistry::default();
    let e = reg
        .load(&plugin_lib("ionport_test_plugin_broken"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("manifest.id \"Broken Test\""), "{e}");
    assert!(e.contains("'api_token' looks like a secret"), "{e}");
    assert!(e.contains("primary key field 'no_such_field'"), "{e}");
}

#[test]
fn the_same_id_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("libcopy_connector.so");
    std::fs::copy(plugin_lib("ionport_connector_m3"), &copy).unwrap();
    let reg = PluginRegistry::load_from(&[plugin_lib("ionport_connector_m3"), copy.clone()]);
    assert_eq!(reg.plugins().len(), 1);
    let e = reg.refused()[0].to_string();
    assert!(e.contains("'infor-m3' is already taken"), "{e}");
}

fn test_plugin() -> Arc<ionport_core::plugin::LoadedPlugin> {
    let mut reg = PluginRegistry::default();
    reg.load(&plugin_lib("ionport_test_plugin"))
        .expect("the test plugin loads")
        .clone()
}

fn conn(settings: Value) -> ConnectionConfig {
    ConnectionConfig { settings }
}

#[test]
fn a_panic_in_check_or_read_comes_back_as_an_error_and_the_host_carries_on() {
    let p = test_plugin();
    let host: Arc<dyn HostCallbacks> = Arc::new(OfflineHost::default());
    for _ in 0..3 {
        let e = p
            .check(host.clone(), &conn(json!({ "panic_in": "check" })))
            .unwrap_err();
        assert!(e.is_panic(), "{e}");
        assert!(e.to_string().contains("asked to panic in check"), "{e}");
        let req = ReadRequest {
            connection: conn(json!({ "panic_in": "read" })),
            task: "numbers".into(),
            sync_mode: SyncMode::FullRefresh,
            state: None,
            page_size: None,
            pages_in_flight: None,
            options: Value::Null,
            columns: None,
            include_deleted: false,
            partition: None,
        };
        let e = p.read(host.clone(), &req).unwrap_err();
        assert!(
            e.is_panic() && e.to_string().contains("asked to panic in read"),
            "{e}"
        );
        // And the plugin still works afterwards.
        let ok = p.check(host.clone(), &conn(json!({}))).unwrap();
        assert!(ok.success);
    }
    let e = p
        .check(host, &conn(json!({ "fail_in": "check" })))
        .unwrap_err();
    assert!(
        !e.is_panic() && e.to_string().contains("asked to fail in check"),
        "{e}"
    );
}

/// Host callbacks that record what the plugin does.
#[derive(Default)]
struct RecordingHost {
    batches: std::sync::Mutex<Vec<(String, u64, usize)>>,
    checkpoints: std::sync::Mutex<Vec<String>>,
    gateway_paths: std::sync::Mutex<Vec<String>>,
    cancel_after_checkpoints: Option<usize>,
}

impl HostCallbacks for RecordingHost {
    fn gateway(
        &self,
        head: GatewayRequestHead,
        _body: Vec<u8>,
    ) -> Result<HostResponse, PluginError> {
        self.gateway_paths.lock().unwrap().push(head.path.clone());
        Ok(HostResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: format!("{{\"echo\":\"{}\"}}", head.path).into_bytes(),
        })
    }
    fn emit(&self, batch: RecordBatch) -> Result<(), PluginError> {
        let lines = batch
            .ndjson
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        self.batches
            .lock()
            .unwrap()
            .push((batch.stream.into_string(), batch.count, lines));
        Ok(())
    }
    fn checkpoint(&self, state: &str) -> Result<(), PluginError> {
        self.checkpoints.lock().unwrap().push(state.to_string());
        Ok(())
    }
    fn cancelled(&self) -> bool {
        self.cancel_after_checkpoints
            .is_some_and(|n| self.checkpoints.lock().unwrap().len() >= n)
    }
}

fn read(task: &str, options: Value, state: Option<Value>) -> ReadRequest {
    ReadRequest {
        connection: conn(json!({})),
        task: task.into(),
        sync_mode: SyncMode::Incremental,
        state,
        page_size: None,
        pages_in_flight: None,
        options,
        columns: None,
        include_deleted: false,
        partition: None,
    }
}

#[test]
fn records_cross_in_batches_with_checkpoints_and_resume_from_state() {
    let p = test_plugin();
    let host = Arc::new(RecordingHost::default());
    let summary = p
        .read(
            host.clone(),
            &read("numbers", json!({ "count": 1050, "batch": 100 }), None),
        )
        .unwrap();
    assert_eq!(summary.records, 1050);
    let batches = host.batches.lock().unwrap().clone();
    assert_eq!(
        batches.len(),
        11,
        "1050 records in batches of 100, never one call per record"
    );
    assert!(
        batches
            .iter()
            .all(|(s, count, lines)| s == "numbers" && *count as usize == *lines)
    );
    assert_eq!(
        host.checkpoints.lock().unwrap().last().unwrap(),
        r#"{"offset":1050}"#
    );

    let host = Arc::new(RecordingHost::default());
    let summary = p
        .read(
            host.clone(),
            &read(
                "numbers",
                json!({ "count": 1050, "batch": 100 }),
                Some(json!({ "offset": 1000 })),
            ),
        )
        .unwrap();
    assert_eq!(summary.records, 50, "resumes from the state");
}

#[test]
fn cancellation_is_honoured_between_batches() {
    let p = test_plugin();
    let host = Arc::new(RecordingHost {
        cancel_after_checkpoints: Some(3),
        ..Default::default()
    });
    let e = p
        .read(
            host.clone(),
            &read("numbers", json!({ "count": 100000, "batch": 10 }), None),
        )
        .unwrap_err();
    assert_eq!(e.kind(), "cancelled", "{e}");
    assert_eq!(host.checkpoints.lock().unwrap().len(), 3);
}

#[test]
fn the_gateway_call_reaches_the_host_and_its_answer_the_plugin() {
    let p = test_plugin();
    let host = Arc::new(RecordingHost::default());
    p.read(
        host.clone(),
        &read(
            "gateway_echo",
            json!({ "path": "M3/m3api-rest/v2/execute/CRS610MI/LstByNumber" }),
            None,
        ),
    )
    .unwrap();
    assert_eq!(
        host.gateway_paths.lock().unwrap().as_slice(),
        ["M3/m3api-rest/v2/execute/CRS610MI/LstByNumber"]
    );
    assert_eq!(host.batches.lock().unwrap().len(), 1);
}

#[test]
fn without_a_gateway_every_connector_check_fails_cleanly() {
    let reg = PluginRegistry::load_from(&connector_libs());
    let host: Arc<dyn HostCallbacks> = Arc::new(OfflineHost::default());
    for p in reg.plugins() {
        let settings = json!({ "company": 100 });
        match p.check(host.clone(), &conn(settings)) {
            Ok(report) => {
                assert!(!report.success, "{}: {report:?}", p.id());
                assert!(report.failed_part.is_some(), "{}: {report:?}", p.id());
            }
            Err(e) => assert!(
                !e.is_panic() && e.kind() != "not_supported",
                "{}: {e}",
                p.id()
            ),
        }
    }
}

#[test]
fn cli_verify_passes_the_connectors_and_fails_the_broken_plugins_with_reasons() {
    for lib in connector_libs() {
        let out = ionport(&[], &["plugins", "verify", lib.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}\n{stdout}", lib.display());
        assert!(stdout.contains("passed: 8 checks"), "{stdout}");
    }
    let cases = [
        (
            "ionport_test_plugin_incompatible",
            "built for ionport plugin ABI 2.0.0",
        ),
        (
            "ionport_test_plugin_broken",
            "primary key field 'no_such_field'",
        ),
    ];
    for (lib, reason) in cases {
        let out = ionport(
            &[],
            &["plugins", "verify", plugin_lib(lib).to_str().unwrap()],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(
            stdout.contains("FAIL") && stdout.contains(reason),
            "{stdout}"
        );
    }
}

#[test]
fn cli_lists_and_shows_plugins_as_json() {
    let out = ionport(&connector_libs(), &["plugins", "list", "--json"]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["plugins"].as_array().unwrap().len(), 3);
    let out = ionport(
        &connector_libs(),
        &["plugins", "show", "infor-ln", "--json"],
    );
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["manifest"]["id"], "infor-ln");
    assert_eq!(v["tasks"].as_array().unwrap().len(), 3);
    let out = ionport(&connector_libs(), &["plugins", "show", "infor-nope"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no plugin with id 'infor-nope'") && err.contains("infor-m3"),
        "{err}"
    );
}
