//! LN `companies = [100, 200]`: every task reads each company (`X-Infor-LnCompany` per
//! request) into one stream whose records carry their `company`, first in the primary
//! key. Through the built cdylib on core's own host (`Recorder`, with a tap that writes
//! down each request's company header and adds no rule), and through `ionport run` into
//! SQLite, against a real emulator on loopback. The oracle is the emulator's generator
//! (what it holds per company), never the connector.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ionport_core::form_values::FormValues;
use ionport_core::host::{HostCallbacks, HostResponse};
use ionport_core::plugin::{LoadedPlugin, PluginRegistry};
use ionport_emulator::EmulatorConfig;
use ionport_emulator::data::{Dataset, Surface, TableDef, tables};
use ionport_plugin_abi::wire::{
    ConnectionConfig, GatewayRequestHead, ReadRequest, ReadSummary, SyncMode,
};
use ionport_plugin_abi::{LogLevel, PluginError, RecordBatch};
use ionport_tests::emulated::Emulated;
use ionport_tests::recorder::{Recorded, Recorder};
use ionport_tests::{finished_reads, form_credentials, output_text, plugin_lib, run_pipeline};
use serde_json::{Map, Value, json};

const SCALE: u64 = 300;

fn ln() -> Arc<LoadedPlugin> {
    let mut reg = PluginRegistry::default();
    reg.load(&plugin_lib("ionport_connector_ln"))
        .expect("the LN connector loads")
        .clone()
}

fn emulator() -> Emulated {
    Emulated::start(EmulatorConfig {
        scale: SCALE,
        ..EmulatorConfig::default()
    })
}

/// Core's host (the recorder) with the `X-Infor-LnCompany` of every gateway request
/// written down: `(path, company header)`.
struct Tap {
    inner: Arc<Recorder>,
    companies: Mutex<Vec<(String, Option<String>)>>,
}

impl Tap {
    fn new(inner: Arc<Recorder>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            companies: Mutex::new(Vec::new()),
        })
    }

    fn take(&self) -> (Recorded, Vec<(String, Option<String>)>) {
        let seen = std::mem::take(&mut *self.companies.lock().unwrap());
        (self.inner.take(), seen)
    }
}

impl HostCallbacks for Tap {
    fn gateway(
        &self,
        head: GatewayRequestHead,
        body: Vec<u8>,
    ) -> Result<HostResponse, PluginError> {
        let company = head
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-infor-lncompany"))
            .map(|(_, v)| v.clone());
        self.companies
            .lock()
            .unwrap()
            .push((head.path.clone(), company));
        self.inner.gateway(head, body)
    }
    fn emit(&self, batch: RecordBatch) -> Result<(), PluginError> {
        self.inner.emit(batch)
    }
    fn checkpoint(&self, state: &str) -> Result<(), PluginError> {
        self.inner.checkpoint(state)
    }
    fn cancelled(&self) -> bool {
        self.inner.cancelled()
    }
    fn log(&self, plugin: &str, level: LogLevel, message: &str) {
        self.inner.log(plugin, level, message);
    }
}

fn conn(settings: Value) -> ConnectionConfig {
    ConnectionConfig { settings }
}

fn two() -> Value {
    json!({"companies": [100, 200], "language": "en-US"})
}

fn request(task: &str, settings: Value, mode: SyncMode, state: Option<Value>) -> ReadRequest {
    let mut request = ReadRequest::new(conn(settings), task, mode);
    request.state = state;
    request.page_size = Some(40);
    request.options = json!({});
    request
}

/// What the generator holds for `table` in company `cono`, as LN OData renders it, by key.
fn expected(ds: &Dataset, table: &TableDef, cono: u32) -> ByKey {
    let mut out = BTreeMap::new();
    for i in 0..ds.count(table.entity, cono) {
        let r = ds.record(table.entity, cono, i);
        if r.deleted() {
            continue;
        }
        let mut m = Map::new();
        for c in table.columns {
            m.insert(
                c.name.to_string(),
                r.get(c.field).to_json(c.kind, Surface::LnOData),
            );
        }
        let key = m[table.columns[table.key[0]].name]
            .as_str()
            .unwrap_or_default()
            .to_string();
        out.insert(key, m);
    }
    out
}

/// Records by key.
type ByKey = BTreeMap<String, Map<String, Value>>;

