//! "Test Connection" and discovery for LN.

use ionport_infor_odata::{self as odata, Page};
use ionport_plugin_sdk::check::{failed, failed_with, passed, unanswered_with};
use ionport_plugin_sdk::prelude::*;
use ionport_plugin_sdk::retry::{Fetched, RetryPolicy, fetch_decoded};
use serde_json::{Map, Value, json};

use crate::stream::{company_text, with_headers};
use crate::{LnSettings, tasks};

/// Which part a non-2xx LN answer points at, and what to tell the user.
fn classify(resp: &GatewayResponse, target: &str, settings: &LnSettings) -> (&'static str, String) {
    let msg = odata::error_message(resp);
    let code = odata::error_code(resp)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let company = company_text(settings);
    match resp.status {
        401 => (
            "token",
            format!(
                "The ION API Gateway refused the access token ({msg}). Check the client id and \
                 secret and the service-account keys of the connection (.ionapi file)."
            ),
        ),
        403 => (
            "rights",
            format!(
                "The service account may not use LN {target} ({msg}). Give its user the LN \
                 rights (an IFS role with access to the LN OData services) or use another \
                 account."
            ),
        ),
        404 if !(code.contains("company") || msg.to_ascii_lowercase().contains("company")) => (
            "product",
            format!(
                "LN {target} was not found on this tenant ({msg}). Check that LN is part of \
                 the tenant and that the service name is right."
            ),
        ),
        400..=499
            if code.contains("company")
                || code.contains("notactivated")
                || msg.to_ascii_lowercase().contains("company") =>
        {
            (
                "company",
                format!(
                    "LN refused {company} for {target} ({msg}). Check the company number, or \
                     activate the service for that company in LN."
                ),
            )
        }
        500..=599 => (
            "product",
            format!(
                "LN did not answer properly (HTTP {}: {msg}). LN may be down or not reachable \
                 from the gateway; try again later.",
                resp.status
            ),
        ),
        s => ("product", format!("LN {target} answered HTTP {s}: {msg}.")),
    }
}

/// Tests the connection: a one-record OData query for the configured company; with
/// several companies, one for every predefined task's entity set in each company (every
/// task reads every company, and LN activates services per company), stopping at the
/// first company that fails, named in the report.
pub fn check(host: &Host, connection: &ConnectionConfig) -> Result<CheckReport, ConnectorError> {
    let settings = match LnSettings::from_connection(connection) {
        Ok(s) => s,
        Err(e) => return Ok(failed("settings", e.message())),
    };
    let Some(list) = settings.fan_out() else {
        return check_company(host, &settings, &tasks::LN_TASKS[..1]);
    };
    let mut companies_ok: Vec<u16> = Vec::new();
    let mut last = None;
    for &c in list {
        let one = settings.for_company(c);
        let mut report = check_company(host, &one, &tasks::LN_TASKS)?;
        if !report.success {
            let named = format!("company {c}");
            if !report.message.contains(&named) {
                report.message = format!("LN {named}: {}", report.message);
            }
            report.details["companies"] = json!(list);
            report.details["failed_company"] = c.into();
            report.details["companies_ok"] = json!(companies_ok);
            return Ok(report);
        }
        companies_ok.push(c);
        last = Some(report);
    }
    let Some(mut report) = last else {
        return Ok(failed(
            "settings",
            "companies is empty: list at least one LN company",
        ));
    };
    let sets: Vec<String> = tasks::LN_TASKS
        .iter()
        .map(|t| format!("{}/{}", t.service, t.entity_set))
        .collect();
    let companies: Vec<String> = list.iter().map(ToString::to_string).collect();
    report.message = format!(
        "Connected to Infor LN{}: {} answer for companies {}.",
        report
            .details
            .get("user")
            .and_then(Value::as_str)
            .map(|u| format!(" as {u}"))
            .unwrap_or_default(),
        sets.join(", "),
        companies.join(", ")
    );
    report.details["company"] = Value::Null;
    report.details["companies"] = json!(list);
    Ok(report)
}

