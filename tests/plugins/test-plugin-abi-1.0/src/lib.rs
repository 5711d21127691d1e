//! A connector as a third party built it against ionport's plugin ABI 1.0.0: straight on
//! the frozen ABI crate (`tests/plugins/abi-1.0`), no SDK, so nothing of a later minor
//! reaches it. The tests load it in the current host, which must read it (records and
//! checkpoints arrive; its pages are simply not reported while it runs, since 1.0 had no
//! way to). Never shipped.
//!
//! One task, `numbers`: `options.count` records (default 250) in pages of
//! `options.page` (default 50), each page emitted as one batch and checkpointed with
//! `{"offset": n}`; the summary counts the pages.
//!
//! Feature `needs-capability` (the package `ionport-test-plugin-needs-capability`): the
//! same source on the current ABI crate, with the manifest a plugin of a future minor
//! (1.2.0) would have when it cannot work without a host capability (`bulk_emit`) that
//! this host does not offer. (A 1.2 crate does not exist yet, so its root module is this
//! ABI's; what the host checks for capabilities is the manifest.)

// abi_stable's macros generate the unsafe glue of the root module and the trait object.
#![allow(unsafe_code, non_local_definitions)]

use abi_stable::export_root_module;
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RResult, RStr, RString};
#[cfg(feature = "needs-capability")]
use ionport_plugin_abi as abi;
#[cfg(not(feature = "needs-capability"))]
use ionport_plugin_abi_1_0 as abi;

use abi::{
    FfiConnector, FfiConnector_TO, FfiConnectorBox, FfiHostArc, PluginError, PluginMod,
    PluginModRef, RecordBatch, error_kind,
};
use serde_json::{Value, json};

struct Numbers;

fn ok(v: &Value) -> RResult<RString, PluginError> {
    RResult::ROk(v.to_string().into())
}

fn unsupported(what: &str) -> RResult<RString, PluginError> {
    RResult::RErr(PluginError::new(
        error_kind::NOT_SUPPORTED,
        format!("the ABI 1.0 test plugin has no {what}"),
    ))
}

impl FfiConnector for Numbers {
    fn manifest(&self) -> RResult<RString, PluginError> {
        #[cfg(not(feature = "needs-capability"))]
        let manifest = json!({
            "id": "abi-one-zero",
            "name": "ABI 1.0 test plugin",
            "version": "1.0.0",
            "abi_version": abi::ABI_VERSION,
            "description": "A plugin built against the frozen ABI 1.0, for the host's tests.",
        });
        #[cfg(feature = "needs-capability")]
        let manifest = json!({
            "id": "needs-bulk-emit",
            "name": "Capability test plugin",
            "version": "1.0.0",
            "abi_version": "1.2.0",
            "description": "A plugin of a future minor that needs a capability this host lacks.",
            "requires": ["bulk_emit"],
        });
        ok(&manifest)
    }

    fn connection_form(&self) -> RResult<RString, PluginError> {
        ok(&json!({
            "type": "object",
            "properties": { "label": { "type": "string", "description": "A label." } },
        }))
    }

    fn tasks(&self) -> RResult<RString, PluginError> {
        ok(&json!([{
            "name": "numbers",
            "description": "Generated numbers in pages, each page checkpointed.",
            "record_schema": {
                "type": "object",
                "properties": { "id": { "type": "integer" }, "square": { "type": "integer" } },
                "required": ["id", "square"],
            },
            "primary_key": ["id"],
            "cursor_field": null,
            "sync_modes": ["full_refresh"],
        }]))
    }

    fn check(&self, _host: FfiHostArc, _connection: RStr<'_>) -> RResult<RString, PluginError> {
        unsupported("check")
    }

    fn discover(&self, _host: FfiHostArc, _connection: RStr<'_>) -> RResult<RString, PluginError> {
        unsupported("discover")
    }

    fn read(&self, host: FfiHostArc, request: RStr<'_>) -> RResult<RString, PluginError> {
        let req: Value = match serde_json::from_str(request.as_str()) {
            Ok(v) => v,
            Err(e) => {
                return RResult::RErr(PluginError::new(
                    error_kind::INVALID_INPUT,
                    format!("the read request is not JSON: {e}"),
                ));
            }
        };
        let option = |k: &str, d: u64| req["options"][k].as_u64().unwrap_or(d);
        let (count, page) = (option("count", 250), option("page", 50).max(1));
        let (mut offset, mut pages) = (0u64, 0u64);
        while offset < count {
            if host.cancelled() {
                return RResult::RErr(PluginError::new(error_kind::CANCELLED, "cancelled"));
            }
            let end = (offset + page).min(count);
            let mut ndjson = Vec::new();
            for id in offset..end {
                ndjson.extend_from_slice(
                    json!({ "id": id, "square": id * id })
                        .to_string()
                        .as_bytes(),
                );
                ndjson.push(b'\n');
            }
            let batch = RecordBatch {
                stream: "numbers".into(),
                count: end - offset,
                ndjson: ndjson.into(),
            };
            if let RResult::RErr(e) = host.emit(batch) {
                return RResult::RErr(e);
            }
            offset = end;
            pages += 1;
            let state = json!({ "offset": offset }).to_string();
            if let RResult::RErr(e) = host.checkpoint(RStr::from_str(&state)) {
                return RResult::RErr(e);
            }
        }
        ok(&json!({ "records": count, "pages": pages, "state": { "offset": count } }))
    }
}

extern "C" fn new_connector() -> RResult<FfiConnectorBox, PluginError> {
    RResult::ROk(FfiConnector_TO::from_value(Numbers, TD_Opaque))
}

/// The root module of this plugin (ABI 1.0.0).
#[export_root_module]
pub fn root_module() -> PluginModRef {
    PluginMod { new_connector }.leak_into_prefix()
}
