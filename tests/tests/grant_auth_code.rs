//! The authorization-code grant with PKCE, end to end: `ionport vault login` runs as a
//! process, and this test acts as the browser — it reads the printed URL, signs the
//! emulated user in at the emulator's authorization endpoint without following redirects,
//! then delivers the redirect to the command's loopback listener itself. Afterwards the
//! vault entry is used by `ionport check` and `ionport run` (refresh rotation as for a
//! backend service), revoked through core's token manager, and then asks to sign in
//! again. The emulator's own refusals (wrong verifier, reused code, plain challenge) are
//! checked directly against it.
//!
//! Needs the `ionport` binary and the connector plugins built into the same target
//! directory (`cargo build --workspace`; `cargo xtask test` does it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ionport_core::token::{
    GrantKind, MemoryRefreshStore, RefreshTokenStore as _, StoredTokens, TokenManager,
    TokenSettings,
};
use ionport_core::vault::{EntryGrant, KeySource, Vault};
use ionport_emulator::data::Entity;
use ionport_emulator::{EmulatorConfig, EmulatorCredentials};
use ionport_tests::emulated::Emulated;
use ionport_tests::protocol_fixture::{CANARY_CLIENT_SECRET, CANARY_PASSWORD, assert_no_canary};
use ionport_tests::{connector_libs, ionport_bin};
use reqwest::blocking::Client;
use reqwest::{StatusCode, Url};
use secrecy::ExposeSecret as _;
use serde_json::Value;
use sha2::Digest as _;

const TENANT: &str = "PKCE_T";
const ENTRY: &str = "alice-emu";

fn emulator(token_ttl: Duration) -> Emulated {
    Emulated::start(EmulatorConfig {
        tenant: TENANT.into(),
        scale: 40,
        token_ttl,
        credentials: EmulatorCredentials {
            client_id: format!("{TENANT}~native-app"),
            client_secret: CANARY_CLIENT_SECRET.into(),
            saak: format!("{TENANT}#svc"),
            sask: CANARY_PASSWORD.into(),
        },
        ..EmulatorConfig::default()
    })
}