/// One company (that of `settings`): a one-record query of each of `sets`.
fn check_company(
    host: &Host,
    settings: &LnSettings,
    sets: &[tasks::LnTask],
) -> Result<CheckReport, ConnectorError> {
    let policy = RetryPolicy {
        attempts: 2,
        ..RetryPolicy::default()
    };
    let mut details = json!({
        "company": settings.company,
        "language": settings.language,
        "service": sets.first().map(|t| t.service),
    });
    let mut target = String::new();
    for t in sets {
        target = format!("{}/{}", t.service, t.entity_set);
        details["service"] = t.service.into();
        let req = with_headers(
            GatewayRequest::get(format!("LN/lnapi/odata/{target}"))
                .query("$top", "1")
                .query("$select", t.key.join(",")),
            settings,
        );
        match fetch_decoded(host, &req, "LN check", &policy, |r| Page::decode(&req, r)) {
            // An answer, but not an OData page: the gateway was reached; what answered is
            // not LN.
            Err(e) if e.is_unexpected_body() => {
                return Ok(failed_with("product", e.message(), details));
            }
            Err(e) => return unanswered_with(e, details),
            Ok(Fetched::Status(resp)) => {
                let (part, msg) = classify(&resp, &target, settings);
                details["status"] = resp.status.into();
                return Ok(failed_with(part, msg, details));
            }
            Ok(Fetched::Decoded(_)) => {}
        }
    }
    let user = user_name(host);
    if let Some(u) = &user {
        details["user"] = u.clone().into();
    }
    if sets.len() > 1 {
        details["service"] = Value::Null;
    }
    Ok(passed(
        format!(
            "Connected to Infor LN{}: {} answers for {}.",
            user.map(|u| format!(" as {u}")).unwrap_or_default(),
            target,
            company_text(settings)
        ),
        details,
    ))
}

