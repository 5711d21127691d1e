//! `ionport serve` and `ionport apikey`: the HTTP API (axum) over connectors, connections
//! and runs, with API-key authentication, Prometheus metrics and an OpenAPI document.
//!
//! - `api/`: the handlers, one file per resource;
//! - `auth.rs`: API keys (hashed; each an admin or a workspace key) and the auth check
//!   in front of routing; `workspaces.rs`: the workspaces, their limits, and the caller
//!   of a request (key, workspace, role) every handler scopes its lookups to;
//! - `store.rs`: connection records (no secrets; credentials go to the vault);
//! - `runs.rs`: the run manager (in memory);
//! - `tester.rs`: connection tests; `metrics.rs`; `error.rs`; `openapi.rs`;
//! - `events.rs`: run events for sinks outside: `webhooks/` (signed deliveries) and
//!   `lineage.rs` (OpenLineage); `audit.rs`: the audit log of changes;
//! - `console/`: the web console at `/console` (sessions, HTML), beside the API;
//! - `commands.rs`: `ionport apikey` and `ionport workspace`.

mod api;
mod audit;
mod auth;
mod commands;
pub mod confine;
mod console;
mod error;
mod events;
mod lineage;
mod metrics;
mod openapi;
mod runs;
mod store;
mod tester;
mod webhooks;
mod workspaces;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use clap::Args;
use ionport_core::pipeline::Plan;
use ionport_core::plugin::PluginRegistry;
use ionport_core::vault::Vault;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::Cli;
pub use commands::{ApikeyCommand, WorkspaceCommand, apikey_cmd, workspace_cmd};

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The address to listen on (port 0 picks a free one; the chosen address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// An API key the server accepts (repeatable; or IONPORT_API_KEYS, comma-separated):
    /// an admin key of the `default` workspace. Keys made with `ionport apikey create` are
    /// accepted too.
    #[arg(
        long = "api-key",
        value_name = "KEY",
        env = "IONPORT_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    api_keys: Vec<String>,
    /// A pipeline file whose pipelines `POST /v1/runs {"pipeline": NAME}` can start.
    #[arg(long, value_name = "FILE")]
    pipeline: Option<PathBuf>,
    /// The largest request body accepted, in bytes (larger ones get 413).
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    max_body: usize,
    /// Seconds a request may take (runs go on in the background; this bounds tests).
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    request_timeout: u64,
    /// A directory under which a connection's destination may be an absolute path
    /// (repeatable). Without one, API destinations are relative to the data directory.
    #[arg(long = "destination-root", value_name = "DIR")]
    destination_roots: Vec<PathBuf>,
    /// Print the OpenAPI document and exit.
    #[arg(long)]
    print_openapi: bool,
    /// Mark the web console's session cookie `Secure`: set it when the console is
    /// reached over TLS (e.g. through a proxy that terminates it).
    #[arg(long)]
    console_secure_cookie: bool,
    /// Minutes of inactivity after which a console session ends.
    #[arg(long, value_name = "MINUTES", default_value_t = 480)]
    console_idle: u64,
    /// Post OpenLineage run events (START, COMPLETE, FAIL, ABORT) of every run here
    /// (e.g. `http://marquez:5000/api/v1/lineage`).
    #[arg(
        long,
        value_name = "URL",
        env = "IONPORT_OPENLINEAGE_URL",
        hide_env_values = true
    )]
    openlineage_url: Option<String>,
    /// The OpenLineage job namespace of the runs.
    #[arg(long, value_name = "NAME", default_value = "ionport")]
    openlineage_namespace: String,
    /// Seconds one webhook (or OpenLineage) delivery attempt may take.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    webhook_timeout: u64,
    /// Seconds a webhook (or OpenLineage) delivery is retried before it is given up.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    webhook_retry_for: u64,
    #[command(flatten)]
    cluster: api::cluster::CoordinatorArgs,
}

/// What every handler shares.
#[derive(Debug)]
pub struct Inner {
    pub registry: PluginRegistry,
    /// The home: key file, workspace data directories.
    pub home: PathBuf,
    /// The workspaces and their limits.
    pub workspaces: workspaces::Workspaces,
    pub vault: Arc<Vault>,
    pub store: tokio::sync::Mutex<store::Store>,
    pub runs: Arc<runs::RunManager>,
    pub metrics: Arc<metrics::Metrics>,
    pub keys: Arc<auth::Keys>,
    pub pipelines: Option<Plan>,
    /// Where API destinations may live (the data directory, allowed roots).
    pub destinations: confine::DestinationRoots,
    /// The audit log of changes.
    pub audit: audit::AuditLog,
    /// Webhook endpoints and their deliveries.
    pub webhooks: Arc<webhooks::Webhooks>,
}

pub type AppState = Arc<Inner>;

impl Inner {
    /// Where the API destinations of `workspace` may live: the data directory and the
    /// operator's roots for `default`; the workspace's own data directory for the others,
    /// so that no workspace reaches another's files.
    pub fn destinations_of(&self, workspace: &str) -> std::io::Result<confine::DestinationRoots> {
        if workspace == workspaces::DEFAULT {
            return Ok(self.destinations.clone());
        }
        confine::DestinationRoots::new(
            &workspaces::data_dir(&self.home.join("data"), workspace),
            &[],
        )
    }

    /// The limits of `workspace` (none for one that is gone).
    pub fn limits_of(&self, workspace: &str) -> workspaces::WorkspaceLimits {
        self.workspaces
            .get(workspace)
            .map(|w| w.limits)
            .unwrap_or_default()
    }

