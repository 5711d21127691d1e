//! The webhook sender: events wait in a bounded queue, one task hands each to its
//! endpoints, and every delivery runs in its own task (at most [`IN_FLIGHT`] at once per
//! endpoint), tried until a 2xx answer or until the retry time is spent, with
//! exponential backoff (`retry-policies`, the policy crate reqwest-retry uses). Each
//! attempt is signed afresh: `Ionport-Signature: t=UNIX_SECONDS,v1=HEX`, where HEX is
//! HMAC-SHA256 with the endpoint's secret of `t + "." + body`. A receiver that checks
//! `t` against its clock refuses replays. Every delivery and attempt is recorded in the
//! delivery log (`log.rs`), which outlives a restart.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use hmac::{KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::{Semaphore, mpsc};
use utoipa::ToSchema;

use super::DeliveryPolicy;
use super::log::{Log, edit, load, push};
use crate::serve::auth::now;
use crate::serve::events::EventKind;

/// Deliveries kept per endpoint (older ones are forgotten first).
pub const KEEP: usize = 200;
/// Deliveries in flight at once to one endpoint.
pub const IN_FLIGHT: usize = 4;
/// Deliveries waiting for one endpoint; past this, new ones are dropped (and logged).
pub const MAX_WAITING: usize = 100;

