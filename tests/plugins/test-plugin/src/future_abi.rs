//! What a plugin built for a future, incompatible ABI looks like to this host: a root
//! module declaring ABI 2.0.0 with a different shape.

#![allow(non_local_definitions, unsafe_code, dead_code)]

use abi_stable::{
    StableAbi, declare_root_module_statics, export_root_module, library::RootModule,
    prefix_type::PrefixTypeTrait, sabi_types::VersionStrings, std_types::RString,
};

#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = FutureModRef)))]
#[sabi(missing_field(panic))]
#[allow(missing_debug_implementations)]
pub struct FutureMod {
    #[sabi(last_prefix_field)]
    pub describe: extern "C" fn() -> RString,
}

impl RootModule for FutureModRef {
    declare_root_module_statics! {FutureModRef}
    const BASE_NAME: &'static str = "ionport_plugin";
    const NAME: &'static str = "ionport plugin ABI";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("2.0.0");
}

extern "C" fn describe() -> RString {
    "a connector for ABI 2.0.0".into()
}

/// The root module of ABI 2.0.0.
#[export_root_module]
pub fn future_root_module() -> FutureModRef {
    FutureMod { describe }.leak_into_prefix()
}
