//! `ionport plugins new NAME`: a new connector crate on the SDK's stream API that builds,
//! passes the conformance kit and reads the emulator's business partners as generated.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

const CARGO_TOML: &str = include_str!("../templates/connector/Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("../templates/connector/lib.rs.tmpl");
const CONFORMANCE_RS: &str = include_str!("../templates/connector/conformance.rs.tmpl");
const README_MD: &str = include_str!("../templates/connector/README.md.tmpl");

/// The SDK of the source tree this binary was built from, when it is still there.
fn default_sdk_path() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk");
    p.canonicalize()
        .ok()
        .filter(|p| p.join("Cargo.toml").is_file())
}

fn title_case(id: &str) -> String {
    id.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes the crate for connector `id` into `dir/<id>-connector`; returns its path.
pub fn new_connector(id: &str, dir: &Path, sdk_path: Option<&Path>) -> Result<PathBuf> {
    let valid = id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.ends_with('-')
        && !id.contains("--");
    if !valid {
        bail!(
            "'{id}' is not a connector id: use lowercase letters, digits and single dashes, starting with a letter (e.g. acme-erp)"
        );
    }
    let crate_name = format!("{id}-connector");
    let root = dir.join(&crate_name);
    if root.exists() {
        bail!(
            "{} already exists; choose another name or --dir",
            root.display()
        );
    }
    let sdk = match sdk_path.map(Path::to_path_buf).or_else(default_sdk_path) {
        Some(p) => {
            let p = p
                .canonicalize()
                .with_context(|| format!("the SDK path {}", p.display()))?;
            format!("{{ path = {:?} }}", p.display().to_string())
        }
        None => format!("\"{}\"", env!("CARGO_PKG_VERSION")),
    };
    let display = title_case(id);
    let type_name = format!("{}Connector", display.replace(' ', ""));
    let lib_name = crate_name.replace('-', "_");
    let fill = |t: &str| {
        t.replace("{{crate_name}}", &crate_name)
            .replace("{{display_name}}", &display)
            .replace("{{lib_name}}", &lib_name)
            .replace("{{type_name}}", &type_name)
            .replace("{{sdk_dependency}}", &sdk)
            .replace("{{id}}", id)
    };
    std::fs::create_dir_all(root.join("src"))?;
    std::fs::create_dir_all(root.join("tests"))?;
    let files = [
        ("Cargo.toml", CARGO_TOML),
        ("src/lib.rs", LIB_RS),
        ("tests/conformance.rs", CONFORMANCE_RS),
        ("README.md", README_MD),
        (".gitignore", "/target\n"),
    ];
    for (rel, template) in files {
        let path = root.join(rel);
        std::fs::write(&path, fill(template))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(root)
}