/// The signature of `body` sent at `t`: lowercase hex HMAC-SHA256 of `t + "." + body`.
pub fn sign(secret: &str, t: u64, body: &str) -> String {
    // A key of any length is accepted by HMAC: `new_from_slice` cannot fail here.
    let mut mac = match hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    crate::serve::auth::hex(&mac.finalize().into_bytes())
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Being tried (or waiting for its next attempt).
    Pending,
    /// An attempt got a 2xx answer.
    Delivered,
    /// The retry time was spent without a 2xx answer.
    Failed,
    /// Never tried: too many deliveries were waiting for the endpoint or the queue.
    Dropped,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Attempt {
    /// When it was sent (seconds since the Unix epoch; the signature's `t`).
    pub time: u64,
    /// The answer's status, when there was an answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why it failed without an answer (timeout, refused connection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One event sent (or to be sent) to one endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    /// `dlv_` and 16 hex digits; sent as `Ionport-Delivery`.
    pub id: String,
    /// The event's id (the body's `id`; the same for every endpoint and attempt).
    pub event_id: String,
    pub event: EventKind,
    pub status: DeliveryStatus,
    /// When it was queued.
    pub created: u64,
    /// When an attempt got a 2xx answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered: Option<u64>,
    pub attempts: Vec<Attempt>,
    /// Why its status is what it is, when the attempts do not say (a delivery pending
    /// when the server stopped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An endpoint to send an event to.
#[derive(Debug)]
pub struct Target {
    pub id: String,
    pub workspace: String,
    pub url: String,
    pub secret: SecretString,
}

/// An event for some endpoints.
#[derive(Debug)]
pub struct Outgoing {
    pub event_id: String,
    pub kind: EventKind,
    pub body: String,
    pub targets: Vec<Target>,
}

/// The queue's sending side and the delivery logs.
#[derive(Debug)]
pub struct Sender {
    tx: mpsc::Sender<Outgoing>,
    log: Log,
}

fn new_id() -> String {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        b = now().to_le_bytes();
    }
    format!("dlv_{}", crate::serve::auth::hex(&b))
}

impl Sender {
    /// Starts the task that hands queued events to their endpoints, with the delivery
    /// log of `home` for the endpoints `known` (id → workspace).
    pub fn start(policy: DeliveryPolicy, home: &Path, known: &HashMap<String, String>) -> Self {
        let (tx, rx) = mpsc::channel(super::QUEUE);
        let log: Log = Arc::new(Mutex::new(load(home, known)));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(policy.attempt_timeout)
            .user_agent(concat!("ionport-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        tokio::spawn(dispatch(rx, log.clone(), client, policy));
        Self { tx, log }
    }

    /// Queues an event; when the queue is full it is dropped (and logged as dropped)
    /// rather than waited for.
    pub fn queue(&self, out: Outgoing) {
        if let Err(mpsc::error::TrySendError::Full(out) | mpsc::error::TrySendError::Closed(out)) =
            self.tx.try_send(out)
        {
            tracing::warn!(event = %out.event_id, "the webhook queue is full; the event is dropped");
            for t in &out.targets {
                push(&self.log, t, delivery(&out, DeliveryStatus::Dropped));
            }
        }
    }

    pub fn deliveries(&self, endpoint: &str) -> Vec<Delivery> {
        super::log::list(&self.log, endpoint)
    }

    /// Drops an endpoint's log; its deliveries under way stop at their next attempt.
    pub fn forget(&self, endpoint: &str) {
        super::log::forget(&self.log, endpoint);
    }
}

pub(super) fn delivery(out: &Outgoing, status: DeliveryStatus) -> Delivery {
    Delivery {
        id: new_id(),
        event_id: out.event_id.clone(),
        event: out.kind,
        status,
        created: now(),
        delivered: None,
        attempts: Vec::new(),
        note: None,
    }
}

async fn dispatch(
    mut rx: mpsc::Receiver<Outgoing>,
    log: Log,
    client: reqwest::Client,
    policy: DeliveryPolicy,
) {
    let mut slots: HashMap<String, Arc<Semaphore>> = HashMap::new();
    while let Some(out) = rx.recv().await {
        let body: Arc<str> = Arc::from(out.body.as_str());
        for target in &out.targets {
            let d = delivery(&out, DeliveryStatus::Pending);
            let id = d.id.clone();
            if push(&log, target, d) > MAX_WAITING {
                edit(&log, &target.id, &id, |d| {
                    d.status = DeliveryStatus::Dropped
                });
                tracing::warn!(webhook = %target.id, "too many deliveries waiting; one is dropped");
                continue;
            }
            let slot = slots
                .entry(target.id.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(IN_FLIGHT)))
                .clone();
            let job = Job {
                log: log.clone(),
                client: client.clone(),
                policy,
                endpoint: target.id.clone(),
                url: target.url.clone(),
                secret: target.secret.clone(),
                delivery: id,
                kind: out.kind,
                body: body.clone(),
            };
            tokio::spawn(async move {
                let Ok(_permit) = slot.acquire_owned().await else {
                    return;
                };
                job.run().await;
            });
        }
    }
}

struct Job {
    log: Log,
    client: reqwest::Client,
    policy: DeliveryPolicy,
    endpoint: String,
    url: String,
    secret: SecretString,
    delivery: String,
    kind: EventKind,
    body: Arc<str>,
}

impl Job {
    /// Tries until a 2xx answer, the retry time is spent, or the endpoint is deleted.
    async fn run(self) {
        let mut retries = self.policy.retries();
        loop {
            let t = now();
            let signature = sign(self.secret.expose_secret(), t, &self.body);
            let sent = self
                .client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("Ionport-Signature", format!("t={t},v1={signature}"))
                .header("Ionport-Event", self.kind.as_str())
                .header("Ionport-Delivery", &self.delivery)
                .body(self.body.to_string())
                .send()
                .await;
            let attempt = match &sent {
                Ok(r) => Attempt {
                    time: t,
                    status: Some(r.status().as_u16()),
                    error: None,
                },
                Err(e) => Attempt {
                    time: t,
                    status: None,
                    error: Some(if e.is_timeout() {
                        "no answer in time".into()
                    } else if e.is_connect() {
                        "could not connect".into()
                    } else {
                        "the request failed".into()
                    }),
                },
            };
            let ok = sent.as_ref().is_ok_and(|r| r.status().is_success());
            let known = edit(&self.log, &self.endpoint, &self.delivery, |d| {
                d.attempts.push(attempt);
                if ok {
                    d.status = DeliveryStatus::Delivered;
                    d.delivered = Some(now());
                }
            });
            if ok || !known {
                return;
            }
            if !retries.wait().await {
                edit(&self.log, &self.endpoint, &self.delivery, |d| {
                    d.status = DeliveryStatus::Failed;
                });
                tracing::warn!(webhook = %self.endpoint, delivery = %self.delivery, "a webhook delivery failed for good");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signature of a known input, computed independently (Python's
    /// `hmac.new(b"whsec_test", b"1700000000.{}", hashlib.sha256).hexdigest()`).
    #[test]
    fn signature_matches_a_known_value() {
        assert_eq!(
            sign("whsec_test", 1_700_000_000, "{}"),
            "35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }
}
