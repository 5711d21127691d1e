//! ION API credentials: the `.ionapi` file, the connection-form block, validation.
//!
//! [`Credentials`] is what the token manager and the gateway client need about one
//! authorized app of one tenant. It comes from an `.ionapi` file
//! ([`Credentials::from_ionapi_file`]), from the connection form's credentials block
//! ([`Credentials::from_form`]) or from the vault. Secrets (`cs`, `sask`) are held in
//! [`SecretString`]s: every `Debug` prints a mask.
//!
//! Validation follows `ION-API.md` §1: every documented key is read, unknown keys are
//! tolerated, `saak`/`sask` are optional (both or neither), URLs must be `https` except on
//! loopback hosts. Every error names where the credentials came from and the key.

mod schema;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

pub use ionport_plugin_sdk::form::{ClientAuth, IonApiCredentials};
pub use schema::{IonApiFile, ionapi_schema};

/// Default authorize path (`oa`).
pub const DEFAULT_AUTHORIZE_PATH: &str = "authorization.oauth2";
/// Default token path (`ot`).
pub const DEFAULT_TOKEN_PATH: &str = "token.oauth2";
/// Default revoke path (`or`).
pub const DEFAULT_REVOKE_PATH: &str = "revoke_token.oauth2";

/// The mask printed in place of a secret.
pub const MASK: &str = "********";

/// A missing or malformed credential value. The message names the origin (a file path,
/// "the connection form", a vault entry) and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// The file could not be read.
    #[error("{origin}: cannot read the credentials file: {message}")]
    Read {
        /// Where the credentials came from.
        origin: String,
        /// The I/O error.
        message: String,
    },
    /// Not a JSON object.
    #[error(
        "{origin}: not an .ionapi file: {message} (expected one JSON object of strings, as downloaded from Infor OS > API Gateway > Authorized Apps)"
    )]
    NotJson {
        /// Where the credentials came from.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A required key is missing or empty.
    #[error("{origin}: the key `{key}` ({meaning}) is missing or empty{hint}")]
    Missing {
        /// Where the credentials came from.
        origin: String,
        /// The key.
        key: String,
        /// What the key is.
        meaning: &'static str,
        /// What to do.
        hint: String,
    },
    /// A key has an invalid value.
    #[error("{origin}: the key `{key}` ({meaning}) {problem}")]
    Invalid {
        /// Where the credentials came from.
        origin: String,
        /// The key.
        key: String,
        /// What the key is.
        meaning: &'static str,
        /// What is wrong (never the value of a secret).
        problem: String,
    },
}

/// The service account of an authorized app: the password grant's username and password.
#[derive(Clone)]
pub struct ServiceAccount {
    /// The access key (`saak`), `TENANT#...`: the username.
    pub access_key: String,
    /// The secret key (`sask`): the password.
    pub secret_key: SecretString,
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("access_key", &self.access_key)
            .field("secret_key", &MASK)
            .finish()
    }
}

