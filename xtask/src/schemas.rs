//! Generating `schemas/`: every connector's connection form and tasks, read from the
//! built plugins through the ABI (the same path the host uses), so that what is checked
//! in is what the plugins really declare.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ionport_core::plugin::PluginRegistry;
use serde_json::Value;

/// The shipped connectors (their cdylib file stems).
const CONNECTORS: &[&str] = &[
    "libionport_connector_m3",
    "libionport_connector_ln",
    "libionport_connector_datalake",
];

fn pretty(v: &Value) -> Result<String> {
    Ok(serde_json::to_string_pretty(v)? + "\n")
}

/// Every generated file: path relative to `schemas/` → contents.
pub fn generate(lib_dir: &Path) -> Result<BTreeMap<PathBuf, String>> {
    let files: Vec<PathBuf> = CONNECTORS
        .iter()
        .map(|stem| lib_dir.join(format!("{stem}.{}", std::env::consts::DLL_EXTENSION)))
        .collect();
    let reg = PluginRegistry::load_from(&files);
    if let Some(r) = reg.refused().first() {
        bail!("a connector did not load: {r}");
    }
    if reg.plugins().len() != CONNECTORS.len() {
        bail!(
            "expected {} connectors in {}, found {} (build them first)",
            CONNECTORS.len(),
            lib_dir.display(),
            reg.plugins().len()
        );
    }
    let mut out = BTreeMap::new();
    // The `.ionapi` credentials file (ION-API.md section 1), from the host's reader.
    out.insert(
        PathBuf::from("ionapi.schema.json"),
        pretty(&ionport_core::credentials::ionapi_schema())?,
    );
    // The pipeline file (TOML), from its typed form.
    out.insert(
        PathBuf::from("pipeline.schema.json"),
        pretty(&ionport_core::pipeline::config::schema())?,
    );
    for p in reg.plugins() {
        let dir = PathBuf::from("connectors").join(p.id());
        out.insert(
            dir.join("manifest.json"),
            pretty(&serde_json::to_value(p.manifest())?)?,
        );
        out.insert(
            dir.join("connection-form.schema.json"),
            pretty(p.connection_form())?,
        );
        for t in p.tasks() {
            out.insert(
                dir.join("tasks").join(format!("{}.json", t.name)),
                pretty(&serde_json::to_value(t)?)?,
            );
        }
    }
    Ok(out)
}

/// Writes `schemas/` (or, with `check`, fails when it differs).
pub fn run(root: &Path, lib_dir: &Path, check: bool) -> Result<()> {
    let schemas = root.join("schemas");
    let wanted = generate(lib_dir)?;
    let mut stale = Vec::new();
    for (rel, text) in &wanted {
        let path = schemas.join(rel);
        let current = std::fs::read_to_string(&path).ok();
        if current.as_deref() != Some(text.as_str()) {
            if check {
                stale.push(rel.display().to_string());
            } else {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote schemas/{}", rel.display());
            }
        }
    }
    // Files under schemas/connectors that no plugin declares any more.
    let mut extra = Vec::new();
    collect(&schemas.join("connectors"), &schemas, &mut extra);
    for rel in extra {
        if !wanted.contains_key(&rel) {
            if check {
                stale.push(format!("{} (no longer generated)", rel.display()));
            } else {
                std::fs::remove_file(schemas.join(&rel))?;
                eprintln!("removed schemas/{}", rel.display());
            }
        }
    }
    if !stale.is_empty() {
        bail!(
            "schemas/ is not current; run `cargo xtask schemas`. Stale:\n  {}",
            stale.join("\n  ")
        );
    }
    if check {
        eprintln!("schemas/ is current ({} files)", wanted.len());
    }
    Ok(())
}

fn collect(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, base, out);
        } else if let Ok(rel) = p.strip_prefix(base) {
            out.push(rel.to_path_buf());
        }
    }
}
