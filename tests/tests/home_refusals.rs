//! `IONPORT_HOME` that cannot be a home — a regular file, or a path through one — is one
//! clear error (exit status 2) from every command that uses the home, and the file is
//! left as it was. `vault list` used to say "holds no connection" and exit 0.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use ionport_tests::{ionport_bin, plugin_lib};

fn ionport(home: &Path, args: &[&str]) -> Output {
    Command::new(ionport_bin())
        .args(args)
        .env("IONPORT_HOME", home)
        .env("IONPORT_PLUGIN_PATH", plugin_lib("ionport_test_plugin"))
        .env_remove("IONPORT_VAULT_KEY")
        .output()
        .unwrap()
}

const CONTENT: &str = "not a directory, and it must stay this way\n";

#[test]
fn a_home_that_is_a_regular_file_is_refused_by_every_command_using_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("home-file");
    std::fs::write(&file, CONTENT).unwrap();
    let ionapi = dir.path().join("x.ionapi");
    std::fs::write(&ionapi, "{}").unwrap();
    let pipeline = dir.path().join("p.toml");
    std::fs::write(&pipeline, "").unwrap();
    let ionapi = ionapi.to_str().unwrap();
    let pipeline = pipeline.to_str().unwrap();
    let through = file.join("sub");
    let commands: [&[&str]; 6] = [
        &["vault", "list"],
        &["vault", "list", "--json"],
        &["vault", "import", ionapi, "--name", "x"],
        &["vault", "show", "x"],
        &["run", pipeline],
        &["apikey", "list"],
    ];
    for home in [&file, &through] {
        for args in commands {
            let out = ionport(home, args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(
                out.stdout.is_empty(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
            assert_eq!(stderr.lines().count(), 1, "{args:?}: one error: {stderr}");
            assert!(
                stderr.contains(&format!("IONPORT_HOME={}", home.display())),
                "{args:?}: {stderr}"
            );
            let why = if home == &file {
                "is not a directory"
            } else {
                "cannot be used"
            };
            assert!(stderr.contains(why), "{args:?}: {stderr}");
        }
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), CONTENT);
}

#[test]
fn a_home_that_does_not_exist_yet_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let out = ionport(&dir.path().join("new-home"), &["vault", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("holds no connection"));
}
