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

#[tokio::test]
async fn served_requests_are_recorded_without_credentials_and_reset_forgets_them() {
    let emu = start_default().await;
    let token = access_token(&emu).await;
    let (status, _) = get_json(
        &emu,
        &token,
        "/LN/lnapi/odata/tcapi.comBusinessPartner/BusinessPartners?$select=Name,BusinessPartner&$top=2",
    )
    .await;
    assert_eq!(status, 200);
    let sql = "SELECT \"OKCUNO\" FROM OCUSMA";
    let resp = client()
        .post(format!("{}/DATAFABRIC/compass/v2/jobs/", emu.api_base()))
        .bearer_auth(&token)
        .header("Content-Type", "text/plain")
        .body(sql)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202, "the job is still accepted");

    let recorded = emu.requests();
    assert_eq!(
        recorded.len(),
        2,
        "the token request is not recorded: {recorded:?}"
    );
    assert!(recorded[0].path.ends_with("/BusinessPartners"));
    assert_eq!(recorded[0].param("$select"), Some("Name,BusinessPartner"));
    assert_eq!(recorded[0].param("$top"), Some("2"));
    assert_eq!(recorded[1].method, "POST");
    assert_eq!(recorded[1].sql.as_deref(), Some(sql));
    let over_http = control(&emu, Method::GET, "/requests", None).await;
    assert_eq!(
        serde_json::from_value::<Vec<ionport_emulator::recorded::RecordedRequest>>(
            over_http["requests"].clone()
        )
        .unwrap(),
        recorded
    );
    let text = over_http.to_string();
    assert!(!text.contains(&token), "no token in the log");
    assert!(
        !text.contains(&emu.config().credentials.client_secret),
        "{text}"
    );

    control(&emu, Method::POST, "/reset", None).await;
    assert!(emu.requests().is_empty());
}
