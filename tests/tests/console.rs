#![allow(clippy::unwrap_used)]
//! The web console (`ionport serve` → `/console`) in a real headless Chromium, against
//! the emulator: sign in (a wrong key refused), add an M3 connection by importing the
//! emulator's `.ionapi`, a wrong client secret failing the test at the token step with
//! Create disabled, the right one enabling it, create, run and watch it to its summary,
//! the rows in SQLite, reset a task's state, edit with secrets left empty, sign out.
//! Beside the browser: CSRF (403 without the token; the JSON API's bearer keys still
//! work), the CSP and cookie flags, every console route closed without a session, and
//! canary secrets in no page, response, event stream, browser storage or log.
//! Screenshots of each step go to `target/console-screenshots/` (docs/console.md).

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use ionport_emulator::{EmulatorConfig, EmulatorCredentials};
use ionport_tests::browser::{Browser, click, fill, find, path, wait_path};
use ionport_tests::emulated::Emulated;
use ionport_tests::serve_process::{ServeProcess, TEST_KEY};

const CANARY_CS: &str = "CANARY-console-client-secret-7d21";
const CANARY_PW: &str = "CANARY-console-password-4be9";

fn emulator() -> Emulated {
    Emulated::start(EmulatorConfig {
        scale: 120,
        credentials: EmulatorCredentials {
            client_secret: CANARY_CS.into(),
            sask: CANARY_PW.into(),
            ..EmulatorCredentials::default()
        },
        quota: None,
        ..EmulatorConfig::default()
    })
}

/// Everything the browser and the side client saw, for the canary check.
#[derive(Default)]
struct Seen(Vec<String>);

async fn source(c: &Client, seen: &mut Seen) -> String {
    let s = c.source().await.unwrap();
    seen.0.push(s.clone());
    s
}

/// Imports `file` through the form's file input.
async fn import(c: &Client, file: &std::path::Path) {
    find(c, "#ionapi")
        .await
        .send_keys(&file.display().to_string())
        .await
        .unwrap();
    click(c, "button[value=import]").await;
    find(c, ".import [role=status]").await;
}

#[test]
fn the_console_in_a_browser_adds_tests_creates_runs_and_resets() {
    let emu = emulator();
    let home = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(home.path(), &[], "info,ionport::read=debug");
    let ionapi = home.path().join("downloaded.ionapi");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let base = server.base.clone();
    let emu_base = emu.emu.base_url().to_string();
    let data = home.path().to_path_buf();
    let seen = rt.block_on(async move {
        let b = Browser::start("m3", 1280, 1000).await?;
        let seen = journey(&b, &base, &emu_base, &ionapi, &data).await;
        b.close().await;
        Some(seen)
    });
    let Some(seen) = seen else { return };
    // Nothing the CSP would block: no inline script, style or event handler.
    for page in seen.0.iter().filter(|p| p.contains("<html")) {
        assert!(
            !page.contains(" style=") && !page.contains("<style"),
            "inline style"
        );
        assert!(
            !page.contains(" onclick=") && !page.contains(" onsubmit="),
            "inline handler"
        );
        for script in page.split("<script").skip(1) {
            assert!(
                script.trim_start().starts_with("src="),
                "inline script: {script:.80}"
            );
        }
    }
    let log = server.output();
    assert!(log.contains("console: signed in"), "{log}");
    for text in seen.0.iter().chain([&log]) {
        for canary in [CANARY_CS, CANARY_PW] {
            assert!(
                !text.contains(canary),
                "a secret was shown: {}",
                &text[..text.len().min(2000)]
            );
        }
    }
    drop(emu);
}