/// The credentials of one authorized app of one tenant.
#[derive(Clone)]
pub struct Credentials {
    /// Where they came from (a file path, `connection form`, `vault entry 'prod'`).
    pub origin: String,
    /// Tenant id (`ti`).
    pub tenant: String,
    /// The authorized app's name (`cn`).
    pub app_name: Option<String>,
    /// OAuth client id (`ci`).
    pub client_id: String,
    /// OAuth client secret (`cs`).
    pub client_secret: SecretString,
    /// ION API base URL (`iu`).
    pub ionapi_url: Url,
    /// Authorization server base (`pu`), ending in `/`.
    pub auth_base: Url,
    /// Authorize path (`oa`).
    pub authorize_path: String,
    /// Token path (`ot`).
    pub token_path: String,
    /// Revoke path (`or`).
    pub revoke_path: String,
    /// The service account (`saak`/`sask`), when the file has one.
    pub service_account: Option<ServiceAccount>,
    /// How the client id and secret reach the token endpoint.
    pub client_auth: ClientAuth,
    /// Other documented values kept as they are (`v`, `dt`, `ev`).
    pub extra: BTreeMap<String, String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("origin", &self.origin)
            .field("tenant", &self.tenant)
            .field("app_name", &self.app_name)
            .field("client_id", &self.client_id)
            .field("client_secret", &MASK)
            .field("ionapi_url", &self.ionapi_url.as_str())
            .field("auth_base", &self.auth_base.as_str())
            .field("token_path", &self.token_path)
            .field("revoke_path", &self.revoke_path)
            .field("service_account", &self.service_account)
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

/// What each documented key means, for error messages.
fn meaning(key: &str) -> &'static str {
    match key {
        "ti" => "tenant id",
        "cn" => "authorized app name",
        "ci" => "client id",
        "cs" => "client secret",
        "iu" => "ION API base URL",
        "pu" => "authorization server URL",
        "oa" => "authorize path",
        "ot" => "token path",
        "or" => "revoke path",
        "saak" => "service-account access key",
        "sask" => "service-account secret key",
        "service_url" => "Service URL",
        "token_url" => "Token URL",
        "username" => "Username (service-account access key)",
        "password" => "Password (service-account secret key)",
        "client_id" => "Client ID",
        "client_secret" => "Client Secret",
        _ => "value",
    }
}

fn is_secret_key(key: &str) -> bool {
    matches!(key, "cs" | "sask" | "password" | "client_secret")
}

/// Whether `url`'s host is a loopback address or `localhost`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Reads string values out of a JSON object, naming the origin and key in errors.
struct Fields<'a> {
    origin: &'a str,
    map: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn invalid(&self, key: &str, problem: impl Into<String>) -> CredentialsError {
        CredentialsError::Invalid {
            origin: self.origin.to_string(),
            key: key.to_string(),
            meaning: meaning(key),
            problem: problem.into(),
        }
    }

    fn missing(&self, key: &str, hint: &str) -> CredentialsError {
        CredentialsError::Missing {
            origin: self.origin.to_string(),
            key: key.to_string(),
            meaning: meaning(key),
            hint: hint.to_string(),
        }
    }

    /// The trimmed value of `key`; `None` when absent, null or empty.
    fn optional(&self, key: &str) -> Result<Option<&str>, CredentialsError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                let t = s.trim();
                Ok((!t.is_empty()).then_some(t))
            }
            Some(other) => {
                let kind = match other {
                    Value::Bool(_) => "a boolean",
                    Value::Number(_) => "a number",
                    Value::Array(_) => "an array",
                    _ => "an object",
                };
                Err(self.invalid(key, format!("must be a string, not {kind}")))
            }
        }
    }

    fn required(&self, key: &str, hint: &str) -> Result<&str, CredentialsError> {
        self.optional(key)?.ok_or_else(|| self.missing(key, hint))
    }

    fn url(&self, key: &str, value: &str) -> Result<Url, CredentialsError> {
        // A URL is quoted without its userinfo: `https://user:password@host` must not
        // print the password it was refused for.
        let url = Url::parse(value).map_err(|e| {
            if is_secret_key(key) {
                self.invalid(key, "is not a URL")
            } else {
                let shown = crate::scrub::scrub_shapes(value);
                self.invalid(key, format!("is not a URL ('{shown}': {e})"))
            }
        })?;
        check_url(&url).map_err(|p| {
            let shown = crate::scrub::url_without_userinfo(&url);
            self.invalid(key, format!("'{shown}' {p}"))
        })?;
        Ok(url)
    }
}

/// Checks a credentials URL: https (http only for loopback), a host, no user info, no
/// query or fragment.
fn check_url(url: &Url) -> Result<(), String> {
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(url) => {}
        "http" => {
            return Err(
                "must use https (plain http is accepted only for loopback hosts, such as the emulator)"
                    .into(),
            );
        }
        other => return Err(format!("has the scheme '{other}', expected https")),
    }
    if url.host().is_none() {
        return Err("has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not contain a query or fragment".into());
    }
    Ok(())
}

