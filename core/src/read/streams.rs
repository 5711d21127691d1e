//! Streams beyond the predefined tasks: a name's form checked against what the connector
//! declares ([`StreamNames`]), before anything connects, and its existence against what
//! `discover` offers, when a run starts. A stream found becomes a [`TaskSpec`] that is
//! read through [`super::read_task`] exactly as a predefined task.

use std::sync::Arc;

use ionport_plugin_abi::wire::{ConnectionConfig, DiscoveredStream, Discovery, StreamNames};
use serde_json::Value;

use super::ReadError;
use crate::connection::{Cancel, Connection};
use crate::plugin::LoadedPlugin;

/// Why a stream name cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// `discover` does not offer it.
    #[error("{connector}'s discover offers no stream '{stream}' ({})", hint(.close, *.offered))]
    Missing {
        /// The connector.
        connector: String,
        /// The name asked for.
        stream: String,
        /// Offered names close to it, best first.
        close: Vec<String>,
        /// How many streams were offered.
        offered: usize,
    },
    /// Offered, but the tenant does not let it be read now.
    #[error("stream '{stream}' is not available on this tenant{}", .note.as_ref().map(|n| format!(": {n}")).unwrap_or_default())]
    Unavailable {
        /// The stream.
        stream: String,
        /// The connector's reason.
        note: Option<String>,
    },
}

fn hint(close: &[String], offered: usize) -> String {
    if close.is_empty() {
        format!("none of the {offered} offered is close; `ionport airbyte discover` lists them")
    } else {
        format!("close matches: {}", close.join(", "))
    }
}

/// Whether `name` has the form of `plugin`'s discovered streams (never, when it declares
/// none). Says nothing of whether the tenant has it.
pub fn is_stream_name(plugin: &LoadedPlugin, name: &str) -> bool {
    plugin
        .manifest()
        .stream_names
        .as_ref()
        .is_some_and(|n| ionport_plugin_sdk::conformance::is_stream_name(n, name))
}

/// How `plugin` names its discovered streams, for messages.
pub fn stream_names(plugin: &LoadedPlugin) -> Option<&StreamNames> {
    plugin.manifest().stream_names.as_ref()
}

/// The mark of a connection-form field whose value changes the shape (schema or key) of
/// the predefined tasks: when a connection sets it, the specs `discover` gives for those
/// tasks replace the manifest's (e.g. LN's `companies`, which adds `company` to the key).
pub const RESHAPES_STREAMS: &str = "x-reshapes-streams";

/// Whether `settings` set (not null, not absent) a field of `plugin`'s connection form
/// marked [`RESHAPES_STREAMS`]: then the predefined tasks' specs are `discover`'s.
pub fn reshapes_streams(plugin: &LoadedPlugin, settings: &Value) -> bool {
    form_reshapes(plugin.connection_form(), settings)
}

fn form_reshapes(form: &Value, settings: &Value) -> bool {
    let Some(props) = form.get("properties").and_then(Value::as_object) else {
        return false;
    };
    props.iter().any(|(name, field)| {
        field.get(RESHAPES_STREAMS).and_then(Value::as_bool) == Some(true)
            && settings.get(name).is_some_and(|v| !v.is_null())
    })
}

/// Runs `plugin`'s `discover` over `connection` on a blocking thread.
pub async fn discover(
    plugin: &Arc<LoadedPlugin>,
    connection: &Connection,
    settings: Value,
    cancel: Cancel,
) -> Result<Discovery, ReadError> {
    let host = Arc::new(
        connection
            .host(tokio::runtime::Handle::current())
            .with_cancel(cancel),
    );
    let plugin = plugin.clone();
    tokio::task::spawn_blocking(move || plugin.discover(host, &ConnectionConfig { settings }))
        .await
        .map_err(|e| ReadError::Thread(e.to_string()))?
        .map_err(ReadError::from)
}

/// The stream named `name` among `streams`, available now.
pub fn find_stream<'a>(
    connector: &str,
    streams: &'a [DiscoveredStream],
    name: &str,
) -> Result<&'a DiscoveredStream, StreamError> {
    let Some(found) = streams.iter().find(|s| s.spec.name == name) else {
        return Err(StreamError::Missing {
            connector: connector.to_string(),
            stream: name.to_string(),
            close: close_matches(streams.iter().map(|s| s.spec.name.as_str()), name),
            offered: streams.len(),
        });
    };
    if !found.available {
        return Err(StreamError::Unavailable {
            stream: name.to_string(),
            note: found.note.clone(),
        });
    }
    Ok(found)
}

/// Up to three of `names` that look like `wanted` (a typo, another case), best first.
pub fn close_matches<'a>(names: impl Iterator<Item = &'a str>, wanted: &str) -> Vec<String> {
    let lower = wanted.to_lowercase();
    let mut scored: Vec<(f64, &str)> = names
        .map(|n| {
            let score = strsim::normalized_damerau_levenshtein(&n.to_lowercase(), &lower);
            (score, n)
        })
        // An edit or two in a name of ten: close; a shared prefix (`table:`) alone is not.
        .filter(|(score, _)| *score >= 0.7)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored
        .into_iter()
        .take(3)
        .map(|(_, n)| n.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ionport_plugin_abi::wire::{SyncMode, TaskSpec};

    fn stream(name: &str, available: bool) -> DiscoveredStream {
        DiscoveredStream {
            spec: TaskSpec {
                name: name.into(),
                description: String::new(),
                record_schema: serde_json::json!({"type": "object"}),
                primary_key: vec![],
                cursor_field: None,
                sync_modes: vec![SyncMode::FullRefresh],
                requests_per_1000_records: None,
            },
            predefined: false,
            available,
            note: (!available).then(|| "EXPORTMI is not available".to_string()),
        }
    }

    #[test]
    fn a_missing_stream_names_its_close_matches() {
        let streams = [
            stream("table:OCUSMA", true),
            stream("table:MITMAS", true),
            stream("table:OOHEAD", true),
        ];
        let e = find_stream("infor-m3", &streams, "table:OCUSMO").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("'table:OCUSMO'"), "{msg}");
        assert!(msg.contains("close matches: table:OCUSMA"), "{msg}");
        assert!(!msg.contains("MITMAS"), "{msg}");
        let e = find_stream("infor-m3", &streams, "zzz").unwrap_err();
        assert!(e.to_string().contains("none of the 3 offered"), "{e}");
    }

    #[test]
    fn only_a_set_field_marked_to_reshape_makes_the_specs_discovers() {
        let form = serde_json::json!({"properties": {
            "company": {"type": ["integer", "null"]},
            "companies": {"type": ["array", "null"], RESHAPES_STREAMS: true},
        }});
        let yes = |settings: Value| form_reshapes(&form, &settings);
        assert!(yes(serde_json::json!({"companies": [100, 200]})));
        assert!(!yes(serde_json::json!({"companies": null, "company": 100})));
        assert!(!yes(serde_json::json!({"company": 100})));
        assert!(!yes(Value::Null));
        assert!(!form_reshapes(
            &serde_json::json!({}),
            &serde_json::json!({"companies": [1]})
        ));
    }

    #[test]
    fn an_unavailable_stream_says_why() {
        let streams = [stream("table:OCUSMA", false)];
        let e = find_stream("infor-m3", &streams, "table:OCUSMA").unwrap_err();
        assert!(e.to_string().contains("EXPORTMI is not available"), "{e}");
        let streams = [stream("table:OCUSMA", true)];
        assert!(find_stream("infor-m3", &streams, "table:OCUSMA").is_ok());
    }
}
