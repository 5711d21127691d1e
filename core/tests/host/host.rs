//! The host-services object plugins get.

use std::sync::Arc;

use ionport_core::host::HostCallbacks;
use ionport_emulator::EmulatorConfig;
use ionport_plugin_abi::error_kind;
use ionport_plugin_abi::wire::GatewayRequestHead;

use crate::common::{connect, counters, emulator, fast_settings};

fn head(path: &str, headers: Vec<(String, String)>) -> GatewayRequestHead {
    GatewayRequestHead {
        method: "GET".into(),
        path: path.into(),
        query: vec![],
        headers,
        timeout_secs: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_gateway_calls_go_through_the_connection() {
    let emu = emulator(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&emu, &dir, fast_settings());
    let host: Arc<dyn HostCallbacks> = Arc::new(conn.host(tokio::runtime::Handle::current()));

    let h = Arc::clone(&host);
    let ok = tokio::task::spawn_blocking(move || {
        h.gateway(
            head(
                "ifsservice/usermgt/v2/users/me",
                vec![("Accept".into(), "application/json".into())],
            ),
            vec![],
        )
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(ok.status, 200);
    let body: serde_json::Value = serde_json::from_slice(&ok.body).unwrap();
    assert!(
        body.pointer("/response/userlist/0/userName").is_some(),
        "{body}"
    );
    assert!(ok.headers.iter().any(|(k, _)| k == "content-type"));

    let h = Arc::clone(&host);
    let refused = tokio::task::spawn_blocking(move || {
        (
            h.gateway(head("https://elsewhere.example/x", vec![]), vec![]),
            h.gateway(head("../x", vec![]), vec![]),
            h.gateway(
                head(
                    "ifsservice/usermgt/v2/users/me",
                    vec![("authorization".into(), "Bearer x".into())],
                ),
                vec![],
            ),
            h.emit(ionport_plugin_abi::RecordBatch {
                stream: "s".into(),
                count: 0,
                ndjson: Default::default(),
            }),
        )
    })
    .await
    .unwrap();
    for r in [refused.0, refused.1, refused.2] {
        let e = r.unwrap_err();
        assert_eq!(e.kind.as_str(), error_kind::INVALID_INPUT, "{e}");
    }
    assert!(refused.3.is_err());
    assert_eq!(counters(&emu).await.requests.users, 1);

    // Called on an async worker thread by mistake: an error, not a crash.
    let e = host
        .gateway(head("ifsservice/usermgt/v2/users/me", vec![]), vec![])
        .unwrap_err();
    assert_eq!(e.kind.as_str(), error_kind::HOST, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_names_the_service_account() {
    let emu = emulator(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&emu, &dir, fast_settings());
    let me = conn.whoami().await.unwrap();
    assert_eq!(me.tenant, emu.tenant());
    assert!(
        me.user_name
            .as_deref()
            .unwrap_or("")
            .starts_with("ionport.service@"),
        "{me:?}"
    );
    assert!(
        me.describe().contains("ionport service account"),
        "{}",
        me.describe()
    );
}
