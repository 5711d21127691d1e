//! `ionport plugins new` makes a connector crate that builds and passes the conformance
//! kit as generated.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use ionport_tests::{ionport, profile_dir};

#[test]
fn a_scaffolded_connector_builds_and_passes_the_conformance_kit() {
    let dir = tempfile::tempdir().unwrap();
    let out = ionport(
        &[],
        &[
            "plugins",
            "new",
            "acme-erp",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = dir.path().join("acme-erp-connector");
    assert!(root.join("src/lib.rs").is_file() && root.join("tests/conformance.rs").is_file());

    // Same dependency versions as the workspace, and the workspace's target directory,
    // so that the build reuses what is already compiled.
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
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

    // The same library passes `ionport plugins verify` and loads by its id.
    let lib = target.join("debug/deps").join(format!(
        "{}acme_erp_connector.{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_EXTENSION
    ));
    let out = ionport(&[], &["plugins", "verify", lib.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = ionport(&[lib], &["plugins", "show", "acme-erp", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

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
