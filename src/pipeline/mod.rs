//! A loaded pipeline: every component built (no IO), the graph checked.
//!
//! Loading reads the file (`crate::config`, which knows no component type), builds each
//! component through the registry (`registry.rs`, the one place that names them all), and
//! checks the graph they form. What is built is kept: the topology opens and spawns these
//! same components, so nothing is compiled twice.

mod registry;

use std::path::Path;

pub use registry::{EnrichmentTable, OpenedSink, OpenedSource, Sink, Source, Task, Transform};

use crate::alert::RuleSpec;
use crate::api::ApiConfig;
use crate::buffer::BufferConfig;
use crate::config::{
    self, deserialize, ComponentKind, ComponentTable, ConfigError, FieldError, Graph, Node,
    OutputRef,
};

/// An enrichment table: its options and the handle transforms that look it up hold.
pub struct EnrichmentTableSpec {
    pub id: String,
    pub table: EnrichmentTable,
    pub handle: crate::enrichment::TableHandle,
}

pub struct SourceSpec {
    pub id: String,
    pub source: Source,
}

pub struct TransformSpec {
    pub id: String,
    pub inputs: Vec<OutputRef>,
    pub transform: Transform,
}

pub struct SinkSpec {
    pub id: String,
    pub inputs: Vec<OutputRef>,
    /// The sink's buffer: its bounded input queue, in memory or on disk.
    pub buffer: BufferConfig,
    pub sink: Sink,
}

/// An alert rule: its inputs and the compiled rule.
pub struct AlertSpec {
    pub id: String,
    pub inputs: Vec<OutputRef>,
    pub rule: RuleSpec,
}

/// A pipeline ready to start: every input resolves, there are no cycles, every component
/// is built.
pub struct Pipeline {
    pub file: String,
    /// After SIGINT/SIGTERM, how long in-flight events may take to drain before the router
    /// exits anyway (top-level `shutdown_timeout_secs`, default 60).
    pub shutdown_timeout_secs: u64,
    /// The router's own HTTP API listener (`[api]`), if enabled.
    pub api: Option<ApiConfig>,
    pub sources: Vec<SourceSpec>,
    pub transforms: Vec<TransformSpec>,
    pub sinks: Vec<SinkSpec>,
    /// Alert rules (`[alerts.ID]`); each one's output (`ID`) carries its alert events.
    pub alerts: Vec<AlertSpec>,
    /// Enrichment tables (`[enrichment_tables.ID]`), loaded at start.
    pub enrichment_tables: Vec<EnrichmentTableSpec>,
    /// The same tables by id, as transforms look them up.
    pub tables: crate::enrichment::Tables,
    /// Which output each input reads.
    pub graph: Graph,
    /// Each component's settings as written (type, table, buffer; not its inputs), by id:
    /// a reload compares them to tell unchanged components from changed ones.
    pub fingerprints: std::collections::HashMap<String, String>,
    /// The `[api]` table as written, compared the same way.
    pub api_fingerprint: String,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids = |ids: Vec<&str>| ids.join(", ");
        f.debug_struct("Pipeline")
            .field("file", &self.file)
            .field(
                "sources",
                &ids(self.sources.iter().map(|c| &*c.id).collect()),
            )
            .field(
                "transforms",
                &ids(self.transforms.iter().map(|c| &*c.id).collect()),
            )
            .field("sinks", &ids(self.sinks.iter().map(|c| &*c.id).collect()))
            .field("alerts", &ids(self.alerts.iter().map(|c| &*c.id).collect()))
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Reads, builds and checks `path`. `path == DEFAULT_PIPELINE_PATH` falls back to the
    /// embedded default when the file does not exist.
    pub fn load(path: &Path) -> Result<Pipeline, Vec<ConfigError>> {
        let (file, text) = config::read(path).map_err(|e| vec![e])?;
        Self::from_str(&file, &text, |name| std::env::var(name).ok())
    }

