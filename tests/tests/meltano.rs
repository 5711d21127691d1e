#![allow(clippy::unwrap_used)]
//! Meltano 4.4 running the shipped plugin definitions (`meltano/*.meltano.yml`) of the
//! three connectors into `target-jsonl`, twice: the first run writes every stream, each
//! file named by its stream id and holding as many records as a native read; the second
//! starts from the state Meltano kept and brings only what changed of the incremental
//! streams. No canary secret appears in Meltano's output or its project.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ionport_plugin_abi::wire::SyncMode;
use ionport_tests::protocol_fixture::{
    CONNECTORS, Fixture, assert_file_name, assert_no_canary, expected_stream_id, plugin,
};
use ionport_tests::python;
use serde_json::{Map, Value, json};

/// Meltano itself (its own system database, no plugins installed through it).
const MELTANO: (&str, &[&str]) = ("meltano", &["meltano==4.4.1"]);

/// The shipped plugin definitions.
fn definitions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../meltano")
}

/// `ionport-singer-<connector>` for each connector, links to the built `ionport`.
fn multi_call_links(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (id, _, _) in CONNECTORS {
        let link = dir.join(format!(
            "ionport-singer-{id}{}",
            std::env::consts::EXE_SUFFIX
        ));
        #[cfg(unix)]
        std::os::unix::fs::symlink(ionport_tests::ionport_bin(), &link).unwrap();
        #[cfg(not(unix))]
        std::fs::copy(ionport_tests::ionport_bin(), &link).unwrap();
    }
}

/// The credentials block of the form split into what goes into `meltano.yml` and the
/// secrets, which go into the environment as Meltano asks of sensitive settings.
fn split_credentials(fx: &Fixture, plugin_name: &str) -> (Value, Vec<(String, String)>) {
    let mut config = Map::new();
    let mut env = Vec::new();
    for (k, v) in fx.credentials().as_object().unwrap() {
        if ["password", "client_secret"].contains(&k.as_str()) {
            let var = format!("{plugin_name}_CREDENTIALS_{k}").to_uppercase();
            env.push((var, v.as_str().unwrap().to_string()));
        } else {
            config.insert(k.clone(), v.clone());
        }
    }
    (Value::Object(config), env)
}

struct Project {
    dir: PathBuf,
    path_var: std::ffi::OsString,
    env: Vec<(String, String)>,
    meltano: PathBuf,
}

