//! The command line's conventions, through the real binary: colours only on a terminal
//! and never with `NO_COLOR`, an invalid `--log` filter refused (exit 2), shell
//! completions and man pages, the environment in `--help`, `--json` on `state show` and
//! `plugins verify`, `run --summary FILE`, and a run summary table whose long errors wrap
//! to the width.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ionport_emulator::EmulatorConfig;
use ionport_tests::emulated::Emulated;
use ionport_tests::{ionport_bin, non_plugin_library, output_text, plugin_lib, profile_dir};
use serde_json::Value;

const ESC: &str = "\u{1b}[";

fn ionport(args: &[&str]) -> Command {
    let mut c = Command::new(ionport_bin());
    c.args(args)
        .env("IONPORT_PLUGIN_PATH", profile_dir())
        .env_remove("IONPORT_LOG")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("COLUMNS");
    c
}

#[test]
fn an_invalid_log_filter_is_a_usage_error() {
    for (args, env) in [
        (vec!["--log", "ionport=loud", "plugins", "list"], None),
        (vec!["plugins", "list"], Some("=,=")),
    ] {
        let mut c = ionport(&args);
        if let Some(v) = env {
            c.env("IONPORT_LOG", v);
        }
        let out = c.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} {env:?}: {}",
            output_text(&out)
        );
        assert!(
            err.contains("invalid value") && err.contains("--log"),
            "{err}"
        );
        assert!(out.stdout.is_empty(), "nothing ran: {}", output_text(&out));
    }
    // A valid one runs.
    let out = ionport(&["--log", "warn,ionport_core=debug", "plugins", "list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
}

/// Debug logs of `plugins list` (a line per loaded plugin) with the environment `env`, on a
/// pipe or, with `pty`, on a terminal (util-linux `script`).
fn logs(env: &[(&str, &str)], pty: bool) -> String {
    let mut c = if pty {
        let mut c = Command::new("script");
        let cmd = format!("{} --log debug plugins list", ionport_bin().display());
        c.args(["-qec", &cmd, "/dev/null"]);
        c.env("IONPORT_PLUGIN_PATH", profile_dir())
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .env("TERM", "xterm-256color");
        c
    } else {
        ionport(&["--log", "debug", "plugins", "list"])
    };
    c.envs(env.iter().copied());
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let all = output_text(&out);
    assert!(all.contains("plugin loaded"), "no debug log line: {all}");
    all
}

#[test]
fn logs_are_coloured_only_on_a_terminal_and_never_with_no_color() {
    assert!(!logs(&[], false).contains(ESC), "colours in a pipe");
    // The decision is clap's (anstream): forced colours show that it is taken at all.
    assert!(logs(&[("CLICOLOR_FORCE", "1")], false).contains(ESC));
    assert!(!logs(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")], false).contains(ESC));
    if Command::new("script").arg("--version").output().is_ok() {
        assert!(logs(&[], true).contains(ESC), "no colours on a terminal");
        assert!(
            !logs(&[("NO_COLOR", "1")], true).contains(ESC),
            "colours on a terminal with NO_COLOR"
        );
    } else {
        eprintln!("no `script` (util-linux): the terminal cases are not run");
    }
}

#[test]
fn completions_for_every_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _ionport"),
        ("zsh", "#compdef ionport"),
        ("fish", "complete -c ionport"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = ionport(&["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", output_text(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: no {marker:?}");
        for word in ["vault", "full-refresh", "pipeline"] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
        if shell == "bash" {
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), script.as_bytes()).unwrap();
            let check = Command::new("bash").arg("-n").arg(file.path()).output();
            if let Ok(check) = check {
                assert!(check.status.success(), "bash -n: {}", output_text(&check));
            }
        }
    }
    let out = ionport(&["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
}

#[test]
fn man_pages_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = ionport(&["man-pages"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    for (page, mention) in [
        ("ionport.1", "IONPORT_VAULT_KEY"),
        ("ionport-run.1", "full\\-refresh"),
        ("ionport-vault-import.1", "ionport\\-vault\\-import"),
        ("ionport-state-show.1", "json"),
        ("ionport-completions.1", "powershell"),
    ] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page}: {text}"
        );
        assert!(
            text.contains(mention),
            "{page} does not mention {mention}:\n{text}"
        );
    }
    // The hidden command that writes them has no page of its own.
    assert!(!dir.path().join("ionport-man-pages.1").exists());
}

#[test]
fn help_names_the_environment() {
    let help = |args: &[&str]| {
        let out = ionport(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", output_text(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let root = help(&["--help"]);
    for var in [
        "IONPORT_HOME",
        "IONPORT_VAULT_KEY",
        "IONPORT_PLUGIN_PATH",
        "IONPORT_LOG",
        "IONPORT_API_KEYS",
        "NO_COLOR",
    ] {
        assert!(root.contains(var), "ionport --help lacks {var}:\n{root}");
    }
    for args in [
        &["vault", "--help"][..],
        &["run", "--help"],
        &["check", "--help"],
    ] {
        let h = help(args);
        assert!(
            h.contains("IONPORT_HOME") && h.contains("IONPORT_VAULT_KEY"),
            "{args:?}:\n{h}"
        );
    }
    assert!(help(&["serve", "--help"]).contains("[env: IONPORT_API_KEYS"));
    // The option is on the commands that load plugins; the root lists the variable.
    for args in [
        &["run", "--help"][..],
        &["plugins", "list", "--help"],
        &["airbyte", "--help"],
        &["state", "show", "--help"],
    ] {
        let h = help(args);
        assert!(h.contains("[env: IONPORT_PLUGIN_PATH"), "{args:?}:\n{h}");
    }
}

/// `--plugin-path` and `--verbose` are options of the commands that load plugins only: on
/// any other command they are usage errors (exit 2), as an option the command does not
/// have; `--log` stays global (every command logs).
#[test]
fn plugin_options_only_on_the_commands_that_load_plugins() {
    let plugins = profile_dir().to_string_lossy().into_owned();
    for args in [
        &["completions", "bash", "--plugin-path", "x"][..],
        &["--plugin-path", "x", "completions", "bash"],
        &["vault", "list", "--plugin-path", "x"],
        &["apikey", "list", "--plugin-path", "x"],
        &["repair", "--plugin-path", "x", "jsonl:x"],
        &["plugins", "verify", "--plugin-path", "x", "lib.so"],
        &["emulator", "--plugin-path", "x"],
        &["run", "--verbose", "f.toml"],
    ] {
        let home = tempfile::tempdir().unwrap();
        let out = ionport(args)
            .env("IONPORT_HOME", home.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            output_text(&out)
        );
        assert!(err.contains("unexpected argument '--"), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} ran: {}", output_text(&out));
    }
    // The documented forms: before or after a subcommand of the command that has it.
    for args in [
        &["plugins", "list", "--plugin-path", &plugins, "--verbose"][..],
        &[
            "plugins",
            "show",
            "infor-m3",
            "-v",
            "--plugin-path",
            &plugins,
        ],
        &["airbyte", "--plugin-path", &plugins, "infor-m3", "spec"],
        &["airbyte", "infor-m3", "spec", "--plugin-path", &plugins],
        &["--log", "debug", "completions", "bash"],
        &["completions", "bash", "--log", "debug"],
    ] {
        let out = ionport(args)
            .env_remove("IONPORT_PLUGIN_PATH")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", output_text(&out));
        assert!(!out.stdout.is_empty(), "{args:?}: no output");
    }
    // Singer finds its connector through it, then reads the (missing) config.
    let out = ionport(&["singer", "infor-m3", "--plugin-path", &plugins])
        .args(["--config", "/nonexistent/ln.json"])
        .env_remove("IONPORT_PLUGIN_PATH")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("/nonexistent/ln.json"),
        "{}",
        output_text(&out)
    );
    // And the option is the one used: an empty directory on it finds no connector.
    let empty = tempfile::tempdir().unwrap();
    let out = ionport(&["plugins", "show", "infor-m3", "--plugin-path"])
        .arg(empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
}

#[test]
fn plugins_verify_speaks_json() {
    let lib = plugin_lib("ionport_connector_m3");
    let out = ionport(&["plugins", "verify", "--json"])
        .arg(&lib)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["passed"], true, "{v}");
    assert_eq!(v["connector"], "infor-m3");
    assert_eq!(v["library"], lib.display().to_string());
    let checks = v["checks"].as_array().unwrap();
    assert!(checks.len() > 3, "{v}");
    assert!(
        checks
            .iter()
            .all(|c| c["passed"] == true && c["name"].is_string())
    );

    let out = ionport(&["plugins", "verify", "--json"])
        .arg(non_plugin_library())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["passed"], false, "{v}");
    assert!(v["connector"].is_null(), "{v}");
    let failed: Vec<&Value> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .collect();
    assert!(
        !failed.is_empty() && failed[0]["detail"].as_str().unwrap().len() > 5,
        "{v}"
    );
}

fn pipeline_file(dir: &Path, emu: &Emulated) -> PathBuf {
    let ionapi = dir.join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let file = dir.join("p.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[environments.out]
destination = {{ type = "sqlite", path = "out.db" }}

[connections.m3]
connector = "infor-m3"
credentials = {{ ionapi = "{}" }}
settings = {{ company = 100 }}
quota = "none"

[pipelines.m3]
connection = "m3"
environment = "out"
tasks = ["customers", "items"]
page_size = 50
"#,
            ionapi.display()
        ),
    )
    .unwrap();
    file
}

#[test]
fn state_show_speaks_json_and_the_summary_wraps_long_errors() {
    let emu = Emulated::start(EmulatorConfig {
        scale: 60,
        ..EmulatorConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let file = pipeline_file(dir.path(), &emu);
    let home = dir.path().join("home");
    let run = |args: &[&str], columns: Option<&str>| {
        let mut c = ionport(args);
        c.arg(&file).env("IONPORT_HOME", &home);
        if let Some(w) = columns {
            c.env("COLUMNS", w);
        }
        c.output().unwrap()
    };

    let out = run(&["state", "show", "--json"], None);
    assert!(out.status.success(), "{}", output_text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["environment"], "out", "{v}");
    assert_eq!(v[0]["states"], serde_json::json!({}), "{v}");

    let ok_summary = dir.path().join("ok.json");
    let out = run(
        &["run", "--quiet", "--summary", ok_summary.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&ok_summary).unwrap()).unwrap();
    assert_eq!(doc["ok"], true, "{doc}");
    let per_task: u64 = doc["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["records"].as_u64().unwrap())
        .sum();
    assert_eq!(doc["records"], per_task, "{doc}");
    let customers = doc["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "customers")
        .unwrap_or_else(|| panic!("{doc}"));
    assert_eq!(
        customers["records"], 60,
        "the emulator's 60 customers: {doc}"
    );
    assert!(customers["error"].is_null() && customers["commits"].as_u64().unwrap() > 0);
    let out = run(&["state", "show", "--json", "--pipeline", "m3"], None);
    assert!(out.status.success(), "{}", output_text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["pipeline"], "m3");
    let states = v[0]["states"].as_object().unwrap();
    assert!(
        states.contains_key("customers") && states.contains_key("items"),
        "{v}"
    );
    assert!(
        states["customers"].is_object(),
        "the state itself, as JSON: {v}"
    );

    // Every M3 request refused: both tasks fail with the server's reason.
    emu.control(
        "POST",
        "faults",
        Some(serde_json::json!([{ "kind": "403", "rate": 1.0, "api": "m3" }])),
    );
    let summary = |o: &Output| -> Vec<String> {
        let s = String::from_utf8_lossy(&o.stdout).to_string();
        let from = s.find("TASK").unwrap_or_else(|| panic!("no table: {s}"));
        s[from..].lines().map(str::to_string).collect()
    };
    // In a pipe without COLUMNS: one line per task, for scripts; and the summary as JSON.
    let json_summary = dir.path().join("summary.json");
    let out = run(
        &[
            "run",
            "--quiet",
            "--full-refresh",
            "--summary",
            json_summary.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_summary).unwrap()).unwrap();
    assert_eq!(doc["ok"], false, "{doc}");
    let tasks = doc["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2, "{doc}");
    for t in tasks {
        assert_eq!(t["ok"], false, "{t}");
        assert!(t["error"].as_str().unwrap().contains("403"), "{t}");
        assert_eq!(t["pipeline"], "m3");
    }
    let lines = summary(&out);
    let row = lines
        .iter()
        .find(|l| l.starts_with("m3/customers"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(row.contains("FAILED: "), "{row}");
    let whole = row[row.find("FAILED: ").unwrap()..].to_string();
    assert!(whole.len() > 40, "an error long enough to wrap: {whole}");
    assert!(lines[lines.len() - 1].contains("2 FAILED"), "{lines:#?}");

    // With a width: no line longer, the error's words all there, in order.
    let width = 80;
    let out = run(&["run", "--quiet", "--full-refresh"], Some("80"));
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let lines = summary(&out);
    let table: Vec<&String> = lines
        .iter()
        .take_while(|l| !l.contains("task(s),"))
        .collect();
    for l in &table {
        assert!(
            l.chars().count() <= width,
            "{} > {width}: {l:?}",
            l.chars().count()
        );
    }
    let start = table
        .iter()
        .position(|l| l.starts_with("m3/customers"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    let status_col = table[start].find("FAILED").unwrap();
    let mut wrapped = String::new();
    for l in &table[start..] {
        if l != &table[start] && !l.starts_with(' ') {
            break;
        }
        wrapped.push_str(l.get(status_col..).unwrap_or("").trim());
        wrapped.push(' ');
    }
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join("");
    assert_eq!(words(&wrapped), words(&whole), "{table:#?}");
    assert!(
        table.len() > 3 + 2,
        "the status took more than one line each: {table:#?}"
    );
}
