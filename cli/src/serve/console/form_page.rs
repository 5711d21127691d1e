//! The connection form page (adding and editing): Basics, Connect (Import .ionapi and the
//! connector's form from `schema_form`), Advanced, the test's result, Test Connection and
//! Create (or Save). Markup only: the handlers are in `connection_form.rs`.

use std::collections::{BTreeMap, BTreeSet};

use ionport_core::plugin::LoadedPlugin;
use maud::{Markup, html};
use serde_json::Value;

use super::page::csrf_field;
use super::schema_form;
use crate::serve::tester::TestReport;

/// What the connection form page shows.
#[derive(Default)]
pub struct FormPage {
    /// `None` when adding.
    pub editing: Option<String>,
    pub name: String,
    pub dest_type: String,
    pub dest_path: String,
    pub description: String,
    pub page_size: String,
    pub quota: String,
    pub concurrency: String,
    pub retries: String,
    pub values: Value,
    pub errors: BTreeMap<String, String>,
    /// Problems not tied to one field (import, create).
    pub problems: Vec<String>,
    pub imported: bool,
    pub test: Option<TestReport>,
    /// Whether the values shown passed their last test.
    pub tested: bool,
}

/// The id of the input a field error is about: the basics' own, or the schema form's.
fn input_id(field: &str) -> String {
    match field {
        "name" | "description" | "page_size" | "quota" | "concurrency" | "retries" => {
            field.to_string()
        }
        "destination" => "dest_path".into(),
        other => format!("f-{}", other.replace('.', "-")),
    }
}