impl Project {
    fn meltano(&self, fx: &Fixture, args: &[&str]) -> Output {
        let out = Command::new(&self.meltano)
            .args(args)
            .current_dir(&self.dir)
            .env("PATH", &self.path_var)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("IONPORT_PLUGIN_PATH", ionport_tests::profile_dir())
            .env("IONPORT_HOME", fx.dir.path().join("home"))
            .env("MELTANO_SEND_ANONYMOUS_USAGE_STATS", "false")
            .env_remove("IONPORT_LOG")
            .output()
            .unwrap();
        assert_no_canary(&String::from_utf8_lossy(&out.stdout), "meltano's stdout");
        assert_no_canary(&String::from_utf8_lossy(&out.stderr), "meltano's stderr");
        assert!(
            out.status.success(),
            "meltano {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

fn project(fx: &Fixture) -> Project {
    let dir = fx.dir.path().join("project");
    std::fs::create_dir_all(dir.join("ionport")).unwrap();
    for (id, _, _) in CONNECTORS {
        let file = format!("tap-ionport-{id}.meltano.yml");
        std::fs::copy(definitions().join(&file), dir.join("ionport").join(&file))
            .unwrap_or_else(|e| panic!("meltano/{file}: {e}"));
    }
    let bin = fx.dir.path().join("bin");
    multi_call_links(&bin);
    let target_jsonl = python::bin(&python::venv(python::SINGER), "target-jsonl");
    let mut extractors = Vec::new();
    let mut loaders = Vec::new();
    let mut env = Vec::new();
    for (id, _, _) in CONNECTORS {
        let name = short(id);
        let (credentials, secrets) = split_credentials(fx, name);
        env.extend(secrets);
        let mut config = Fixture::settings(id);
        config["credentials"] = credentials;
        extractors.push(json!({
            "name": name, "inherit_from": format!("tap-ionport-{id}"),
            "config": config, "select": ["*.*"],
        }));
        loaders.push(json!({
            "name": format!("target-jsonl-{name}"), "namespace": "target_jsonl",
            "executable": target_jsonl,
            "config": {"destination_path": dir.join("out").join(name), "do_timestamp_file": false},
        }));
    }
    // JSON is YAML: no YAML writer needed for the project file.
    let meltano_yml = json!({
        "default_environment": "test",
        "project_id": "ionport-meltano-test",
        "send_anonymous_usage_stats": false,
        "environments": [{"name": "test"}],
        "include_paths": ["./ionport/*.meltano.yml"],
        "plugins": {"extractors": extractors, "loaders": loaders},
    });
    std::fs::write(
        dir.join("meltano.yml"),
        serde_json::to_string_pretty(&meltano_yml).unwrap(),
    )
    .unwrap();
    let mut paths = vec![bin];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    Project {
        dir,
        path_var: std::env::join_paths(paths).unwrap(),
        env,
        meltano: python::bin(&python::venv(MELTANO), "meltano"),
    }
}

fn short(connector: &str) -> &str {
    connector.trim_start_matches("infor-")
}

/// Records per file of `dir` (`STREAM.jsonl`).
fn written(dir: &Path) -> Map<String, Value> {
    let mut counts = Map::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_no_canary(&text, &path.display().to_string());
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        counts.insert(name, json!(text.lines().count()));
    }
    counts
}

/// Every file under `dir` (Meltano's system database and logs included) without a canary.
fn assert_no_canary_in(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            assert_no_canary_in(&path);
        } else {
            let bytes = std::fs::read(&path).unwrap();
            assert_no_canary(
                &String::from_utf8_lossy(&bytes),
                &path.display().to_string(),
            );
        }
    }
}

#[test]
fn meltano_runs_the_shipped_definitions_twice_the_second_from_its_state() {
    let fx = Fixture::start(30);
    let p = project(&fx);
    let mut run = vec!["run"];
    let pairs: Vec<(String, String)> = CONNECTORS
        .iter()
        .map(|(id, _, _)| (short(id).to_string(), format!("target-jsonl-{}", short(id))))
        .collect();
    for (tap, target) in &pairs {
        run.extend([tap.as_str(), target.as_str()]);
    }
    let out_root = p.dir.join("out");

    let mut first_counts = Map::new();
    for round in 1..=2 {
        for (id, _, _) in CONNECTORS {
            std::fs::create_dir_all(out_root.join(short(id))).unwrap();
        }
        let started = std::time::Instant::now();
        p.meltano(&fx, &run);
        eprintln!(
            "meltano run {round} (three taps): {:.1} s",
            started.elapsed().as_secs_f64()
        );
        for (id, _, _) in CONNECTORS {
            let streams = fx.native_streams(id);
            let files = written(&out_root.join(short(id)));
            // target-jsonl makes a stream's file at its first record: a second run that
            // brings nothing new makes none.
            let ids: Vec<String> = streams
                .iter()
                .map(|s| expected_stream_id(&s.name))
                .collect();
            for f in files.keys() {
                assert!(
                    ids.iter().any(|id| format!("{id}.jsonl") == *f),
                    "{id}: {f}"
                );
            }
            if round == 1 {
                assert_eq!(files.len(), streams.len(), "{id}: {files:?}");
            }
            for spec in &streams {
                let stream_id = expected_stream_id(&spec.name);
                assert_file_name(&stream_id);
                let file = format!("{stream_id}.jsonl");
                let n = files.get(&file).and_then(Value::as_u64).unwrap_or(0);
                let incremental = spec.sync_modes.contains(&SyncMode::Incremental);
                let key = format!("{id}/{file}");
                if round == 1 {
                    let mode = if incremental {
                        SyncMode::Incremental
                    } else {
                        SyncMode::FullRefresh
                    };
                    let native = fx.native_count(id, &spec.name, mode);
                    assert!(native > 0, "{key}: the emulator has no data");
                    assert_eq!(n, native, "{key}");
                    first_counts.insert(key, json!(n));
                } else {
                    let before = first_counts[&key].as_u64().unwrap();
                    if incremental {
                        assert!(
                            n < before,
                            "{key}: {n} of {before} again, not from the state"
                        );
                    } else {
                        assert_eq!(n, before, "{key}");
                    }
                }
            }
        }
        std::fs::rename(&out_root, p.dir.join(format!("out-{round}"))).unwrap();
    }
    // The state Meltano keeps is keyed by the stream ids.
    let out = p.meltano(&fx, &["state", "get", "test:m3-to-target-jsonl-m3"]);
    let state: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        !state["singer_state"]["bookmarks"]["table__OCUSMA"].is_null(),
        "{state}"
    );
    assert_no_canary_in(&p.dir);
}

