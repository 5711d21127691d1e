//! Requests to the authorization server: grants and revocation, each retried (bounded,
//! exponential backoff with jitter) on failures that leave no answer or a transient one,
//! with the response body read inside the attempt so that a cut body is retried too.
//!
//! A refresh grant is the exception: once it may have reached the server (a reset after
//! connecting, a cut or timed-out answer, a 502/504 from a proxy) the refresh token may
//! already have rotated, and sending it again would be a reuse; such a failure is
//! [`TokenError::RefreshUnconfirmed`] and the manager falls back to the password grant.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::{StatusCode, Url};
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::{Jitter, RetryDecision, RetryPolicy};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{TokenError, TokenSettings};
use crate::credentials::{ClientAuth, Credentials};
use crate::scrub::Scrubber;

/// A token request and the secret it carries.
#[derive(Clone, Copy)]
pub(super) enum Grant<'a> {
    /// The service account's keys.
    Password,
    /// A refresh token.
    Refresh(&'a SecretString),
    /// An authorization code, the redirect URI it came back to and the PKCE verifier.
    Code {
        code: &'a SecretString,
        redirect_uri: &'a str,
        verifier: &'a SecretString,
    },
    /// A SAML 2.0 assertion (RFC 7522).
    Saml(&'a SecretString),
}

/// The grant type of RFC 7522.
const SAML2_BEARER: &str = "urn:ietf:params:oauth:grant-type:saml2-bearer";

impl<'a> Grant<'a> {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Refresh(_) => "refresh_token",
            Self::Code { .. } => "authorization_code",
            Self::Saml(_) => SAML2_BEARER,
        }
    }

    /// The secret sent, to be masked out of any answer that echoes it.
    fn secret(self) -> Option<&'a SecretString> {
        match self {
            Self::Password => None,
            Self::Refresh(s) | Self::Saml(s) | Self::Code { code: s, .. } => Some(s),
        }
    }
}

/// A fetched token pair.
pub(super) struct Fetched {
    pub access: SecretString,
    pub refresh: Option<SecretString>,
    pub lifetime: Duration,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<Zeroizing<String>>,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<Zeroizing<String>>,
}

#[derive(Deserialize, Default)]
struct ErrorResponse {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// What one attempt ended with.
enum Attempt {
    /// A complete answer.
    Answer(StatusCode, Zeroizing<Vec<u8>>),
    /// No connection was made: the request certainly did not reach the server.
    NotSent(String),
    /// Sent, but no complete answer (reset, cut body, timeout).
    NoAnswer(String),
}

/// Whether a request may be sent again when it may have reached the server.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Resend {
    /// Sending twice does no harm (a password grant, a revocation).
    Safe,
    /// Only when the request certainly was not processed (a refresh grant).
    OnlyIfUnprocessed,
}

/// The authorization server of one credential.
pub(super) struct AuthClient {
    creds: Arc<Credentials>,
    http: reqwest::Client,
    token_url: Url,
    revoke_url: Url,
    timeout: Duration,
    scope: Option<String>,
    backoff: ExponentialBackoff,
    retries: std::sync::atomic::AtomicU64,
    /// The credentials' secrets and every token received or used: masked out of every
    /// error text (a server may echo them).
    scrubber: Scrubber,
}

impl AuthClient {
    pub(super) fn new(
        creds: Arc<Credentials>,
        settings: &TokenSettings,
        http: reqwest::Client,
    ) -> Self {
        let scrubber = creds.scrubber();
        Scrubber::process().extend_from(&scrubber);
        Self {
            scrubber,
            token_url: creds.token_url(),
            revoke_url: creds.revoke_url(),
            creds,
            http,
            timeout: settings.request_timeout,
            scope: settings.scope.clone(),
            backoff: ExponentialBackoff::builder()
                .retry_bounds(settings.retry_min, settings.retry_max)
                .jitter(Jitter::Bounded)
                .build_with_max_retries(settings.max_retries),
            retries: Default::default(),
        }
    }

    pub(super) fn token_url(&self) -> &Url {
        &self.token_url
    }

    /// Requests re-sent so far.
    pub(super) fn retries(&self) -> u64 {
        self.retries.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The scrubber of this credential.
    pub(super) fn scrubber(&self) -> &Scrubber {
        &self.scrubber
    }

    /// `text` scrubbed of every secret and token, `extra` (a token just sent) included.
    fn scrub(&self, text: &str, extra: Option<&SecretString>) -> String {
        if let Some(e) = extra {
            self.learn(e.expose_secret());
        }
        self.scrubber.scrub(text)
    }

    /// Masks `token` from now on, here and in the process-wide scrubber.
    pub(super) fn learn(&self, token: &str) {
        self.scrubber.add(token);
        Scrubber::process().add(token);
    }

    /// One POST of `form` to `url` with the client's authentication; the body is read here.
    async fn attempt(&self, url: &Url, form: &[(&str, &str)]) -> Attempt {
        let c = &self.creds;
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        let rb = self
            .http
            .post(url.clone())
            .timeout(self.timeout)
            .header(reqwest::header::ACCEPT, "application/json");
        let rb = match c.client_auth {
            ClientAuth::Basic => rb.basic_auth(&c.client_id, Some(c.client_secret.expose_secret())),
            ClientAuth::Form => {
                fields.push(("client_id", &c.client_id));
                fields.push(("client_secret", c.client_secret.expose_secret()));
                rb
            }
        };
        let resp = match rb.form(&fields).send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Attempt::NotSent(error_chain(&e)),
            Err(e) => return Attempt::NoAnswer(error_chain(&e)),
        };
        let status = resp.status();
        match resp.bytes().await {
            Ok(b) => Attempt::Answer(status, Zeroizing::new(b.to_vec())),
            Err(e) => Attempt::NoAnswer(error_chain(&e)),
        }
    }

