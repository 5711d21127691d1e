#![allow(clippy::unwrap_used)]

use reqwest::Method;

use crate::common::*;

#[tokio::test]
async fn counters_endpoint_matches_library_and_reset_clears() {
    let emu = start_default().await;
    let _ = access_token(&emu).await;
    let v = control(&emu, Method::GET, "/counters", None).await;
    assert_eq!(v["token_requests"]["password"], 1);
    assert_eq!(v["requests"]["auth"], 1);
    let lib = emu.counters();
    assert_eq!(lib.token_requests.password, 1);
    control(&emu, Method::POST, "/reset", None).await;
    assert_eq!(emu.counters(), ionport_emulator::Counters::default());
    let info = control(&emu, Method::GET, "/info", None).await;
    assert_eq!(info["tenant"], "IONPORT_DEMO");
    assert_eq!(info["lakeTables"]["OCUSMA"], 200 + 20);
    let ionapi = control(&emu, Method::GET, "/ionapi", None).await;
    assert_eq!(ionapi, emu.ionapi_json());
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let emu = start_default().await;
    let url = emu.base_url();
    emu.shutdown().await;
    assert!(
        client()
            .get(format!("{url}/__emulator/counters"))
            .send()
            .await
            .is_err()
    );
}
