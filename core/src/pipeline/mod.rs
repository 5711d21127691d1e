//! Pipelines: the TOML file a data engineer writes, validated into a plan, and the runner
//! that carries it out.
//!
//! - [`config`]: the file's typed form and its JSON Schema;
//! - [`load`](mod@load): reading and validating a file into a [`Plan`] — every problem located by
//!   file, line and column ([`Diagnostic`]);
//! - [`run`](mod@run): carrying out a plan: tasks concurrently, records and checkpoints committed
//!   together, a summary at the end;
//! - [`partition`]: a task read in partitions, each with a state of its own;
//! - [`schedule`]: when `ionport daemon` runs a pipeline (`every 15m`, `cron: 0 2 * * *`);
//!
//! Only this module knows the TOML pipeline format.
//!
//! Every problem of a file is reported at once, each with its place:
//!
//! ```
//! use std::path::Path;
//! use ionport_core::pipeline;
//! use ionport_core::plugin::PluginRegistry;
//!
//! let registry = PluginRegistry::load_from(&[]); // no plugins: every connector is unknown
//! let text = r#"
//! [environments.prod]
//! destination = { type = "sqlite", path = "prod.db" }
//!
//! [connections.m3]
//! connector = "infor-m3"
//! credentials = { vault = "acme-prd" }
//!
//! [pipelines.customers]
//! connection = "m3"
//! environment = "prod"
//! "#;
//! let problems = pipeline::load_str(Path::new("pipelines.toml"), text, &registry).unwrap_err();
//! let first = &problems.0[0];
//! // Line 6 of the text: `connector = "infor-m3"`.
//! assert_eq!((first.line, first.file.as_path()), (6, Path::new("pipelines.toml")));
//! assert!(first.message.contains("infor-m3"), "{first}");
//! ```
//!
//! A valid file becomes a [`Plan`]; [`run()`] carries it out with a [`RunObserver`] for
//! progress and a [`Cancel`] to stop it between pages.

pub mod commit;
pub mod config;
mod deletes;
mod diagnostic;
pub mod drift;
pub mod load;
mod locate;
pub mod partition;
pub mod run;
pub mod schedule;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use drift::{SchemaChange, SchemaPolicy};
pub use load::{CredentialsPlan, PipelinePlan, Plan, TaskPlan, load, load_str};
pub use run::{Cancel, RunObserver, RunOptions, RunSummary, TaskCounts, TaskOutcome, run};
pub use schedule::Schedule;