fn check_segment(f: &Fields<'_>, key: &str, value: &str) -> Result<(), CredentialsError> {
    if value.contains(['/', '?', '#', '\\']) || value == "." || value == ".." {
        return Err(f.invalid(
            key,
            format!("'{value}' must be one name without '/', '?', '#' or '\\'"),
        ));
    }
    Ok(())
}

fn check_path(f: &Fields<'_>, key: &str, value: &str) -> Result<(), CredentialsError> {
    if value.contains("://") || value.starts_with('/') || value.contains(['?', '#', '\\']) {
        return Err(f.invalid(
            key,
            format!("'{value}' must be a path relative to `pu`, e.g. 'token.oauth2'"),
        ));
    }
    if value.split('/').any(|s| s == "..") {
        return Err(f.invalid(key, format!("'{value}' must not contain '..'")));
    }
    Ok(())
}

/// Joins `pu` and a path leniently: `pu` should end with `/`, the path should not start
/// with one.
fn join_auth(base: &Url, path: &str) -> Url {
    let mut s = base.as_str().trim_end_matches('/').to_string();
    s.push('/');
    s.push_str(path.trim_start_matches('/'));
    Url::parse(&s).unwrap_or_else(|_| base.clone())
}

const HINT_DOWNLOAD: &str = "; download the credentials again from Infor OS > API Gateway > Authorized Apps (a backend-service app)";
const HINT_SERVICE_ACCOUNT: &str = "; saak and sask come together: download the credentials again with 'Create Service Account' ticked";