/// The form page: Basics, Connect, Advanced, the test's result and the buttons.
pub fn form_page(
    plugin: &LoadedPlugin,
    kept: &BTreeSet<String>,
    csrf: &str,
    f: &FormPage,
) -> Markup {
    let m = plugin.manifest();
    let action = match &f.editing {
        Some(n) => format!("/console/connections/{n}/edit"),
        None => format!("/console/connections/new/{}", m.id),
    };
    let err = |k: &str| f.errors.get(k);
    let adding = f.editing.is_none();
    html! {
        @if adding {
            ol.steps aria-label="Steps" { li { a href="/console/connections/new" { "Connector" } } li aria-current="step" { "Basics" } li { "Connect" } li { "Test and create" } }
        }
        p.meta { "Connector: " strong { (m.name) } " (" code { (m.id) } ")" }
        @if !f.problems.is_empty() || !f.errors.is_empty() {
            div.errors role="alert" id="form-errors" tabindex="-1" {
                p { "Please fix the following:" }
                ul {
                    @for p in &f.problems { li { (p) } }
                    @for (k, v) in &f.errors { li { @if !k.is_empty() { a href={ "#" (input_id(k)) } { (k) } ": " } (v) } }
                }
            }
        }
        form.connection method="post" action=(action) enctype="multipart/form-data" novalidate
            data-tested-form=(if f.tested { "passed" } else { "" }) {
            (csrf_field(csrf))
            section aria-labelledby="basics-h" {
                h2 id="basics-h" { "Basics" }
                div.field {
                    label for="name" { "Connection name" span.req aria-hidden="true" { " *" } }
                    @if let Some(n) = &f.editing {
                        input id="name" type="text" value=(n) readonly aria-describedby="name-desc";
                    } @else {
                        input id="name" name="name" type="text" value=(f.name) autocomplete="off"
                            aria-required="true" aria-describedby="name-desc" aria-invalid=[err("name").map(|_| "true")];
                    }
                    small.hint id="name-desc" { "1 to 48 of A-Z a-z 0-9 . _ - (not starting with a dot)." }
                    @if let Some(e) = err("name") { small.error { (e) } }
                }
                div.field {
                    label for="description" { "Description" }
                    textarea id="description" name="description" rows="2" maxlength="500" aria-describedby="description-desc"
                        aria-invalid=[err("description").map(|_| "true")] { (f.description) }
                    small.hint id="description-desc" { "Optional: what the connection is for (at most 500 characters)." }
                    @if let Some(e) = err("description") { small.error { (e) } }
                }
                fieldset {
                    legend { "Replication environment (destination)" }
                    div.field {
                        label for="dest_type" { "Kind" }
                        select id="dest_type" name="dest_type" {
                            @for k in ["sqlite", "jsonl", "parquet", "postgres"] {
                                option value=(k) selected[f.dest_type == k] { (k) }
                            }
                        }
                    }
                    div.field {
                        label for="dest_path" { "Path or URL" }
                        input id="dest_path" name="dest_path" type="text" value=(f.dest_path) autocomplete="off"
                            aria-describedby="dest-desc" aria-invalid=[err("destination").map(|_| "true")];
                        small.hint id="dest-desc" { "A path under the server's data directory (default: the connection name + .db), or a Postgres URL without a password." }
                        @if let Some(e) = err("destination") { small.error { (e) } }
                    }
                }
            }
            section aria-labelledby="connect-h" {
                h2 id="connect-h" { "Connect" }
                div.import {
                    label for="ionapi" { "Import .ionapi" }
                    input id="ionapi" name="ionapi" type="file" accept=".ionapi,application/json";
                    button type="submit" name="action" value="import" { "Import" }
                    @if f.imported { p role="status" { "Imported: the credentials below were filled in (secrets are kept on the server)." } }
                }
                (schema_form::render(plugin.connection_form(), &f.values, &schema_form::Shown { errors: &f.errors, kept }))
            }
            details.advanced open[["page_size", "quota", "concurrency", "retries"].iter().any(|k| err(k).is_some())] {
                summary { "Advanced" }
                div.field {
                    label for="page_size" { "Page size (records per request)" }
                    input id="page_size" name="page_size" type="number" min="1" step="1" value=(f.page_size)
                        aria-invalid=[err("page_size").map(|_| "true")];
                    @if let Some(e) = err("page_size") { small.error { (e) } }
                }
                div.field {
                    label for="quota" { "Quota" }
                    input id="quota" name="quota" type="text" value=(f.quota) placeholder="1000/60" aria-describedby="quota-desc"
                        aria-invalid=[err("quota").map(|_| "true")];
                    small.hint id="quota-desc" { "The tenant's quota for this app: N/SECONDS, or none." }
                    @if let Some(e) = err("quota") { small.error { (e) } }
                }
                div.field {
                    label for="concurrency" { "Concurrency (tasks at once)" }
                    input id="concurrency" name="concurrency" type="number" min="1" max="64" step="1" value=(f.concurrency)
                        placeholder="4" aria-describedby="concurrency-desc" aria-invalid=[err("concurrency").map(|_| "true")];
                    small.hint id="concurrency-desc" { "How many of the connection's tasks a run reads at once: 1 to 64." }
                    @if let Some(e) = err("concurrency") { small.error { (e) } }
                }
                div.field {
                    label for="retries" { "Retries" }
                    input id="retries" name="retries" type="number" min="0" max="20" step="1" value=(f.retries)
                        placeholder="5" aria-describedby="retries-desc" aria-invalid=[err("retries").map(|_| "true")];
                    small.hint id="retries-desc" { "How many times a failed gateway read (429, 502, 503, 504, a cut connection) is tried again: 0 to 20." }
                    @if let Some(e) = err("retries") { small.error { (e) } }
                }
            }
            div id="test-result" aria-live="polite" {
                @if let Some(t) = &f.test {
                    @if t.success {
                        div.result.ok role="status" data-test="passed" {
                            strong { "Connection test passed. " } (t.message)
                        }
                    } @else {
                        div.result.fail role="alert" data-test="failed" data-failed-part=[t.failed_part.as_deref()] {
                            strong { "Connection test failed"
                                @if let Some(p) = &t.failed_part { " at the " span.part { (p) } " step" } ". " }
                            (t.message)
                        }
                    }
                }
            }
            div.actions {
                button type="submit" name="action" value="test" { "Test Connection" }
                @if adding {
                    button.primary type="submit" name="action" value="create" disabled[!f.tested]
                        aria-describedby="create-desc" { "Create" }
                    small.hint id="create-desc" { "Create is enabled once a test of the values shown has passed." }
                } @else {
                    button.primary type="submit" name="action" value="save" { "Save" }
                    small.hint { "Secrets left empty keep their stored value; changed values are tested again before they are saved." }
                }
            }
        }
    }
}
