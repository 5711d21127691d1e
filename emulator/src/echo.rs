//! A hostile gateway for leak tests: it answers every request (token endpoint, revoke
//! endpoint, API) with a body that repeats the request back, its headers (the
//! `Authorization` header included), query and body, raw and form-decoded, plus the
//! tokens it issued. A client that prints any part of such a body without scrubbing it
//! leaks secrets in the encodings they travelled in (form-encoded body, base64 `Basic`
//! header, JSON-escaped inside the JSON answer).

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::sync::watch;

/// What the echo gateway answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoConfig {
    /// The tenant of the `.ionapi` file it writes.
    pub tenant: String,
    /// The access token it issues (when `token_status` is 200).
    pub access_token: String,
    /// The refresh token it issues.
    pub refresh_token: String,
    /// The token endpoint's status: 200 issues the tokens (the echo rides along in the
    /// answer), anything else refuses with `invalid_client` and the echo as the
    /// `error_description`.
    pub token_status: u16,
    /// The status of every API answer.
    pub api_status: u16,
}

/// A running echo gateway; dropping it stops the server.
#[derive(Debug)]
pub struct EchoGateway {
    addr: SocketAddr,
    config: EchoConfig,
    shutdown: watch::Sender<bool>,
}

impl Drop for EchoGateway {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl EchoGateway {
    /// Listens on a free loopback port.
    pub async fn start(config: EchoConfig) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (shutdown, mut rx) = watch::channel(false);
        let app = Router::new().fallback(answer).with_state(config.clone());
        tokio::spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::warn!(error = %e, "the echo gateway stopped");
            }
        });
        Ok(Self {
            addr,
            config,
            shutdown,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An `.ionapi` object for this gateway with the given client and service account.
    pub fn ionapi_json(&self, ci: &str, cs: &str, saak: &str, sask: &str) -> Value {
        let base = self.base_url();
        let ti = &self.config.tenant;
        json!({
            "ti": ti, "cn": "echo", "ci": ci, "cs": cs, "iu": base,
            "pu": format!("{base}/{ti}/as/"), "oa": "authorization.oauth2",
            "ot": "token.oauth2", "or": "revoke_token.oauth2", "saak": saak, "sask": sask,
            "v": "1.0",
        })
    }
}

fn echo(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8], cfg: &EchoConfig) -> Value {
    let mut h = Map::new();
    for (name, value) in headers {
        h.insert(
            name.as_str().to_string(),
            String::from_utf8_lossy(value.as_bytes())
                .into_owned()
                .into(),
        );
    }
    let decoded = |raw: &[u8]| -> Map<String, Value> {
        form_urlencoded::parse(raw)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect()
    };
    let query = uri.query().unwrap_or("");
    json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": query,
        "query_decoded": decoded(query.as_bytes()),
        "headers": h,
        "body": String::from_utf8_lossy(body),
        "body_decoded": decoded(body),
        "issued": {"access_token": cfg.access_token, "refresh_token": cfg.refresh_token},
        "seen": [cfg.access_token, cfg.refresh_token],
    })
}

async fn answer(
    State(cfg): State<EchoConfig>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let e = echo(&method, &uri, &headers, &body, &cfg);
    let text = e.to_string();
    let status = |s: u16| StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let path = uri.path();
    let json_body = |s: StatusCode, v: Value| {
        (s, [("content-type", "application/json")], v.to_string()).into_response()
    };
    if path.ends_with("/revoke_token.oauth2") {
        return json_body(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_request", "error_description": text, "echo": e}),
        );
    }
    if path.ends_with("/token.oauth2") {
        if cfg.token_status == 200 {
            return json_body(
                StatusCode::OK,
                json!({
                    "access_token": cfg.access_token, "refresh_token": cfg.refresh_token,
                    "token_type": "Bearer", "expires_in": 3600, "echo": e,
                }),
            );
        }
        return json_body(
            status(cfg.token_status),
            json!({"error": "invalid_client", "error_description": text, "echo": e}),
        );
    }
    json_body(status(cfg.api_status), json!({"message": text, "echo": e}))
}
