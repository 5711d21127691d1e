//! `ionport vault login`: an interactive sign-in with the authorization-code grant and
//! PKCE (S256), the redirect caught on a loopback listener (RFC 8252 §7.3).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use ionport_core::credentials::Credentials;
use ionport_core::token::{
    GrantKind, MemoryRefreshStore, PkceLogin, RefreshTokenStore as _, TokenManager, TokenSettings,
};
use ionport_core::vault::Vault;
use secrecy::SecretString;
use tokio::sync::oneshot;

/// The path the authorization server redirects back to.
const CALLBACK: &str = "/callback";

/// What came back to the redirect URI.
type Outcome = Result<SecretString, String>;

#[derive(Clone)]
struct Waiting {
    state: String,
    done: Arc<Mutex<Option<oneshot::Sender<Outcome>>>>,
}

/// Reads the redirect's query: a code with the right state, or why not.
fn outcome(q: &HashMap<String, String>, expected_state: &str) -> Outcome {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    if get("state") != expected_state {
        return Err(
            "the redirect's state does not match this sign-in (a stale or forged redirect): nothing was stored"
                .into(),
        );
    }
    if !get("error").is_empty() {
        let description = get("error_description");
        return Err(format!(
            "the authorization server refused the sign-in: {}{}{}",
            get("error"),
            if description.is_empty() { "" } else { ": " },
            description.chars().take(300).collect::<String>()
        ));
    }
    match q.get("code").filter(|c| !c.is_empty()) {
        Some(code) => Ok(SecretString::from(code.as_str())),
        None => Err("the redirect carries neither a code nor an error".into()),
    }
}

async fn callback(
    State(w): State<Waiting>,
    Query(query): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let result = outcome(&query, &w.state);
    let page = match &result {
        Ok(_) => (
            StatusCode::OK,
            "Signed in: ionport got the authorization. You can close this tab.".to_string(),
        ),
        Err(e) => (StatusCode::BAD_REQUEST, format!("Sign-in failed: {e}")),
    };
    if let Some(tx) = w.done.lock().ok().and_then(|mut d| d.take()) {
        let _ = tx.send(result);
    }
    page
}

/// The sign-in's settings from the command line.
pub struct LoginArgs<'a> {
    pub name: &'a str,
    pub ionapi: &'a Path,
    pub port: u16,
    pub timeout: Duration,
    pub scope: Option<&'a str>,
    pub no_browser: bool,
}

pub fn run(vault: &Vault, args: &LoginArgs<'_>) -> Result<()> {
    let creds = Arc::new(Credentials::from_ionapi_file(args.ionapi)?);
    let rt = tokio::runtime::Runtime::new()?;
    let tokens = rt.block_on(sign_in(&creds, args))?;
    vault.put_login(args.name, &creds, &tokens)?;
    println!(
        "signed in: stored '{}' ({} on {}) in {}",
        args.name,
        creds.client_id,
        creds.api_base().as_str().trim_end_matches('/'),
        vault.path().display()
    );
    Ok(())
}

async fn sign_in(
    creds: &Arc<Credentials>,
    args: &LoginArgs<'_>,
) -> Result<ionport_core::token::StoredTokens> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{} for the redirect", args.port))?;
    let port = listener.local_addr()?.port();
    let login = PkceLogin::new(format!("http://127.0.0.1:{port}{CALLBACK}"))?;
    let url = login.authorization_url(creds, args.scope);
    let (tx, rx) = oneshot::channel();
    let waiting = Waiting {
        state: login.state().to_string(),
        done: Arc::new(Mutex::new(Some(tx))),
    };
    let app = Router::new()
        .route(CALLBACK, get(callback))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                format!("not ionport's sign-in redirect (expected {CALLBACK})"),
            )
        })
        .with_state(waiting);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    eprintln!("Open this URL in a browser and sign in:\n{url}");
    if !args.no_browser
        && let Err(e) = open::that_detached(url.as_str())
    {
        eprintln!("(could not start a browser: {e}; open the URL yourself)");
    }
    eprintln!(
        "Waiting up to {} s for the redirect to {} ...",
        args.timeout.as_secs(),
        login.redirect_uri()
    );
    let came_back = tokio::time::timeout(args.timeout, rx).await;
    server.abort();
    let code = match came_back {
        Err(_) => bail!(
            "no redirect came back to {} within {} s: open the URL above and sign in, or raise --timeout",
            login.redirect_uri(),
            args.timeout.as_secs()
        ),
        Ok(Err(_)) => bail!("the redirect listener stopped before a redirect came back"),
        Ok(Ok(outcome)) => outcome.map_err(|e| anyhow!(e))?,
    };
    let store = Arc::new(MemoryRefreshStore::default());
    let manager = TokenManager::with_grant(
        Arc::clone(creds),
        TokenSettings {
            revoke_on_shutdown: false,
            ..TokenSettings::default()
        },
        store.clone(),
        None,
        GrantKind::AuthorizationCode,
    );
    manager.exchange_code(&login, &code).await?;
    Ok(store.load()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn a_redirect_is_read_only_with_its_state() {
        assert!(outcome(&q(&[("code", "abc"), ("state", "s1")]), "s1").is_ok());
        let wrong = outcome(&q(&[("code", "abc"), ("state", "s2")]), "s1");
        assert!(wrong.is_err_and(|e| e.contains("state does not match")));
        let denied = outcome(
            &q(&[
                ("error", "access_denied"),
                ("error_description", "no"),
                ("state", "s1"),
            ]),
            "s1",
        );
        assert!(denied.is_err_and(|e| e.contains("access_denied: no")));
        assert!(outcome(&q(&[("state", "s1")]), "s1").is_err());
    }
}
