//! Why no token could be had ([`TokenError`]).

/// Why no token could be had. No message contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The service account's daily authentication budget is spent; nothing was sent.
    #[error(transparent)]
    AuthBudget(crate::gateway::BudgetSpent),
    /// Wrong client id or client secret.
    #[error(
        "the authorization server {url} refused the client id or client secret (`ci`/`cs` of {origin}): {description}. Check the Client ID and Client Secret, or download the .ionapi file of the authorized app again"
    )]
    InvalidClient {
        /// The token endpoint.
        url: String,
        /// Where the credentials came from.
        origin: String,
        /// The server's description.
        description: String,
    },
    /// Wrong service-account keys.
    #[error(
        "the authorization server {url} refused the service-account keys (`saak`/`sask` of {origin}): {description}. The client id and secret were accepted; the service account may have been deleted or its keys regenerated: download the credentials again with 'Create Service Account' ticked"
    )]
    InvalidServiceAccount {
        /// The token endpoint.
        url: String,
        /// Where the credentials came from.
        origin: String,
        /// The server's description.
        description: String,
    },
    /// The grant type is not enabled for the app.
    #[error(
        "the authorization server {url} does not allow the {grant} grant for this app ({origin}): {description}. Use the credentials of a backend-service app{hint}"
    )]
    GrantDisabled {
        /// The token endpoint.
        url: String,
        /// Where the credentials came from.
        origin: String,
        /// `password` or `refresh_token`.
        grant: String,
        /// The server's description.
        description: String,
        /// What to do.
        hint: String,
    },
    /// The refresh token is dead (rotated, revoked, idle). Handled inside the manager by
    /// falling back to the password grant.
    #[error("the refresh token was refused: {description}")]
    RefreshRejected {
        /// The server's description.
        description: String,
    },
    /// No service account: the password grant is impossible.
    #[error(
        "{origin} has no service account (`saak`/`sask`): ionport needs the credentials of a backend-service app downloaded with 'Create Service Account' ticked"
    )]
    NoServiceAccount {
        /// Where the credentials came from.
        origin: String,
    },
    /// Any other answer of the token endpoint.
    #[error("the authorization server {url} answered {status}{code}: {description}")]
    Endpoint {
        /// The endpoint.
        url: String,
        /// HTTP status.
        status: u16,
        /// ` (error_code)` or empty.
        code: String,
        /// Description or body excerpt.
        description: String,
    },
    /// The endpoint could not be reached.
    #[error("cannot reach the authorization server {url}: {message}")]
    Transport {
        /// The endpoint.
        url: String,
        /// What failed.
        message: String,
    },
    /// A 200 answer without a usable token.
    #[error("the authorization server {url} sent an unusable token response: {message}")]
    BadResponse {
        /// The endpoint.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// A refresh grant was sent but no complete answer came back (reset, cut, timed out,
    /// 502/504): the server may have rotated the refresh token, so it is never sent again.
    /// Handled inside the manager by falling back to the password grant.
    #[error("the refresh grant at {url} got no complete answer: {message}")]
    RefreshUnconfirmed {
        /// The endpoint.
        url: String,
        /// What failed.
        message: String,
    },
    /// The authorization code of an interactive sign-in was refused (expired, used, or
    /// the PKCE verifier does not match).
    #[error(
        "the authorization server {url} refused the authorization code of the sign-in for {origin}: {description}. Sign in again"
    )]
    CodeRejected {
        /// The token endpoint.
        url: String,
        /// Where the credentials came from.
        origin: String,
        /// The server's description.
        description: String,
    },
    /// A credential of an interactive sign-in has no usable refresh token any more.
    #[error(
        "{origin} was signed in interactively and its refresh token is gone ({reason}): sign in again with 'ionport vault login NAME --ionapi FILE'"
    )]
    LoginRequired {
        /// Where the credentials came from.
        origin: String,
        /// Why (never a token).
        reason: String,
    },
    /// The SAML assertion was refused (expired, wrong audience, bad signature, malformed).
    #[error(
        "the authorization server {url} refused the SAML assertion for {origin}: {description}. The assertion provider must give a current assertion from the identity provider the app trusts, for this token endpoint"
    )]
    AssertionRejected {
        /// The token endpoint.
        url: String,
        /// Where the credentials came from.
        origin: String,
        /// The server's description.
        description: String,
    },
    /// The embedder's assertion provider gave no assertion.
    #[error("the SAML assertion provider of {origin} failed: {message}")]
    AssertionProvider {
        /// Where the credentials came from.
        origin: String,
        /// Its message, scrubbed.
        message: String,
    },
    /// The manager was shut down.
    #[error("the token manager of {origin} was shut down: it hands out no more tokens")]
    Closed {
        /// Where the credentials came from.
        origin: String,
    },
    /// The token store (the vault entry) could not be read.
    #[error("cannot read the stored tokens of {origin}: {message}")]
    Store {
        /// Where the credentials came from.
        origin: String,
        /// What failed (names the file).
        message: String,
    },
    /// Another process held the credential's token lock for too long.
    #[error(
        "waited {waited_secs} s for another process's token request on {origin} (lock file {path}); that process may be stuck: stop it, or raise the token lock wait"
    )]
    LockTimeout {
        /// Where the credentials came from.
        origin: String,
        /// The lock file.
        path: String,
        /// How long this process waited.
        waited_secs: u64,
    },
}
