//! The `--config`, `--catalog` and `--state` files of the protocol commands: read, parsed
//! and checked, every problem naming the file and the field.

use std::path::{Path, PathBuf};

use ionport_core::credentials::IonApiCredentials;
use ionport_core::form_values::FormValues;
use ionport_core::plugin::LoadedPlugin;
use serde_json::Value;

/// A protocol command's input file that cannot be used. Never holds a secret: a field's
/// problem names the field, and JSON syntax errors carry only line and column.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {what} {}: {error}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// Which input it is (`config`, `catalog`, `state`).
        what: &'static str,
        /// The OS error.
        error: String,
    },
    /// The file is not JSON.
    #[error("{what} {} is not JSON: {error}", file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// Which input it is.
        what: &'static str,
        /// Where parsing stopped (line and column, never the text).
        error: String,
    },
    /// The file is JSON but does not fit.
    #[error("{} does not fit: {}", file.display(), problems.join("; "))]
    Invalid {
        /// The file.
        file: PathBuf,
        /// One entry per problem (`field: what was expected`).
        problems: Vec<String>,
    },
}

/// Reads `path` as JSON. `what` names the input in errors.
pub fn load_json(path: &Path, what: &'static str) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
        file: path.to_path_buf(),
        what,
        error: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| ConfigError::Syntax {
        file: path.to_path_buf(),
        what,
        // serde_json's message for a bad token can quote input; keep line and column only.
        error: format!(
            "{} at line {} column {}",
            category(&e),
            e.line(),
            e.column()
        ),
    })
}

fn category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of file",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected value",
        serde_json::error::Category::Io => "read error",
    }
}

/// The checked parts of a config.
pub struct Parsed {
    /// The credentials block.
    pub credentials: IonApiCredentials,
    /// What the connector may see.
    pub settings: Value,
}

/// Checks `values` (read from `file`) against `plugin`'s connection form.
pub fn parse_values(
    plugin: &LoadedPlugin,
    file: &Path,
    values: &Value,
) -> Result<Parsed, ConfigError> {
    let invalid = |problems: Vec<String>| ConfigError::Invalid {
        file: file.to_path_buf(),
        problems,
    };
    let parsed = FormValues::parse(plugin.connection_form(), values)
        .map_err(|errors| invalid(errors.iter().map(ToString::to_string).collect()))?;
    let credentials = parsed.credentials.ok_or_else(|| {
        invalid(vec![
            "credentials: required (the ION API credentials of the connection form)".into(),
        ])
    })?;
    Ok(Parsed {
        credentials,
        settings: parsed.settings,
    })
}