/// A browser that shows redirects instead of following them.
fn browser() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn location(resp: &reqwest::blocking::Response) -> String {
    resp.headers()
        .get(reqwest::header::LOCATION)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn query(url: &str, key: &str) -> String {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// `ionport` with `home` as its home, plugins from the build, debug logs on (so that a
/// leak at any level is seen).
fn ionport(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(ionport_bin());
    cmd.args(args)
        .env("IONPORT_HOME", home)
        .env(
            "IONPORT_PLUGIN_PATH",
            std::env::join_paths(connector_libs()).unwrap(),
        )
        .env("IONPORT_LOG", "debug")
        .env_remove("IONPORT_VAULT_KEY");
    cmd
}

fn run(home: &Path, args: &[&str]) -> (bool, String) {
    let out = ionport(home, args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A running `ionport vault login` and the URL it printed.
struct Login {
    child: Child,
    url: String,
    /// Its stderr up to the URL.
    printed: String,
    /// Reads the rest of its stderr.
    rest: std::thread::JoinHandle<String>,
}

impl Login {
    fn start(home: &Path, ionapi: &Path, extra: &[&str]) -> Self {
        let mut args = vec![
            "vault",
            "login",
            ENTRY,
            "--ionapi",
            ionapi.to_str().unwrap(),
            "--no-browser",
        ];
        args.extend_from_slice(extra);
        let mut child = ionport(home, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut printed = String::new();
        let url = loop {
            let mut line = String::new();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "no URL printed: {printed}"
            );
            printed.push_str(&line);
            if line.starts_with("http://") {
                break line.trim().to_string();
            }
        };
        let rest = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Self {
            child,
            url,
            printed,
            rest,
        }
    }

    /// Waits for the command; its success and everything it printed.
    fn finish(mut self) -> (bool, String) {
        let status = self.child.wait().unwrap();
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let rest = self.rest.join().unwrap();
        (status.success(), format!("{out}{}{rest}", self.printed))
    }
}

fn setup(token_ttl: Duration) -> (Emulated, tempfile::TempDir, PathBuf, PathBuf) {
    let emu = emulator(token_ttl);
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("app.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let home = dir.path().join("home");
    (emu, dir, ionapi, home)
}

/// Every secret a leak check looks for: the canaries and the tokens stored now.
fn assert_no_secret(text: &str, vault: &Vault, what: &str) {
    assert_no_canary(text, what);
    if let Ok(t) = vault.tokens(ENTRY) {
        if let Some(r) = &t.refresh_token {
            assert!(
                !text.contains(r.expose_secret()),
                "{what} shows the refresh token"
            );
        }
        if let Some(a) = &t.access_token {
            assert!(
                !text.contains(a.value.expose_secret()),
                "{what} shows the access token"
            );
        }
    }
}

#[test]
fn a_user_signs_in_through_the_browser_and_the_entry_lives_on_refresh_tokens() {
    // Renewed 2 s before it expires (a quarter of the lifetime).
    let (emu, dir, ionapi, home) = setup(Duration::from_secs(8));
    let login = Login::start(&home, &ionapi, &["--timeout", "60"]);

    // What the command asks the browser to open.
    let url = login.url.clone();
    assert!(
        url.starts_with(&format!(
            "{}/{TENANT}/as/authorization.oauth2?",
            emu.emu.base_url()
        )),
        "{url}"
    );
    assert_eq!(query(&url, "response_type"), "code");
    assert_eq!(query(&url, "client_id"), format!("{TENANT}~native-app"));
    assert_eq!(query(&url, "code_challenge_method"), "S256");
    assert_eq!(query(&url, "code_challenge").len(), 43);
    let redirect_uri = query(&url, "redirect_uri");
    assert!(
        redirect_uri.starts_with("http://127.0.0.1:"),
        "{redirect_uri}"
    );
    let state = query(&url, "state");
    assert!(state.len() >= 16, "{state}");

    let browser = browser();
    // A stray request to the listener (a favicon) is answered and changes nothing.
    let listener = Url::parse(&redirect_uri).unwrap();
    let stray = format!("http://127.0.0.1:{}/favicon.ico", listener.port().unwrap());
    assert_eq!(
        browser.get(&stray).send().unwrap().status(),
        StatusCode::NOT_FOUND
    );

    // The emulated user signs in; the authorization server redirects with a code.
    let resp = browser
        .get(format!("{url}&login_hint=alice"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let back = location(&resp);
    assert!(back.starts_with(&redirect_uri), "{back}");
    assert_eq!(query(&back, "state"), state);
    let code = query(&back, "code");
    assert!(!code.is_empty(), "{back}");
    // The browser delivers the redirect to the command.
    let resp = browser.get(&back).send().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().unwrap().contains("Signed in"));
    let (ok, out) = login.finish();
    let signed_in = Instant::now();
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("signed in: stored '{ENTRY}'")),
        "{out}"
    );
    assert!(!out.contains(&code), "the code was printed: {out}");

    // The vault holds the user's credential: no service account, a refresh token.
    let vault = Vault::open(&home, KeySource::KeyFile);
    let entry = vault.get(ENTRY).unwrap();
    assert_eq!(entry.grant, EntryGrant::AuthorizationCode);
    assert!(entry.credentials.service_account.is_none());
    let first_refresh = entry.refresh_token.clone().expect("a refresh token stored");
    assert!(vault.tokens(ENTRY).unwrap().access_token.is_some());
    let c = emu.emu.counters();
    assert_eq!(
        (c.token_requests.password, c.token_requests.other),
        (0, 1),
        "{c:?}"
    );
    let mut outputs = vec![out];

    // `ionport check` and `ionport run` act as the signed-in user.
    let (ok, out) = run(&home, &["check", "--vault", ENTRY]);
    assert!(ok && out.contains("alice (emulated user)"), "{out}");
    outputs.push(out);
    let data = dir.path().join("data");
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            "[environments.e]\ndestination = {{ type = \"jsonl\", path = {:?} }}\n\n\
             [connections.m3]\nconnector = \"infor-m3\"\ncredentials = {{ vault = \"{ENTRY}\" }}\n\
             settings = {{ company = 100 }}\nquota = \"none\"\n\n\
             [pipelines.m3]\nconnection = \"m3\"\nenvironment = \"e\"\ntasks = [\"customers\"]\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let (ok, out) = run(&home, &["run", pipeline.to_str().unwrap()]);
    assert!(ok, "{out}");
    outputs.push(out);
    let lines = std::fs::read_to_string(data.join("customers.jsonl"))
        .unwrap_or_else(|e| panic!("customers.jsonl in {}: {e}", data.display()));
    let ds = emu.emu.dataset();
    assert_eq!(
        lines.lines().count() as u64,
        ds.count(Entity::Customer, 100)
    );
    let c = emu.emu.counters();
    assert_eq!(
        c.token_requests.password, 0,
        "never the service account: {c:?}"
    );

    // Past the renewal point the next process refreshes, and the refresh token rotates.
    std::thread::sleep(
        (signed_in + Duration::from_millis(6500)).saturating_duration_since(Instant::now()),
    );
    let (ok, out) = run(&home, &["check", "--vault", ENTRY]);
    assert!(ok && out.contains("alice (emulated user)"), "{out}");
    outputs.push(out);
    let c = emu.emu.counters();
    let refreshes = c.token_requests.refresh_token;
    assert!(refreshes >= 1, "{c:?}");
    assert_eq!(
        (c.token_requests.password, c.refresh_token_reuse),
        (0, 0),
        "{c:?}"
    );
    let second_refresh = vault.tokens(ENTRY).unwrap().refresh_token.unwrap();
    assert_ne!(
        second_refresh.expose_secret(),
        first_refresh.expose_secret()
    );

    // Revocation as for a backend service: core's token manager with a private store
    // rotates once more and revokes at shutdown; the whole family dies with it.
    let creds = Arc::new(entry.credentials.clone());
    let store = Arc::new(MemoryRefreshStore::default());
    store
        .save(&StoredTokens {
            refresh_token: Some(second_refresh.clone()),
            ..StoredTokens::default()
        })
        .unwrap();
    let tm = TokenManager::with_grant(
        creds,
        TokenSettings::default(),
        store,
        None,
        GrantKind::AuthorizationCode,
    );
    emu.rt.block_on(async {
        tm.access_token().await.unwrap();
        assert!(tm.shutdown().await.unwrap(), "revoked");
    });
    let c = emu.emu.counters();
    assert_eq!(
        (c.token_requests.refresh_token, c.revocations),
        (refreshes + 1, 1),
        "{c:?}"
    );

    // The entry's tokens are dead: the next process says to sign in again.
    let (ok, out) = run(&home, &["check", "--vault", ENTRY]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("sign in again with 'ionport vault login"),
        "{out}"
    );
    outputs.push(out);
    for (i, out) in outputs.iter().enumerate() {
        assert_no_secret(out, &vault, &format!("output {i}"));
        assert!(!out.contains(first_refresh.expose_secret()), "output {i}");
        assert!(!out.contains(second_refresh.expose_secret()), "output {i}");
    }
}

#[test]
fn a_redirect_with_another_state_is_refused_and_nothing_is_stored() {
    let (_emu, _dir, ionapi, home) = setup(Duration::from_secs(600));
    let login = Login::start(&home, &ionapi, &["--timeout", "60"]);
    let browser = browser();
    let resp = browser
        .get(format!("{}&login_hint=alice", login.url))
        .send()
        .unwrap();
    let back = location(&resp);
    let state = query(&back, "state");
    let forged = back.replace(&format!("state={state}"), "state=forged-state");
    assert_ne!(forged, back);
    assert_eq!(
        browser.get(&forged).send().unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    let (ok, out) = login.finish();
    assert!(!ok, "{out}");
    assert!(out.contains("state does not match this sign-in"), "{out}");
    assert_no_canary(&out, "the failed sign-in");
    assert!(!home.join("vault.json").exists(), "nothing stored");
}

#[test]
fn a_denied_sign_in_and_a_sign_in_never_finished_end_with_clear_errors() {
    let (_emu, _dir, ionapi, home) = setup(Duration::from_secs(600));
    let login = Login::start(&home, &ionapi, &["--timeout", "60"]);
    let browser = browser();
    let resp = browser
        .get(format!("{}&login_hint=alice&consent=deny", login.url))
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let back = location(&resp);
    assert_eq!(query(&back, "error"), "access_denied", "{back}");
    assert_eq!(
        browser.get(&back).send().unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    let (ok, out) = login.finish();
    assert!(!ok, "{out}");
    assert!(out.contains("refused the sign-in: access_denied"), "{out}");

    let login = Login::start(&home, &ionapi, &["--timeout", "1"]);
    let (ok, out) = login.finish();
    assert!(!ok, "{out}");
    assert!(out.contains("no redirect came back"), "{out}");
    assert!(!home.join("vault.json").exists(), "nothing stored");
}

/// RFC 7636's S256, computed here (not with the code under test).
fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

#[test]
fn the_emulator_refuses_a_wrong_verifier_a_reused_code_and_a_plain_challenge() {
    let emu = emulator(Duration::from_secs(600));
    let base = emu.emu.base_url();
    let client_id = format!("{TENANT}~native-app");
    let redirect = "http://127.0.0.1:9/callback";
    let verifier = "verifier-0123456789-abcdefghijklmnopqrstuvwxyz-ABC";
    let browser = browser();
    let authorize = |params: &[(&str, &str)]| {
        let mut url = Url::parse(&format!("{base}/{TENANT}/as/authorization.oauth2")).unwrap();
        url.query_pairs_mut().extend_pairs(params);
        browser.get(url).send().unwrap()
    };
    let ch = challenge(verifier);
    let good: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", &client_id),
        ("redirect_uri", redirect),
        ("state", "s"),
        ("code_challenge", &ch),
        ("code_challenge_method", "S256"),
        ("login_hint", "alice"),
    ];
    let with = |k: &str, v: &'static str| -> Vec<(&str, &str)> {
        good.iter()
            .map(|&(a, b)| if a == k { (a, v) } else { (a, b) })
            .collect()
    };
    let new_code = || query(&location(&authorize(&good)), "code");
    let token = |code: &str, verifier: &str, redirect: &str| -> (StatusCode, Value) {
        let resp = browser
            .post(format!("{base}/{TENANT}/as/token.oauth2"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect),
                ("code_verifier", verifier),
                ("client_id", &client_id),
                ("client_secret", CANARY_CLIENT_SECRET),
            ])
            .send()
            .unwrap();
        (resp.status(), resp.json().unwrap_or(Value::Null))
    };
    let refused = |(status, body): (StatusCode, Value), why: &str| {
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "invalid_grant", "{body}");
        let d = body["error_description"].as_str().unwrap_or_default();
        assert!(d.contains(why), "{d}");
    };

    // Bad authorization requests: to the client when its redirect URI can be trusted.
    let plain = authorize(&with("code_challenge_method", "plain"));
    assert_eq!(plain.status(), StatusCode::FOUND);
    assert_eq!(query(&location(&plain), "error"), "invalid_request");
    let unknown = authorize(&with("client_id", "PKCE_T~someone-else"));
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert!(location(&unknown).is_empty());
    let elsewhere = authorize(&with("redirect_uri", "https://attacker.example/cb"));
    assert_eq!(elsewhere.status(), StatusCode::BAD_REQUEST);
    assert!(location(&elsewhere).is_empty());

    // A wrong verifier spends the code.
    let code = new_code();
    refused(
        token(
            &code,
            "another-verifier-0123456789-abcdefghijklmnopqrstu",
            redirect,
        ),
        "PKCE verification failed",
    );
    refused(token(&code, verifier, redirect), "already used");
    refused(
        token(&new_code(), verifier, "http://127.0.0.1:9/other"),
        "redirect_uri differs",
    );

    // The right one gets tokens of the signed-in user, once; a replay revokes them.
    let code = new_code();
    let (status, body) = token(&code, verifier, redirect);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["refresh_token"].is_string(), "{body}");
    let access = body["access_token"].as_str().unwrap().to_string();
    let me = |access: &str| {
        browser
            .get(format!("{base}/{TENANT}/ifsservice/usermgt/v2/users/me"))
            .bearer_auth(access)
            .send()
            .unwrap()
    };
    let who: Value = me(&access).json().unwrap();
    assert_eq!(
        who["response"]["userlist"][0]["displayName"],
        "alice (emulated user)"
    );
    refused(token(&code, verifier, redirect), "already used");
    assert_eq!(
        me(&access).status(),
        StatusCode::UNAUTHORIZED,
        "revoked by the replay"
    );
}
