//! The SAML 2.0 bearer grant through core's public API: a `Connection` whose credential
//! source is the embedder's assertion provider (a user signed in to the emulated Infor
//! Ming.le) reads a stream; bad assertions are refused with clear errors; the assertion,
//! a secret, never shows in any error or `Debug` print.
//!
//! The assertions are made here, by the test acting as Ming.le, from the format documented
//! in `emulator/README.md` (not with the emulator's code).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use hmac::{KeyInit as _, Mac as _};
use ionport_core::connection::{Connection, ConnectionSettings, CredentialSource};
use ionport_core::credentials::Credentials;
use ionport_core::token::AssertionProvider;
use ionport_emulator::data::Entity;
use ionport_emulator::echo::{EchoConfig, EchoGateway};
use ionport_emulator::{EmulatorConfig, EmulatorCredentials};
use ionport_plugin_abi::wire::SyncMode;
use ionport_tests::live::{self, Live};
use ionport_tests::protocol_fixture::{CANARY_CLIENT_SECRET, CANARY_PASSWORD, assert_no_canary};
use secrecy::SecretString;
use serde_json::{Value, json};

const TENANT: &str = "SAML_T";
const ISSUER: &str = "ionport-emulator-mingle";
const SIGNING_KEY: &str = "ionport-emulator-mingle-signing-key";
/// In every assertion made here: the decoded text must never show either.
const CANARY_ID: &str = "CANARY-saml-assertion-3f0b";

fn config() -> EmulatorConfig {
    EmulatorConfig {
        tenant: TENANT.into(),
        scale: 60,
        credentials: EmulatorCredentials {
            client_id: format!("{TENANT}~saml-app"),
            client_secret: CANARY_CLIENT_SECRET.into(),
            saak: format!("{TENANT}#svc"),
            sask: CANARY_PASSWORD.into(),
        },
        ..EmulatorConfig::default()
    }
}

/// What an assertion says.
#[derive(Clone)]
struct Claims {
    user: String,
    audience: String,
    not_on_or_after: SystemTime,
    issuer: String,
    key: String,
}

impl Claims {
    fn valid(audience: &str) -> Self {
        Self {
            user: "bob".into(),
            audience: audience.into(),
            not_on_or_after: SystemTime::now() + Duration::from_secs(300),
            issuer: ISSUER.into(),
            key: SIGNING_KEY.into(),
        }
    }

    /// The emulated Ming.le's assertion: the XML signed by HMAC-SHA256 of its text without
    /// the Signature element, base64url.
    fn assertion(&self) -> String {
        let head = format!(
            r#"<saml2:Assertion xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion" Version="2.0" ID="{CANARY_ID}"><saml2:Issuer>{}</saml2:Issuer><saml2:Subject><saml2:NameID>{}</saml2:NameID></saml2:Subject><saml2:Conditions NotOnOrAfter="{}"><saml2:AudienceRestriction><saml2:Audience>{}</saml2:Audience></saml2:AudienceRestriction></saml2:Conditions>"#,
            self.issuer,
            self.user,
            humantime::format_rfc3339_seconds(self.not_on_or_after),
            self.audience
        );
        let tail = "</saml2:Assertion>";
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(self.key.as_bytes()).unwrap();
        mac.update(format!("{head}{tail}").as_bytes());
        let sig: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let xml = format!("{head}<saml2:Signature>{sig}</saml2:Signature>{tail}");
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(xml)
    }
}

/// The app's credentials without a service account: the SAML grant needs none.
fn app_credentials(mut ionapi: Value) -> Arc<Credentials> {
    let map = ionapi.as_object_mut().unwrap();
    map.remove("saak");
    map.remove("sask");
    Arc::new(Credentials::from_ionapi_str(&ionapi.to_string(), "the SAML app").unwrap())
}

/// A provider handing out `make()`'s assertions, counting calls and keeping every
/// assertion it gave.
fn provider(
    make: impl Fn() -> Result<String, String> + Send + Sync + 'static,
) -> (
    AssertionProvider,
    Arc<AtomicU64>,
    Arc<std::sync::Mutex<Vec<String>>>,
) {
    let calls = Arc::new(AtomicU64::new(0));
    let given = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (c, g) = (calls.clone(), given.clone());
    let p = AssertionProvider::new(move || {
        c.fetch_add(1, Ordering::SeqCst);
        let a = make()?;
        g.lock().unwrap().push(a.clone());
        Ok(SecretString::from(a))
    });
    (p, calls, given)
}

fn open(creds: &Arc<Credentials>, assertion: AssertionProvider) -> Connection {
    Connection::open(
        CredentialSource::Saml {
            credentials: creds.clone(),
            assertion,
        },
        ConnectionSettings::default(),
    )
    .unwrap()
}

