//! Generating `schemas/`: every connector's connection form and tasks, read from the
//! built plugins through the ABI (the same path the host uses), so that what is checked
//! in is what the plugins really declare; and the HTTP API's OpenAPI document, printed by
//! the built `ionport` binary.

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
    "libionport_connector_ionapi",
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
    // The `infor-ionapi` streams manifest (TOML), from its typed form.
    out.insert(
        PathBuf::from("connectors/infor-ionapi/streams-manifest.schema.json"),
        pretty(&ionport_connector_ionapi::manifest::schema())?,
    );
    // The HTTP API (`ionport serve`), from the built binary's own document.
    out.insert(PathBuf::from("openapi.json"), openapi(lib_dir)?);
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

/// The OpenAPI document of `ionport serve`, printed by the built binary.
fn openapi(lib_dir: &Path) -> Result<String> {
    let bin = lib_dir.join(format!("ionport{}", std::env::consts::EXE_SUFFIX));
    let out = std::process::Command::new(&bin)
        .args(["serve", "--print-openapi"])
        .env_remove("IONPORT_API_KEYS")
        .output()
        .with_context(|| format!("running {} (build it first)", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} serve --print-openapi failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout).context("the OpenAPI document is not UTF-8")?;
    // Pretty and stable: parse and print again the way every other schema is printed.
    let v: Value = serde_json::from_str(&text).context("the OpenAPI document is not JSON")?;
    pretty(&v)
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
