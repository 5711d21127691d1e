#![allow(clippy::unwrap_used)]
//! The served OpenAPI document is good enough to generate a working client from:
//! `openapi-python-client` (PyPI, pinned) generates a package from a real `ionport serve`'s
//! `/openapi.json`, the package is installed beside its pinned dependencies, and a script
//! that uses only the generated code creates a connection to the emulator, tests it,
//! starts a run and polls it until it is final. The records the client reports are
//! checked against the emulator's own count and the JSONL file the run wrote.

use std::path::Path;
use std::process::{Command, Output};

use ionport_tests::protocol_fixture::{Fixture, assert_no_canary};
use ionport_tests::python;
use ionport_tests::serve_process::{ServeProcess, TEST_KEY};
use serde_json::{Value, json};

/// The generator, with the `ruff` it formats the generated code with.
const GENERATOR: (&str, &[&str]) = ("openapi-python-client", &["openapi-python-client==0.29.1"]);

/// What the generated package needs at run time (its pyproject asks for httpx and attrs;
/// python-dateutil for date-time fields) and the build backend of its pyproject.
const CLIENT_RUNTIME: (&str, &[&str]) = (
    "openapi-client-runtime",
    &[
        "httpx==0.28.1",
        "attrs==26.1.0",
        "python-dateutil==2.9.0.post0",
        "poetry-core==2.5.0",
    ],
);

const SCALE: u64 = 150;

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `PATH` with the venv's `bin` first: the generator runs `ruff` from it.
fn path_with(venv: &Path) -> std::ffi::OsString {
    let bin = python::bin(venv, "python").parent().unwrap().to_path_buf();
    let mut dirs = vec![bin];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}

#[test]
fn a_generated_python_client_creates_tests_and_runs_a_connection() {
    let fx = Fixture::start(SCALE);
    let home = tempfile::tempdir().unwrap();
    let srv = ServeProcess::start(home.path(), &[], "info");

    // The document as a client author gets it: over HTTP, without a key.
    let doc = reqwest::blocking::get(format!("{}/openapi.json", srv.base))
        .unwrap()
        .text()
        .unwrap();
    let doc_file = fx.dir.path().join("openapi.json");
    std::fs::write(&doc_file, &doc).unwrap();

    let generator = python::venv(GENERATOR);
    let generated = fx.dir.path().join("generated");
    let out = run(
        Command::new(python::bin(&generator, "openapi-python-client"))
            .args(["generate", "--path"])
            .arg(&doc_file)
            .arg("--output-path")
            .arg(&generated)
            .env("PATH", path_with(&generator)),
    );
    // A warning means part of the document was skipped: a client without that operation.
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !said.contains("Warning") && !said.contains("Skipping"),
        "the generator skipped parts of the document:\n{said}"
    );

    let runtime = python::venv(CLIENT_RUNTIME);
    let site = fx.dir.path().join("site");
    run(Command::new(python::bin(&runtime, "python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
        ])
        .arg(&site)
        .arg(&generated));

    let values = json!({"company": 100, "credentials": fx.credentials()});
    let values_file = fx.dir.path().join("values.json");
    std::fs::write(&values_file, values.to_string()).unwrap();
    let out = run(Command::new(python::bin(&runtime, "python"))
        .arg(python::script("openapi_client_drive.py"))
        .arg(&srv.base)
        .arg(TEST_KEY)
        .arg(&values_file)
        .env("PYTHONPATH", &site));
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));

    let info = fx.emu.control("GET", "/info", None);
    let customers = info["counts"]["100"]["customer"]
        .as_u64()
        .unwrap_or_else(|| panic!("no count of customers in {info}"));
    assert!(customers >= SCALE, "{info}");
    assert_eq!(report["manifest_id"], "infor-m3", "{report}");
    assert_eq!(report["created_test_success"], true, "{report}");
    assert_eq!(report["test_success"], true, "{report}");
    assert_eq!(report["destination_class"], "JsonlDestination", "{report}");
    assert_eq!(report["started_status"], "queued", "{report}");
    assert_eq!(report["status"], "succeeded", "{report}");
    assert_eq!(report["records"].as_u64(), Some(customers), "{report}");
    assert_eq!(
        report["tasks"],
        json!([{"name": "customers", "status": "succeeded", "sync_mode": "full_refresh", "records": customers}]),
    );

    // The same run seen without the client, and the records where it put them.
    let (_, runs) = srv.call("GET", "/v1/runs", None);
    assert_eq!(runs[0]["records"].as_u64(), Some(customers), "{runs}");
    let written =
        std::fs::read_to_string(home.path().join("data/client-out/customers.jsonl")).unwrap();
    let mut ids: Vec<String> = written
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["CUNO"].to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len() as u64, customers);

    for (text, what) in [
        (srv.output(), "the server's output"),
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            "the client's report",
        ),
        (srv.bodies().join("\n"), "the responses"),
    ] {
        assert_no_canary(&text, what);
    }
}
