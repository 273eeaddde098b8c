//! Pipeline configuration, in two phases.
//!
//! 1. **Parse**: read the file, substitute `${ENV}`, parse TOML, and deserialise each
//!    component's table into its typed config (unknown fields and wrong types rejected).
//! 2. **Validate**: check the graph (dangling inputs, unknown outputs, cycles) and let each
//!    component validate its own settings (compile conditions, regexes, templates).
//!
//! Neither phase does IO beyond reading the file itself: no sockets are bound and no files
//! are opened for output, so `sluice validate` is safe to run anywhere. Every error names
//! the file, the component and the field.

mod components;
mod env;
mod graph;

use std::path::{Path, PathBuf};

pub use crate::field_error::FieldError;
pub use components::{SinkConfig, SourceConfig, TransformConfig};
pub use env::{interpolate, EnvError};
pub use graph::OutputRef;

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
}

impl std::fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ComponentKind::Source => "source",
            ComponentKind::Transform => "transform",
            ComponentKind::Sink => "sink",
            ComponentKind::Alert => "alert",
        })
    }
}

#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub id: String,
    pub config: SourceConfig,
}

#[derive(Debug, Clone)]
pub struct TransformSpec {
    pub id: String,
    pub inputs: Vec<OutputRef>,
    pub config: TransformConfig,
}

#[derive(Debug, Clone)]
pub struct SinkSpec {
    pub id: String,
    pub inputs: Vec<OutputRef>,
    /// The sink's buffer: its bounded input queue, in memory or on disk.
    pub buffer: crate::buffer::BufferConfig,
    pub config: SinkConfig,
}

/// An alert rule: its inputs and the compiled rule.
#[derive(Debug, Clone)]
pub struct AlertSpec {
    pub id: String,
    pub inputs: Vec<OutputRef>,
    pub rule: crate::alert::RuleSpec,
}

/// A validated pipeline: every input resolves, there are no cycles, every component's
/// settings are valid.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub file: String,
    /// After SIGINT/SIGTERM, how long in-flight events may take to drain before the router
    /// exits anyway (top-level `shutdown_timeout_secs`, default 60).
    pub shutdown_timeout_secs: u64,
    /// The router's own HTTP API listener (`[api]`), if enabled.
    pub api: Option<crate::api::ApiConfig>,
    pub sources: Vec<SourceSpec>,
    pub transforms: Vec<TransformSpec>,
    pub sinks: Vec<SinkSpec>,
    /// Alert rules (`[alerts.ID]`); each one's output (`ID`) carries its alert events.
    pub alerts: Vec<AlertSpec>,
}

impl Pipeline {
    /// Reads, parses and validates `path`. `path == DEFAULT_PIPELINE_PATH` falls back to the
    /// embedded default when the file does not exist.
    pub fn load(path: &Path) -> Result<Pipeline, Vec<ConfigError>> {
        let mut file = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && path == Path::new(DEFAULT_PIPELINE_PATH) =>
            {
                // Logs and errors must not point at a file that is not there.
                file = EMBEDDED_DEFAULT_NAME.to_string();
                DEFAULT_PIPELINE.to_string()
            }
            Err(source) => return Err(vec![ConfigError::Read { file, source }]),
        };
        Self::from_str(&file, &text, |name| std::env::var(name).ok())
    }

    /// Parses and validates pipeline `text`; `file` names it in errors.
    pub fn from_str(
        file: &str,
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Pipeline, Vec<ConfigError>> {
        let text = interpolate(text, env).map_err(|errs| {
            errs.into_iter()
                .map(|error| ConfigError::Env {
                    file: file.to_string(),
                    error,
                })
                .collect::<Vec<_>>()
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| {
            vec![ConfigError::Syntax {
                file: file.to_string(),
                // toml's own text shows the line with a caret under the problem.
                message: format!("\n{}", e.to_string().trim_end()),
            }]
        })?;
        let pipeline = components::parse_components(file, table)?;
        graph::validate(&pipeline)?;
        Ok(pipeline)
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(&self.file)
    }
}
