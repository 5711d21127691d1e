//! "Test Connection" for M3: who the service account is in M3, and whether it may read
//! the configured company and division.

use ionport_infor_mi::{MiCall, MiError};
use ionport_plugin_sdk::retry::host_failure;
use ionport_plugin_sdk::{CheckReport, ConnectionConfig, ConnectorError, GatewayResponse, Host};
use serde_json::{Value, json};

use crate::settings::{CompanySource, ConfiguredSettings, M3Settings, UserData};

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

/// Runs the check.
pub fn check(host: &Host, conn: &ConnectionConfig) -> Result<CheckReport, ConnectorError> {
    let configured = match ConfiguredSettings::from_connection(conn) {
        Ok(s) => s,
        Err(e) => return Ok(failed("settings", e.message().to_string())),
    };
    let user = UserData::call();
    let resp = match host.gateway(&user.request(configured.shape())) {
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
    let user_data = UserData {
        fields: answer.rows.first().cloned().unwrap_or_default(),
    };
    let usid = user_data.field("USID").to_string();
    let s = match M3Settings::with_user(configured, Some(&user_data)) {
        Ok(s) => s,
        Err(e) => return Ok(failed("company", e.message().to_string())),
    };

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
    let default = s.company_source == CompanySource::UserDefault;
    Ok(CheckReport {
        success: true,
        message: format!(
            "Connected to M3 as {usid}; company {}{}{}",
            s.company,
            s.divi()
                .map(|d| format!(", division {d}"))
                .unwrap_or_default(),
            if default {
                " (no company is set: the service account's default, from MNS150MI/GetUserData)"
            } else {
                ""
            }
        ),
        failed_part: None,
        details: json!({
            "user": usid,
            "name": user_data.field("NAME"),
            "user_company": user_data.field("CONO"),
            "user_division": user_data.field("DIVI"),
            "company": s.company,
            "division": s.divi(),
            "company_source": if default { "user_default" } else { "configured" },
        }),
    })
}
