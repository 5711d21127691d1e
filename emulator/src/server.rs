//! Starting, serving and stopping: the accept loop (hyper HTTP/1.1 over tokio), the router,
//! [`Emulator`] and [`RunningEmulator`].

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tower::ServiceExt as _;

use crate::config::EmulatorConfig;
use crate::counters::Counters;
use crate::data::Dataset;
use crate::error::EmulatorError;
use crate::state::{AppState, Shared};
use crate::util::gateway_error;

/// Per-connection control handed to handlers (through request extensions): lets the fault
/// injector reset the TCP connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnControl {
    kill: Arc<Notify>,
}

impl ConnControl {
    /// Resets the connection (RST) as soon as possible.
    pub fn reset(&self) {
        self.kill.notify_one();
    }
}

/// Entry point: `Emulator::start(config).await`.
#[derive(Debug)]
pub struct Emulator;

impl Emulator {
    /// Binds 127.0.0.1 on the configured port (0 = a free one) and serves until the
    /// returned [`RunningEmulator`] is shut down or dropped.
    pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, EmulatorError> {
        validate(&config)?;
        let port = config.port;
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|source| EmulatorError::Bind { port, source })?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://127.0.0.1:{}", addr.port());
        let state: Shared = Arc::new(AppState::new(config, base_url));
        let app = router(state.clone());
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, app, rx));
        tracing::info!(url = %state.base_url, tenant = %state.config.tenant, "ION API emulator listening");
        Ok(RunningEmulator {
            state,
            addr,
            shutdown: tx,
            task: Some(task),
        })
    }
}

fn validate(c: &EmulatorConfig) -> Result<(), EmulatorError> {
    if c.tenant.is_empty()
        || !c
            .tenant
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
    {
        return Err(EmulatorError::Config(format!(
            "tenant '{}' must be non-empty letters, digits, '_' or '-'",
            c.tenant
        )));
    }
    if c.scale == 0 || c.scale > 999_999_999 {
        return Err(EmulatorError::Config(
            "scale must be between 1 and 999999999".into(),
        ));
    }
    if c.token_ttl.is_zero() {
        return Err(EmulatorError::Config("token TTL must be positive".into()));
    }
    Ok(())
}

fn router(state: Shared) -> Router {
    let apis = Router::new()
        .merge(crate::users::routes())
        .merge(crate::m3::routes())
        .merge(crate::ln::routes())
        .merge(crate::datalake::routes())
        .merge(crate::generic::routes())
        .layer(from_fn_with_state(state.clone(), crate::gateway::guard));
    let auth = crate::auth::routes().layer(from_fn_with_state(
        state.clone(),
        crate::gateway::auth_guard,
    ));
    Router::new()
        .merge(apis)
        .merge(auth)
        .nest("/__emulator", crate::control::routes())
        .fallback(|| async { gateway_error(StatusCode::NOT_FOUND, "no such API") })
        .layer(from_fn_with_state(state.clone(), crate::gateway::observe))
        .with_state(state)
}

async fn accept_loop(listener: TcpListener, app: Router, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => serve_connection(stream, app.clone(), stop.clone()),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
}

fn serve_connection(stream: TcpStream, app: Router, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let _ = stream.set_nodelay(true);
        // Keep a duplicate of the socket so that a reset can set SO_LINGER 0 on it.
        let Ok(std_stream) = stream.into_std() else {
            return;
        };
        let dup = std_stream.try_clone().ok();
        let Ok(stream) = TcpStream::from_std(std_stream) else {
            return;
        };
        let ctl = ConnControl::default();
        let kill = ctl.kill.clone();
        let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ctl.clone());
            let app = app.clone();
            async move { app.oneshot(req.map(Body::new)).await }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(stream), svc);
        tokio::select! {
            _ = conn => {}
            () = kill.notified() => {
                if let Some(s) = &dup {
                    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
                }
            }
            _ = stop.changed() => {}
        }
    });
}

/// The `.ionapi` JSON for this emulator.
pub(crate) fn ionapi_json(st: &AppState) -> serde_json::Value {
    let c = &st.config.credentials;
    serde_json::json!({
        "ti": st.config.tenant,
        "cn": "ionport-emulator",
        "dt": "12",
        "ci": c.client_id,
        "cs": c.client_secret,
        "iu": st.base_url,
        "pu": format!("{}/{}/as/", st.base_url, st.config.tenant),
        "oa": "authorization.oauth2",
        "ot": "token.oauth2",
        "or": "revoke_token.oauth2",
        "ev": "V480000000",
        "v": "1.0",
        "saak": c.saak,
        "sask": c.sask,
    })
}

/// A running emulator. Dropping it stops the server (without waiting).
#[derive(Debug)]
pub struct RunningEmulator {
    state: Shared,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl RunningEmulator {
    /// `http://127.0.0.1:PORT` (the `.ionapi` `iu`).
    #[must_use]
    pub fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    /// The port it listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The tenant id.
    #[must_use]
    pub fn tenant(&self) -> &str {
        &self.state.config.tenant
    }

    /// The configuration it runs with.
    #[must_use]
    pub fn config(&self) -> &EmulatorConfig {
        &self.state.config
    }

    /// The data generator behind its APIs.
    #[must_use]
    pub fn dataset(&self) -> Dataset {
        self.state.data
    }

    /// `{base_url}/{tenant}`: the API base every client path starts from.
    #[must_use]
    pub fn api_base(&self) -> String {
        format!("{}/{}", self.state.base_url, self.state.config.tenant)
    }

    /// The `.ionapi` keys of ION-API.md §1, with `iu`/`pu` pointing at this emulator.
    #[must_use]
    pub fn ionapi_json(&self) -> serde_json::Value {
        ionapi_json(&self.state)
    }

    /// Writes the `.ionapi` file (mode 0600 on Unix: it holds the demo secrets).
    pub fn write_ionapi(&self, path: impl AsRef<Path>) -> Result<(), EmulatorError> {
        let path = path.as_ref();
        let text = serde_json::to_string_pretty(&self.ionapi_json())
            .map_err(|e| EmulatorError::Config(e.to_string()))?;
        let err = |source| EmulatorError::File {
            path: path.display().to_string(),
            source,
        };
        std::fs::write(path, text).map_err(err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
        }
        Ok(())
    }

    /// A snapshot of the counters (the same data as `GET /__emulator/counters`).
    #[must_use]
    pub fn counters(&self) -> Counters {
        self.state.counters()
    }

    /// Forgets tokens, counters, faults, record changes, jobs and recorded requests.
    pub fn reset(&self) {
        self.state.reset();
    }

    /// The API requests served, oldest first (the same data as `GET /__emulator/requests`;
    /// see [`crate::recorded`]).
    #[must_use]
    pub fn requests(&self) -> Vec<crate::recorded::RecordedRequest> {
        crate::state::lock(&self.state.requests).snapshot()
    }

    /// Stops accepting, closes connections and waits for the server task.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
