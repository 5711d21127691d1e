//! A pipeline file is validated before anything runs; each mistake is reported with the
//! file, line and column and what was expected.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use ionport_core::pipeline::{Diagnostic, load};
use ionport_core::plugin::PluginRegistry;
use ionport_tests::connector_libs;

const BASE: &str = r#"# A valid file; each case below breaks one thing.
[environments.warehouse]
destination = { type = "sqlite", path = "out.db" }

[environments.lake]
destination = { type = "jsonl", path = "lake" }

[connections.m3]
connector = "infor-m3"
credentials = { ionapi = "demo.ionapi" }
settings = { company = 100, division = "AAA" }

[connections.ln]
connector = "infor-ln"
credentials = { vault = "prod" }
settings = { company = 100 }

[pipelines.m3_daily]
connection = "m3"
environment = "warehouse"
tasks = ["customers", "items"]
sync_mode = "incremental"
page_size = 500

[pipelines.ln_hourly]
connection = "ln"
environment = "lake"
schedule = "every 1h"
"#;

struct Case {
    name: &'static str,
    from: &'static str,
    to: &'static str,
    /// Where the error must point: the first occurrence of this text in the broken file.
    at: &'static str,
    /// What the message must say.
    says: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "toml syntax",
        from: r#"connector = "infor-m3""#,
        to: r#"connector = "infor-m3"#,
        at: "\ncredentials = { ionapi",
        says: "invalid TOML",
    },
    Case {
        name: "unknown section",
        from: "[pipelines.m3_daily]",
        to: "[pipeline.m3_daily]",
        at: "pipeline.m3_daily",
        says: "unknown field `pipeline`",
    },
    Case {
        name: "unknown pipeline key",
        from: "page_size = 500",
        to: "pagesize = 500",
        at: "pagesize",
        says: "unknown field `pagesize`",
    },
    Case {
        name: "wrong type",
        from: "page_size = 500",
        to: "page_size = \"500\"",
        at: "\"500\"",
        says: "invalid type",
    },
    Case {
        name: "unknown sync mode",
        from: r#"sync_mode = "incremental""#,
        to: r#"sync_mode = "delta""#,
        at: "\"delta\"",
        says: "unknown variant `delta`",
    },
    Case {
        name: "unknown destination type",
        from: r#"type = "jsonl""#,
        to: r#"type = "mysql""#,
        at: "\"mysql\"",
        says: "unknown variant `mysql`",
    },
    Case {
        name: "unknown connector",
        from: r#"connector = "infor-ln""#,
        to: r#"connector = "infor-ln2""#,
        at: "\"infor-ln2\"",
        says: "unknown connector 'infor-ln2'",
    },
    Case {
        name: "unknown connection",
        from: r#"connection = "ln""#,
        to: r#"connection = "lm""#,
        at: "\"lm\"",
        says: "unknown connection 'lm'",
    },
    Case {
        name: "unknown environment",
        from: r#"environment = "lake""#,
        to: r#"environment = "laek""#,
        at: "\"laek\"",
        says: "unknown environment 'laek'",
    },
    Case {
        name: "environment dedicated to one connection",
        from: r#"environment = "lake""#,
        to: r#"environment = "warehouse""#,
        at: "\"warehouse\"\nschedule",
        says: "dedicated to connection 'm3'",
    },
    Case {
        name: "unknown task",
        from: r#"tasks = ["customers", "items"]"#,
        to: r#"tasks = ["customers", "itemz"]"#,
        at: "\"itemz\"",
        says: "has no task 'itemz'",
    },
    Case {
        name: "empty task list",
        from: r#"tasks = ["customers", "items"]"#,
        to: "tasks = []",
        at: "[]",
        says: "task list is empty",
    },
    Case {
        name: "form: out of range",
        from: "company = 100, division",
        to: "company = 0, division",
        at: "0, division",
        says: "settings.company",
    },
    Case {
        name: "form: unknown setting",
        from: "settings = { company = 100 }",
        to: "settings = { company = 100, compny = 1 }",
        at: "{ company = 100, compny",
        says: "compny",
    },
    Case {
        name: "form: out of range",
        from: "settings = { company = 100, division = \"AAA\" }",
        to: "settings = { company = 1000, division = \"AAA\" }",
        at: "1000, division",
        says: "1000",
    },
    Case {
        name: "form: wrong type",
        from: "settings = { company = 100 }",
        to: "settings = { company = \"hundred\" }",
        at: "\"hundred\"",
        says: "settings.company",
    },
    Case {
        name: "inline secret",
        from: "settings = { company = 100 }",
        to: "settings = { company = 100, credentials = { password = \"x\" } }",
        at: "{ password",
        says: "secrets may not be written",
    },
    Case {
        name: "missing .ionapi",
        from: r#"ionapi = "demo.ionapi""#,
        to: r#"ionapi = "nope.ionapi""#,
        at: r#"{ ionapi = "nope"#,
        says: "does not exist",
    },
    Case {
        name: "unset variable",
        from: "division = \"AAA\"",
        to: "division = \"${IONPORT_TEST_UNSET_VARIABLE}\"",
        at: "\"${IONPORT",
        says: "IONPORT_TEST_UNSET_VARIABLE is not set",
    },
    Case {
        name: "bad schedule",
        from: "schedule = \"every 1h\"",
        to: "schedule = \"hourly\"",
        at: "\"hourly\"",
        says: "expected `every N`",
    },
    Case {
        name: "zero page size",
        from: "page_size = 500",
        to: "page_size = 0",
        at: "0\n",
        says: "page_size must be at least 1",
    },
    Case {
        name: "postgres password inline",
        from: r#"{ type = "jsonl", path = "lake" }"#,
        to: r#"{ type = "postgres", url = "postgres://u:hunter2@db/x" }"#,
        at: r#"{ type = "postgres""#,
        says: "PGPASSWORD",
    },
    Case {
        name: "bad quota",
        from: "settings = { company = 100 }\n",
        to: "settings = { company = 100 }\nquota = \"lots\"\n",
        at: "\"lots\"",
        says: "expected N/SECONDS",
    },
    Case {
        name: "bad daily budget",
        from: "settings = { company = 100 }\n",
        to: "settings = { company = 100 }\ndaily_budget = \"lots\"\n",
        at: "\"lots\"",
        says: "expected a number of requests per day",
    },
    Case {
        name: "zero daily budget",
        from: "settings = { company = 100 }\n",
        to: "settings = { company = 100 }\ndaily_budget = 0 # no requests\n",
        at: "0 # no requests",
        says: "daily_budget must be at least 1",
    },
    Case {
        name: "auth budget of one grant a minute",
        from: "settings = { company = 100 }\n",
        to: "settings = { company = 100 }\nauth_budget = { per_minute = 1 }\n",
        at: "{ per_minute = 1 }",
        says: "per_minute must be at least 2",
    },
    Case {
        name: "auth budget with a misspelt key",
        from: "settings = { company = 100 }\n",
        to: "settings = { company = 100 }\nauth_budget = { per_minit = 5 }\n",
        at: "{ per_minit = 5 }",
        says: "auth_budget",
    },
    Case {
        name: "timeout past the gateway's longest",
        from: "settings = { company = 100 }\n",
        to: "settings = { company = 100 }\ntimeout = \"10m\"\n",
        at: "\"10m\"",
        says: "between 1s and 300s",
    },
    Case {
        name: "missing connection key",
        from: "connection = \"ln\"\n",
        to: "",
        at: "[pipelines.ln_hourly]",
        says: "missing field `connection`",
    },
];

