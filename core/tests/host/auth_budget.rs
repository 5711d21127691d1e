//! The service account's authentication budget: first grants (here the password grant)
//! counted per UTC day across processes through the usage directory, refused before they
//! are sent once the day's budget is spent; refresh grants are not counted.

use std::time::Duration;

use ionport_core::connection::ConnectionError;
use ionport_core::gateway::GatewayError;
use ionport_core::token::{AuthBudget, TokenError};
use ionport_emulator::EmulatorConfig;

use crate::common::{connect, counters, emulator, fast_settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_authentication_budget_refuses_the_next_grant_before_sending_it() {
    // No refresh tokens: every new token is a password grant, an authentication.
    let emu = emulator(EmulatorConfig {
        issue_refresh_tokens: false,
        ..EmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = fast_settings();
    settings.token.auth_budget = Some(AuthBudget {
        per_minute: 20,
        per_day: 2,
    });
    settings.token.usage_dir = Some(dir.path().join("usage"));
    {
        // A first "process": two authentications, then the day's budget is spent.
        let first = connect(&emu, &dir, settings.clone());
        let t = first.tokens().access_token().await.unwrap();
        first.tokens().invalidate(&t);
        first.tokens().access_token().await.unwrap();
        let e = first
            .gateway()
            .get_ok("ifsservice/usermgt/v2/users/me")
            .await;
        assert!(e.is_ok(), "the second token works: {e:?}");
        let t = first.tokens().cached().unwrap();
        first.tokens().invalidate(&t);
        let e = first.tokens().access_token().await.unwrap_err();
        let TokenError::AuthBudget(spent) = &e else {
            panic!("expected the authentication budget, got {e:?}");
        };
        assert_eq!((spent.used, spent.limit), (2, 2));
        assert!(
            e.to_string()
                .contains("daily budget of service-account authentications of tenant"),
            "{e}"
        );
        assert!(e.to_string().contains("`auth_budget`"), "{e}");
    }
    assert_eq!(counters(&emu).await.token_requests.password, 2);

    // A second "process" with the same usage directory starts from that count.
    let second = connect(&emu, &dir, settings);
    let e = second
        .gateway()
        .get_ok("ifsservice/usermgt/v2/users/me")
        .await
        .unwrap_err();
    assert!(
        matches!(e, GatewayError::Token(TokenError::AuthBudget(_))),
        "{e:?}"
    );
    assert_eq!(
        ConnectionError::Gateway(e).failed_part(),
        "budget",
        "a check names the budget"
    );
    assert_eq!(
        counters(&emu).await.token_requests.password,
        2,
        "nothing was sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_grants_are_not_authentications() {
    let emu = emulator(EmulatorConfig {
        token_ttl: Duration::from_secs(2),
        ..EmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = fast_settings();
    settings.token.auth_budget = Some(AuthBudget {
        per_minute: 20,
        per_day: 1,
    });
    let conn = connect(&emu, &dir, settings);
    let t = conn.tokens().access_token().await.unwrap();
    // A refused token is renewed with the refresh token: no authentication.
    conn.tokens().invalidate(&t);
    conn.tokens().access_token().await.unwrap();
    let c = counters(&emu).await;
    assert_eq!(
        (c.token_requests.password, c.token_requests.refresh_token),
        (1, 1),
        "{c:?}"
    );
}
