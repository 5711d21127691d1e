#![allow(clippy::unwrap_used)]
//! Each connector as an Airbyte source, every message checked by the Airbyte protocol's
//! own published models (`airbyte-protocol-models` from PyPI, made strict): spec, check,
//! discover, read, and a second read from the first one's state, run as the platform runs
//! a source (Airbyte's standard argv, the connector named by the program's multi-call
//! name, plugins found beside the real binary). The spec, the catalog and the records
//! pass Airbyte's acceptance rules (`tests/python/airbyte_rules.py`, `jsonschema`). Record
//! counts are compared with a native read of the same stream; no output holds a canary
//! secret. The image's entry-point contract (`docker/airbyte/Dockerfile`) is run without
//! Docker.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ionport_plugin_abi::wire::SyncMode;
use ionport_tests::protocol_fixture::{CANARY_PASSWORD, Fixture, assert_no_canary, plugin};
use ionport_tests::python;
use serde_json::{Value, json};

/// Runs the validator on `stdout`; the summary it prints.
fn validate(stdout: &[u8]) -> Value {
    let venv = python::venv(python::AIRBYTE);
    let mut child = Command::new(python::bin(&venv, "python"))
        .arg(python::script("airbyte_validate.py"))
        .arg("messages")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = stdout.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "the Airbyte models refused the output: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn validate_configured_catalog(path: &std::path::Path) {
    let venv = python::venv(python::AIRBYTE);
    let out = Command::new(python::bin(&venv, "python"))
        .arg(python::script("airbyte_validate.py"))
        .arg("configured-catalog")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn airbyte(fx: &Fixture, connector: &str, args: &[&OsStr]) -> Output {
    let mut all: Vec<&OsStr> = vec![OsStr::new("airbyte"), OsStr::new(connector)];
    all.extend_from_slice(args);
    let out = fx.ionport(&all);
    assert_no_canary(&String::from_utf8_lossy(&out.stdout), "stdout");
    assert_no_canary(&String::from_utf8_lossy(&out.stderr), "stderr");
    out
}

/// `jsonschema` (Draft 7, floats) for the acceptance rules, with its dependencies pinned.
const JSONSCHEMA: (&str, &[&str]) = (
    "airbyte-rules",
    &[
        "jsonschema==4.26.0",
        "jsonschema-specifications==2025.9.1",
        "referencing==0.37.0",
        "rpds-py==2026.9.1",
        "attrs==26.1.0",
        "typing_extensions==4.16.0",
    ],
);

/// A multi-call link `ionport-airbyte-<connector>` to the built `ionport`, in a directory
/// of its own (no plugins beside it: they are found beside the real binary).
fn multi_call(fx: &Fixture, connector: &str) -> PathBuf {
    let dir = fx.dir.path().join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join(format!("ionport-airbyte-{connector}"));
    if !link.exists() {
        std::os::unix::fs::symlink(ionport_tests::ionport_bin(), &link).unwrap();
    }
    link
}

/// Runs `program` with Airbyte's standard argv, as the platform does: no plugin path,
/// no ionport settings in the environment.
fn source(fx: &Fixture, program: &Path, args: &[&OsStr]) -> Output {
    let out = Command::new(program)
        .args(args)
        .env_remove("IONPORT_PLUGIN_PATH")
        .env_remove("IONPORT_LOG")
        .env_remove("IONPORT_AIRBYTE_CONNECTOR")
        .env("IONPORT_HOME", fx.dir.path().join("home"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_no_canary(&String::from_utf8_lossy(&out.stdout), "stdout");
    assert_no_canary(&String::from_utf8_lossy(&out.stderr), "stderr");
    out
}

/// Airbyte's acceptance rules on the spec and catalog, and `jsonschema` on the config
/// and every record; the summary the checker prints.
fn acceptance_rules(
    fx: &Fixture,
    config: &Path,
    spec: &[u8],
    catalog: &[u8],
    read: &[u8],
) -> Value {
    let save = |name: &str, bytes: &[u8]| {
        let path = fx.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let venv = python::venv(JSONSCHEMA);
    let out = Command::new(python::bin(&venv, "python"))
        .arg(python::script("airbyte_rules.py"))
        .arg(save("spec.out", spec))
        .arg(save("discover.out", catalog))
        .arg(config)
        .arg(save("read.out", read))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "Airbyte's acceptance rules are broken:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// The whole protocol for `connector`.
fn end_to_end(connector: &str) {
    let fx = Fixture::start(40);
    let config = fx.config(connector);
    let p = plugin(connector);
    let program = multi_call(&fx, connector);

    // spec: the connection form, self-contained, secrets marked.
    let out = source(&fx, &program, &[os("spec")]);
    assert!(out.status.success());
    let spec_out = out.stdout.clone();
    let spec = validate(&out.stdout)["spec"].clone();
    let form = &spec["connectionSpecification"];
    assert!(!form.to_string().contains("$ref"), "{form}");
    let creds = &form["properties"]["credentials"]["properties"];
    for secret in ["password", "client_secret"] {
        assert_eq!(creds[secret]["airbyte_secret"], true, "{secret}: {form}");
    }
    assert_eq!(creds["username"].get("airbyte_secret"), None);
    assert_eq!(spec["supportsIncremental"], true);

    // check.
    let out = source(
        &fx,
        &program,
        &[os("check"), os("--config"), config.as_os_str()],
    );
    assert!(out.status.success());
    let status = validate(&out.stdout)["connection_status"].clone();
    assert_eq!(status["status"], "SUCCEEDED", "{status}");

    // discover: every predefined task, with its keys and cursor.
    let out = source(
        &fx,
        &program,
        &[os("discover"), os("--config"), config.as_os_str()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let discover_out = out.stdout.clone();
    let catalog = validate(&out.stdout)["catalog"].clone();
    let streams = catalog["streams"].as_array().unwrap();
    for task in p.tasks() {
        let s = streams
            .iter()
            .find(|s| s["name"] == task.name.as_str())
            .unwrap_or_else(|| panic!("{} missing from {catalog}", task.name));
        let pk: Vec<Value> = task.primary_key.iter().map(|k| json!([k])).collect();
        assert_eq!(s["source_defined_primary_key"], json!(pk));
        match &task.cursor_field {
            Some(c) => assert_eq!(s["default_cursor_field"], json!([c])),
            None => assert!(s.get("default_cursor_field").is_none()),
        }
        assert!(!s["json_schema"].to_string().contains("$ref"));
    }

    // read: the predefined tasks and one discovered stream, incremental where possible.
    let mut chosen: Vec<&Value> = streams
        .iter()
        .filter(|s| p.task(s["name"].as_str().unwrap()).is_some())
        .collect();
    if let Some(extra) = streams
        .iter()
        .find(|s| p.task(s["name"].as_str().unwrap()).is_none())
    {
        chosen.push(extra);
    }
    let configured: Vec<Value> = chosen
        .iter()
        .map(|s| {
            let inc = s["supported_sync_modes"]
                .as_array()
                .unwrap()
                .contains(&json!("incremental"));
            let mut c = json!({
                "stream": s,
                "sync_mode": if inc { "incremental" } else { "full_refresh" },
                "destination_sync_mode": if inc { "append_dedup" } else { "overwrite" },
                "primary_key": s["source_defined_primary_key"],
            });
            if inc {
                c["cursor_field"] = s["default_cursor_field"].clone();
            }
            c
        })
        .collect();
    let catalog_file = fx.write("configured.json", &json!({"streams": configured}));
    validate_configured_catalog(&catalog_file);
    let read_args = [
        os("read"),
        os("--config"),
        config.as_os_str(),
        os("--catalog"),
        catalog_file.as_os_str(),
    ];
    let out = source(&fx, &program, &read_args);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let first = validate(&out.stdout);
    assert_eq!(first["errors"], json!([]), "{first}");
    let rules = acceptance_rules(&fx, &config, &spec_out, &discover_out, &out.stdout);
    assert_eq!(rules["streams"], streams.len(), "{rules}");
    assert!(rules["records_validated"].as_u64().unwrap() > 0, "{rules}");
    // Values like 0.07 that a float `multipleOf: 0.01` refuses are among the records, so
    // the records' validation would catch a fractional `multipleOf` left in the catalog.
    assert!(
        rules["decimals_a_float_multiple_of_refuses"]
            .as_u64()
            .unwrap()
            > 0,
        "{rules}"
    );
    eprintln!("{connector}: acceptance rules {rules}");
    let mut incremental = 0;
    for c in &configured {
        let name = c["stream"]["name"].as_str().unwrap();
        let mode = if c["sync_mode"] == "incremental" {
            incremental += 1;
            SyncMode::Incremental
        } else {
            SyncMode::FullRefresh
        };
        let native = fx.native_count(connector, name, mode);
        assert!(native > 0, "{name}: the emulator has no data");
        assert_eq!(first["records"][name], native, "{name}: {first}");
        // The states' record counts add up to the records: a state follows its records.
        assert_eq!(first["state_records"][name], native as f64, "{name}");
        let statuses = &first["statuses"][name];
        assert_eq!(
            statuses,
            &json!(["STARTED", "RUNNING", "COMPLETE"]),
            "{name}"
        );
    }
    assert!(incremental > 0);

    // A second read from the first one's states: incremental streams read only what
    // changed since (nothing: the emulator's data did not change); full refresh reads all.
    let state: Vec<Value> = first["states"]
        .as_object()
        .unwrap()
        .values()
        .cloned()
        .collect();
    let state_file = fx.write("state.json", &json!(state));
    let mut args = read_args.to_vec();
    args.extend([os("--state"), state_file.as_os_str()]);
    let out = source(&fx, &program, &args);
    assert!(out.status.success());
    let second = validate(&out.stdout);
    for c in &configured {
        let name = c["stream"]["name"].as_str().unwrap();
        let again = second["records"][name].as_u64().unwrap_or(0);
        if c["sync_mode"] == "incremental" {
            assert!(
                again < first["records"][name].as_u64().unwrap(),
                "{name}: {again} records again from the state"
            );
        } else {
            assert_eq!(second["records"][name], first["records"][name], "{name}");
        }
    }
}

#[test]
fn m3_as_an_airbyte_source() {
    end_to_end("infor-m3");
}

#[test]
fn ln_as_an_airbyte_source() {
    end_to_end("infor-ln");
}

#[test]
fn datalake_as_an_airbyte_source() {
    end_to_end("infor-datalake");
}

#[test]
fn bad_input_gets_a_protocol_error_naming_the_file_and_field() {
    let fx = Fixture::start(20);
    let connector = "infor-m3";

    // A wrong password: check FAILED (exit 0, as Airbyte expects), the wrong value masked.
    let wrong = "CANARY-wrong-password-0c1f";
    let config = fx.config_with(connector, |v| v["credentials"]["password"] = json!(wrong));
    let out = airbyte(
        &fx,
        connector,
        &[os("check"), os("--config"), config.as_os_str()],
    );
    assert!(out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(wrong), "{all}");
    let status = validate(&out.stdout)["connection_status"].clone();
    assert_eq!(status["status"], "FAILED", "{status}");

    // A config that does not fit the form: the field is named, check FAILED, discover a
    // config_error trace and exit 1.
    let config = fx.config_with(connector, |v| {
        v["company"] = json!(5000);
        v["credentials"]["token_url"] = json!(7);
    });
    let out = airbyte(
        &fx,
        connector,
        &[os("check"), os("--config"), config.as_os_str()],
    );
    let status = validate(&out.stdout)["connection_status"].clone();
    let msg = status["message"].as_str().unwrap();
    assert_eq!(status["status"], "FAILED");
    assert!(
        msg.contains("company") && msg.contains("credentials.token_url"),
        "{msg}"
    );
    assert!(msg.contains("infor-m3.config.json"), "{msg}");
    let out = airbyte(
        &fx,
        connector,
        &[os("discover"), os("--config"), config.as_os_str()],
    );
    assert!(!out.status.success());
    let v = validate(&out.stdout);
    assert_eq!(v["errors"][0]["failure_type"], "config_error", "{v}");

    // Not JSON at all: the file and the position, never its text.
    let broken = fx.dir.path().join("broken.json");
    std::fs::write(&broken, format!("{{\"password\": \"{CANARY_PASSWORD}\"")).unwrap();
    let out = airbyte(
        &fx,
        connector,
        &[os("discover"), os("--config"), broken.as_os_str()],
    );
    assert!(!out.status.success());
    let v = validate(&out.stdout);
    let msg = v["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("broken.json") && msg.contains("not JSON"),
        "{msg}"
    );

    // A catalog asking for a sync mode a discovered stream does not have (its catalog
    // entry says incremental only): that stream fails as a config error, the other one is
    // read, exit 1.
    let config = fx.config(connector);
    let stream = |name: &str, modes: Value| json!({"name": name, "json_schema": {}, "supported_sync_modes": modes});
    let catalog = fx.write(
        "bad-catalog.json",
        &json!({"streams": [
            {"stream": stream("table:OCUSMA", json!(["incremental"])), "sync_mode": "full_refresh", "destination_sync_mode": "append"},
            {"stream": stream("suppliers", json!(["full_refresh"])), "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"},
        ]}),
    );
    let out = airbyte(
        &fx,
        connector,
        &[
            os("read"),
            os("--config"),
            config.as_os_str(),
            os("--catalog"),
            catalog.as_os_str(),
        ],
    );
    assert!(!out.status.success());
    let v = validate(&out.stdout);
    assert_eq!(v["errors"][0]["failure_type"], "config_error", "{v}");
    assert_eq!(
        v["errors"][0]["stream_descriptor"]["name"], "table:OCUSMA",
        "{v}"
    );
    assert_eq!(
        v["statuses"]["table:OCUSMA"],
        json!(["STARTED", "INCOMPLETE"])
    );
    assert_eq!(
        v["statuses"]["suppliers"]
            .as_array()
            .unwrap()
            .last()
            .unwrap(),
        "COMPLETE"
    );
    assert!(v["records"]["suppliers"].as_u64().unwrap() > 0);

    // A state file that is no list of states.
    let state = fx.write("bad-state.json", &json!("yesterday"));
    let out = airbyte(
        &fx,
        connector,
        &[
            os("read"),
            os("--config"),
            config.as_os_str(),
            os("--catalog"),
            catalog.as_os_str(),
            os("--state"),
            state.as_os_str(),
        ],
    );
    assert!(!out.status.success());
    let v = validate(&out.stdout);
    let msg = v["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("bad-state.json") && msg.contains("list of STATE"),
        "{msg}"
    );

    // An unknown connector.
    let out = airbyte(&fx, "infor-nope", &[os("spec")]);
    assert!(!out.status.success());
    let v = validate(&out.stdout);
    let msg = v["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("infor-nope") && msg.contains("infor-m3"),
        "{msg}"
    );
}

/// The LOG messages of `stdout` as (level, message).
fn logs(stdout: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["type"] == "LOG")
        .map(|m| {
            let s = |k: &str| m["log"][k].as_str().unwrap_or_default().to_string();
            (s("level"), s("message"))
        })
        .collect()
}

#[test]
fn incremental_on_a_cursorless_stream_reads_it_in_full_with_a_warning() {
    let fx = Fixture::start(20);
    let connector = "infor-m3";
    let config = fx.config(connector);
    let program = multi_call(&fx, connector);
    // `customers` has no cursor; PyAirbyte asks every stream for `incremental`.
    let read = |mode: &str, state: Option<&Path>| {
        let stream = json!({"name": "customers", "json_schema": {}, "supported_sync_modes": ["full_refresh"]});
        let catalog = fx.write(
            &format!("{mode}.catalog.json"),
            &json!({"streams": [{"stream": stream, "sync_mode": mode, "destination_sync_mode": "overwrite"}]}),
        );
        let mut args = vec![
            os("read"),
            os("--config"),
            config.as_os_str(),
            os("--catalog"),
            catalog.as_os_str(),
        ];
        if let Some(state) = state {
            args.extend([os("--state"), state.as_os_str()]);
        }
        let out = source(&fx, &program, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        out
    };
    let native = fx.native_count(connector, "customers", SyncMode::FullRefresh);
    let full = validate(&read("full_refresh", None).stdout);

    let out = read("incremental", None);
    let asked = validate(&out.stdout);
    assert_eq!(asked["errors"], json!([]), "{asked}");
    assert_eq!(asked["records"]["customers"], native, "{asked}");
    assert_eq!(
        asked["statuses"]["customers"],
        json!(["STARTED", "RUNNING", "COMPLETE"])
    );
    let warnings: Vec<_> = logs(&out.stdout)
        .into_iter()
        .filter(|(level, m)| level == "WARN" && m.contains("customers"))
        .collect();
    assert_eq!(warnings.len(), 1, "{:?}", logs(&out.stdout));
    assert!(warnings[0].1.contains("full_refresh"), "{warnings:?}");
    // The state claims no incremental progress: it is a full refresh's.
    let state_of = |v: &Value| v["states"]["customers"]["stream"]["stream_state"].clone();
    assert_eq!(state_of(&asked), state_of(&full), "{asked}");

    // Asked again from that state: everything again.
    let state = fx.write("state.json", &json!([asked["states"]["customers"]]));
    let again = validate(&read("incremental", Some(&state)).stdout);
    assert_eq!(again["records"]["customers"], native, "{again}");
}

/// The final stage of a Dockerfile: its ARG defaults, ENV, LABELs, `COPY --from` lines
/// and exec-form ENTRYPOINT, with `${ARG}`s substituted where Docker substitutes them.
#[derive(Debug, Default)]
struct ImageStage {
    env: Vec<(String, String)>,
    labels: Vec<(String, String)>,
    copies: Vec<(String, String)>,
    entrypoint: Vec<String>,
}

fn parse_dockerfile(text: &str) -> ImageStage {
    let joined = text.replace("\\\n", " ");
    let mut stage = ImageStage::default();
    let mut args: Vec<(String, String)> = Vec::new();
    let substitute = |v: &str, args: &[(String, String)]| {
        args.iter().fold(v.to_string(), |v, (k, a)| {
            v.replace(&format!("${{{k}}}"), a)
        })
    };
    let pair = |kv: &str| {
        let (k, v) = kv
            .split_once('=')
            .unwrap_or_else(|| panic!("no KEY=VALUE: {kv}"));
        (k.trim().to_string(), v.trim().trim_matches('"').to_string())
    };
    for line in joined.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (instruction, rest) = line.split_once(' ').unwrap_or((line, ""));
        match instruction {
            "FROM" => {
                stage = ImageStage::default();
                args.clear();
            }
            "ARG" => {
                let (k, v) = pair(rest);
                args.push((k, v));
            }
            "ENV" => {
                let (k, v) = pair(rest);
                stage.env.push((k, substitute(&v, &args)));
            }
            "LABEL" => {
                let (k, v) = pair(rest);
                stage.labels.push((k, substitute(&v, &args)));
            }
            "COPY" => {
                let parts: Vec<&str> = rest.split_whitespace().collect();
                if parts.first() == Some(&"--from=build") {
                    stage.copies.push((parts[1].into(), parts[2].into()));
                }
            }
            "ENTRYPOINT" => {
                stage.entrypoint = serde_json::from_str(rest)
                    .unwrap_or_else(|e| panic!("ENTRYPOINT is not exec form ({e}): {rest}"));
            }
            _ => {}
        }
    }
    stage
}

/// The image's files laid out under `root` from this build: `target/release/X` of the
/// build stage is `X` of this profile.
fn lay_out(stage: &ImageStage, root: &Path) {
    let profile = ionport_tests::profile_dir();
    for (src, dest) in &stage.copies {
        let name = src
            .strip_prefix("/src/target/release/")
            .unwrap_or_else(|| panic!("COPY of {src}, not a build output"));
        let (prefix, suffix) = name.split_once('*').unwrap_or((name, ""));
        let matches: Vec<PathBuf> = std::fs::read_dir(&profile)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_str().unwrap();
                if name.contains('*') {
                    n.starts_with(prefix) && n.ends_with(suffix)
                } else {
                    n == name
                }
            })
            .collect();
        assert!(!matches.is_empty(), "COPY {src}: nothing built matches");
        for from in matches {
            let to = root.join(dest.trim_start_matches('/'));
            let to = if dest.ends_with('/') {
                std::fs::create_dir_all(&to).unwrap();
                to.join(from.file_name().unwrap())
            } else {
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                to
            };
            if std::fs::hard_link(&from, &to).is_err() {
                std::fs::copy(&from, &to).unwrap();
            }
        }
    }
}

#[test]
fn the_image_entry_point_contract() {
    let dockerfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/airbyte/Dockerfile");
    let stage = parse_dockerfile(&std::fs::read_to_string(&dockerfile).unwrap());
    let get = |list: &[(String, String)], k: &str| {
        list.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{k} is not set in {}", dockerfile.display()))
    };
    let connector = get(&stage.env, "IONPORT_AIRBYTE_CONNECTOR");
    let p = plugin(&connector);
    assert_eq!(
        get(&stage.labels, "io.airbyte.name"),
        format!("airbyte/source-{connector}")
    );
    assert_eq!(
        get(&stage.labels, "io.airbyte.version"),
        env!("CARGO_PKG_VERSION")
    );
    // Airbyte runs `$AIRBYTE_ENTRYPOINT <command>`; the image's ENTRYPOINT must be the same.
    assert!(!stage.entrypoint.is_empty());
    assert_eq!(
        get(&stage.env, "AIRBYTE_ENTRYPOINT"),
        stage.entrypoint.join(" ")
    );

    let fx = Fixture::start(20);
    let root = fx.dir.path().join("image");
    lay_out(&stage, &root);
    let entrypoint = root.join(stage.entrypoint[0].trim_start_matches('/'));
    let run = |args: &[&OsStr]| {
        let mut cmd = Command::new(&entrypoint);
        cmd.args(&stage.entrypoint[1..])
            .args(args)
            .env_remove("IONPORT_PLUGIN_PATH")
            .env_remove("IONPORT_LOG")
            .env("IONPORT_HOME", fx.dir.path().join("home"))
            .stdin(Stdio::null());
        for (k, v) in &stage.env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_no_canary(&String::from_utf8_lossy(&out.stdout), "stdout");
        assert_no_canary(&String::from_utf8_lossy(&out.stderr), "stderr");
        out
    };

    let out = run(&[os("spec")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spec = validate(&out.stdout)["spec"].clone();
    assert_eq!(
        spec["connectionSpecification"]["title"],
        p.connection_form()["title"],
        "{spec}"
    );
    let config = fx.config(&connector);
    let out = run(&[os("check"), os("--config"), config.as_os_str()]);
    let status = validate(&out.stdout)["connection_status"].clone();
    assert_eq!(status["status"], "SUCCEEDED", "{status}");
    // The variable does not take over ionport's own commands.
    let out = run(&[os("plugins"), os("list")]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&connector));
}