/// Records by company, then by key (the `company` field taken out); the count of
/// (company, key) pairs that came twice.
fn by_company(records: &[(String, Value)], key: &str) -> (BTreeMap<u64, ByKey>, usize) {
    let mut out: BTreeMap<u64, ByKey> = BTreeMap::new();
    let mut dups = 0;
    for (_, v) in records {
        let mut m = v.as_object().cloned().expect("a record is an object");
        let company = m
            .remove("company")
            .and_then(|c| c.as_u64())
            .unwrap_or_else(|| panic!("a record without an integer company: {v}"));
        let k = m[key].as_str().expect("a string key").to_string();
        if out.entry(company).or_default().insert(k, m).is_some() {
            dups += 1;
        }
    }
    (out, dups)
}

fn read(p: &LoadedPlugin, tap: &Arc<Tap>, req: &ReadRequest) -> ReadSummary {
    p.read(tap.clone() as Arc<dyn HostCallbacks>, req)
        .unwrap_or_else(|e| panic!("read {} failed: {e}", req.task))
}

#[test]
fn two_companies_land_in_one_stream_with_the_company_in_the_key() {
    let emu = emulator();
    let p = ln();
    let tap = Tap::new(emu.host());
    let ds = emu.emu.dataset();
    let table = &tables::LN_BUSINESS_PARTNERS;
    let want100 = expected(&ds, table, 100);
    let want200 = expected(&ds, table, 200);
    // The same keys exist in both companies: only the company tells their rows apart.
    let shared = want200.keys().filter(|k| want100.contains_key(*k)).count();
    assert!(
        shared > 0,
        "the generator shares keys between the companies"
    );

    // Both paging styles: links one by one, and `$skip` windows four at a time.
    for (options, in_flight) in [(json!({}), None), (json!({"paging": "skip"}), Some(4))] {
        let mut req = request("business_partners", two(), SyncMode::FullRefresh, None);
        req.options = options.clone();
        req.pages_in_flight = in_flight;
        let summary = read(&p, &tap, &req);
        let (rec, seen) = tap.take();
        assert_eq!(
            rec.records.len(),
            want100.len() + want200.len(),
            "{options}: count(100) + count(200)"
        );
        assert_eq!(summary.records as usize, rec.records.len());
        let (got, dups) = by_company(&rec.records, "BusinessPartner");
        assert_eq!(dups, 0, "{options}: no (company, key) twice");
        assert_eq!(
            got.get(&100),
            Some(&want100),
            "{options}: company 100's rows"
        );
        assert_eq!(
            got.get(&200),
            Some(&want200),
            "{options}: company 200's rows"
        );

        // Every request named a company; 100's requests all came before 200's.
        assert!(!seen.is_empty());
        let companies: Vec<&str> = seen
            .iter()
            .map(|(path, c)| {
                c.as_deref()
                    .unwrap_or_else(|| panic!("{path} without X-Infor-LnCompany"))
            })
            .collect();
        let switch = companies
            .iter()
            .position(|c| *c == "200")
            .expect("200 asked");
        assert!(
            companies[..switch].iter().all(|c| *c == "100"),
            "{companies:?}"
        );
        assert!(
            companies[switch..].iter().all(|c| *c == "200"),
            "{companies:?}"
        );

        // The final state keeps each company's cursor apart.
        let state = summary.state.expect("a state");
        for c in ["100", "200"] {
            assert!(
                state["companies"][c]["cursor"].is_string(),
                "{c} has a cursor: {state}"
            );
        }
        assert!(
            state.get("done").is_none() && state.get("mode").is_none(),
            "{state}"
        );
    }

    // A service not activated in company 200 fails the task naming the company, after
    // company 100's rows (committed with their checkpoint).
    let req = request("sales_orders", two(), SyncMode::FullRefresh, None);
    let e = p
        .read(tap.clone() as Arc<dyn HostCallbacks>, &req)
        .expect_err("not activated in 200");
    let text = e.to_string();
    assert!(
        text.contains("company 200") && text.contains("not activated"),
        "{text}"
    );
    let (rec, _) = tap.take();
    assert_eq!(
        rec.records.len(),
        expected(&ds, &tables::LN_ORDERS, 100).len()
    );
}

