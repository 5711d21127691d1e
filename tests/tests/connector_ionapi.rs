//! The declarative ION API connector (`infor-ionapi`) through core's own host against the
//! emulator's generic ION API (emulator/src/generic.rs): each paging style read in full and
//! incrementally, a broken manifest refused at its line, a wrong-shaped answer an error,
//! and the conformance kit.
//!
//! The oracle is the emulator's documented widget formula (emulator/README.md, "Generic
//! ION API"), written out here: widget `i` of `1..=scale` is `W{i:06}`, its `updated`
//! 2026-01-01T00:00:00Z plus `i / 2` minutes.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ionport_core::host::HostCallbacks;
use ionport_plugin_abi::wire::ConnectionConfig;
use ionport_tests::emulated::Emulated;

use ionport_core::plugin::PluginRegistry;
use ionport_emulator::EmulatorConfig;
use ionport_plugin_abi::wire::SyncMode;
use ionport_tests::live::{self, Got, Live, key_of};
use ionport_tests::{ionport, output_text, plugin_lib, run_pipeline, sqlite};
use serde_json::{Value, json};

const WIDGETS: u64 = 45;

/// Widget `i`'s stamp, from the documented formula (valid for the small scales here).
fn stamp(i: u64) -> String {
    let m = i / 2;
    format!("2026-01-01T{:02}:{:02}:00Z", m / 60, m % 60)
}

fn ids(range: std::ops::RangeInclusive<u64>) -> Vec<String> {
    range.map(|i| format!("W{i:06}")).collect()
}

/// One stream per paging style over the same widgets, and one whose records pointer is
/// wrong.
const MANIFEST: &str = r#"
[[streams]]
name = "by_page"
description = "Widgets, by page number."
path = "GENERIC/v1/widgets/page"
records = "/data/items"
paging = { style = "page" }
primary_key = ["id"]
cursor = { field = "updated", param = "since" }
schema = { id = "string", name = "string", amount = "number", updated = "string" }

[[streams]]
name = "by_offset"
description = "Widgets, by offset."
path = "GENERIC/v1/widgets/offset"
records = "/value"
paging = { style = "offset", offset_param = "offset", size_param = "limit" }
primary_key = ["id"]
cursor = { field = "updated", param = "since" }
schema = { id = "string", name = "string", amount = "number", updated = "string" }

[[streams]]
name = "by_link"
description = "Widgets, by next link."
path = "GENERIC/v1/widgets/linked"
records = "/items"
paging = { style = "next_link", next = "/links/next" }
primary_key = ["id"]
cursor = { field = "updated", param = "since" }
schema = { id = "string", name = "string", amount = "number", updated = "string" }

[[streams]]
name = "by_key"
description = "Widgets, by last key."
path = "GENERIC/v1/widgets/keyed"
records = ""
paging = { style = "key", key_param = "after" }
primary_key = ["id"]
cursor = { field = "updated", param = "since" }
schema = { id = "string", name = "string", amount = "number", updated = "string" }

[[streams]]
name = "misplaced"
description = "Widgets, looked for where they are not."
path = "GENERIC/v1/widgets/offset"
records = "/data/items"
paging = { style = "offset" }
primary_key = ["id"]
schema = { id = "string" }
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn registry() -> PluginRegistry {
    let reg = PluginRegistry::load_from(&[plugin_lib("ionport_connector_ionapi")]);
    assert!(reg.refused().is_empty(), "{:?}", reg.refused());
    reg
}

struct Fixture {
    live: Live,
    reg: PluginRegistry,
}

impl Fixture {
    async fn start() -> Self {
        let live = Live::start(EmulatorConfig {
            scale: WIDGETS,
            ..EmulatorConfig::default()
        })
        .await;
        write(live.dir.path(), "widgets.toml", MANIFEST);
        Self {
            live,
            reg: registry(),
        }
    }

    async fn read_with(
        &self,
        manifest: &Path,
        task: &str,
        mode: SyncMode,
        state: Option<Value>,
    ) -> Got {
        let plugin = live::plugin(&self.reg, "infor-ionapi");
        live::read(
            &plugin,
            &self.live.connection(),
            task,
            json!({"manifest": manifest}),
            mode,
            state,
            10,
        )
        .await
    }

    async fn read(&self, task: &str, mode: SyncMode, state: Option<Value>) -> Got {
        let manifest = self.live.dir.path().join("widgets.toml");
        self.read_with(&manifest, task, mode, state).await
    }
}

