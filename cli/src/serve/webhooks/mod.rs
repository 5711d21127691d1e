//! Webhooks: endpoints registered through the API (`/v1/webhooks`) that are told of run
//! events, signed with a per-endpoint secret.
//!
//! - this file: the endpoints (kept in `$IONPORT_HOME/webhooks.json`; each secret sealed
//!   under the vault key, never in plain text) and the run-event sink that queues events;
//! - `deliver.rs`: the sender task (bounded queue, signatures, retries);
//! - `log.rs`: the delivery log, kept in `$IONPORT_HOME/webhook-deliveries.jsonl`
//!   across restarts.
//!
//! Every endpoint belongs to a workspace: it is found (listed, shown, deleted, its
//! deliveries read) only from there, and hears only that workspace's runs.

mod deliver;
mod log;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use ionport_core::pipeline::Plan;
use ionport_core::vault::Vault;
use retry_policies::policies::{ExponentialBackoff, ExponentialBackoffTimed};
use retry_policies::{Jitter, RetryDecision, RetryPolicy};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

pub use deliver::Delivery;

use super::events::{EventKind, RunSink, end_kinds};
use super::runs::RunView;

/// The endpoint file in the ionport home.
pub const WEBHOOK_FILE: &str = "webhooks.json";

/// Events waiting to be handed to endpoints; past this, new events are dropped (and the
/// drop is logged in each endpoint's delivery log) rather than slowing a run.
pub const QUEUE: usize = 1024;

/// One endpoint as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredWebhook {
    id: String,
    url: String,
    events: Vec<EventKind>,
    workspace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    created: u64,
    /// The signing secret, sealed with the vault key (`Vault::seal`).
    secret: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct WebhookFile {
    webhooks: Vec<StoredWebhook>,
}

/// An endpoint as the API shows it (never its secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookView {
    /// `wh_` and 16 hex digits.
    pub id: String,
    pub url: String,
    /// The events it is sent.
    pub events: Vec<EventKind>,
    /// The workspace it belongs to (its runs are the ones it hears of).
    pub workspace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Seconds since the Unix epoch.
    pub created: u64,
}

/// A new endpoint, with its secret: the only time the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// The signing secret (`whsec_…`): shown once, store it now.
    pub secret: String,
}

/// An endpoint in memory: its record and its unsealed secret.
#[derive(Debug, Clone)]
struct Endpoint {
    stored: StoredWebhook,
    secret: SecretString,
}

impl Endpoint {
    fn view(&self) -> WebhookView {
        let s = &self.stored;
        WebhookView {
            id: s.id.clone(),
            url: s.url.clone(),
            events: s.events.clone(),
            workspace: s.workspace.clone(),
            description: s.description.clone(),
            created: s.created,
        }
    }
}

/// How deliveries are tried.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryPolicy {
    /// The time one attempt may take.
    pub attempt_timeout: Duration,
    /// The first wait between attempts (then doubling, at most `max_wait`).
    pub first_wait: Duration,
    pub max_wait: Duration,
    /// How long a delivery is retried in all.
    pub retry_for: Duration,
}

impl DeliveryPolicy {
    /// The retries of one message (a webhook delivery, an OpenLineage event), from now.
    pub fn retries(&self) -> Retries {
        Retries {
            backoff: ExponentialBackoff::builder()
                .retry_bounds(self.first_wait, self.max_wait)
                .jitter(Jitter::Bounded)
                .build_with_total_retry_duration(self.retry_for),
            began: SystemTime::now(),
            done: 0,
        }
    }
}

/// Where one message's retries stand (`retry-policies`' exponential backoff with jitter,
/// bounded by [`DeliveryPolicy::retry_for`]).
#[derive(Debug)]
pub struct Retries {
    backoff: ExponentialBackoffTimed,
    began: SystemTime,
    done: u32,
}

impl Retries {
    /// Waits for the next attempt; `false` (at once) when the retry time is spent.
    pub async fn wait(&mut self) -> bool {
        match self.backoff.should_retry(self.began, self.done) {
            RetryDecision::Retry { execute_after } => {
                let wait = execute_after
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                tokio::time::sleep(wait).await;
                self.done += 1;
                true
            }
            RetryDecision::DoNotRetry => false,
        }
    }
}

/// The server's endpoints, their delivery logs, and the queue to the sender task.
#[derive(Debug)]
pub struct Webhooks {
    file: PathBuf,
    vault: Arc<Vault>,
    endpoints: Mutex<Vec<Endpoint>>,
    sender: deliver::Sender,
}