impl Credentials {
    /// Reads and validates an `.ionapi` file.
    pub fn from_ionapi_file(path: impl AsRef<Path>) -> Result<Self, CredentialsError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|e| CredentialsError::Read {
                    origin: origin.clone(),
                    message: e.to_string(),
                })?,
            );
        Self::from_ionapi_str(&text, &origin)
    }

    /// Parses and validates the text of an `.ionapi` file; `origin` names it in errors.
    pub fn from_ionapi_str(text: &str, origin: &str) -> Result<Self, CredentialsError> {
        // serde_json's syntax errors name a line and column, never the content.
        let value: Value = serde_json::from_str(text).map_err(|e| CredentialsError::NotJson {
            origin: origin.to_string(),
            message: format!("invalid JSON at line {} column {}", e.line(), e.column()),
        })?;
        let Value::Object(map) = value else {
            return Err(CredentialsError::NotJson {
                origin: origin.to_string(),
                message: "the top level is not a JSON object".into(),
            });
        };
        let out = Self::from_ionapi_map(&map, origin);
        zeroize_map(map);
        out
    }

    /// Validates the keys of an `.ionapi` object.
    pub fn from_ionapi_map(
        map: &Map<String, Value>,
        origin: &str,
    ) -> Result<Self, CredentialsError> {
        let f = Fields { origin, map };
        let tenant = f.required("ti", HINT_DOWNLOAD)?;
        check_segment(&f, "ti", tenant)?;
        let client_id = f.required("ci", HINT_DOWNLOAD)?;
        let client_secret = f.required("cs", HINT_DOWNLOAD)?;
        let iu = f.required("iu", HINT_DOWNLOAD)?;
        let ionapi_url = f.url("iu", iu)?;
        let pu = f.required("pu", HINT_DOWNLOAD)?;
        let auth_base = f.url("pu", pu)?;
        let token_path = f.required("ot", HINT_DOWNLOAD)?;
        check_path(&f, "ot", token_path)?;
        let revoke_path = f.optional("or")?.unwrap_or(DEFAULT_REVOKE_PATH);
        check_path(&f, "or", revoke_path)?;
        let authorize_path = f.optional("oa")?.unwrap_or(DEFAULT_AUTHORIZE_PATH);
        check_path(&f, "oa", authorize_path)?;
        let service_account = match (f.optional("saak")?, f.optional("sask")?) {
            (Some(saak), Some(sask)) => Some(ServiceAccount {
                access_key: saak.to_string(),
                secret_key: SecretString::from(sask),
            }),
            (None, None) => None,
            (Some(_), None) => return Err(f.missing("sask", HINT_SERVICE_ACCOUNT)),
            (None, Some(_)) => return Err(f.missing("saak", HINT_SERVICE_ACCOUNT)),
        };
        let client_auth = match f.optional("client_auth")? {
            None | Some("form") => ClientAuth::Form,
            Some("basic") => ClientAuth::Basic,
            Some(other) => {
                return Err(f.invalid(
                    "client_auth",
                    format!("is '{other}'; expected 'form' or 'basic'"),
                ));
            }
        };
        let mut extra = BTreeMap::new();
        for key in ["v", "dt", "ev"] {
            if let Some(v) = f.optional(key)? {
                extra.insert(key.to_string(), v.to_string());
            }
        }
        Ok(Self {
            origin: origin.to_string(),
            tenant: tenant.to_string(),
            app_name: f.optional("cn")?.map(str::to_string),
            client_id: client_id.to_string(),
            client_secret: SecretString::from(client_secret),
            ionapi_url,
            auth_base,
            authorize_path: authorize_path.to_string(),
            token_path: token_path.to_string(),
            revoke_path: revoke_path.to_string(),
            service_account,
            client_auth,
            extra,
        })
    }

    /// Takes the credentials block of a connection form (Service URL = `iu/ti`, Token URL =
    /// `pu + ot`, Username = `saak`, Password = `sask`, Client ID, Client Secret).
    pub fn from_form(form: &IonApiCredentials) -> Result<Self, CredentialsError> {
        let origin = "the connection form";
        let mut map = Map::new();
        map.insert("service_url".into(), form.service_url.clone().into());
        map.insert("token_url".into(), form.token_url.clone().into());
        map.insert("username".into(), form.username.clone().into());
        map.insert("client_id".into(), form.client_id.clone().into());
        let f = Fields { origin, map: &map };
        let service_url = f.required("service_url", "")?;
        let su = f.url("service_url", service_url.trim_end_matches('/'))?;
        let mut segments: Vec<&str> = su
            .path_segments()
            .map(|s| s.filter(|x| !x.is_empty()).collect())
            .unwrap_or_default();
        let Some(tenant) = segments.pop() else {
            return Err(f.invalid(
                "service_url",
                format!("'{service_url}' must end with the tenant id, e.g. https://mingle-ionapi.inforcloudsuite.com/ACME_PRD"),
            ));
        };
        let mut iu = su.clone();
        iu.set_path(&segments.join("/"));
        let token_url = f.required("token_url", "")?;
        let tu = f.url("token_url", token_url)?;
        let (pu, ot) = match tu.as_str().rsplit_once('/') {
            Some((base, path)) if !path.is_empty() => (format!("{base}/"), path.to_string()),
            _ => {
                return Err(f.invalid(
                    "token_url",
                    format!("'{token_url}' must end with the token path, e.g. .../as/token.oauth2"),
                ));
            }
        };
        let client_id = f.required("client_id", "")?;
        if form.client_secret.trim().is_empty() {
            return Err(f.missing("client_secret", ""));
        }
        let username = f.optional("username")?;
        let service_account = match (username, form.password.trim().is_empty()) {
            (Some(u), false) => Some(ServiceAccount {
                access_key: u.to_string(),
                secret_key: SecretString::from(form.password.trim()),
            }),
            (None, true) => None,
            (Some(_), true) => return Err(f.missing("password", "")),
            (None, false) => return Err(f.missing("username", "")),
        };
        Ok(Self {
            origin: origin.to_string(),
            tenant: tenant.to_string(),
            app_name: None,
            client_id: client_id.to_string(),
            client_secret: SecretString::from(form.client_secret.trim()),
            ionapi_url: iu,
            auth_base: Url::parse(&pu).map_err(|_| f.invalid("token_url", "is not a URL"))?,
            authorize_path: DEFAULT_AUTHORIZE_PATH.to_string(),
            token_path: ot,
            revoke_path: DEFAULT_REVOKE_PATH.to_string(),
            service_account,
            client_auth: form.client_auth,
            extra: BTreeMap::new(),
        })
    }

    /// The API base every gateway path is relative to: `iu + "/" + ti + "/"`.
    pub fn api_base(&self) -> Url {
        let mut s = self.ionapi_url.as_str().trim_end_matches('/').to_string();
        s.push('/');
        s.push_str(&self.tenant);
        s.push('/');
        Url::parse(&s).unwrap_or_else(|_| self.ionapi_url.clone())
    }

    /// The token endpoint: `pu + ot`.
    pub fn token_url(&self) -> Url {
        join_auth(&self.auth_base, &self.token_path)
    }

    /// The revoke endpoint: `pu + or`.
    pub fn revoke_url(&self) -> Url {
        join_auth(&self.auth_base, &self.revoke_path)
    }

    /// The authorize endpoint: `pu + oa`.
    pub fn authorize_url(&self) -> Url {
        join_auth(&self.auth_base, &self.authorize_path)
    }

    /// Whether there is a service account (needed for the password grant).
    pub fn has_service_account(&self) -> bool {
        self.service_account.is_some()
    }

    /// The same credentials with another origin (e.g. after loading from the vault).
    pub fn with_origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = origin.into();
        self
    }

    /// The `.ionapi` keys, secrets included, as a JSON object in a zeroising buffer
    /// (for the vault). Never print it.
    pub fn to_ionapi_json(&self) -> Zeroizing<String> {
        let mut map = Map::new();
        map.insert("ti".into(), self.tenant.clone().into());
        if let Some(cn) = &self.app_name {
            map.insert("cn".into(), cn.clone().into());
        }
        map.insert("ci".into(), self.client_id.clone().into());
        map.insert("cs".into(), self.client_secret.expose_secret().into());
        map.insert("iu".into(), self.ionapi_url.as_str().into());
        map.insert("pu".into(), self.auth_base.as_str().into());
        map.insert("oa".into(), self.authorize_path.clone().into());
        map.insert("ot".into(), self.token_path.clone().into());
        map.insert("or".into(), self.revoke_path.clone().into());
        if let Some(sa) = &self.service_account {
            map.insert("saak".into(), sa.access_key.clone().into());
            map.insert("sask".into(), sa.secret_key.expose_secret().into());
        }
        if self.client_auth == ClientAuth::Basic {
            map.insert("client_auth".into(), "basic".into());
        }
        for (k, v) in &self.extra {
            map.insert(k.clone(), v.clone().into());
        }
        let text = Zeroizing::new(Value::Object(map.clone()).to_string());
        zeroize_map(map);
        text
    }

    /// A scrubber for text that came from elsewhere (a server echoing a request): the
    /// client secret and service-account secret, and also the client id and access key
    /// (each half of a credential; `base64(ci:cs)` is the `Basic` header).
    pub fn scrubber(&self) -> crate::scrub::Scrubber {
        let s = crate::scrub::Scrubber::new();
        s.add_client(&self.client_id, self.client_secret.expose_secret());
        if let Some(sa) = &self.service_account {
            s.add(&sa.access_key);
            s.add(sa.secret_key.expose_secret());
        }
        s
    }

    /// Every secret value, for scrubbing text that came from elsewhere (a server's error
    /// description) before it is shown.
    pub fn secret_values(&self) -> Vec<&str> {
        let mut v = vec![self.client_secret.expose_secret()];
        if let Some(sa) = &self.service_account {
            v.push(sa.secret_key.expose_secret());
        }
        v
    }
}

