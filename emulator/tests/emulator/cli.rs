#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;

#[test]
fn binary_prints_its_url_and_writes_an_ionapi_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo.ionapi");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ionport-emulator"))
        .args([
            "--port",
            "0",
            "--scale",
            "50",
            "--quota",
            "1000/60",
            "--token-ttl",
            "10m",
            "--write-ionapi",
        ])
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let mut second = String::new();
    out.read_line(&mut second).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let url = first.trim();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(second.starts_with("wrote "), "{second}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v["iu"], url);
    assert_eq!(v["ti"], "IONPORT_DEMO");
    assert_eq!(v["pu"], format!("{url}/IONPORT_DEMO/as/"));
}

#[test]
fn bad_flags_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_ionport-emulator"))
        .args(["--quota", "lots"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = Command::new(env!("CARGO_BIN_EXE_ionport-emulator"))
        .args(["--scale", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("scale"));
}
