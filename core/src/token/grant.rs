//! How a credential gets its first token, before there is a refresh token to use
//! ([`GrantKind`]), and the pieces of the interactive authorization-code flow with PKCE
//! ([`PkceLogin`]).
//!
//! PKCE is built from `sha2`, `base64` and `getrandom` rather than the `oauth2` crate: the
//! code exchange is one more grant of the host's own token client (its retries, scrubbing
//! and error mapping), so only the verifier, the challenge and the URL are needed here.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use reqwest::Url;
use secrecy::SecretString;
use sha2::{Digest as _, Sha256};

use crate::credentials::Credentials;

/// Produces a SAML 2.0 assertion (base64url, as RFC 7522 sends it) for the signed-in user,
/// each time the token manager needs a token. An `Err` is shown to the user (scrubbed).
#[derive(Clone)]
pub struct AssertionProvider(Arc<dyn Fn() -> Result<SecretString, String> + Send + Sync>);

impl AssertionProvider {
    /// A provider calling `f`. It may block (it runs on a blocking thread).
    pub fn new(f: impl Fn() -> Result<SecretString, String> + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    pub(super) fn assertion(&self) -> Result<SecretString, String> {
        (self.0)()
    }
}

impl fmt::Debug for AssertionProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AssertionProvider")
    }
}

/// How a token manager gets a token when it has no usable refresh token.
#[derive(Debug, Clone, Default)]
pub enum GrantKind {
    /// The password grant with the service account (`saak`/`sask`): backend services.
    #[default]
    Password,
    /// A user signed in interactively (`ionport vault login`): only the refresh token
    /// stored then keeps the credential alive; once it is dead the user must sign in again.
    AuthorizationCode,
    /// The SAML 2.0 bearer grant with an assertion from the embedder (users signed in to
    /// Infor Ming.le): a fresh assertion whenever a token is needed.
    SamlBearer(AssertionProvider),
}

/// One interactive sign-in: the PKCE verifier, its S256 challenge and the `state` that
/// ties the redirect to this request (RFC 7636, RFC 6749 §10.12). `Debug` masks the
/// verifier.
pub struct PkceLogin {
    verifier: SecretString,
    challenge: String,
    state: String,
    redirect_uri: String,
}

impl fmt::Debug for PkceLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PkceLogin")
            .field("verifier", &crate::credentials::MASK)
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// No randomness could be had from the OS.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw random bytes for the sign-in (PKCE verifier, state): {0}")]
pub struct RandomError(String);

fn random_b64(bytes: usize) -> Result<String, RandomError> {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).map_err(|e| RandomError(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// `BASE64URL(SHA256(verifier))` (RFC 7636 §4.2).
pub fn s256_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl PkceLogin {
    /// A sign-in whose redirect comes back to `redirect_uri`: a 43-character verifier
    /// (32 random bytes) and a random state.
    pub fn new(redirect_uri: impl Into<String>) -> Result<Self, RandomError> {
        let verifier = random_b64(32)?;
        Ok(Self {
            challenge: s256_challenge(&verifier),
            verifier: SecretString::from(verifier),
            state: random_b64(16)?,
            redirect_uri: redirect_uri.into(),
        })
    }

    /// The URL the user opens: `pu + oa` with `response_type=code`, the client id, the
    /// redirect URI, the state and the S256 challenge (and `scope` when given).
    pub fn authorization_url(&self, creds: &Credentials, scope: Option<&str>) -> Url {
        let mut url = creds.authorize_url();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &creds.client_id)
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("state", &self.state)
                .append_pair("code_challenge", &self.challenge)
                .append_pair("code_challenge_method", "S256");
            if let Some(s) = scope {
                q.append_pair("scope", s);
            }
        }
        url
    }

    /// The state the redirect must carry back.
    pub fn state(&self) -> &str {
        &self.state
    }

    /// The redirect URI (sent again with the code).
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    pub(super) fn verifier(&self) -> &SecretString {
        &self.verifier
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    #[test]
    fn challenge_is_rfc_7636_appendix_b() {
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn each_login_has_its_own_verifier_and_state() -> Result<(), RandomError> {
        let (a, b) = (
            PkceLogin::new("http://127.0.0.1:1/")?,
            PkceLogin::new("http://127.0.0.1:1/")?,
        );
        assert_eq!(a.verifier().expose_secret().len(), 43);
        assert_ne!(a.verifier().expose_secret(), b.verifier().expose_secret());
        assert_ne!(a.state(), b.state());
        assert!(!format!("{a:?}").contains(a.verifier().expose_secret()));
        Ok(())
    }
}
