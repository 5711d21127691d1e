//! "Test Connection" for M3: who the service account is in M3, and whether it may read
//! the configured company and division.

use ionport_plugin_sdk::mi::{MiCall, MiError};
use ionport_plugin_sdk::retry::host_failure;
use ionport_plugin_sdk::{CheckReport, ConnectionConfig, ConnectorError, GatewayResponse, Host};
use serde_json::{Value, json};

use crate::settings::M3Settings;

fn failed(part: &str, message: String) -> CheckReport {
    CheckReport {
        success: false,
        message,
        failed_part: Some(part.into()),
        details: Value::Null,
    }
}

/// Classifies an HTTP-level failure of the gateway into the part that failed.
pub fn http_failure(what: &str, resp: &GatewayResponse) -> Option<CheckReport> {
    match resp.status {
        200..=299 => None,
        401 => Some(failed(
            "token",
            format!(
                "{what}: the gateway refused the access token (HTTP 401); check the client id and secret and the service account keys"
            ),
        )),
        403 => Some(failed(
            "rights",
            format!(
                "{what}: the service account has no right to run M3 transactions (HTTP 403). Its user needs an IFS security role that lets it run M3 work on behalf of users, such as GRID-Administrator or GRID-RunAsM3User, and the app must be allowed to call M3"
            ),
        )),
        404 => Some(failed(
            "product",
            format!(
                "{what}: M3 is not reachable through this gateway (HTTP 404); check the Service URL and that the tenant has M3"
            ),
        )),
        s => Some(failed(
            "product",
            format!(
                "{what}: M3 answered HTTP {s}: {}",
                resp.text().chars().take(200).collect::<String>()
            ),
        )),
    }
}

fn field(row: &[(String, String)], k: &str) -> String {
    row.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}

/// Runs the check.
pub fn check(host: &Host, conn: &ConnectionConfig) -> Result<CheckReport, ConnectorError> {
    let s = match M3Settings::from_connection(conn) {
        Ok(s) => s,
        Err(e) => return Ok(failed("settings", e.message().to_string())),
    };
    let user = MiCall::new("MNS150MI", "GetUserData").maxrecs(1);
    let resp = match host.gateway(&user.request(s.shape())) {
        Ok(r) => r,
        Err(e) if e.is_cancelled() => return Err(e),
        Err(e) => {
            let (part, message) = host_failure(&e);
            return Ok(failed(part, message));
        }
    };
    if let Some(report) = http_failure("MNS150MI/GetUserData", &resp) {
        return Ok(report);
    }
    let answer = match user.parse_detailed(&resp) {
        Ok(a) => a,
        Err(e) => return Ok(failed("product", user.error(&e).message().to_string())),
    };
    let row = answer.rows.first().cloned().unwrap_or_default();
    let usid = field(&row, "USID");

    // The company (and division) the connection reads.
    let probe = MiCall::new("CRS610MI", "LstByNumber")
        .input("CONO", s.cono())
        .input("DIVI", s.divi().unwrap_or(""))
        .maxrecs(1)
        .returncols(["CUNO"]);
    let resp = host.gateway(&probe.request(s.shape()))?;
    if let Some(report) = http_failure("CRS610MI/LstByNumber", &resp) {
        return Ok(report);
    }
    if let Err(e) = probe.parse_detailed(&resp) {
        let MiError { field: f, .. } = &e;
        let part = if f == "CONO" || f == "DIVI" {
            "company"
        } else {
            "product"
        };
        return Ok(failed(
            part,
            format!(
                "{} — check the company ({}) and division ({}) of the connection",
                probe.error(&e).message(),
                s.company,
                s.divi().unwrap_or("none")
            ),
        ));
    }
    Ok(CheckReport {
        success: true,
        message: format!(
            "Connected to M3 as {usid}; company {}{}",
            s.company,
            s.divi()
                .map(|d| format!(", division {d}"))
                .unwrap_or_default()
        ),
        failed_part: None,
        details: json!({
            "user": usid,
            "name": field(&row, "NAME"),
            "user_company": field(&row, "CONO"),
            "user_division": field(&row, "DIVI"),
            "company": s.company,
            "division": s.divi(),
        }),
    })
}