fn pos(text: &str, marker: &str) -> (usize, usize) {
    let i = text
        .find(marker)
        .unwrap_or_else(|| panic!("marker {marker:?} not in the file"));
    let before = &text[..i];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |j| j + 1) + 1;
    (line, col)
}

fn setup() -> (tempfile::TempDir, PathBuf, PluginRegistry) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("demo.ionapi"), "{}").unwrap();
    let file = dir.path().join("pipelines.toml");
    (dir, file, PluginRegistry::load_from(&connector_libs()))
}

#[test]
fn the_valid_file_loads_into_a_plan() {
    let (_dir, file, reg) = setup();
    std::fs::write(&file, BASE).unwrap();
    let plan = load(&file, &reg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.pipelines.len(), 2);
    let m3 = plan
        .pipelines
        .iter()
        .find(|p| p.name == "m3_daily")
        .unwrap();
    assert_eq!(
        m3.tasks
            .iter()
            .map(|t| t.spec.name.as_str())
            .collect::<Vec<_>>(),
        ["customers", "items"]
    );
    let ln = plan
        .pipelines
        .iter()
        .find(|p| p.name == "ln_hourly")
        .unwrap();
    assert_eq!(ln.tasks.len(), 3, "every predefined task by default");
    assert!(
        ln.tasks
            .iter()
            .all(|t| t.sync_mode.as_str() == "incremental")
    );
    assert_eq!(
        ln.schedule,
        Some(ionport_core::pipeline::Schedule::Every(
            std::time::Duration::from_secs(3600)
        ))
    );
}

#[test]
fn each_kind_of_mistake_is_reported_at_its_line_and_column() {
    assert!(CASES.len() >= 15);
    let (_dir, file, reg) = setup();
    for case in CASES {
        assert!(
            BASE.contains(case.from),
            "{}: {:?} not in the base file",
            case.name,
            case.from
        );
        let text = BASE.replacen(case.from, case.to, 1);
        std::fs::write(&file, &text).unwrap();
        let errs = load(&file, &reg).expect_err(case.name).0;
        let want = pos(&text, case.at);
        let hit: Option<&Diagnostic> = errs.iter().find(|d| d.message.contains(case.says));
        let d = hit
            .unwrap_or_else(|| panic!("{}: no error says {:?}: {:#?}", case.name, case.says, errs));
        assert_eq!((d.line, d.column), want, "{}: {d}", case.name);
        assert_eq!(d.file, file);
        let shown = d.to_string();
        assert!(
            shown.starts_with(&format!("{}:{}:{}: ", file.display(), want.0, want.1)),
            "{shown}"
        );
    }
}

#[test]
fn an_empty_file_says_it_has_no_pipelines_and_a_missing_one_is_named() {
    let (dir, file, reg) = setup();
    std::fs::write(&file, "").unwrap();
    let e = load(&file, &reg).unwrap_err().to_string();
    assert!(e.contains("defines no pipelines"), "{e}");
    let missing = dir.path().join("nope.toml");
    let e = load(&missing, &reg).unwrap_err().to_string();
    assert!(e.contains("nope.toml") && e.contains("cannot read"), "{e}");
}
