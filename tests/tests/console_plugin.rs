#![allow(clippy::unwrap_used)]
//! A third-party plugin's connection form in the web console, with no console change:
//! the test plugin (`ionport-test`, its own JSON Schema: two optional text settings and
//! the credentials block) is chosen, rendered, filled, tested (its own failure shown in
//! its words, Create disabled; signed in with the keyboard only; an `.ionapi` file missing keys has each named), created
//! and run — in headless Chromium at a phone's
//! width, where no page scrolls sideways. Screenshots go to
//! `target/console-screenshots/plugin-phone/`.

use std::time::Duration;

use fantoccini::{Client, Locator};
use ionport_emulator::EmulatorConfig;
use ionport_tests::browser::{Browser, click, fill, find, wait_path};
use ionport_tests::emulated::Emulated;
use ionport_tests::serve_process::{ServeProcess, TEST_KEY};

/// No sideways scrolling at this width.
async fn fits(c: &Client, what: &str) {
    let fits = c
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        fits,
        serde_json::Value::Bool(true),
        "{what} scrolls sideways at a phone's width"
    );
}

#[test]
fn a_third_party_form_is_rendered_tested_and_created_at_a_phone_width() {
    let emu = Emulated::start(EmulatorConfig {
        scale: 50,
        quota: None,
        ..EmulatorConfig::default()
    });
    let home = tempfile::tempdir().unwrap();
    // The test plugin beside the built-in connectors (a directory scan skips it: it is
    // not named like a connector).
    let plugins = std::env::join_paths([
        ionport_tests::profile_dir(),
        ionport_tests::plugin_lib("ionport_test_plugin"),
    ])
    .unwrap();
    let plugins = plugins.to_str().unwrap();
    let server = ServeProcess::start(home.path(), &["--plugin-path", plugins], "info");
    let ionapi = home.path().join("emulator.ionapi");
    std::fs::write(&ionapi, emu.emu.ionapi_json().to_string()).unwrap();
    let broken = home.path().join("broken.ionapi");
    let mut partial = emu.emu.ionapi_json();
    partial.as_object_mut().unwrap().remove("ci");
    partial["cs"] = serde_json::json!("");
    std::fs::write(&broken, partial.to_string()).unwrap();
    let base = server.base.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let Some(b) = Browser::start("plugin-phone", 390, 844).await else {
            return;
        };
        let c = &b.client;
        c.goto(&format!("{base}/console/login")).await.unwrap();
        // Keyboard only: the key, then Enter.
        fill(c, "#key", TEST_KEY).await;
        find(c, "#key")
            .await
            .send_keys(&fantoccini::key::Key::Enter.to_string())
            .await
            .unwrap();
        wait_path(c, "/console/connections").await;
        fits(c, "the connections page").await;

        c.goto(&format!("{base}/console/connections/new"))
            .await
            .unwrap();
        let card = find(c, "a[data-connector=ionport-test]").await;
        assert_eq!(card.text().await.unwrap(), "ionport test plugin");
        let page = c.source().await.unwrap();
        assert!(
            page.contains("Exercises the ionport plugin ABI"),
            "its description is shown"
        );
        fits(c, "the connector choice").await;
        b.shot("01-choose").await;
        card.click().await.unwrap();
        wait_path(c, "/console/connections/new/ionport-test").await;

        // Its own fields, from its schema: two optional texts and the credentials block.
        for id in [
            "#f-fail_in",
            "#f-panic_in",
            "#f-credentials-client_id",
            "#f-credentials-password",
        ] {
            find(c, id).await;
        }
        assert_eq!(
            find(c, "#f-credentials-password")
                .await
                .attr("type")
                .await
                .unwrap()
                .as_deref(),
            Some("password")
        );
        let hint = find(c, "#f-fail_in-desc").await.text().await.unwrap();
        assert!(hint.contains("Where to fail"), "{hint}");
        fill(c, "#name", "plugin_phone").await;
        // A file without its client id and secret: each missing key is named.
        find(c, "#ionapi")
            .await
            .send_keys(&broken.display().to_string())
            .await
            .unwrap();
        click(c, "button[value=import]").await;
        let errors = find(c, "#form-errors").await;
        assert_eq!(errors.attr("role").await.unwrap().as_deref(), Some("alert"));
        let errors = errors.text().await.unwrap();
        assert!(
            errors.contains("`ci`") && errors.contains("`cs`"),
            "{errors}"
        );
        assert!(!errors.contains("`saak`"), "{errors}");
        b.shot("02a-import-problems").await;
        find(c, "#ionapi")
            .await
            .send_keys(&ionapi.display().to_string())
            .await
            .unwrap();
        click(c, "button[value=import]").await;
        find(c, ".import [role=status]").await;
        fits(c, "the connection form").await;
        b.shot("02-form").await;

        // The plugin's own failure, in its words; Create stays disabled.
        fill(c, "#f-fail_in", "check").await;
        click(c, "button[value=test]").await;
        let failed = find(c, "[data-test=failed]").await.text().await.unwrap();
        assert!(failed.contains("asked to fail in check"), "{failed}");
        assert!(
            !find(c, "button[value=create]")
                .await
                .is_enabled()
                .await
                .unwrap()
        );
        b.shot("03-test-failed").await;

        fill(c, "#f-fail_in", "").await;
        click(c, "button[value=test]").await;
        let passed = find(c, "[data-test=passed]").await.text().await.unwrap();
        assert!(passed.contains("always connected"), "{passed}");
        click(c, "button[value=create]").await;
        wait_path(c, "/console/connections/plugin_phone").await;
        fits(c, "the connection page").await;
        b.shot("04-connection").await;

        for t in c.find_all(Locator::Css("input[name=task]")).await.unwrap() {
            let checked = t.prop("checked").await.unwrap().as_deref() == Some("true");
            let numbers = t.attr("value").await.unwrap().as_deref() == Some("numbers");
            if checked != numbers {
                t.click().await.unwrap();
            }
        }
        click(c, "form.run button[type=submit]").await;
        wait_path(c, "/console/runs/run_").await;
        let summary = c
            .wait()
            .at_most(Duration::from_secs(60))
            .for_element(Locator::Css("[data-summary-records]"))
            .await
            .unwrap();
        let records: u64 = summary
            .attr("data-summary-records")
            .await
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        assert!(records > 0);
        find(c, "[data-run-status=succeeded]").await;
        fits(c, "the run page").await;
        b.shot("05-run").await;
        b.close().await;
    });
    drop(server);
    drop(emu);
}