fn keys(got: &Got) -> Vec<String> {
    got.records.iter().map(|r| key_of(r, &["id"])).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_paging_style_reads_every_widget_then_incrementally_from_a_cursor() {
    let f = Fixture::start().await;
    for task in ["by_page", "by_offset", "by_link", "by_key"] {
        // Full: every widget once, in order, in pages of 10; the state is the newest stamp.
        let full = f.read(task, SyncMode::FullRefresh, None).await;
        assert_eq!(full.error, None, "{task}");
        assert_eq!(keys(&full), ids(1..=WIDGETS), "{task}");
        assert_eq!(full.records[0]["amount"], json!(1.5), "{task}");
        assert_eq!(
            full.state,
            Some(json!({"cursor": stamp(WIDGETS)})),
            "{task}"
        );

        // Incremental from 00:10 (widgets 20 and 21 share it): widgets 20 to 45.
        let from = json!({"cursor": "2026-01-01T00:10:00Z"});
        let inc = f.read(task, SyncMode::Incremental, Some(from)).await;
        assert_eq!(inc.error, None, "{task}");
        assert_eq!(keys(&inc), ids(20..=WIDGETS), "{task}");
        assert_eq!(inc.state, Some(json!({"cursor": stamp(WIDGETS)})), "{task}");

        // Again from the full read's state: the filter is `>=`, so the two widgets of the
        // last stamp come again (the key deduplicates them) and the state stays.
        let again = f
            .read(task, SyncMode::Incremental, full.state.clone())
            .await;
        assert_eq!(again.error, None, "{task}");
        assert_eq!(keys(&again), ids(44..=WIDGETS), "{task}");
        assert_eq!(again.state, full.state, "{task}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builtin_stream_reads_the_service_account() {
    let f = Fixture::start().await;
    let got = f.read("service_account", SyncMode::FullRefresh, None).await;
    assert_eq!(got.error, None);
    assert_eq!(got.records.len(), 1);
    let tenant = EmulatorConfig::default().tenant;
    assert_eq!(
        got.records[0]["id"],
        json!(format!("{tenant}-ionport-service-user"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_shaped_answer_is_an_error_not_an_empty_stream() {
    let f = Fixture::start().await;
    let got = f.read("misplaced", SyncMode::FullRefresh, None).await;
    let (kind, message) = got.error.expect("the read fails");
    assert_eq!(kind, "unexpected_body", "{message}");
    assert!(message.contains("\"/data/items\""), "{message}");
    assert!(got.records.is_empty());
    let unknown = f.read("nope", SyncMode::FullRefresh, None).await;
    let (_, message) = unknown.error.expect("an unknown stream is refused");
    assert!(message.contains("no stream named 'nope'"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_manifest_is_refused_naming_its_line() {
    let f = Fixture::start().await;
    let dir = f.live.dir.path();
    // (what is broken, the text, the line the error must name), lines counted by hand in
    // MANIFEST: line 1 is empty, `[[streams]]` on 2, `records` of by_page on 6.
    let cases = [
        (
            "a wrong type",
            MANIFEST.replacen(r#"records = "/data/items""#, "records = 7", 1),
            6,
            "records",
        ),
        (
            "an unknown key",
            MANIFEST.replacen("primary_key = [\"id\"]", "primary_keys = [\"id\"]", 1),
            8,
            "primary_keys",
        ),
        (
            "a missing field",
            MANIFEST.replacen("path = \"GENERIC/v1/widgets/page\"\n", "", 1),
            2,
            "path",
        ),
    ];
    for (what, text, line, names) in cases {
        let path = write(dir, "broken.toml", &text);
        let got = f
            .read_with(&path, "by_offset", SyncMode::FullRefresh, None)
            .await;
        let (kind, message) = got.error.unwrap_or_else(|| panic!("{what} is refused"));
        assert_eq!(kind, "invalid_input", "{what}: {message}");
        let at = format!("{}:{line}:", path.display());
        assert!(message.contains(&at), "{what}: {message} should name {at}");
        assert!(message.contains(names), "{what}: {message}");
        assert!(got.records.is_empty(), "{what}");
    }
}

#[test]
fn check_refuses_a_broken_manifest_with_its_line_and_passes_a_good_one() {
    let emu = Emulated::start(EmulatorConfig::default());
    let reg = registry();
    let plugin = live::plugin(&reg, "infor-ionapi");
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.toml", MANIFEST);
    let check = |manifest: &Path| {
        plugin
            .check(
                emu.host() as Arc<dyn HostCallbacks>,
                &ConnectionConfig {
                    settings: json!({"manifest": manifest}),
                },
            )
            .unwrap()
    };
    let ok = check(&good);
    assert!(ok.success, "{ok:?}");
    // `paging` of the third stream (line 27) with a style that does not exist.
    let text = MANIFEST.replacen(r#"style = "next_link""#, r#"style = "link""#, 1);
    let broken = write(dir.path(), "broken.toml", &text);
    let r = check(&broken);
    assert!(!r.success);
    assert_eq!(r.failed_part.as_deref(), Some("settings"), "{r:?}");
    let at = format!("{}:27:", broken.display());
    assert!(
        r.message.contains(&at) && r.message.contains("link"),
        "{r:?}"
    );
    let absent = check(&dir.path().join("absent.toml"));
    assert!(
        !absent.success && absent.message.contains("absent.toml"),
        "{absent:?}"
    );
}

#[test]
fn passes_the_conformance_kit() {
    let lib = plugin_lib("ionport_connector_ionapi");
    let out = ionport(&[], &["plugins", "verify", lib.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_pipeline_file_reads_declared_streams_into_sqlite() {
    let emu = Emulated::start(EmulatorConfig {
        scale: WIDGETS,
        ..EmulatorConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("t.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let manifest = write(dir.path(), "widgets.toml", MANIFEST);
    let db = dir.path().join("widgets.db");
    let text = format!(
        r#"
[environments.local]
destination = {{ type = "sqlite", path = '{db}' }}

[connections.generic]
connector = "infor-ionapi"
credentials = {{ ionapi = '{ionapi}' }}
settings = {{ manifest = '{manifest}' }}
quota = "none"

[pipelines.widgets]
connection = "generic"
environment = "local"
page_size = 10
tasks = ["by_page", "by_key"]
"#,
        db = db.display(),
        ionapi = ionapi.display(),
        manifest = manifest.display(),
    );
    let file = write(dir.path(), "pipelines.toml", &text);
    let out = run_pipeline(&file, None);
    let all = output_text(&out);
    assert!(out.status.success(), "{all}");
    for stream in ["by_page", "by_key"] {
        let (cols, rows) = sqlite::table(&db, stream);
        assert!(cols.contains(&"updated".to_string()), "{cols:?}");
        let got: Vec<String> = rows.iter().map(|r| key_of(r, &["id"])).collect();
        assert_eq!(got.len() as u64, WIDGETS, "{stream}");
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, ids(1..=WIDGETS), "{stream}");
    }
}