/// The form's fields as Meltano settings: `(name, kind, sensitive, options)`, the
/// credentials block's fields as `credentials.FIELD`.
fn form_settings(form: &Value) -> Vec<(String, String, bool, Vec<String>)> {
    let resolve = |v: &Value| -> Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => form
                .pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("{r}"))
                .clone(),
            None => v.clone(),
        }
    };
    let kind = |v: &Value| -> (String, Vec<String>) {
        let v = resolve(v);
        if let Some(one_of) = v.get("oneOf").and_then(Value::as_array) {
            let values = one_of
                .iter()
                .map(|o| o["const"].as_str().unwrap().to_string());
            return ("options".into(), values.collect());
        }
        let ty = match &v["type"] {
            Value::Array(types) => types.iter().find(|t| *t != "null").unwrap().clone(),
            t => t.clone(),
        };
        (ty.as_str().unwrap().to_string(), Vec::new())
    };
    let mut settings = Vec::new();
    for (name, field) in form["properties"].as_object().unwrap() {
        let field = resolve(field);
        if name == "credentials" {
            for (sub, f) in field["properties"].as_object().unwrap() {
                let (k, o) = kind(f);
                let secret = f.get("x-secret") == Some(&json!(true));
                settings.push((format!("credentials.{sub}"), k, secret, o));
            }
        } else {
            let (k, o) = kind(&field);
            let secret = field.get("x-secret") == Some(&json!(true));
            settings.push((name.clone(), k, secret, o));
        }
    }
    settings.sort();
    settings
}

#[test]
fn each_definition_has_the_connectors_form_as_settings_and_marks_its_secrets() {
    let venv = python::venv(MELTANO);
    for (id, _, _) in CONNECTORS {
        let file = definitions().join(format!("tap-ionport-{id}.meltano.yml"));
        let out = Command::new(python::bin(&venv, "python"))
            .arg(python::script("yaml_to_json.py"))
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {out:?}", file.display());
        let def: Value = serde_json::from_slice(&out.stdout).unwrap();
        let tap = &def["plugins"]["extractors"][0];
        assert_eq!(tap["name"], format!("tap-ionport-{id}"));
        assert_eq!(tap["executable"], format!("ionport-singer-{id}"));
        let caps = tap["capabilities"].as_array().unwrap();
        for cap in ["catalog", "discover", "state"] {
            assert!(caps.contains(&json!(cap)), "{id}: {cap}");
        }
        let mut declared: Vec<(String, String, bool, Vec<String>)> = tap["settings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let options = s["options"].as_array().map(|o| {
                    o.iter()
                        .map(|o| o["value"].as_str().unwrap().to_string())
                        .collect()
                });
                (
                    s["name"].as_str().unwrap().to_string(),
                    s["kind"].as_str().unwrap().to_string(),
                    s["sensitive"] == true,
                    options.unwrap_or_default(),
                )
            })
            .collect();
        declared.sort();
        let p = plugin(id);
        assert_eq!(declared, form_settings(p.connection_form()), "{id}");
        // What the form requires, Meltano asks for.
        let required: Vec<&str> = tap["settings_group_validation"][0]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        for (name, _, secret, _) in &declared {
            if *secret {
                assert!(required.contains(&name.as_str()), "{id}: {name}");
            }
        }
    }
}