    /// Sends until a final answer, within the retry bound. `Ok` is a complete answer
    /// (any status); `Err` a failure with no usable answer.
    async fn send(
        &self,
        url: &Url,
        form: &[(&str, &str)],
        resend: Resend,
        secret: Option<&SecretString>,
    ) -> Result<(StatusCode, Zeroizing<Vec<u8>>), TokenError> {
        let started = SystemTime::now();
        let mut past_retries = 0;
        loop {
            let attempt = self.attempt(url, form).await;
            let retry = match &attempt {
                Attempt::Answer(s, _) => match s.as_u16() {
                    // Refused before processing: safe to send again.
                    429 | 503 => true,
                    // A proxy's answer: the server behind it may have processed it.
                    502 | 504 => resend == Resend::Safe,
                    _ => false,
                },
                Attempt::NotSent(_) => true,
                Attempt::NoAnswer(_) => resend == Resend::Safe,
            };
            let wait = match self.backoff.should_retry(started, past_retries) {
                RetryDecision::Retry { execute_after } if retry => execute_after
                    .duration_since(SystemTime::now())
                    .unwrap_or_default(),
                _ => return self.finish(url, attempt, resend, secret),
            };
            past_retries += 1;
            self.retries
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(
                url = %url,
                retry = past_retries,
                wait_ms = wait.as_millis() as u64,
                "token request failed; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    fn finish(
        &self,
        url: &Url,
        attempt: Attempt,
        resend: Resend,
        secret: Option<&SecretString>,
    ) -> Result<(StatusCode, Zeroizing<Vec<u8>>), TokenError> {
        let url_s = url.to_string();
        let message = |m: &str| self.scrub(m, secret);
        match attempt {
            Attempt::Answer(s, _)
                if resend == Resend::OnlyIfUnprocessed && matches!(s.as_u16(), 502 | 504) =>
            {
                Err(TokenError::RefreshUnconfirmed {
                    url: url_s,
                    message: format!("HTTP {}", s.as_u16()),
                })
            }
            Attempt::Answer(s, body) => Ok((s, body)),
            Attempt::NoAnswer(m) if resend == Resend::OnlyIfUnprocessed => {
                Err(TokenError::RefreshUnconfirmed {
                    url: url_s,
                    message: message(&m),
                })
            }
            Attempt::NotSent(m) | Attempt::NoAnswer(m) => Err(TokenError::Transport {
                url: url_s,
                message: message(&m),
            }),
        }
    }

    /// One grant.
    pub(super) async fn grant(&self, grant: Grant<'_>) -> Result<Fetched, TokenError> {
        let mut form: Vec<(&str, &str)> = vec![("grant_type", grant.name())];
        if let Grant::Code { verifier, .. } = grant {
            self.learn(verifier.expose_secret());
        }
        let resend = match grant {
            Grant::Refresh(rt) => {
                form.push(("refresh_token", rt.expose_secret()));
                Resend::OnlyIfUnprocessed
            }
            // A code is single-use: a second presentation would be refused and revoke
            // what the first one got.
            Grant::Code {
                code,
                redirect_uri,
                verifier,
            } => {
                form.push(("code", code.expose_secret()));
                form.push(("redirect_uri", redirect_uri));
                form.push(("code_verifier", verifier.expose_secret()));
                Resend::OnlyIfUnprocessed
            }
            Grant::Saml(assertion) => {
                form.push(("assertion", assertion.expose_secret()));
                if let Some(scope) = &self.scope {
                    form.push(("scope", scope));
                }
                Resend::Safe
            }
            Grant::Password => {
                let Some(sa) = &self.creds.service_account else {
                    return Err(TokenError::NoServiceAccount {
                        origin: self.creds.origin.clone(),
                    });
                };
                form.push(("username", &sa.access_key));
                form.push(("password", sa.secret_key.expose_secret()));
                if let Some(scope) = &self.scope {
                    form.push(("scope", scope));
                }
                Resend::Safe
            }
        };
        tracing::debug!(grant = grant.name(), url = %self.token_url, "token request");
        let secret = grant.secret();
        let (status, body) = match self.send(&self.token_url, &form, resend, secret).await {
            Err(TokenError::RefreshUnconfirmed { url, message })
                if !matches!(grant, Grant::Refresh(_)) =>
            {
                return Err(TokenError::Transport { url, message });
            }
            r => r?,
        };
        if status.is_success() {
            return self.parse_token(&body);
        }
        Err(self.map_error(grant, status, &body, secret))
    }

    /// Revokes `token` (`hint`: `refresh_token` or `access_token`).
    pub(super) async fn revoke(&self, token: &SecretString, hint: &str) -> Result<(), TokenError> {
        let form = [("token", token.expose_secret()), ("token_type_hint", hint)];
        let (status, body) = self
            .send(&self.revoke_url, &form, Resend::Safe, Some(token))
            .await?;
        if status.is_success() {
            return Ok(());
        }
        Err(
            match self.map_error(Grant::Password, status, &body, Some(token)) {
                TokenError::InvalidServiceAccount {
                    url, description, ..
                } => TokenError::Endpoint {
                    url,
                    status: status.as_u16(),
                    code: " (revocation)".into(),
                    description,
                },
                other => other,
            },
        )
    }

    fn parse_token(&self, body: &[u8]) -> Result<Fetched, TokenError> {
        let url = self.token_url.to_string();
        let parsed: TokenResponse =
            serde_json::from_slice(body).map_err(|e| TokenError::BadResponse {
                url: url.clone(),
                message: format!("not JSON (line {} column {})", e.line(), e.column()),
            })?;
        let Some(access) = parsed.access_token.filter(|a| !a.is_empty()) else {
            return Err(TokenError::BadResponse {
                url,
                message: "no access_token".into(),
            });
        };
        if let Some(tt) = &parsed.token_type
            && !tt.eq_ignore_ascii_case("bearer")
        {
            return Err(TokenError::BadResponse {
                url,
                message: format!("token_type is '{}', expected Bearer", self.scrub(tt, None)),
            });
        }
        let secs = match &parsed.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_f64(),
            Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(3600.0);
        self.learn(&access);
        if let Some(r) = &parsed.refresh_token {
            self.learn(r);
        }
        Ok(Fetched {
            access: SecretString::from(access.as_str()),
            refresh: parsed
                .refresh_token
                .filter(|r| !r.is_empty())
                .map(|r| SecretString::from(r.as_str())),
            lifetime: Duration::from_secs_f64(secs.min(366.0 * 24.0 * 3600.0)),
        })
    }

    fn map_error(
        &self,
        grant: Grant<'_>,
        status: StatusCode,
        body: &[u8],
        refresh: Option<&SecretString>,
    ) -> TokenError {
        let creds = &self.creds;
        let url = self.token_url.to_string();
        let parsed: ErrorResponse = serde_json::from_slice(body).unwrap_or_default();
        // Scrubbed whole, then cut: a cut through a secret would leave a part unmatched.
        let description = match &parsed.error_description {
            Some(d) => self.scrub(d, refresh).chars().take(300).collect::<String>(),
            None => self
                .scrub(&String::from_utf8_lossy(body), refresh)
                .chars()
                .take(200)
                .collect(),
        };
        let code = parsed.error.as_deref().unwrap_or("");
        match (code, grant) {
            ("invalid_client", _) => TokenError::InvalidClient {
                url,
                origin: creds.origin.clone(),
                description,
            },
            ("", _) if status == StatusCode::UNAUTHORIZED => TokenError::InvalidClient {
                url,
                origin: creds.origin.clone(),
                description,
            },
            ("invalid_grant", Grant::Refresh(_)) => TokenError::RefreshRejected { description },
            ("invalid_grant", Grant::Password) => TokenError::InvalidServiceAccount {
                url,
                origin: creds.origin.clone(),
                description,
            },
            ("invalid_grant", Grant::Code { .. }) => TokenError::CodeRejected {
                url,
                origin: creds.origin.clone(),
                description,
            },
            ("invalid_grant", Grant::Saml(_)) => TokenError::AssertionRejected {
                url,
                origin: creds.origin.clone(),
                description,
            },
            ("unsupported_grant_type" | "unauthorized_client", _) => TokenError::GrantDisabled {
                url,
                origin: creds.origin.clone(),
                grant: grant.name().to_string(),
                description,
                hint: match grant {
                    Grant::Password => {
                        " with a service account (the password grant must be allowed)".into()
                    }
                    Grant::Refresh(_) => "; or turn 'Issue Refresh Token' off".into(),
                    Grant::Code { .. } => {
                        " of type native or web with the authorization-code grant allowed".into()
                    }
                    Grant::Saml(_) => " that allows the SAML bearer grant".into(),
                },
            },
            _ => TokenError::Endpoint {
                url,
                status: status.as_u16(),
                code: if code.is_empty() {
                    String::new()
                } else {
                    format!(" ({code})")
                },
                description,
            },
        }
    }
}

/// The message of an error and its sources, one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
