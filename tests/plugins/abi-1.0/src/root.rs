//! The root module a plugin library exports.

use abi_stable::{
    StableAbi, declare_root_module_statics, library::RootModule, sabi_types::VersionStrings,
    std_types::RResult,
};

use crate::{ABI_VERSION, FfiConnectorBox, PluginError};

/// The root module of a plugin library: how the host obtains the connector.
///
/// It is a prefix type: fields appended after the last prefix field in a later minor ABI
/// version are optional to hosts and plugins of the earlier one.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
#[allow(missing_debug_implementations)]
pub struct PluginMod {
    /// Creates the plugin's connector. Called once per load.
    #[sabi(last_prefix_field)]
    pub new_connector: extern "C" fn() -> RResult<FfiConnectorBox, PluginError>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "ionport_plugin";
    const NAME: &'static str = "ionport plugin ABI";
    // The ABI version, not the crate version: abi_stable compares it before the layout,
    // so a plugin built for another major is refused with both versions named.
    const VERSION_STRINGS: VersionStrings = VersionStrings::new(ABI_VERSION);
}
