//! Loading checks that need no plugin.

use std::path::Path;

use crate::plugin::PluginRegistry;

/// A destination kind this build left out is named at load, with its line, rather than
/// when a run opens it. Meaningful in a reduced build (`cargo test -p ionport-core
/// --no-default-features --lib`); in the default build every kind loads.
#[test]
fn a_destination_kind_left_out_of_the_build_is_an_error_at_load() {
    let registry = PluginRegistry::load_from(&[]);
    for (kind, built) in [
        ("sqlite", cfg!(feature = "sqlite")),
        ("parquet", cfg!(feature = "parquet")),
        ("jsonl", true),
    ] {
        let text = format!("[environments.e.destination]\ntype = \"{kind}\"\npath = \"out\"\n");
        let result = super::load_str(Path::new("p.toml"), &text, &registry);
        let problems = result.err().map(|d| d.to_string()).unwrap_or_default();
        let named = problems.contains(&format!("this build of ionport has no {kind} destination"));
        assert_eq!(named, !built, "{kind}: {problems}");
        if !built {
            assert!(problems.contains("p.toml:1:"), "{problems}");
        }
    }
}