#[test]
fn an_interrupted_read_resumes_in_the_company_it_stopped_in() {
    let emu = emulator();
    let p = ln();
    let tap = Tap::new(emu.host());
    let ds = emu.emu.dataset();
    let table = &tables::LN_ITEMS;
    let want100 = expected(&ds, table, 100);
    let want200 = expected(&ds, table, 200);
    // A batch per page of 3: stop two pages into company 200.
    let page = 3;
    assert!(want200.len() > 3 * page, "company 200 has pages enough");
    let pages100 = want100.len().div_ceil(page) as u64;
    for mode in [SyncMode::FullRefresh, SyncMode::Incremental] {
        tap.inner.cancel_after_batches(pages100 + 2);
        let mut req = request("items", two(), mode, None);
        req.page_size = Some(page as u32);
        let e = p
            .read(tap.clone() as Arc<dyn HostCallbacks>, &req)
            .expect_err("cancelled");
        assert_eq!(e.kind(), "cancelled", "{e}");
        let (first, _) = tap.take();
        let state = first.checkpoints.last().cloned().expect("a checkpoint");
        assert_eq!(state["done"], json!([100]), "{state}");
        assert!(state["companies"]["200"]["after"].is_array(), "{state}");
        assert!(state["companies"]["100"]["cursor"].is_string(), "{state}");

        let mut req = request("items", two(), mode, Some(state));
        req.page_size = Some(page as u32);
        read(&p, &tap, &req);
        let (rest, seen) = tap.take();
        // Company 100 is not asked again; 200 goes on after its last key.
        assert!(
            seen.iter().all(|(_, c)| c.as_deref() == Some("200")),
            "{seen:?}"
        );
        assert!(rest.records.iter().all(|(_, r)| r["company"] == 200));
        let mut all = first.records.clone();
        all.extend(rest.records);
        let (got, dups) = by_company(&all, "Item");
        assert_eq!(dups, 0, "{mode:?}: a resumed read repeats nothing");
        assert_eq!(got.get(&100), Some(&want100), "{mode:?}");
        assert_eq!(got.get(&200), Some(&want200), "{mode:?}");
    }
}

