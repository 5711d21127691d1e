//! The M3 connection form: the ION API credentials beside the MI settings (company,
//! division, API shape) of `ionport_infor_mi`, which also resolves the company a call
//! reads.

use ionport_infor_mi::MiSettings;
use ionport_plugin_sdk::form::IonApiCredentials;
use schemars::JsonSchema;

pub use ionport_infor_mi::MiCompany as M3Settings;

/// How to reach M3 and which data set to read.
#[derive(JsonSchema)]
#[schemars(title = "Infor M3 connection", deny_unknown_fields)]
#[allow(dead_code)] // a schema only: never built
pub struct M3ConnectionForm {
    /// ION API Gateway credentials (from the tenant's `.ionapi` file).
    credentials: IonApiCredentials,
    #[serde(flatten)]
    settings: MiSettings,
}