fn read_file(file: &Path) -> Result<WebhookFile> {
    match std::fs::read_to_string(file) {
        Ok(t) => serde_json::from_str(&t)
            .with_context(|| format!("{} is not a webhook file", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(WebhookFile::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
    }
}

/// How many endpoints `workspace` has in `home` (for `ionport workspace delete`).
pub fn count_in(home: &Path, workspace: &str) -> Result<usize> {
    Ok(read_file(&home.join(WEBHOOK_FILE))?
        .webhooks
        .iter()
        .filter(|w| w.workspace == workspace)
        .count())
}

fn purpose(id: &str) -> String {
    format!("webhook:{id}")
}

fn random_hex(n: usize) -> Result<String> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(super::auth::hex(&b))
}

impl Webhooks {
    /// Loads the endpoints of `home` (unsealing their secrets) and starts the sender task
    /// on the current runtime.
    pub fn start(home: &Path, vault: Arc<Vault>, policy: DeliveryPolicy) -> Result<Arc<Self>> {
        let file = home.join(WEBHOOK_FILE);
        let stored = read_file(&file)?;
        let mut endpoints = Vec::new();
        for s in stored.webhooks {
            let secret = vault
                .unseal(&purpose(&s.id), &s.secret)
                .with_context(|| format!("{}: the secret of webhook {}", file.display(), s.id))?;
            let secret = String::from_utf8(secret.to_vec())
                .with_context(|| format!("{}: webhook {}", file.display(), s.id))?;
            endpoints.push(Endpoint {
                stored: s,
                secret: SecretString::from(secret),
            });
        }
        let known = endpoints
            .iter()
            .map(|e| (e.stored.id.clone(), e.stored.workspace.clone()))
            .collect();
        Ok(Arc::new(Self {
            file,
            vault,
            endpoints: Mutex::new(endpoints),
            sender: deliver::Sender::start(policy, home, &known),
        }))
    }

    fn save(&self, endpoints: &[Endpoint]) -> Result<()> {
        let file = WebhookFile {
            webhooks: endpoints.iter().map(|e| e.stored.clone()).collect(),
        };
        let text = serde_json::to_string_pretty(&file)? + "\n";
        super::store::write_private(&self.file, text.as_bytes())
    }

    /// Registers an endpoint of `workspace`; its secret is returned once.
    pub fn create(
        &self,
        workspace: &str,
        url: String,
        events: Vec<EventKind>,
        description: Option<String>,
    ) -> Result<CreatedWebhook> {
        let id = format!("wh_{}", random_hex(8)?);
        let secret = format!("whsec_{}", random_hex(24)?);
        let sealed = self.vault.seal(&purpose(&id), secret.as_bytes())?;
        let endpoint = Endpoint {
            stored: StoredWebhook {
                id,
                url,
                events,
                workspace: workspace.into(),
                description,
                created: super::auth::now(),
                secret: sealed,
            },
            secret: SecretString::from(secret.clone()),
        };
        let view = endpoint.view();
        let mut all = self
            .endpoints
            .lock()
            .map_err(|_| anyhow::anyhow!("the webhook list is unavailable"))?;
        all.push(endpoint);
        if let Err(e) = self.save(&all) {
            all.pop();
            return Err(e);
        }
        Ok(CreatedWebhook {
            webhook: view,
            secret,
        })
    }

    /// The endpoints of `workspace`.
    pub fn list(&self, workspace: &str) -> Vec<WebhookView> {
        self.endpoints
            .lock()
            .map(|e| {
                e.iter()
                    .filter(|e| e.stored.workspace == workspace)
                    .map(Endpoint::view)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Endpoint `id` of `workspace` (another workspace's is none).
    pub fn get(&self, workspace: &str, id: &str) -> Option<WebhookView> {
        self.endpoints
            .lock()
            .ok()?
            .iter()
            .find(|e| e.stored.id == id && e.stored.workspace == workspace)
            .map(Endpoint::view)
    }

    /// Removes endpoint `id` of `workspace`; false when there was none. Its deliveries
    /// under way stop being retried.
    pub fn delete(&self, workspace: &str, id: &str) -> Result<bool> {
        let mut all = self
            .endpoints
            .lock()
            .map_err(|_| anyhow::anyhow!("the webhook list is unavailable"))?;
        let Some(pos) = all
            .iter()
            .position(|e| e.stored.id == id && e.stored.workspace == workspace)
        else {
            return Ok(false);
        };
        let removed = all.remove(pos);
        if let Err(e) = self.save(&all) {
            all.insert(pos, removed);
            return Err(e);
        }
        self.sender.forget(id);
        Ok(true)
    }

    /// The latest deliveries to endpoint `id` of `workspace`, newest first; `None` when
    /// there is no such endpoint there.
    pub fn deliveries(&self, workspace: &str, id: &str) -> Option<Vec<Delivery>> {
        self.get(workspace, id)?;
        Some(self.sender.deliveries(id))
    }

    /// Queues `kind` about `run` for every endpoint that asked for it.
    fn publish(&self, kind: EventKind, run: &RunView) {
        let targets: Vec<deliver::Target> = self
            .endpoints
            .lock()
            .map(|all| {
                all.iter()
                    .filter(|e| e.stored.events.contains(&kind))
                    .filter(|e| e.stored.workspace == run.workspace)
                    .map(|e| deliver::Target {
                        id: e.stored.id.clone(),
                        workspace: e.stored.workspace.clone(),
                        url: e.stored.url.clone(),
                        secret: e.secret.expose_secret().to_string().into(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        if targets.is_empty() {
            return;
        }
        let event_id = match random_hex(8) {
            Ok(h) => format!("evt_{h}"),
            Err(e) => {
                tracing::warn!("a webhook event was not sent: {e:#}");
                return;
            }
        };
        let body = json!({
            "id": event_id,
            "type": kind.as_str(),
            "created": super::auth::now(),
            "workspace": run.workspace,
            "data": {"run": run},
        });
        self.sender.queue(deliver::Outgoing {
            event_id,
            kind,
            body: body.to_string(),
            targets,
        });
    }
}

impl RunSink for Webhooks {
    fn run_started(&self, view: &RunView, _plan: &Plan) {
        self.publish(EventKind::Started, view);
    }

    fn run_ended(&self, view: &RunView) {
        for kind in end_kinds(view) {
            self.publish(kind, view);
        }
    }
}
