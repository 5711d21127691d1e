#![allow(dead_code, clippy::unwrap_used)]

use ionport_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use serde_json::Value;

pub async fn start(config: EmulatorConfig) -> RunningEmulator {
    Emulator::start(config).await.expect("emulator starts")
}

pub async fn start_default() -> RunningEmulator {
    start(EmulatorConfig {
        scale: 200,
        job_run_time: std::time::Duration::ZERO,
        ..Default::default()
    })
    .await
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().build().expect("client")
}

pub fn token_url(emu: &RunningEmulator) -> String {
    format!("{}/{}/as/token.oauth2", emu.base_url(), emu.tenant())
}

pub fn revoke_url(emu: &RunningEmulator) -> String {
    format!("{}/{}/as/revoke_token.oauth2", emu.base_url(), emu.tenant())
}

pub fn password_form(emu: &RunningEmulator) -> Vec<(&'static str, String)> {
    let c = &emu.config().credentials;
    vec![
        ("grant_type", "password".to_owned()),
        ("username", c.saak.clone()),
        ("password", c.sask.clone()),
        ("client_id", c.client_id.clone()),
        ("client_secret", c.client_secret.clone()),
    ]
}

pub async fn token_json(emu: &RunningEmulator) -> Value {
    let resp = client()
        .post(token_url(emu))
        .form(&password_form(emu))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

pub async fn access_token(emu: &RunningEmulator) -> String {
    token_json(emu).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// GET `{api_base}{path}` with a bearer token, returning status and JSON (Null if not JSON).
pub async fn get_json(emu: &RunningEmulator, token: &str, path: &str) -> (u16, Value) {
    let resp = client()
        .get(format!("{}{}", emu.api_base(), path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub async fn control(
    emu: &RunningEmulator,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut req = client().request(method, format!("{}/__emulator{}", emu.base_url(), path));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    assert!(
        resp.status().is_success(),
        "control {path}: {}",
        resp.status()
    );
    resp.json().await.unwrap()
}
