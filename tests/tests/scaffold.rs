//! `ionport plugins new` makes a connector crate on the SDK's stream API that builds,
//! passes the conformance kit, reads the emulator's business partners through core's own
//! host (full and incremental), and stays within 60 lines of author code.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use ionport_core::plugin::PluginRegistry;
use ionport_emulator::EmulatorConfig;
use ionport_plugin_abi::wire::SyncMode;
use ionport_tests::live::{self, Live, key_of};
use ionport_tests::{ionport, profile_dir};
use serde_json::{Value, json};

/// The most author code a generated connector may have.
const MAX_AUTHOR_LINES: usize = 60;

/// Author code: the lines of the crate's `src/*.rs` that are neither blank nor comments
/// (`//`, `///`, `//!`). Attributes, `use` lines and braces count.
fn author_lines(root: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(root.join("src")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            n += std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("//"))
                .count();
        }
    }
    n
}

#[test]
fn the_line_count_skips_blank_and_comment_lines_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(
        dir.path().join("src/lib.rs"),
        "//! docs\n\n/// doc\n#[derive(Debug)]\n  // note\nstruct A; // trailing\n}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("src/notes.txt"), "x\ny\n").unwrap();
    assert_eq!(author_lines(dir.path()), 3);
}

/// `ionport plugins new acme-erp` into `dir`, then `cargo test` of it (the conformance kit);
/// returns the crate's root and the built library.
fn generate_and_build(dir: &Path) -> (PathBuf, PathBuf) {
    let out = ionport(
        &[],
        &["plugins", "new", "acme-erp", "--dir", dir.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = dir.join("acme-erp-connector");
    assert!(root.join("src/lib.rs").is_file() && root.join("tests/conformance.rs").is_file());

    // Same dependency versions as the workspace, and the workspace's target directory,
    // so that the build reuses what is already compiled.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::copy(workspace.join("Cargo.lock"), root.join("Cargo.lock")).unwrap();
    let target = profile_dir().parent().unwrap().to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let test = Command::new(&cargo)
        .args(["test", "--quiet"])
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&test.stdout);
    assert!(
        test.status.success(),
        "cargo test of the scaffold failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
    let lib = target.join("debug/deps").join(format!(
        "{}acme_erp_connector.{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_EXTENSION
    ));
    (root, lib)
}

#[test]
fn a_scaffolded_connector_builds_verifies_reads_the_emulator_and_is_short() {
    let dir = tempfile::tempdir().unwrap();
    let (root, lib) = generate_and_build(dir.path());

    let lines = author_lines(&root);
    assert!(
        lines <= MAX_AUTHOR_LINES,
        "the template has {lines} lines of author code, more than {MAX_AUTHOR_LINES}"
    );

    // The same library passes `ionport plugins verify` and loads by its id.
    let out = ionport(&[], &["plugins", "verify", lib.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = ionport(
        std::slice::from_ref(&lib),
        &["plugins", "show", "acme-erp", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(shown.to_string().contains("\"partners\""), "{shown}");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(reads_the_emulator(lib));

    // A second time into the same place is refused, naming the path.
    let again = ionport(
        &[],
        &[
            "plugins",
            "new",
            "acme-erp",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let bad = ionport(
        &[],
        &[
            "plugins",
            "new",
            "Bad Name",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a connector id"));
}

/// Company 100 of the emulator at scale 45 has 45 business partners, `C000000001` to
/// `C000000045` (emulator/README.md, "Data").
const PARTNERS: u64 = 45;

async fn reads_the_emulator(lib: PathBuf) {
    let reg = PluginRegistry::load_from(&[lib]);
    assert!(reg.refused().is_empty(), "{:?}", reg.refused());
    let plugin = live::plugin(&reg, "acme-erp");
    let live = Live::start(EmulatorConfig {
        scale: PARTNERS,
        ..EmulatorConfig::default()
    })
    .await;
    let conn = live.connection();
    let settings = json!({"service_path": "LN/lnapi/odata/tcapi.comBusinessPartner"});
    let read = |mode, state| {
        live::read(
            &plugin,
            &conn,
            "partners",
            settings.clone(),
            mode,
            state,
            10,
        )
    };

    // A full read: every partner once, in pages of 10 (several in flight).
    let full = read(SyncMode::FullRefresh, None).await;
    assert_eq!(full.error, None);
    let keys: Vec<String> = full
        .records
        .iter()
        .map(|r| key_of(r, &["BusinessPartner"]))
        .collect();
    let expected: Vec<String> = (1..=PARTNERS).map(|i| format!("C{i:09}")).collect();
    assert_eq!(keys, expected);
    let stamps: BTreeSet<String> = full
        .records
        .iter()
        .map(|r| r["LastModifiedDateTime"].as_str().unwrap().to_string())
        .collect();
    let newest = stamps.last().unwrap().clone();
    assert_eq!(full.state, Some(json!({"cursor": newest})));

    // A change at the source, then an incremental read from that state: the partners
    // changed at or after the cursor, and the changed one.
    let changed = live
        .control(
            "POST",
            "changes",
            Some(json!({"table": "BusinessPartners", "indices": [4]})),
        )
        .await;
    assert_eq!(changed["keys"], json!(["C000000005"]), "{changed}");
    let inc = read(SyncMode::Incremental, full.state.clone()).await;
    assert_eq!(inc.error, None);
    let got: BTreeSet<String> = inc
        .records
        .iter()
        .map(|r| key_of(r, &["BusinessPartner"]))
        .collect();
    let mut want: BTreeSet<String> = full
        .records
        .iter()
        .filter(|r| r["LastModifiedDateTime"].as_str().unwrap() >= newest.as_str())
        .map(|r| key_of(r, &["BusinessPartner"]))
        .collect();
    want.insert("C000000005".into());
    assert_eq!(got, want);
    let c5 = inc
        .records
        .iter()
        .find(|r| r["BusinessPartner"] == "C000000005")
        .unwrap();
    assert!(
        c5["LastModifiedDateTime"].as_str().unwrap() > newest.as_str(),
        "{c5:?}"
    );
    assert_eq!(
        inc.state,
        Some(json!({"cursor": c5["LastModifiedDateTime"]}))
    );
}
