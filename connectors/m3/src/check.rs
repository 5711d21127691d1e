//! "Test Connection" for M3 (`ionport_infor_mi::check`): who the service account is in
//! M3, and whether it may list the customers of the configured company and division.

use ionport_infor_mi::MiCall;
use ionport_plugin_sdk::{CheckReport, ConnectionConfig, ConnectorError, Host};

/// Runs the check.
pub fn check(host: &Host, conn: &ConnectionConfig) -> Result<CheckReport, ConnectorError> {
    ionport_infor_mi::check::check(host, conn, |s| {
        MiCall::new("CRS610MI", "LstByNumber")
            .input("CONO", s.cono())
            .input("DIVI", s.divi().unwrap_or(""))
            .maxrecs(1)
            .returncols(["CUNO"])
    })
}
