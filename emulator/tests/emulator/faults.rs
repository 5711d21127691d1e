#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ionport_emulator::EmulatorConfig;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

const ME: &str = "/ifsservice/usermgt/v2/users/me";
const M3: &str = "/M3/m3api-rest/v2/execute/CRS610MI/LstByNumber?maxrecs=50";

async fn fault(emu: &ionport_emulator::RunningEmulator, rule: Value) {
    control(emu, Method::POST, "/faults", Some(rule)).await;
}

#[tokio::test]
async fn status_faults() {
    let emu = start_default().await;
    let at = access_token(&emu).await;
    for code in ["500", "502", "503", "504"] {
        fault(&emu, json!({"kind": code, "count": 1})).await;
        let (s, body) = get_json(&emu, &at, ME).await;
        assert_eq!(s.to_string(), code);
        assert!(body["error"]["message"].is_string());
        let (s, _) = get_json(&emu, &at, ME).await;
        assert_eq!(s, 200, "a count-limited rule is spent");
    }
    assert_eq!(emu.counters().faults_injected, 4);
    let rules = control(&emu, Method::GET, "/faults", None).await;
    assert_eq!(rules["rules"].as_array().unwrap().len(), 4);
    control(&emu, Method::DELETE, "/faults", None).await;
}

#[tokio::test]
async fn connection_reset() {
    let emu = start_default().await;
    let at = access_token(&emu).await;
    fault(&emu, json!({"kind": "reset", "count": 1})).await;
    let err = client()
        .get(format!("{}{M3}", emu.api_base()))
        .bearer_auth(&at)
        .send()
        .await;
    assert!(err.is_err(), "the connection is reset before any response");
    let (s, _) = get_json(&emu, &at, M3).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn truncated_and_malformed_bodies() {
    let emu = start_default().await;
    let at = access_token(&emu).await;
    fault(&emu, json!({"kind": "truncated", "count": 1})).await;
    let resp = client()
        .get(format!("{}{M3}", emu.api_base()))
        .bearer_auth(&at)
        .send()
        .await;
    // Either the response head fails or, more usually, the body is cut short.
    if let Ok(r) = resp {
        assert!(r.bytes().await.is_err(), "the body is cut short");
    }
    fault(&emu, json!({"kind": "malformed_json", "count": 1})).await;
    let resp = client()
        .get(format!("{}{M3}", emu.api_base()))
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(!text.is_empty());
    assert!(serde_json::from_str::<Value>(&text).is_err());
}

#[tokio::test]
async fn slow_responses_and_gateway_timeout() {
    let emu = start(EmulatorConfig {
        gateway_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let at = access_token(&emu).await;
    fault(&emu, json!({"kind": "slow", "delay_ms": 50, "count": 1})).await;
    let (s, _) = get_json(&emu, &at, ME).await;
    assert_eq!(s, 200);
    fault(&emu, json!({"kind": "slow", "delay_ms": 5000, "count": 1})).await;
    let (s, body) = get_json(&emu, &at, ME).await;
    assert_eq!(s, 504);
    assert!(body["error"]["message"].is_string());
}

#[tokio::test]
async fn rate_and_api_filters() {
    let emu = start_default().await;
    let at = access_token(&emu).await;
    fault(&emu, json!({"kind": "500", "rate": 0.5, "api": "ln"})).await;
    for _ in 0..5 {
        let (s, _) = get_json(&emu, &at, M3).await;
        assert_eq!(s, 200, "other APIs are untouched");
    }
    let mut failed = 0;
    for _ in 0..40 {
        let (s, _) = get_json(
            &emu,
            &at,
            "/LN/lnapi/odata/tcapi.comBusinessPartner/BusinessPartners?$top=1",
        )
        .await;
        if s == 500 {
            failed += 1;
        }
    }
    assert!(failed > 0 && failed < 40, "about half fail: {failed}");
    // the authorization server is only hit when asked for
    let _ = access_token(&emu).await;
    control(
        &emu,
        Method::PUT,
        "/faults",
        Some(json!([{"kind": "503", "api": "auth", "count": 1}])),
    )
    .await;
    let resp = client()
        .post(token_url(&emu))
        .form(&password_form(&emu))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let _ = access_token(&emu).await;
}

#[tokio::test]
async fn rights_bare_400_and_mi_failure_faults() {
    let emu = start_default().await;
    let at = access_token(&emu).await;
    fault(&emu, json!({"kind": "403", "count": 1})).await;
    let (s, _) = get_json(&emu, &at, ME).await;
    assert_eq!(s, 403);
    fault(&emu, json!({"kind": "400", "count": 1, "api": "m3"})).await;
    let (s, _) = get_json(&emu, &at, M3).await;
    assert_eq!(s, 400);

    const V1: &str = "/M3/m3api-rest/execute/CRS610MI/LstByNumber;maxrecs=5";
    fault(&emu, json!({"kind": "mi_nok", "count": 1, "api": "m3"})).await;
    let (s, body) = get_json(&emu, &at, V1).await;
    assert_eq!(s, 200, "a whole MI failure comes with HTTP 200");
    assert_eq!(body["@type"], "ServerReturnedNOK");
    assert_eq!(body["@code"], "XIN0001");
    fault(&emu, json!({"kind": "mi_nok", "count": 1, "api": "m3"})).await;
    let (s, body) = get_json(&emu, &at, M3).await;
    assert_eq!(s, 200);
    assert_eq!(body["results"][0]["errorCode"], "XIN0001");

    fault(&emu, json!({"kind": "mi_partial", "count": 1, "api": "m3"})).await;
    let (_, body) = get_json(&emu, &at, V1).await;
    assert_eq!(
        body["MIRecord"].as_array().unwrap().len(),
        5,
        "the records are there"
    );
    assert_eq!(
        body["ErrorMessage"]["@code"], "XIN0001",
        "and the error after them"
    );
    fault(&emu, json!({"kind": "mi_partial", "count": 1, "api": "m3"})).await;
    let (_, body) = get_json(&emu, &at, M3).await;
    assert!(!body["results"][0]["records"].as_array().unwrap().is_empty());
    assert_eq!(body["results"][0]["errorCode"], "XIN0001");
}