async fn journey(
    b: &Browser,
    base: &str,
    emu_base: &str,
    ionapi: &std::path::Path,
    home: &std::path::Path,
) -> Seen {
    let c = &b.client;
    let mut seen = Seen::default();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Closed without a session: pages lead to the sign-in page.
    c.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(wait_path(c, "/console/login").await, "/console/login");
    b.shot("01-sign-in").await;

    // A wrong key is refused, announced as an alert.
    fill(c, "#key", "not-the-key").await;
    click(c, "form.stack button[type=submit]").await;
    let alert = find(c, "[role=alert]").await.text().await.unwrap();
    assert!(alert.contains("not accepted"), "{alert}");
    assert_eq!(path(c).await, "/console/login");
    b.shot("02-wrong-key").await;

    fill(c, "#key", TEST_KEY).await;
    click(c, "form.stack button[type=submit]").await;
    wait_path(c, "/console/connections").await;
    assert!(source(c, &mut seen).await.contains("No connection yet"));
    b.shot("03-connections-empty").await;

    // Choose the connector (every loaded plugin, with its name and description).
    click(c, "a.button[href='/console/connections/new']").await;
    find(c, "a[data-connector=infor-m3]").await;
    let choose = source(c, &mut seen).await;
    assert!(choose.contains("infor-ln") && choose.contains("infor-datalake"));
    b.shot("04-choose-connector").await;
    click(c, "a[data-connector=infor-m3]").await;
    wait_path(c, "/console/connections/new/infor-m3").await;

    // Basics, then Import .ionapi (the emulator's own file).
    fill(c, "#name", "m3_console").await;
    let text = http
        .get(format!("{emu_base}/__emulator/ionapi"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    std::fs::write(ionapi, text).unwrap();
    import(c, ionapi).await;
    let client_id = find(c, "#f-credentials-client_id")
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(
        client_id.as_deref(),
        Some("IONPORT_DEMO~ionport-demo-client")
    );
    assert_eq!(
        find(c, "#name")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("m3_console")
    );
    // Secrets are never filled in: the server keeps them.
    let secret = find(c, "#f-credentials-client_secret").await;
    assert_eq!(secret.prop("value").await.unwrap().as_deref(), Some(""));
    assert_eq!(
        secret.attr("type").await.unwrap().as_deref(),
        Some("password")
    );
    b.shot("05-imported").await;

    // A wrong client secret: the test fails at the token step; Create stays disabled.
    fill(c, "#f-company", "100").await;
    fill(c, "#f-credentials-client_secret", "wrong-client-secret").await;
    click(c, "button[value=test]").await;
    let failed = find(c, "[data-test=failed]").await;
    assert_eq!(
        failed.attr("data-failed-part").await.unwrap().as_deref(),
        Some("token")
    );
    assert!(
        !find(c, "button[value=create]")
            .await
            .is_enabled()
            .await
            .unwrap()
    );
    source(c, &mut seen).await;
    b.shot("06-test-failed-token").await;

    // The file's secret again: the test passes and Create is enabled.
    import(c, ionapi).await;
    click(c, "button[value=test]").await;
    find(c, "[data-test=passed]").await;
    assert!(
        find(c, "button[value=create]")
            .await
            .is_enabled()
            .await
            .unwrap()
    );
    source(c, &mut seen).await;
    b.shot("07-test-passed").await;

    // A value changed after the test disables Create (the server refuses it too).
    fill(c, "#f-division", "AAA").await;
    assert!(
        !find(c, "button[value=create]")
            .await
            .is_enabled()
            .await
            .unwrap()
    );
    fill(c, "#f-division", "").await;
    // Basics: a description. Advanced: small pages, so that the run below has several;
    // two tasks at once; four retries of a failed read.
    fill(c, "#description", "Finance M3 (browser test)").await;
    click(c, "details.advanced summary").await;
    fill(c, "#page_size", "20").await;
    fill(c, "#concurrency", "2").await;
    fill(c, "#retries", "4").await;
    click(c, "button[value=test]").await;
    find(c, "[data-test=passed]").await;
    click(c, "button[value=create]").await;
    wait_path(c, "/console/connections/m3_console").await;
    source(c, &mut seen).await;
    b.shot("08-connection").await;
    let text = |css: &'static str| async move { find(c, css).await.text().await.unwrap() };
    assert_eq!(
        text("[data-description]").await,
        "Finance M3 (browser test)"
    );
    assert_eq!(text("dd[data-option=concurrency]").await, "2");
    assert_eq!(text("dd[data-option=retries]").await, "4");
    assert_eq!(text("dd[data-option=page_size]").await, "20");
    // The connections list shows the description.
    c.goto(&format!("{base}/console/connections"))
        .await
        .unwrap();
    assert_eq!(
        text("tr[data-connection=m3_console] .description").await,
        "Finance M3 (browser test)"
    );
    c.goto(&format!("{base}/console/connections/m3_console"))
        .await
        .unwrap();

    // The streams the connector discovers on the tenant, predefined and beyond.
    click(c, "a[href$='?discover=1#discovered']").await;
    find(c, "#discovered tr[data-stream=customers]").await;
    let discovered = find(c, "#discovered").await.text().await.unwrap();
    assert!(
        discovered.contains("predefined task") && discovered.contains("discovered"),
        "{discovered}"
    );
    source(c, &mut seen).await;
    b.shot("08a-discovered").await;
    // A discovered stream added to the connection's tasks is offered to Run now.
    click(c, "#discovered tr[data-stream='table:OCUSMA'] form button").await;
    wait_path(c, "/console/connections/m3_console").await;
    find(c, "form.run input[name=task][value='table:OCUSMA']").await;

    // Run now: one task, full refresh; the page follows it to the summary.
    for t in c.find_all(Locator::Css("input[name=task]")).await.unwrap() {
        let checked = t.prop("checked").await.unwrap().as_deref() == Some("true");
        let is_customers = t.attr("value").await.unwrap().as_deref() == Some("customers");
        if checked != is_customers {
            t.click().await.unwrap();
        }
    }
    click(c, "input[name=mode][value=full]").await;
    // The first two list pages answer 503 (the host retries them), then the first pages
    // answer slowly, so the run is seen going with its retries.
    let slow = http
        .post(format!("{emu_base}/__emulator/faults"))
        .json(&serde_json::json!([
            {"kind": "503", "api": "m3", "path_contains": "LstByNumber", "count": 2},
            {"kind": "slow", "delay_ms": 700, "api": "m3", "count": 8}
        ]))
        .send()
        .await
        .unwrap();
    assert!(slow.status().is_success());
    click(c, "form.run button[type=submit]").await;
    let run_path = wait_path(c, "/console/runs/run_").await;
    // Live: records counted in the page (pushed by server-sent events) while it runs. One
    // script call per look, so that a busy machine still looks often.
    const LOOK: &str = r#"
        const s = document.querySelector("[data-run-status]");
        const r = document.querySelector('tr[data-task="customers"] [data-k="records"]');
        const g = document.querySelector('[data-run-gateway] [data-g="requests"]');
        const q = document.querySelector('tr[data-task="customers"] [data-k="requests"]');
        const p = document.querySelector('tr[data-task="customers"] [data-k="pages"]');
        const t = document.querySelector('tr[data-task="customers"] [data-k="retries"]');
        return [!!document.querySelector("[data-summary-records]"),
                s ? s.dataset.runStatus : "", r ? Number(r.textContent) || 0 : 0,
                g ? Number(g.textContent) || 0 : 0, q ? Number(q.textContent) || 0 : 0,
                p ? Number(p.textContent) || 0 : 0, t ? Number(t.textContent) || 0 : 0];"#;
    let start = Instant::now();
    let mut live = None;
    // The connection's gateway requests as the page showed them while the run went.
    let mut live_requests: Vec<u64> = Vec::new();
    // The task's own requests as its row showed them while it ran.
    let mut task_requests: Vec<u64> = Vec::new();
    // The task's pages and retries as its row showed them while it ran.
    let mut task_pages: Vec<u64> = Vec::new();
    let mut task_retries: Vec<u64> = Vec::new();
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the run did not end"
        );
        let Ok(look) = c.execute(LOOK, vec![]).await else {
            continue; // the page is reloading
        };
        if look[0] == true {
            break;
        }
        let records = look[2].as_u64().unwrap_or(0);
        let requests = look[3].as_u64().unwrap_or(0);
        if look[1] == "running" && requests > 0 && live_requests.last() != Some(&requests) {
            live_requests.push(requests);
        }
        let own = look[4].as_u64().unwrap_or(0);
        if look[1] == "running" && own > 0 && task_requests.last() != Some(&own) {
            task_requests.push(own);
        }
        let (pages, retries) = (look[5].as_u64().unwrap_or(0), look[6].as_u64().unwrap_or(0));
        if look[1] == "running" && pages > 0 && task_pages.last() != Some(&pages) {
            task_pages.push(pages);
        }
        if look[1] == "running" && retries > 0 && task_retries.last() != Some(&retries) {
            task_retries.push(retries);
        }
        if look[1] == "running" && records > 0 && live.is_none() {
            live = Some(records);
            b.shot("09a-run-live").await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let summary = find(c, "[data-summary-records]").await;
    let records: u64 = summary
        .attr("data-summary-records")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    assert!(records > 0);
    let live = live.expect("records were counted in the page while the run was going");
    // Requests (live from the host's gateway counters) rose in the page before the end.
    assert!(
        live_requests.len() >= 2,
        "requests did not rise in the page while the run went: {live_requests:?}"
    );
    assert!(
        task_requests.len() >= 2,
        "the task's own requests did not rise in its row while it ran: {task_requests:?}"
    );
    assert!(live < records, "live count {live} of {records}");
    // The task's pages were in its row while it ran, below their end, and its retries
    // were there.
    let pages_cell: u64 = find(c, "tr[data-task=customers] [data-k=pages]")
        .await
        .text()
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        task_pages.first().is_some_and(|&p| p < pages_cell),
        "the task's pages were not in its row while it ran: {task_pages:?} (at the end {pages_cell})"
    );
    assert!(
        !task_retries.is_empty(),
        "the task's retries were not in its row while it ran"
    );
    // At the end: the 503s the emulator injected, each retried once.
    let rules: serde_json::Value = http
        .get(format!("{emu_base}/__emulator/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let injected = rules["rules"][0]["injected"].as_u64().unwrap();
    assert_eq!(injected, 2, "{rules}");
    let retries_cell = find(c, "tr[data-task=customers] [data-k=retries]")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(retries_cell, injected.to_string());
    let cell = find(c, "tr[data-task=customers] [data-k=records]")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(cell, records.to_string());
    assert!(
        find(c, "[data-run-status=succeeded]")
            .await
            .is_displayed()
            .await
            .unwrap()
    );
    source(c, &mut seen).await;
    b.shot("09-run-summary").await;
    let (_, rows) = ionport_tests::sqlite::table(&home.join("data/m3_console.db"), "customers");
    assert_eq!(
        rows.len() as u64,
        records,
        "the rows are in the SQLite destination"
    );

    let cookie = c.get_named_cookie("ionport_console").await.unwrap();
    assert!(cookie.http_only().unwrap_or(false));
    let session = format!("ionport_console={}", cookie.value());

    // The event stream of a finished run: one last event, no secret.
    let events = http
        .get(format!("{base}{run_path}/events"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(
        events.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let events = events.text().await.unwrap();
    assert!(
        events.contains("event: run") && events.contains("\"succeeded\""),
        "{events}"
    );
    seen.0.push(events);

    // The state of the task, then its reset.
    c.goto(&format!("{base}/console/connections/m3_console"))
        .await
        .unwrap();
    let state = find(c, "td[data-state=customers]")
        .await
        .text()
        .await
        .unwrap();
    // The saved state as JSON, then the Reset button's label.
    let shown = state.trim().trim_end_matches("Reset").trim();
    let saved: serde_json::Value =
        serde_json::from_str(shown).unwrap_or_else(|e| panic!("{state}: not a JSON state: {e}"));
    assert!(saved.is_object(), "{state}");
    b.shot("10-state").await;
    click(c, "td[data-state=customers] button").await;
    c.accept_alert().await.unwrap();
    let start = Instant::now();
    loop {
        let s = find(c, "td[data-state=customers]")
            .await
            .text()
            .await
            .unwrap_or_default();
        if s.trim() == "none" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "state not reset: {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    source(c, &mut seen).await;
    b.shot("11-state-reset").await;
    // The reset is in the audit log, with the task and nothing else.
    let audit: serde_json::Value = http
        .get(format!("{base}/v1/audit?action=state.reset"))
        .bearer_auth(TEST_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resets = audit["entries"].as_array().expect("entries").clone();
    assert_eq!(resets.len(), 1, "{audit}");
    assert_eq!(resets[0]["target"], "m3_console", "{audit}");
    assert_eq!(
        resets[0]["changed"],
        serde_json::json!(["state.customers"]),
        "{audit}"
    );
    // Under the key the browser signed in with: TEST_KEY, the server's first `--api-key`
    // (ServeProcess), which docs/http-api.md names `api-key-1`.
    assert_eq!(resets[0]["key"], "api-key-1", "{audit}");

    // Edit with the secrets left empty: the stored ones are kept (the API's test passes).
    c.goto(&format!("{base}/console/connections/m3_console/edit"))
        .await
        .unwrap();
    click(c, "details.advanced summary").await;
    fill(c, "#page_size", "50").await;
    source(c, &mut seen).await;
    b.shot("12-edit").await;
    click(c, "button[value=save]").await;
    wait_path(c, "/console/connections/m3_console").await;
    let tested = http
        .post(format!("{base}/v1/connections/m3_console/test"))
        .bearer_auth(TEST_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(tested.status(), 200);
    let report: serde_json::Value = tested.json().await.unwrap();
    assert_eq!(report["success"], true, "{report}");
    let conn: serde_json::Value = http
        .get(format!("{base}/v1/connections/m3_console"))
        .bearer_auth(TEST_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(conn["page_size"], 50);

    // CSRF: the session alone does not change anything.
    for token in [None, Some("forged-token")] {
        let mut req = http
            .post(format!("{base}/console/connections/m3_console/delete"))
            .header("cookie", &session);
        if let Some(t) = token {
            req = req.form(&[("_csrf", t)]);
        }
        let r = req.send().await.unwrap();
        assert_eq!(
            r.status(),
            403,
            "a request without the CSRF token is refused"
        );
        seen.0.push(r.text().await.unwrap());
    }
    let still = http
        .get(format!("{base}/v1/connections/m3_console"))
        .bearer_auth(TEST_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), 200, "the connection is still there");

    // The headers: a strict CSP, and the cookie's flags.
    let login = http
        .get(format!("{base}/console/login"))
        .send()
        .await
        .unwrap();
    let csp = login.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"));
    let set = login.headers()["set-cookie"].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert_eq!(login.headers()["x-frame-options"], "DENY");

    // Sign out: the pages are closed, to the browser and to the old cookie alike.
    click(c, "form.signout button").await;
    wait_path(c, "/console/login").await;
    b.shot("13-signed-out").await;
    c.goto(&format!("{base}/console/connections/m3_console"))
        .await
        .unwrap();
    wait_path(c, "/console/login").await;
    let storage = c
        .execute(
            "return JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie",
            vec![],
        )
        .await
        .unwrap();
    seen.0.push(storage.to_string());
    for cookie in c.get_all_cookies().await.unwrap() {
        seen.0.push(cookie.to_string());
    }
    for p in [
        "/console/connections".to_string(),
        "/console/connections/new".into(),
        "/console/connections/new/infor-m3".into(),
        "/console/connections/m3_console".into(),
        "/console/connections/m3_console/edit".into(),
        run_path.clone(),
        format!("{run_path}/events"),
    ] {
        for cookie in [None, Some(&session)] {
            let mut req = http.get(format!("{base}{p}"));
            if let Some(s) = cookie {
                req = req.header("cookie", s);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 303, "{p} without a session");
            assert_eq!(r.headers()["location"], "/console/login");
        }
    }
    for p in [
        "/console/connections/m3_console/delete",
        "/console/connections/m3_console/run",
        "/console/connections/new/infor-m3",
        "/console/logout",
    ] {
        let r = http
            .post(format!("{base}{p}"))
            .header("cookie", &session)
            .form(&[("_csrf", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "POST {p} without a session");
    }
    seen
}
