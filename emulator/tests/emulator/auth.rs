#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ionport_emulator::{EmulatorConfig, EmulatorCredentials, Quota};
use serde_json::Value;

use crate::common::*;

#[tokio::test]
async fn password_grant_with_form_credentials() {
    let emu = start_default().await;
    let t = token_json(&emu).await;
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 7200);
    assert!(t["access_token"].as_str().unwrap().len() >= 32);
    assert!(t["refresh_token"].is_string());
    let c = emu.counters();
    assert_eq!(c.token_requests.password, 1);
}

#[tokio::test]
async fn password_grant_with_basic_auth_and_canary_credentials() {
    let creds = EmulatorCredentials {
        client_id: "T~canary-client".into(),
        client_secret: "canary secret+/=".into(),
        saak: "T#canary-access".into(),
        sask: "canary-sask".into(),
    };
    let emu = start(EmulatorConfig {
        tenant: "T".into(),
        credentials: creds.clone(),
        ..Default::default()
    })
    .await;
    let resp = client()
        .post(token_url(&emu))
        .basic_auth(&creds.client_id, Some(&creds.client_secret))
        .form(&[
            ("grant_type", "password"),
            ("username", &creds.saak),
            ("password", &creds.sask),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // saak's '#' is form-encoded as %23 by the client and decoded by the server.
    let ionapi = emu.ionapi_json();
    assert_eq!(ionapi["saak"], "T#canary-access");
}

#[tokio::test]
async fn errors_follow_rfc6749() {
    let emu = start_default().await;
    let c = client();
    // wrong service-account secret -> 400 invalid_grant
    let mut form = password_form(&emu);
    form[2].1 = "wrong".into();
    let resp = c.post(token_url(&emu)).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(body["error_description"].is_string());
    // wrong client secret -> 401 invalid_client
    let mut form = password_form(&emu);
    form[4].1 = "wrong".into();
    let resp = c.post(token_url(&emu)).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    // missing client credentials -> 401 invalid_client
    let resp = c
        .post(token_url(&emu))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // unsupported grant
    let mut form = password_form(&emu);
    form[0].1 = "client_credentials".into();
    let resp = c.post(token_url(&emu)).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    // missing grant_type -> invalid_request
    let resp = c
        .post(token_url(&emu))
        .form(&[("client_id", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    // JSON body -> invalid_request
    let resp = c
        .post(token_url(&emu))
        .json(&serde_json::json!({"grant_type": "password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let counters = emu.counters();
    assert_eq!(counters.token_errors.get("invalid_grant"), Some(&1));
    assert_eq!(counters.token_errors.get("invalid_client"), Some(&2));
    assert_eq!(
        counters.token_errors.get("unsupported_grant_type"),
        Some(&1)
    );
    assert_eq!(counters.unauthorized, 2);
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_is_refused() {
    let emu = start_default().await;
    let c = client();
    let creds = emu.config().credentials.clone();
    let first = token_json(&emu).await;
    let rt1 = first["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |rt: String| {
        c.post(token_url(&emu))
            .basic_auth(&creds.client_id, Some(&creds.client_secret))
            .form(&[
                ("grant_type", "refresh_token".to_owned()),
                ("refresh_token", rt),
            ])
            .send()
    };
    let resp = refresh(rt1.clone()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let second: Value = resp.json().await.unwrap();
    let rt2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2);
    // the new access token works, and so does the old one until it expires
    let (status, _) = get_json(
        &emu,
        second["access_token"].as_str().unwrap(),
        "/ifsservice/usermgt/v2/users/me",
    )
    .await;
    assert_eq!(status, 200);
    // reuse of the rotated token
    let resp = refresh(rt1).await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    // refresh with form-field client credentials also works
    let resp = c
        .post(token_url(&emu))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt2.as_str()),
            ("client_id", creds.client_id.as_str()),
            ("client_secret", creds.client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let counters = emu.counters();
    assert_eq!(counters.refresh_token_reuse, 1);
    assert_eq!(counters.token_requests.refresh_token, 3);
    assert_eq!(counters.token_requests.password, 1);
}

#[tokio::test]
async fn no_refresh_tokens_when_switched_off() {
    let emu = start(EmulatorConfig {
        issue_refresh_tokens: false,
        ..Default::default()
    })
    .await;
    let t = token_json(&emu).await;
    assert!(t.get("refresh_token").is_none());
}

#[tokio::test]
async fn revocation_kills_refresh_and_access_tokens() {
    let emu = start_default().await;
    let c = client();
    let creds = emu.config().credentials.clone();
    let t = token_json(&emu).await;
    let at = t["access_token"].as_str().unwrap();
    let rt = t["refresh_token"].as_str().unwrap();
    let resp = c
        .post(revoke_url(&emu))
        .basic_auth(&creds.client_id, Some(&creds.client_secret))
        .form(&[("token", rt), ("token_type_hint", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, _) = get_json(&emu, at, "/ifsservice/usermgt/v2/users/me").await;
    assert_eq!(status, 401);
    let resp = c
        .post(token_url(&emu))
        .basic_auth(&creds.client_id, Some(&creds.client_secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // revoke needs client authentication
    let resp = c
        .post(revoke_url(&emu))
        .form(&[("token", rt)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(emu.counters().revocations, 1);
}

#[tokio::test]
async fn access_tokens_expire() {
    let emu = start(EmulatorConfig {
        token_ttl: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let t = token_json(&emu).await;
    assert_eq!(t["expires_in"], 1);
    let at = t["access_token"].as_str().unwrap();
    let (status, _) = get_json(&emu, at, "/ifsservice/usermgt/v2/users/me").await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, body) = get_json(&emu, at, "/ifsservice/usermgt/v2/users/me").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_token");
}

#[tokio::test]
async fn gateway_requires_a_bearer_token() {
    let emu = start_default().await;
    let c = client();
    for path in [
        "/ifsservice/usermgt/v2/users/me",
        "/M3/m3api-rest/v2/execute/CRS610MI/LstByNumber",
        "/LN/lnapi/odata/tcapi.comBusinessPartner/BusinessPartners",
        "/DATAFABRIC/compass/v2/jobs/",
    ] {
        let resp = c
            .get(format!("{}{path}", emu.api_base()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{path}");
        assert!(resp.headers().contains_key("www-authenticate"));
    }
    let (status, _) = get_json(&emu, "not-a-token", "/ifsservice/usermgt/v2/users/me").await;
    assert_eq!(status, 401);
    let counters = emu.counters();
    assert_eq!(counters.unauthorized, 5);
    assert_eq!(counters.requests.users, 2);
    assert_eq!(counters.requests.m3, 1);
    assert_eq!(counters.requests.ln, 1);
    assert_eq!(counters.requests.datalake, 1);
}

#[tokio::test]
async fn users_me_returns_the_user() {
    let emu = start_default().await;
    let at = access_token(&emu).await;
    let (status, body) = get_json(&emu, &at, "/ifsservice/usermgt/v2/users/me").await;
    assert_eq!(status, 200);
    assert!(body["response"]["userlist"][0]["userName"].is_string());
    // wrong tenant is 404
    let resp = client()
        .get(format!(
            "{}/OTHER/ifsservice/usermgt/v2/users/me",
            emu.base_url()
        ))
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn quota_answers_429_with_retry_after() {
    let emu = start(EmulatorConfig {
        quota: Some(Quota {
            requests: 3,
            per: Duration::from_secs(60),
        }),
        ..Default::default()
    })
    .await;
    let at = access_token(&emu).await;
    for _ in 0..3 {
        let (status, _) = get_json(&emu, &at, "/ifsservice/usermgt/v2/users/me").await;
        assert_eq!(status, 200);
    }
    let resp = client()
        .get(format!("{}/ifsservice/usermgt/v2/users/me", emu.api_base()))
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    // the quota is per token: a new token has its own window
    let other = access_token(&emu).await;
    let (status, _) = get_json(&emu, &other, "/ifsservice/usermgt/v2/users/me").await;
    assert_eq!(status, 200);
    assert_eq!(emu.counters().rate_limited, 1);
}

#[tokio::test]
async fn write_ionapi_file() {
    let emu = start_default().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo.ionapi");
    emu.write_ionapi(&path).unwrap();
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for key in [
        "ti", "cn", "ci", "cs", "iu", "pu", "oa", "ot", "or", "saak", "sask",
    ] {
        assert!(v[key].is_string(), "{key}");
    }
    assert_eq!(v["iu"], emu.base_url());
    let pu = v["pu"].as_str().unwrap();
    assert!(pu.ends_with("/as/"));
    // the token URL is pu + ot
    let token_url = format!("{pu}{}", v["ot"].as_str().unwrap());
    assert_eq!(token_url, token_url_of(&emu));
}

fn token_url_of(emu: &ionport_emulator::RunningEmulator) -> String {
    token_url(emu)
}