/// `text` holds no canary and none of `assertions` (nor the decoded marker).
fn assert_clean(text: &str, assertions: &[String], what: &str) {
    assert_no_canary(text, what);
    assert!(
        !text.contains(CANARY_ID),
        "{what} shows the assertion's text: {text}"
    );
    for a in assertions {
        assert!(
            !text.contains(a.as_str()),
            "{what} shows the assertion: {text}"
        );
        assert!(
            !text.contains(&a[..a.len().min(40)]),
            "{what} shows part of the assertion: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ming_le_user_reads_a_stream_with_assertions_from_the_embedder() {
    let live = Live::start(config()).await;
    let ionapi = live.emu.ionapi_json();
    let token_url = format!("{}/{TENANT}/as/token.oauth2", live.emu.base_url());
    let creds = app_credentials(ionapi);
    let claims = Claims::valid(&token_url);
    let (p, calls, given) = provider(move || Ok(claims.assertion()));
    let conn = open(&creds, p.clone());

    let me = conn.whoami().await.unwrap();
    assert_eq!(me.display_name.as_deref(), Some("bob (emulated user)"));

    let reg = live::registry();
    let m3 = live::plugin(&reg, "infor-m3");
    let got = live::read(
        &m3,
        &conn,
        "customers",
        json!({"company": 100}),
        SyncMode::FullRefresh,
        None,
        25,
    )
    .await;
    assert!(got.error.is_none(), "{:?}", got.error);
    let ds = live.emu.dataset();
    let expected: Vec<String> = (0..ds.count(Entity::Customer, 100))
        .map(|i| ds.key(Entity::Customer, i))
        .collect();
    let keys: Vec<String> = got
        .records
        .iter()
        .map(|r| live::key_of(r, &["CUNO"]))
        .collect();
    assert_eq!(keys, expected, "every customer, in order");

    let c = live.emu.counters();
    assert_eq!(c.token_requests.password, 0, "no service account: {c:?}");
    assert_eq!(c.token_requests.other, 1, "one SAML grant: {c:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one assertion asked for");
    let m = conn.tokens().metrics();
    assert_eq!((m.saml_grants, m.password_grants), (1, 0), "{m:?}");

    // No refresh token comes with an assertion: shutdown revokes the access token.
    assert!(conn.tokens().shutdown().await.unwrap());
    assert_eq!(live.emu.counters().revocations, 1);

    // A second connection after the token expired asks the provider again.
    let again = open(&creds, p);
    again.whoami().await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let shown = format!("{conn:?} {again:?} {:?}", got.logs);
    assert_clean(&shown, &given.lock().unwrap(), "Debug prints and logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_is_asked_again_when_the_token_runs_out() {
    let live = Live::start(EmulatorConfig {
        token_ttl: Duration::from_secs(2),
        ..config()
    })
    .await;
    let token_url = format!("{}/{TENANT}/as/token.oauth2", live.emu.base_url());
    let creds = app_credentials(live.emu.ionapi_json());
    let claims = Claims::valid(&token_url);
    let (p, calls, _) = provider(move || Ok(claims.assertion()));
    let conn = open(&creds, p);
    conn.whoami().await.unwrap();
    conn.whoami().await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the token is reused while good"
    );
    // Renewed half a second before it expires (a quarter of its lifetime).
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let me = conn.whoami().await.unwrap();
    assert_eq!(me.display_name.as_deref(), Some("bob (emulated user)"));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "a new assertion for the new token"
    );
    let c = live.emu.counters();
    assert_eq!(
        (c.token_requests.other, c.token_requests.refresh_token),
        (2, 0),
        "{c:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_misaddressed_forged_and_malformed_assertions_are_refused_clearly() {
    let live = Live::start(config()).await;
    let token_url = format!("{}/{TENANT}/as/token.oauth2", live.emu.base_url());
    let creds = app_credentials(live.emu.ionapi_json());
    let good = Claims::valid(&token_url);
    let cases: Vec<(&str, Claims, &str)> = vec![
        (
            "expired",
            Claims {
                not_on_or_after: SystemTime::now() - Duration::from_secs(5),
                ..good.clone()
            },
            "Assertion expired",
        ),
        (
            "another audience",
            Claims {
                audience: "https://elsewhere.example/as/token.oauth2".into(),
                ..good.clone()
            },
            "audience",
        ),
        (
            "signed with another key",
            Claims {
                key: "not-the-idp-key".into(),
                ..good.clone()
            },
            "signature does not verify",
        ),
        (
            "an unknown user",
            Claims {
                user: "mallory".into(),
                ..good.clone()
            },
            "subject is not a user",
        ),
    ];
    for (what, claims, expected) in cases {
        let (p, _, given) = provider(move || Ok(claims.assertion()));
        let err = open(&creds, p).whoami().await.unwrap_err().to_string();
        assert!(
            err.contains("refused the SAML assertion") && err.contains(expected),
            "{what}: {err}"
        );
        assert_clean(&err, &given.lock().unwrap(), what);
    }

    let (p, _, given) = provider(|| Ok("CANARY-saml-assertion-not-base64!".to_string()));
    let err = open(&creds, p).whoami().await.unwrap_err().to_string();
    assert!(err.contains("Malformed assertion"), "{err}");
    assert_clean(&err, &given.lock().unwrap(), "malformed");

    let (p, _, _) = provider(|| Err("the Ming.le session ended".to_string()));
    let err = open(&creds, p).whoami().await.unwrap_err().to_string();
    assert!(
        err.contains("assertion provider") && err.contains("the Ming.le session ended"),
        "{err}"
    );
    let c = live.emu.counters();
    assert_eq!(c.token_errors.get("invalid_grant"), Some(&5), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_echoing_the_assertion_back_never_gets_it_shown() {
    let echo = EchoGateway::start(EchoConfig {
        tenant: TENANT.into(),
        access_token: "echo-access".into(),
        refresh_token: "echo-refresh".into(),
        token_status: 400,
        api_status: 200,
    })
    .await
    .unwrap();
    let ionapi = echo.ionapi_json(&format!("{TENANT}~echo"), CANARY_CLIENT_SECRET, "", "");
    let creds = app_credentials(ionapi);
    let token_url = creds.token_url().to_string();
    let claims = Claims::valid(&token_url);
    let (p, _, given) = provider(move || Ok(claims.assertion()));
    let err = open(&creds, p).whoami().await.unwrap_err();
    let shown = format!("{err} {err:?}");
    // The echoed request body is in the message: the test can see a leak.
    assert!(shown.contains("assertion="), "{shown}");
    let given = given.lock().unwrap();
    assert_eq!(given.len(), 1, "the assertion was sent");
    assert_clean(&shown, &given, "the error");
}
