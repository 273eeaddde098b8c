//! Reading a pipeline file, knowing no component type: read the file, substitute `${ENV}`,
//! parse TOML, split it into top-level settings and one table per component
//! ([`Document`]), and check the graph those components form ([`Graph`]). The registry
//! (`crate::pipeline`), above the components, turns each table into a built component.
//!
//! Nothing here does IO beyond reading the file itself, so `sluice validate` is safe to run
//! anywhere. Every error names the file, the component and the field.

mod deserialize;
mod document;
mod env;
mod graph;
pub mod position;

use std::path::Path;

pub use crate::field_error::FieldError;
pub use deserialize::deserialize;
pub use document::{ComponentTable, Document};
pub use env::{interpolate, EnvError};
pub use graph::{Graph, Node, OutputRef};

/// Default of the top-level `shutdown_timeout_secs`.
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u64 = 60;

/// The default pipeline, embedded so that `sluice up` works from any directory.
pub const DEFAULT_PIPELINE: &str = include_str!("../../pipelines/default.toml");
pub const DEFAULT_PIPELINE_PATH: &str = "pipelines/default.toml";
/// How the embedded default pipeline is named in logs and errors when it runs.
pub const EMBEDDED_DEFAULT_NAME: &str = "embedded default pipeline (pipelines/default.toml)";

/// Any problem with a pipeline file; the text names file, component and field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {error}")]
    Env { file: String, error: EnvError },
    #[error("{file}: invalid toml: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: field `{field}`: {message}")]
    TopLevel {
        file: String,
        field: String,
        message: String,
    },
    #[error("{file}: {kind} `{id}`: field `{field}`: {message}")]
    Component {
        file: String,
        kind: ComponentKind,
        id: String,
        field: String,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComponentKind {
    Source,
    Transform,
    Sink,
    /// An alert rule (`[alerts.ID]`): consumes inputs, outputs alert events.
    Alert,
    /// An enrichment table (`[enrichment_tables.ID]`): no inputs or outputs; transforms
    /// look events up in it.
    EnrichmentTable,
}

impl std::fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ComponentKind::Source => "source",
            ComponentKind::Transform => "transform",
            ComponentKind::Sink => "sink",
            ComponentKind::Alert => "alert",
            ComponentKind::EnrichmentTable => "enrichment table",
        })
    }
}

/// Reads pipeline file `path`: its name for errors and its text. `path ==
/// DEFAULT_PIPELINE_PATH` falls back to the embedded default when the file does not exist.
pub fn read(path: &Path) -> Result<(String, String), ConfigError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((file, text)),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && path == Path::new(DEFAULT_PIPELINE_PATH) =>
        {
            // Logs and errors must not point at a file that is not there.
            Ok((
                EMBEDDED_DEFAULT_NAME.to_string(),
                DEFAULT_PIPELINE.to_string(),
            ))
        }
        Err(source) => Err(ConfigError::Read { file, source }),
    }
}

/// Substitutes `${ENV}` in pipeline `text` and splits it into a [`Document`]; `file` names
/// it in errors.
pub fn parse(
    file: &str,
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Document, Vec<ConfigError>> {
    document::split(file, parse_table(file, text, env)?)
}

/// Substitutes `${ENV}` in `text` and parses it as TOML, knowing nothing of its keys: for a
/// file that may hold only unit tests (`sluice test`).
pub fn parse_table(
    file: &str,
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<toml::Table, Vec<ConfigError>> {
    let text = interpolate(text, env).map_err(|errs| {
        errs.into_iter()
            .map(|error| ConfigError::Env {
                file: file.to_string(),
                error,
            })
            .collect::<Vec<_>>()
    })?;
    toml::from_str(&text).map_err(|e| {
        vec![ConfigError::Syntax {
            file: file.to_string(),
            // toml's own text shows the line with a caret under the problem.
            message: format!("\n{}", e.to_string().trim_end()),
        }]
    })
}