/// Overwrites the string values of a JSON object (best effort: the secrets it held).
pub(crate) fn zeroize_map(mut map: Map<String, Value>) {
    use zeroize::Zeroize as _;
    for (_, v) in map.iter_mut() {
        if let Value::String(s) = v {
            s.zeroize();
        }
    }
}

/// `text` with every secret (in any encoding) and every secret-shaped value masked: see
/// [`crate::scrub`].
pub fn redact(text: &str, secrets: &[&str]) -> String {
    crate::scrub::Scrubber::with_secrets(secrets).scrub(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> Value {
        serde_json::json!({
            "ti": "ACME_PRD", "cn": "app", "ci": "ACME_PRD~abc", "cs": "client-secret-x",
            "iu": "https://mingle-ionapi.inforcloudsuite.com",
            "pu": "https://mingle-sso.inforcloudsuite.com:443/ACME_PRD/as/",
            "oa": "authorization.oauth2", "ot": "token.oauth2", "or": "revoke_token.oauth2",
            "saak": "ACME_PRD#key", "sask": "sask-secret-y", "v": "1.0", "unknown": 5
        })
    }

    fn parse(v: &Value) -> Result<Credentials, CredentialsError> {
        Credentials::from_ionapi_str(&v.to_string(), "f.ionapi")
    }

    #[test]
    fn parses_and_builds_urls() {
        let c = parse(&sample()).unwrap();
        assert_eq!(
            c.api_base().as_str(),
            "https://mingle-ionapi.inforcloudsuite.com/ACME_PRD/"
        );
        assert_eq!(
            c.token_url().as_str(),
            "https://mingle-sso.inforcloudsuite.com/ACME_PRD/as/token.oauth2"
        );
        assert!(c.revoke_url().as_str().ends_with("/as/revoke_token.oauth2"));
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("client-secret-x") && !dbg.contains("sask-secret-y"));
        let back = Credentials::from_ionapi_str(&c.to_ionapi_json(), "vault").unwrap();
        assert_eq!(back.token_url(), c.token_url());
    }

    #[test]
    fn a_url_with_userinfo_is_refused_without_the_password() {
        for key in ["iu", "pu"] {
            let mut v = sample();
            v[key] = "https://svc:CANARY-iu-pw%21@mingle-ionapi.inforcloudsuite.com".into();
            let e = parse(&v).unwrap_err().to_string();
            assert!(
                e.contains(&format!("`{key}`")) && e.contains("user name or password"),
                "{e}"
            );
            assert!(!e.contains("CANARY-iu-pw") && !e.contains("svc:"), "{e}");
        }
    }

    #[test]
    fn errors_name_the_key() {
        let mut v = sample();
        v.as_object_mut().unwrap().remove("ci");
        let e = parse(&v).unwrap_err().to_string();
        assert!(e.contains("f.ionapi") && e.contains("`ci`"), "{e}");

        let mut v = sample();
        v["iu"] = "http://example.com".into();
        let e = parse(&v).unwrap_err().to_string();
        assert!(e.contains("`iu`") && e.contains("https"), "{e}");

        let mut v = sample();
        v["iu"] = "http://127.0.0.1:8080".into();
        v["pu"] = "http://localhost:8080/T/as/".into();
        assert!(parse(&v).is_ok());

        let mut v = sample();
        v.as_object_mut().unwrap().remove("sask");
        let e = parse(&v).unwrap_err().to_string();
        assert!(e.contains("`sask`"), "{e}");

        let mut v = sample();
        v.as_object_mut().unwrap().remove("sask");
        v.as_object_mut().unwrap().remove("saak");
        assert!(!parse(&v).unwrap().has_service_account());

        let mut v = sample();
        v["cs"] = 5.into();
        let e = parse(&v).unwrap_err().to_string();
        assert!(e.contains("`cs`") && e.contains("must be a string"), "{e}");

        let e = Credentials::from_ionapi_str("{\"ti\": ", "x.ionapi")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.ionapi") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn form_maps_onto_the_file() {
        let form = IonApiCredentials {
            service_url: "https://mingle-ionapi.inforcloudsuite.com/ACME_PRD".into(),
            token_url: "https://mingle-sso.inforcloudsuite.com:443/ACME_PRD/as/token.oauth2".into(),
            username: "ACME_PRD#key".into(),
            password: "pw".into(),
            client_id: "ACME_PRD~abc".into(),
            client_secret: "cs".into(),
            client_auth: ClientAuth::Basic,
        };
        let c = Credentials::from_form(&form).unwrap();
        assert_eq!(c.tenant, "ACME_PRD");
        assert_eq!(
            c.api_base().as_str(),
            "https://mingle-ionapi.inforcloudsuite.com/ACME_PRD/"
        );
        assert_eq!(c.token_path, "token.oauth2");
        assert_eq!(c.client_auth, ClientAuth::Basic);
    }
}
