//! OpenLineage: with `--openlineage-url`, each run is told to a lineage server as run
//! events (spec 2-0-2): START when it begins, then COMPLETE, FAIL or ABORT (cancelled).
//!
//! - job: namespace `--openlineage-namespace` (default `ionport`), name the pipeline or
//!   connection the run belongs to (its tasks are the datasets);
//! - inputs: namespace `ionapi://HOST/TENANT` (the gateway and tenant of the
//!   credentials), name `CONNECTOR/TASK` (the product's connector and the stream);
//! - outputs: the destination (`sqlite://PATH`, `postgres://HOST:PORT` with name
//!   `DATABASE.SCHEMA.TABLE`, `file` with name `DIRECTORY/TABLE` for Parquet and JSONL)
//!   with the records written as the `outputStatistics` facet at the end;
//! - FAIL carries the (scrubbed) error as the `errorMessage` run facet.
//!
//! Events are queued (bounded) and posted in order by one task with bounded retries, so a
//! slow lineage server never slows a run. A run of a workspace other than `default` has
//! the workspace appended to the job namespace (`ionport.acme`), so two customers'
//! connections of one name are two jobs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use ionport_core::credentials::Credentials;
use ionport_core::destination::{DestinationConfig, table_name};
use ionport_core::pipeline::{CredentialsPlan, Plan};
use ionport_core::vault::Vault;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::events::RunSink;
use super::runs::{RunStatus, RunView};
use super::webhooks::DeliveryPolicy;

/// The `producer` of every event and facet.
pub const PRODUCER: &str = "https://github.com/ionport/ionport";
const RUN_EVENT_SCHEMA: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const OUTPUT_STATISTICS_SCHEMA: &str = "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet";
const ERROR_MESSAGE_SCHEMA: &str = "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet";

/// Events waiting to be posted; past this, new ones are dropped (with a warning).
const QUEUE: usize = 1024;

/// A dataset: namespace and name; `task` ties it to the run record's task.
#[derive(Debug, Clone)]
struct Dataset {
    namespace: String,
    name: String,
    task: String,
}

/// What a run's events say besides its state.
#[derive(Debug, Clone)]
struct RunLineage {
    run_id: String,
    job: String,
    inputs: Vec<Dataset>,
    outputs: Vec<Dataset>,
}

/// The job namespace of a run of `workspace` under `--openlineage-namespace` `base`:
/// `base` for `default` (as before workspaces), `base.WORKSPACE` for the others.
fn job_namespace(base: &str, workspace: &str) -> String {
    if workspace == crate::serve::workspaces::DEFAULT {
        base.to_string()
    } else {
        format!("{base}.{workspace}")
    }
}

/// The sink: builds events and queues them for the sender task.
#[derive(Debug)]
pub struct Lineage {
    namespace: String,
    vault: Arc<Vault>,
    tx: mpsc::Sender<Value>,
    runs: Mutex<HashMap<String, RunLineage>>,
}

impl Lineage {
    /// Starts the sender task (on the current runtime) posting to `url`.
    pub fn start(
        url: String,
        namespace: String,
        vault: Arc<Vault>,
        policy: DeliveryPolicy,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(post_all(rx, url, policy));
        Arc::new(Self {
            namespace,
            vault,
            tx,
            runs: Mutex::default(),
        })
    }

    /// The job namespace of a run of `workspace`.
    fn job_namespace(&self, workspace: &str) -> String {
        job_namespace(&self.namespace, workspace)
    }

    fn queue(&self, event: Value) {
        if self.tx.try_send(event).is_err() {
            tracing::warn!("the OpenLineage queue is full; an event is dropped");
        }
    }

    fn credentials(&self, c: &CredentialsPlan) -> Option<Credentials> {
        match c {
            CredentialsPlan::Vault(name) => self.vault.get(name).ok().map(|e| e.credentials),
            CredentialsPlan::IonApi(path) => Credentials::from_ionapi_file(path).ok(),
        }
    }

    fn lineage_of(&self, view: &RunView, plan: &Plan) -> RunLineage {
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        for p in &plan.pipelines {
            let gateway = match self.credentials(&p.credentials) {
                Some(c) => format!(
                    "ionapi://{}/{}",
                    c.ionapi_url.host_str().unwrap_or("unknown"),
                    c.tenant
                ),
                None => "ionapi://unknown".into(),
            };
            for t in &p.tasks {
                let task = t.spec.name.clone();
                if !view.tasks.iter().any(|v| v.name == task) {
                    continue;
                }
                inputs.push(Dataset {
                    namespace: gateway.clone(),
                    name: format!("{}/{task}", p.connector.id()),
                    task: task.clone(),
                });
                let (namespace, name) = output(&p.destination, &table_name(&task));
                outputs.push(Dataset {
                    namespace,
                    name,
                    task,
                });
            }
        }
        RunLineage {
            run_id: uuid_v4(),
            job: view
                .pipeline
                .clone()
                .unwrap_or_else(|| view.connection.clone()),
            inputs,
            outputs,
        }
    }