    /// Whether `workspace`, holding `count` connections, may store one more (429 naming
    /// `max_connections` when not).
    pub fn connection_room(&self, workspace: &str, count: usize) -> error::ApiResult<()> {
        match self.limits_of(workspace).max_connections {
            Some(max) if count >= max as usize => Err(error::ApiError::limit(
                workspace,
                "max_connections",
                max,
                &format!("it stores {count} connections; delete one first"),
            )),
            _ => Ok(()),
        }
    }
}

/// Strings never to show (a connection's secrets), kept to scrub messages; `Debug` shows
/// only how many there are.
#[derive(Clone, Default)]
pub struct Secrets(pub Vec<String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} hidden)", self.0.len())
    }
}

/// The application: the web console at `/console` (its own sessions and layers; `/`
/// leads there), and the JSON API for every other path.
pub fn router(
    state: AppState,
    max_body: usize,
    timeout: Duration,
    console: console::ConsoleOptions,
) -> Router {
    Router::new()
        .route("/", axum::routing::get(console::to_console))
        .nest_service(console::BASE, console::router(state.clone(), console))
        .fallback_service(api_router(state, max_body, timeout))
}

/// The JSON API: routes, then (inside out) body limit, auth, metrics, timeout, trace,
/// the panic backstop, and the one JSON error shape for bare error answers.
fn api_router(state: AppState, max_body: usize, timeout: Duration) -> Router {
    api::routes()
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(max_body))
        .layer(RequestBodyLimitLayer::new(max_body))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state,
            api::system::track,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::new())
        .layer(axum::middleware::map_response(error::json_errors))
}

/// The settings of the server's own connections (tests, discoveries): with a
/// coordinator, the cluster's token store.
pub fn connection_settings() -> ionport_core::connection::ConnectionSettings {
    let mut s = ionport_core::connection::ConnectionSettings::default();
    s.token.shared_store = api::cluster::shared_tokens();
    s
}

pub fn serve_cmd(cli: &Cli, args: &ServeArgs) -> Result<ExitCode> {
    if args.print_openapi {
        println!("{}", openapi::document_text()?);
        return Ok(ExitCode::SUCCESS);
    }
    let home = ionport_core::vault::default_home()?;
    let keys = auth::Keys::new(&args.api_keys, auth::key_file(&home))?;
    let registry = cli.registry();
    for r in registry.refused() {
        tracing::warn!("plugin refused: {r}");
    }
    let pipelines = match &args.pipeline {
        None => None,
        Some(file) => Some(ionport_core::pipeline::load(file, &registry).map_err(|d| {
            anyhow::anyhow!("the pipeline file {} is invalid:\n{d}", file.display())
        })?),
    };
    // Kept until the server stops: leaving gives the server's quota shares back.
    let _member = api::cluster::start(&args.cluster, pipelines.as_ref())?;
    let store = store::Store::open(&home)?;
    let workspaces = workspaces::Workspaces::open(&home)?;
    let destinations = confine::DestinationRoots::new(&home.join("data"), &args.destination_roots)?;
    let vault = Arc::new(Vault::open(
        home.clone(),
        ionport_core::vault::KeySource::Default,
    ));
    let rt = tokio::runtime::Runtime::new()?;
    // The webhook and lineage senders are tasks of this runtime.
    let _in_runtime = rt.enter();
    let policy = webhooks::DeliveryPolicy {
        attempt_timeout: Duration::from_secs(args.webhook_timeout.max(1)),
        first_wait: Duration::from_secs(1),
        max_wait: Duration::from_secs(300),
        retry_for: Duration::from_secs(args.webhook_retry_for),
    };
    let hooks = webhooks::Webhooks::start(&home, vault.clone(), policy)?;
    let runs = Arc::new(runs::RunManager::default());
    runs.events.subscribe(hooks.clone());
    if let Some(url) = &args.openlineage_url {
        reqwest::Url::parse(url)
            .with_context(|| format!("--openlineage-url {url:?} is not a URL"))?;
        runs.events.subscribe(lineage::Lineage::start(
            url.clone(),
            args.openlineage_namespace.clone(),
            vault.clone(),
            policy,
        ));
    }
    let state = Arc::new(Inner {
        destinations,
        registry,
        vault,
        audit: audit::AuditLog::new(&home),
        webhooks: hooks,
        workspaces,
        home,
        store: tokio::sync::Mutex::new(store),
        runs,
        metrics: Arc::new(metrics::Metrics::default()),
        keys,
        pipelines,
    });
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        println!("listening on http://{addr}");
        use std::io::Write;
        std::io::stdout().flush()?;
        tracing::info!(%addr, "serving the HTTP API");
        println!("web console on http://{addr}/console");
        let app = router(
            state.clone(),
            args.max_body,
            Duration::from_secs(args.request_timeout),
            console::ConsoleOptions {
                secure_cookie: args.console_secure_cookie,
                idle: Duration::from_secs(args.console_idle.saturating_mul(60)),
                max_body: args.max_body,
                timeout: Duration::from_secs(args.request_timeout),
            },
        );
        let runs = state.runs.clone();
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown_signal().await;
                tracing::info!("stopping: cancelling runs");
                runs.cancel_all();
            })
            .await?;
        // Runs revoke their tokens as they end.
        state.runs.wait_idle(Duration::from_secs(30)).await;
        Ok(ExitCode::SUCCESS)
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
