//! "Test Connection" for an MI connector: who the service account is in M3
//! (`MNS150MI/GetUserData`), and whether it may read the connection's company and
//! division (a one-record call the connector names).

use ionport_plugin_sdk::check::{failed, passed, unanswered};
use ionport_plugin_sdk::{CheckReport, ConnectionConfig, ConnectorError, GatewayResponse, Host};
use serde_json::json;

use crate::{CompanySource, MiCall, MiCompany, MiSettings, MiUser};

/// The report on an HTTP-level failure of the gateway, naming the part that failed;
/// `None` for a success.
pub fn http_failure(what: &str, resp: &GatewayResponse) -> Option<CheckReport> {
    Some(match resp.status {
        200..=299 => return None,
        401 => failed(
            "token",
            format!(
                "{what}: the gateway refused the access token (HTTP 401); check the client id and secret and the service account keys"
            ),
        ),
        403 => failed(
            "rights",
            format!(
                "{what}: the service account has no right to run M3 transactions (HTTP 403). Its user needs an IFS security role that lets it run M3 work on behalf of users, such as GRID-Administrator or GRID-RunAsM3User, and the app must be allowed to call M3"
            ),
        ),
        404 => failed(
            "product",
            format!(
                "{what}: M3 is not reachable through this gateway (HTTP 404); check the Service URL and that the tenant has M3"
            ),
        ),
        s => failed(
            "product",
            format!(
                "{what}: M3 answered HTTP {s}: {}",
                resp.text().chars().take(200).collect::<String>()
            ),
        ),
    })
}

/// Checks the connection: the service account's user data, then `probe` (a one-record
/// call for the resolved company and division). An MI error on `CONO` or `DIVI` fails
/// the `company` part.
pub fn check(
    host: &Host,
    conn: &ConnectionConfig,
    probe: impl FnOnce(&MiCompany) -> MiCall,
) -> Result<CheckReport, ConnectorError> {
    let configured = match MiSettings::from_connection(conn) {
        Ok(s) => s,
        Err(e) => return Ok(failed("settings", e.message())),
    };
    let call = MiUser::call();
    let resp = match host.gateway(&call.request(configured.api_version)) {
        Ok(r) => r,
        Err(e) => return unanswered(e),
    };
    if let Some(report) = http_failure(&call.name(), &resp) {
        return Ok(report);
    }
    let user = match call.parse_detailed(&resp) {
        Ok(a) => MiUser {
            fields: a.rows.into_iter().next().unwrap_or_default(),
        },
        Err(e) => return Ok(failed("product", call.error(&e).message())),
    };
    let s = match MiCompany::with_user(configured, Some(&user)) {
        Ok(s) => s,
        Err(e) => return Ok(failed("company", e.message())),
    };

    let probe = probe(&s);
    let resp = host.gateway(&probe.request(s.shape()))?;
    if let Some(report) = http_failure(&probe.name(), &resp) {
        return Ok(report);
    }
    if let Err(e) = probe.parse_detailed(&resp) {
        let part = if e.field == "CONO" || e.field == "DIVI" {
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
    let usid = user.field("USID");
    let default = s.company_source == CompanySource::UserDefault;
    let division = s.divi().map(|d| format!(", division {d}"));
    let source = if default {
        " (no company is set: the service account's default, from MNS150MI/GetUserData)"
    } else {
        ""
    };
    Ok(passed(
        format!(
            "Connected to M3 as {usid}; company {}{}{source}",
            s.company,
            division.unwrap_or_default()
        ),
        json!({
            "user": usid,
            "name": user.field("NAME"),
            "user_company": user.field("CONO"),
            "user_division": user.field("DIVI"),
            "company": s.company,
            "division": s.divi(),
            "company_source": if default { "user_default" } else { "configured" },
        }),
    ))
}