    fn event(&self, state: &str, l: &RunLineage, view: &RunView, end: bool) -> Value {
        let inputs: Vec<Value> = l
            .inputs
            .iter()
            .map(|d| json!({"namespace": d.namespace, "name": d.name, "facets": {}, "inputFacets": {}}))
            .collect();
        let outputs: Vec<Value> = l
            .outputs
            .iter()
            .map(|d| {
                let mut facets = json!({});
                if end && let Some(t) = view.tasks.iter().find(|t| t.name == d.task) {
                    facets["outputStatistics"] = json!({
                        "_producer": PRODUCER,
                        "_schemaURL": OUTPUT_STATISTICS_SCHEMA,
                        "rowCount": t.records,
                    });
                }
                json!({"namespace": d.namespace, "name": d.name, "facets": {}, "outputFacets": facets})
            })
            .collect();
        let mut run_facets = json!({});
        if state == "FAIL" {
            run_facets["errorMessage"] = json!({
                "_producer": PRODUCER,
                "_schemaURL": ERROR_MESSAGE_SCHEMA,
                "message": view.error.clone().unwrap_or_else(|| "the run failed".into()),
                "programmingLanguage": "Rust",
            });
        }
        json!({
            "eventType": state,
            "eventTime": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            "producer": PRODUCER,
            "schemaURL": RUN_EVENT_SCHEMA,
            "run": {"runId": l.run_id, "facets": run_facets},
            "job": {"namespace": self.job_namespace(&view.workspace), "name": l.job, "facets": {}},
            "inputs": inputs,
            "outputs": outputs,
        })
    }
}

impl RunSink for Lineage {
    fn run_started(&self, view: &RunView, plan: &Plan) {
        let l = self.lineage_of(view, plan);
        self.queue(self.event("START", &l, view, false));
        if let Ok(mut runs) = self.runs.lock() {
            runs.insert(view.id.clone(), l);
        }
    }

    fn run_ended(&self, view: &RunView) {
        let Some(l) = self.runs.lock().ok().and_then(|mut r| r.remove(&view.id)) else {
            return;
        };
        let state = match view.status {
            RunStatus::Failed => "FAIL",
            RunStatus::Cancelled => "ABORT",
            _ => "COMPLETE",
        };
        self.queue(self.event(state, &l, view, true));
    }
}

/// The namespace and name of a task's table in a destination (never a password: a
/// Postgres URL gives only its host, port and database).
fn output(d: &DestinationConfig, table: &str) -> (String, String) {
    match d {
        DestinationConfig::Sqlite { path } => {
            (format!("sqlite://{}", path.display()), table.into())
        }
        DestinationConfig::Postgres { url, schema } => match reqwest::Url::parse(url) {
            Ok(u) => (
                format!(
                    "postgres://{}:{}",
                    u.host_str().unwrap_or("localhost"),
                    u.port().unwrap_or(5432)
                ),
                format!("{}.{schema}.{table}", u.path().trim_start_matches('/')),
            ),
            Err(_) => ("postgres://unknown".into(), format!("{schema}.{table}")),
        },
        DestinationConfig::Parquet { path } | DestinationConfig::Jsonl { path } => {
            ("file".into(), format!("{}/{table}", path.display()))
        }
    }
}

/// A random (version 4) UUID, as OpenLineage run ids are: 16 random bytes with the
/// version and variant bits set (a dependency for these few lines is not worth it).
fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        b[..8].copy_from_slice(&super::auth::now().to_le_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = super::auth::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Posts the events in order, each retried with backoff until the retry time is spent.
async fn post_all(mut rx: mpsc::Receiver<Value>, url: String, policy: DeliveryPolicy) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(policy.attempt_timeout)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new());
    while let Some(event) = rx.recv().await {
        let mut retries = policy.retries();
        loop {
            let ok = client
                .post(&url)
                .json(&event)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                break;
            }
            if !retries.wait().await {
                tracing::warn!(event = %event["eventType"], "an OpenLineage event could not be posted");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspaces_runs_are_jobs_of_its_own_namespace() {
        assert_eq!(job_namespace("ionport", "default"), "ionport");
        assert_eq!(job_namespace("ionport", "acme"), "ionport.acme");
    }

    #[test]
    fn run_ids_are_version_4_uuids() {
        let u = uuid_v4();
        let parts: Vec<&str> = u.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'), "{u}");
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{u}");
    }

    #[test]
    fn a_postgres_output_never_names_its_password() {
        let d = DestinationConfig::Postgres {
            url: "postgres://user:CANARY@db.example:6543/sales".into(),
            schema: "m3".into(),
        };
        let (ns, name) = output(&d, "customers");
        assert_eq!(ns, "postgres://db.example:6543");
        assert_eq!(name, "sales.m3.customers");
    }
}