/// The service account's user name, when the gateway tells it.
fn user_name(host: &Host) -> Option<String> {
    let resp = host
        .gateway(&GatewayRequest::get("ifsservice/usermgt/v2/users/me"))
        .ok()?;
    if !resp.is_success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&resp.body).ok()?;
    let u = v.pointer("/response/userlist/0")?;
    u.get("userName")
        .or_else(|| u.get("displayName"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// A JSON Schema guessed from one sample entity.
fn schema_of_sample(set: &str, sample: &Map<String, Value>) -> Value {
    let mut props = Map::new();
    for (k, v) in sample {
        let ty = match v {
            Value::Bool(_) => json!(["boolean", "null"]),
            Value::Number(n) if n.is_i64() || n.is_u64() => json!(["integer", "null"]),
            Value::Number(_) => json!(["number", "null"]),
            Value::String(_) => json!(["string", "null"]),
            Value::Array(_) => json!(["array", "null"]),
            Value::Object(_) => json!(["object", "null"]),
            Value::Null => json!(["string", "number", "boolean", "null"]),
        };
        props.insert(k.clone(), json!({ "type": ty }));
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": set,
        "type": "object",
        "properties": props,
    })
}

/// Lists the entity sets of the configured services and whether each can be read.
pub fn discover(host: &Host, connection: &ConnectionConfig) -> Result<Discovery, ConnectorError> {
    let settings = LnSettings::from_connection(connection)?;
    let each = settings.each_company();
    // With several companies every stream has the `company` field, first in its key.
    let shape = |spec: TaskSpec| {
        if settings.fan_out().is_some() {
            tasks::with_company(spec)
        } else {
            spec
        }
    };
    let policy = RetryPolicy::default();
    let mut streams = Vec::new();
    let mut services = Vec::new();
    for service in settings.services() {
        host.check_cancelled()?;
        // The service document is the same in every company: the first one's is asked.
        let doc_req = with_headers(
            GatewayRequest::get(format!("LN/lnapi/odata/{service}/")),
            each.first().unwrap_or(&settings),
        );
        let what = format!("LN service document of {service}");
        let sets: Vec<String> =
            match fetch_decoded(host, &doc_req, &what, &policy, |r| r.json::<Page>(&what))? {
                Fetched::Decoded(doc) => doc
                    .value
                    .iter()
                    .filter(|e| {
                        e.get("kind")
                            .and_then(Value::as_str)
                            .is_none_or(|k| k == "EntitySet")
                    })
                    .filter_map(|e| {
                        e.get("url")
                            .or_else(|| e.get("name"))
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    })
                    .collect(),
                Fetched::Status(resp) => {
                    let msg = odata::error_message(&resp);
                    services.push(json!({"service": service, "available": false, "error": msg}));
                    // Predefined tasks of an unreachable service are listed as unavailable.
                    for t in tasks::LN_TASKS.iter().filter(|t| t.service == service) {
                        streams.push(DiscoveredStream {
                            spec: shape(tasks::spec(t)),
                            predefined: true,
                            available: false,
                            note: Some(format!("service {service}: HTTP {}: {msg}", resp.status)),
                        });
                    }
                    continue;
                }
            };
        services.push(json!({"service": service, "available": true, "entity_sets": sets}));
        for set in sets {
            // One record tells whether the company may read it, and its shape; with several
            // companies, each must (every task reads every company).
            let what = format!("LN {service}/{set}");
            let mut available = true;
            let mut note = None;
            let mut sample = None;
            for one in &each {
                let probe = with_headers(
                    GatewayRequest::get(format!("LN/lnapi/odata/{service}/{set}"))
                        .query("$top", "1"),
                    one,
                );
                match fetch_decoded(host, &probe, &what, &policy, |r| r.json::<Page>(&what))? {
                    Fetched::Decoded(p) => {
                        if sample.is_none() {
                            sample = p.value.into_iter().next();
                        }
                    }
                    Fetched::Status(resp) => {
                        available = false;
                        note = Some(format!(
                            "{} answers HTTP {} for {}: {}",
                            what,
                            resp.status,
                            company_text(one),
                            odata::error_message(&resp)
                        ));
                        break;
                    }
                }
            }
            if let Some(t) = tasks::task_for(&service, &set) {
                streams.push(DiscoveredStream {
                    spec: shape(tasks::spec(t)),
                    predefined: true,
                    available,
                    note,
                });
                continue;
            }
            let mut sample = sample.unwrap_or_default();
            odata::strip_annotations(&mut sample);
            let cursor = ["LastModifiedDateTime", "LastModified", "ModifiedDateTime"]
                .into_iter()
                .find(|c| sample.contains_key(*c))
                .map(str::to_owned);
            let key: Vec<String> = sample.keys().next().cloned().into_iter().collect();
            let mut modes = vec![SyncMode::FullRefresh];
            if cursor.is_some() {
                modes.push(SyncMode::Incremental);
            }
            streams.push(DiscoveredStream {
                spec: shape(TaskSpec {
                    name: format!("{service}/{set}"),
                    description: format!("Entity set {set} of the LN OData service {service}."),
                    record_schema: schema_of_sample(&set, &sample),
                    primary_key: key,
                    cursor_field: cursor,
                    sync_modes: modes,
                    requests_per_1000_records: None,
                }),
                predefined: false,
                available,
                note: note.or(Some(
                    "schema and key guessed from one record; pass options.key (and \
                     options.cursor_field) to read it in a stable order"
                        .into(),
                )),
            });
        }
    }
    // Predefined tasks whose service was not among the configured ones.
    for t in &tasks::LN_TASKS {
        if !streams.iter().any(|s| s.spec.name == t.name) {
            streams.push(DiscoveredStream {
                spec: shape(tasks::spec(t)),
                predefined: true,
                available: false,
                note: Some(format!(
                    "service {} is not among the connection's services",
                    t.service
                )),
            });
        }
    }
    Ok(Discovery {
        streams,
        details: if let Some(list) = settings.fan_out() {
            json!({"company": settings.company, "companies": list, "services": services})
        } else {
            json!({"company": settings.company, "services": services})
        },
    })
}
