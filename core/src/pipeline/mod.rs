//! Pipelines: the TOML file a data engineer writes, validated into a plan, and the runner
//! that carries it out.
//!
//! - [`config`]: the file's typed form and its JSON Schema;
//! - [`load`]: reading and validating a file into a [`Plan`] — every problem located by
//!   file, line and column ([`Diagnostic`]);
//! - [`run`]: carrying out a plan: tasks concurrently, records and checkpoints committed
//!   together, a summary at the end;
//!
//! Only this module knows the TOML pipeline format.

pub mod config;
mod diagnostic;
pub mod load;
mod locate;
pub mod run;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use load::{CredentialsPlan, PipelinePlan, Plan, TaskPlan, load, load_str};
pub use run::{Cancel, RunObserver, RunOptions, RunSummary, TaskOutcome, run};