#[test]
fn an_incremental_read_picks_up_the_changes_of_each_company() {
    let emu = emulator();
    let p = ln();
    let tap = Tap::new(emu.host());
    let req = request("business_partners", two(), SyncMode::Incremental, None);
    let first = read(&p, &tap, &req);
    tap.take();
    let state = first.state.expect("a state");

    let mut changed: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for (cono, count) in [(100, 5), (200, 3)] {
        let v = emu.control(
            "POST",
            "changes",
            Some(json!({"table": "BusinessPartners", "count": count, "cono": cono})),
        );
        let keys: BTreeSet<String> = v["keys"]
            .as_array()
            .expect("changed keys")
            .iter()
            .map(|k| k.as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(keys.len(), count);
        changed.insert(cono, keys);
    }

    let req = request(
        "business_partners",
        two(),
        SyncMode::Incremental,
        Some(state.clone()),
    );
    let second = read(&p, &tap, &req);
    let (rec, _) = tap.take();
    let (got, dups) = by_company(&rec.records, "BusinessPartner");
    assert_eq!(dups, 0);
    for (cono, keys) in &changed {
        let read: BTreeSet<String> = got
            .get(cono)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        assert!(
            read.is_superset(keys),
            "company {cono}: {keys:?} in {read:?}"
        );
        // Only what changed, and the records at the old cursor (`ge`) again.
        let cursor = state["companies"][cono.to_string()]["cursor"]
            .as_str()
            .unwrap();
        for r in got[cono].values() {
            assert!(
                r["LastModifiedDateTime"].as_str().unwrap() >= cursor,
                "company {cono}: {r:?} is older than its cursor {cursor}"
            );
        }
    }
    // Each company's cursor moved to its own latest change.
    let after = second.state.expect("a state");
    for c in ["100", "200"] {
        assert!(
            after["companies"][c]["cursor"].as_str() > state["companies"][c]["cursor"].as_str(),
            "{c}: {after}"
        );
    }
}

#[test]
fn company_and_companies_together_or_an_empty_list_are_clear_errors() {
    let emu = emulator();
    let p = ln();
    let creds = form_credentials(&emu.emu.ionapi_json());
    let form = p.connection_form();
    let errors = |settings: Value| -> String {
        let mut values = settings;
        values["credentials"] = creds.clone();
        match FormValues::parse(form, &values) {
            Ok(_) => String::new(),
            Err(es) => es
                .iter()
                .map(|e| format!("{}: {}", e.field, e.reason))
                .collect::<Vec<_>>()
                .join("; "),
        }
    };
    let both = errors(json!({"company": 100, "companies": [100, 200]}));
    assert!(
        both.starts_with("companies:")
            && both.contains("company and companies exclude each other")
            && !both.contains("is not allowed"),
        "{both}"
    );
    let empty = errors(json!({"companies": []}));
    assert!(
        empty.starts_with("companies:") && empty.contains("[]"),
        "{empty}"
    );
    let twice = errors(json!({"companies": [100, 100]}));
    assert!(twice.starts_with("companies:"), "{twice}");
    let big = errors(json!({"companies": [100, 10000]}));
    assert!(big.starts_with("companies.1:"), "{big}");
    assert_eq!(errors(json!({"companies": [100, 200]})), "");
    assert_eq!(errors(json!({"company": 100, "companies": null})), "");
    assert_eq!(errors(json!({"company": 100})), "");

    // A request built by hand gets the connector's own words.
    let tap = Tap::new(emu.host());
    for (settings, words) in [
        (
            json!({"company": 100, "companies": [100, 200]}),
            "company and companies exclude each other",
        ),
        (json!({"companies": []}), "companies is empty"),
        (json!({"companies": [200, 200]}), "lists company 200 twice"),
    ] {
        let req = request("items", settings.clone(), SyncMode::FullRefresh, None);
        let e = p
            .read(tap.clone() as Arc<dyn HostCallbacks>, &req)
            .expect_err("refused");
        assert!(e.to_string().contains(words), "{settings}: {e}");
        assert_eq!(e.kind(), ionport_plugin_abi::error_kind::INVALID_INPUT);
        let r = p
            .check(
                tap.clone() as Arc<dyn HostCallbacks>,
                &conn(settings.clone()),
            )
            .expect("check");
        assert_eq!(r.failed_part.as_deref(), Some("settings"), "{r:?}");
        assert!(r.message.contains(words), "{settings}: {}", r.message);
    }
    let (_, seen) = tap.take();
    assert!(
        seen.is_empty(),
        "nothing asked with settings refused: {seen:?}"
    );
}

#[test]
fn check_tests_every_company_and_names_the_one_that_fails() {
    let emu = emulator();
    let p = ln();
    let tap = Tap::new(emu.host());
    let check = |settings: Value| {
        p.check(tap.clone() as Arc<dyn HostCallbacks>, &conn(settings))
            .expect("check")
    };
    // Orders is not activated in company 200 (the emulator, as a real tenant can).
    let r = check(two());
    assert!(!r.success, "{r:?}");
    assert_eq!(r.failed_part.as_deref(), Some("company"), "{r:?}");
    assert!(
        r.message.contains("company 200") && r.message.contains("not activated"),
        "{}",
        r.message
    );
    assert!(!r.message.contains("company 100"), "{}", r.message);
    assert_eq!(r.details["failed_company"], 200);
    assert_eq!(r.details["companies_ok"], json!([100]));
    let (_, seen) = tap.take();
    let asked: BTreeSet<&str> = seen.iter().filter_map(|(_, c)| c.as_deref()).collect();
    assert_eq!(asked, BTreeSet::from(["100", "200"]));

    // A company that does not exist is named too.
    let r = check(json!({"companies": [100, 4711]}));
    assert_eq!(r.failed_part.as_deref(), Some("company"), "{r:?}");
    assert!(r.message.contains("4711"), "{}", r.message);

    let r = check(json!({"companies": [100]}));
    assert!(r.success, "{r:?}");
    assert!(r.message.contains("companies 100"), "{}", r.message);

    // One company (or none) is checked as before: one entity set.
    tap.take();
    let r = check(json!({"company": 200}));
    assert!(r.success, "{r:?}");
    assert!(r.message.contains("company 200"), "{}", r.message);
}

#[test]
fn discover_gives_every_stream_the_company_key_and_says_which_company_refuses() {
    let emu = emulator();
    let p = ln();
    let tap = Tap::new(emu.host());
    let d = p
        .discover(tap.clone() as Arc<dyn HostCallbacks>, &conn(two()))
        .expect("discover");
    for s in &d.streams {
        assert_eq!(
            s.spec.primary_key.first().map(String::as_str),
            Some("company"),
            "{}",
            s.spec.name
        );
        assert_eq!(
            s.spec.record_schema["properties"]["company"]["type"], "integer",
            "{}",
            s.spec.name
        );
    }
    let bp = d
        .streams
        .iter()
        .find(|s| s.spec.name == "business_partners")
        .unwrap();
    assert!(bp.available);
    assert_eq!(bp.spec.primary_key, ["company", "BusinessPartner"]);
    let so = d
        .streams
        .iter()
        .find(|s| s.spec.name == "sales_orders")
        .unwrap();
    assert!(!so.available);
    assert!(
        so.note.as_deref().unwrap_or("").contains("company 200"),
        "{so:?}"
    );

    // One company: the manifest's specs, unchanged.
    let d = p
        .discover(
            tap.clone() as Arc<dyn HostCallbacks>,
            &conn(json!({"company": 100})),
        )
        .expect("discover");
    for s in d.streams.iter().filter(|s| s.predefined) {
        let manifest = p.task(&s.spec.name).expect("a predefined task");
        assert_eq!(&s.spec, manifest);
    }
}

/// A pipeline of `tasks` from companies 100 and 200 into one SQLite file.
fn pipeline_file(dir: &Path, ionapi: &Path, settings: &str, tasks: &str) -> PathBuf {
    let text = format!(
        r#"
[environments.dev]
destination = {{ type = "sqlite", path = '{db}' }}

[connections.ln]
connector = "infor-ln"
credentials = {{ ionapi = '{ionapi}' }}
settings = {settings}
quota = "none"

[pipelines.ln]
connection = "ln"
environment = "dev"
page_size = 40
tasks = [{tasks}]
"#,
        db = dir.join("ln.db").display(),
        ionapi = ionapi.display(),
    );
    let file = dir.join("pipelines.toml");
    std::fs::write(&file, text).unwrap();
    file
}

/// `(company, key)` of every row of a SQLite table.
fn company_keys(
    db: &Path,
    stream: &str,
    key: &str,
) -> (Vec<String>, BTreeSet<(i64, String)>, usize) {
    let (cols, rows) = ionport_tests::sqlite::table(db, stream);
    let keys: BTreeSet<(i64, String)> = rows
        .iter()
        .map(|r| {
            (
                r["company"].as_i64().expect("an integer company"),
                r[key].as_str().expect("a string key").to_string(),
            )
        })
        .collect();
    (cols, keys, rows.len())
}

#[test]
fn ionport_run_writes_both_companies_into_sqlite_and_the_next_run_their_changes() {
    let emu = emulator();
    let ds = emu.emu.dataset();
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("t.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let file = pipeline_file(
        dir.path(),
        &ionapi,
        "{ companies = [100, 200] }",
        r#""business_partners", "items""#,
    );
    let out = run_pipeline(&file, Some("ionport::read=debug"));
    let all = output_text(&out);
    assert!(out.status.success(), "{all}");
    let db = dir.path().join("ln.db");
    for (stream, table, key) in [
        (
            "business_partners",
            &tables::LN_BUSINESS_PARTNERS,
            "BusinessPartner",
        ),
        ("items", &tables::LN_ITEMS, "Item"),
    ] {
        let want: BTreeSet<(i64, String)> = [100, 200]
            .into_iter()
            .flat_map(|c| {
                expected(&ds, table, c)
                    .into_keys()
                    .map(move |k| (i64::from(c), k))
            })
            .collect();
        let (cols, got, rows) = company_keys(&db, stream, key);
        assert!(cols.contains(&"company".to_string()), "{cols:?}");
        assert_eq!(
            rows as u64,
            ds.count(table.entity, 100) + ds.count(table.entity, 200),
            "{stream}: count(100) + count(200)"
        );
        assert_eq!(got, want, "{stream}");
    }

    // Changes in both companies: the next (incremental) run reads them, and only them
    // (with the rows at each company's old cursor), updating their rows in place.
    let stamps = |db: &Path| -> BTreeMap<(i64, String), String> {
        let (_, rows) = ionport_tests::sqlite::table(db, "business_partners");
        rows.iter()
            .map(|r| {
                (
                    (
                        r["company"].as_i64().unwrap(),
                        r["BusinessPartner"].as_str().unwrap().to_string(),
                    ),
                    r["LastModifiedDateTime"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let before = stamps(&db);
    let mut changed: Vec<(i64, String)> = Vec::new();
    for (cono, count) in [(100, 4), (200, 2)] {
        let v = emu.control(
            "POST",
            "changes",
            Some(json!({"table": "BusinessPartners", "count": count, "cono": cono})),
        );
        for k in v["keys"].as_array().expect("changed keys") {
            changed.push((cono, k.as_str().unwrap().to_string()));
        }
    }
    let out = run_pipeline(&file, Some("ionport::read=debug"));
    let all = output_text(&out);
    assert!(out.status.success(), "{all}");
    let reads = finished_reads(&String::from_utf8_lossy(&out.stderr));
    let bp = reads
        .iter()
        .find(|(t, _)| t == "business_partners")
        .map(|(_, n)| *n)
        .expect("business_partners read");
    let n = changed.len() as u64;
    assert!(bp >= n && bp < n + 20, "{bp} read for {n} changed\n{all}");
    let after = stamps(&db);
    assert_eq!(after.len(), before.len(), "rows updated in place");
    for key in &changed {
        assert!(
            after[key] > before[key],
            "{key:?}: {} -> {}",
            before[key],
            after[key]
        );
    }
    let moved = after.iter().filter(|(k, v)| before[*k] != **v).count();
    assert_eq!(moved, changed.len(), "only the changed rows moved");
}

#[test]
fn a_pipeline_with_company_and_companies_fails_at_load_naming_both() {
    let emu = emulator();
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("t.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    for (settings, words) in [
        (
            "{ company = 100, companies = [100, 200] }",
            "company and companies exclude each other",
        ),
        ("{ companies = [] }", "settings.companies"),
    ] {
        let file = pipeline_file(dir.path(), &ionapi, settings, r#""items""#);
        let out = run_pipeline(&file, None);
        let all = output_text(&out);
        assert!(!out.status.success(), "{all}");
        assert!(all.contains(words), "{settings}: {all}");
        assert!(
            all.contains("pipelines.toml:"),
            "located in the file: {all}"
        );
    }
}

#[test]
fn airbyte_catalogs_and_field_selections_carry_the_company() {
    let emu = emulator();
    let ds = emu.emu.dataset();
    let dir = tempfile::tempdir().unwrap();
    let mut config = json!({"companies": [100, 200]});
    config["credentials"] = form_credentials(&emu.emu.ionapi_json());
    let cfg = dir.path().join("config.json");
    std::fs::write(&cfg, config.to_string()).unwrap();
    let plugins = [ionport_tests::profile_dir()];
    let cfg_arg = cfg.to_str().unwrap();
    let messages = |out: &std::process::Output| -> Vec<Value> {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };

    let out = ionport_tests::ionport(
        &plugins,
        &["airbyte", "infor-ln", "discover", "--config", cfg_arg],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let catalog = messages(&out)
        .into_iter()
        .find(|m| m["type"] == "CATALOG")
        .expect("a catalog");
    let mut bp = catalog["catalog"]["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "business_partners")
        .cloned()
        .expect("business_partners");
    assert_eq!(
        bp["source_defined_primary_key"],
        json!([["company"], ["BusinessPartner"]])
    );

    // A selection of a few fields: the company comes with the key.
    bp["json_schema"]["properties"] = json!({
        "company": bp["json_schema"]["properties"]["company"],
        "BusinessPartner": bp["json_schema"]["properties"]["BusinessPartner"],
        "Name": bp["json_schema"]["properties"]["Name"],
    });
    let configured = json!({"streams": [{
        "stream": bp, "sync_mode": "full_refresh", "destination_sync_mode": "overwrite",
    }]});
    let cat = dir.path().join("catalog.json");
    std::fs::write(&cat, configured.to_string()).unwrap();
    let out = ionport_tests::ionport(
        &plugins,
        &[
            "airbyte",
            "infor-ln",
            "read",
            "--config",
            cfg_arg,
            "--catalog",
            cat.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let records: Vec<Value> = messages(&out)
        .into_iter()
        .filter(|m| m["type"] == "RECORD")
        .map(|m| m["record"]["data"].clone())
        .collect();
    let table = &tables::LN_BUSINESS_PARTNERS;
    assert_eq!(
        records.len(),
        expected(&ds, table, 100).len() + expected(&ds, table, 200).len()
    );
    let fields: BTreeSet<String> = records
        .iter()
        .flat_map(|r| r.as_object().unwrap().keys().cloned())
        .collect();
    assert!(
        fields.contains("company") && fields.contains("Name"),
        "{fields:?}"
    );
    assert!(!fields.contains("City"), "{fields:?}");
}

/// States written as the connector wrote them before it was rebuilt on the SDK's sorted
/// streams (the JSON is spelled out here, not produced by the connector under test) go
/// on where they stopped; a state of the other shape (one company's for a connection of
/// several, or the reverse) is refused with a clear error, never read as "no state".
#[test]
fn states_saved_by_the_connector_before_the_stream_api_resume_where_they_stopped() {
    let emu = emulator();
    let p = ln();
    let tap = Tap::new(emu.host());
    let ds = emu.emu.dataset();
    let table = &tables::LN_ITEMS;
    let want100 = expected(&ds, table, 100);
    let want200 = expected(&ds, table, 200);
    let mark = "2099-01-01T00:00:00Z";
    let middle = |want: &ByKey| want.keys().nth(want.len() / 2).cloned().expect("a key");
    let after = |want: &ByKey, key: &str| -> Vec<String> {
        want.keys().filter(|k| k.as_str() > key).cloned().collect()
    };

    // One company, interrupted in a full refresh after the middle key.
    let key = middle(&want100);
    let old = json!({"mode": "full_refresh", "next_cursor": mark, "after": [key]});
    let one = json!({"company": 100, "language": "en-US"});
    let req = request("items", one.clone(), SyncMode::FullRefresh, Some(old));
    let summary = read(&p, &tap, &req);
    let (rec, _) = tap.take();
    let got: Vec<String> = rec
        .records
        .iter()
        .map(|(_, r)| r["Item"].as_str().expect("a key").to_string())
        .collect();
    assert_eq!(
        got,
        after(&want100, &key),
        "the rest after the saved key, once"
    );
    // The mark the interrupted read took, not one taken now.
    assert_eq!(summary.state, Some(json!({ "cursor": mark })));

    // Two companies: 100 done, 200 interrupted after its middle key.
    let key = middle(&want200);
    let old = json!({
        "companies": {
            "100": {"cursor": "2026-01-01T00:00:00Z"},
            "200": {"mode": "full_refresh", "next_cursor": mark, "after": [key]},
        },
        "mode": "full_refresh",
        "done": [100],
    });
    let req = request("items", two(), SyncMode::FullRefresh, Some(old));
    let summary = read(&p, &tap, &req);
    let (rec, seen) = tap.take();
    assert!(
        seen.iter().all(|(_, c)| c.as_deref() == Some("200")),
        "{seen:?}"
    );
    let got: Vec<String> = rec
        .records
        .iter()
        .map(|(_, r)| {
            assert_eq!(r["company"], 200, "{r}");
            r["Item"].as_str().expect("a key").to_string()
        })
        .collect();
    assert_eq!(got, after(&want200, &key));
    assert_eq!(
        summary.state,
        Some(json!({"companies": {
            "100": {"cursor": "2026-01-01T00:00:00Z"},
            "200": {"cursor": mark},
        }}))
    );

    // The other shape: refused, naming what is wrong; nothing read.
    for (settings, state) in [
        (two(), json!({"cursor": "2026-01-01T00:00:00Z"})),
        (
            one,
            json!({"companies": {"100": {"cursor": "2026-01-01T00:00:00Z"}}}),
        ),
    ] {
        let req = request(
            "items",
            settings.clone(),
            SyncMode::Incremental,
            Some(state),
        );
        let e = p
            .read(tap.clone() as Arc<dyn HostCallbacks>, &req)
            .expect_err("a state of the other shape");
        assert_eq!(
            e.kind(),
            ionport_plugin_abi::error_kind::INVALID_INPUT,
            "{e}"
        );
        assert!(e.to_string().contains("companies"), "{settings}: {e}");
        let (rec, seen) = tap.take();
        assert!(rec.records.is_empty() && seen.is_empty(), "{seen:?}");
    }
}