    /// Builds and checks pipeline `text`; `file` names it in errors.
    pub fn from_str(
        file: &str,
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Pipeline, Vec<ConfigError>> {
        let document = config::parse(file, text, env)?;
        let mut errors = Vec::new();
        let mut pipeline = Pipeline {
            file: file.to_string(),
            shutdown_timeout_secs: document.shutdown_timeout_secs,
            api: None,
            sources: Vec::new(),
            transforms: Vec::new(),
            sinks: Vec::new(),
            alerts: Vec::new(),
            enrichment_tables: Vec::new(),
            tables: Default::default(),
            graph: Graph::default(),
            fingerprints: Default::default(),
            api_fingerprint: format!("{:?}", document.api),
        };
        if let Some(table) = document.api {
            match deserialize::<ApiConfig>(table).and_then(|api| api.validate().map(|()| api)) {
                Ok(api) => pipeline.api = Some(api),
                Err(e) => errors.push(ConfigError::TopLevel {
                    file: file.into(),
                    field: format!("api.{}", e.field),
                    message: e.message,
                }),
            }
        }
        let mut nodes = Vec::new();
        for component in document.components {
            let node = Node {
                kind: component.kind,
                id: component.id.clone(),
                inputs: component.inputs.clone(),
                outputs: Vec::new(),
            };
            let in_graph = node.kind != ComponentKind::EnrichmentTable;
            pipeline.fingerprints.insert(
                component.id.clone(),
                format!(
                    "{:?} {} {:?} {:?}",
                    component.kind, component.type_name, component.buffer, component.table
                ),
            );
            match pipeline.add(component) {
                Ok(outputs) if in_graph => nodes.push(Node { outputs, ..node }),
                Ok(_) => {}
                Err(e) => {
                    let message = match e.at.and_then(|at| {
                        let start =
                            config::position::value_start(text, node.kind, &node.id, &e.field)?;
                        Some(config::position::within(start, at))
                    }) {
                        Some((line, column)) => {
                            format!("line {line}, column {column}: {}", e.message)
                        }
                        None => e.located_in_value(),
                    };
                    errors.push(ConfigError::Component {
                        file: file.into(),
                        kind: node.kind,
                        id: node.id,
                        field: e.field,
                        message,
                    })
                }
            }
        }
        errors.extend(pipeline.check_state_paths());
        if !errors.is_empty() {
            return Err(errors);
        }
        pipeline.graph = Graph::check(file, &nodes)?;
        Ok(pipeline)
    }

    /// Builds one component and adds it; returns its named outputs.
    fn add(&mut self, c: ComponentTable) -> Result<Vec<String>, FieldError> {
        let ComponentTable {
            id, inputs, table, ..
        } = c;
        Ok(match c.kind {
            ComponentKind::Source => {
                let source = Source::build(&c.type_name, table)?;
                self.sources.push(SourceSpec { id, source });
                crate::sources::SOURCE_OUTPUTS
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            }
            ComponentKind::Transform => {
                let transform = Transform::build(&c.type_name, table, &id, &self.tables)?;
                let outputs = transform.outputs.clone();
                self.transforms.push(TransformSpec {
                    id,
                    inputs,
                    transform,
                });
                outputs
            }
            ComponentKind::Sink => {
                let buffer = match c.buffer {
                    None => BufferConfig::default(),
                    Some(t) => deserialize::<BufferConfig>(t)
                        .map_err(|e| FieldError::new(format!("buffer.{}", e.field), e.message))
                        .and_then(|b| b.validate().map(|()| b))?,
                };
                let sink = Sink::build(&c.type_name, table)?;
                self.sinks.push(SinkSpec {
                    id,
                    inputs,
                    buffer,
                    sink,
                });
                crate::sinks::SINK_OUTPUTS
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            }
            ComponentKind::EnrichmentTable => {
                let table = EnrichmentTable::build(&c.type_name, table)?;
                let handle = crate::enrichment::TableHandle::new(&id);
                self.tables.insert(handle.clone());
                self.enrichment_tables
                    .push(EnrichmentTableSpec { id, table, handle });
                Vec::new()
            }
            ComponentKind::Alert => {
                let rule = deserialize::<crate::alert::AlertConfig>(table)?.build(&id)?;
                self.alerts.push(AlertSpec { id, inputs, rule });
                Vec::new()
            }
        })
    }

    /// Each rule replaces its state file as a whole: two rules on one file would erase
    /// each other's firing alerts.
    fn check_state_paths(&self) -> Vec<ConfigError> {
        let mut first_user: std::collections::HashMap<&Path, &str> = Default::default();
        let mut errors = Vec::new();
        for a in &self.alerts {
            if let Some(first) = first_user.insert(&a.rule.state_path, &a.id) {
                errors.push(ConfigError::Component {
                    file: self.file.clone(),
                    kind: ComponentKind::Alert,
                    id: a.id.clone(),
                    field: "state_path".into(),
                    message: format!(
                        "`{}` is already the state file of alert `{first}`",
                        a.rule.state_path.display()
                    ),
                });
            }
        }
        errors
    }
}
