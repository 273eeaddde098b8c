//! The component registry: every source, transform and sink type, listed once.
//!
//! A component table is split into the generic keys the topology owns (`type`, `inputs`,
//! `buffer`) and the rest, which is deserialised into that type's config struct with
//! `deny_unknown_fields`. Dispatching on `type` by hand (rather than a serde-tagged enum)
//! keeps the path of a bad field intact, so errors can say `framing.max_frame_bytes`.

use serde::de::DeserializeOwned;

use super::{
    AlertSpec, ComponentKind, ConfigError, FieldError, OutputRef, Pipeline, SinkSpec, SourceSpec,
    TransformSpec,
};
use crate::buffer::BufferConfig;
use crate::sinks::notify::NotifyConfig;
use crate::sinks::{
    blackhole::BlackholeConfig, console::ConsoleConfig, file::FileConfig, http::HttpSinkConfig,
};
use crate::sources::{http::HttpConfig, stdin::StdinConfig, tcp::TcpConfig, udp::UdpConfig};
use crate::transforms::{
    enrich::EnrichConfig, filter::FilterConfig, parse::ParseConfig, route::RouteConfig,
    sample::SampleConfig, throttle::ThrottleConfig, FunctionTransform, TransformContext,
};

#[derive(Debug, Clone)]
pub enum SourceConfig {
    Stdin(StdinConfig),
    Tcp(TcpConfig),
    Udp(UdpConfig),
    Http(HttpConfig),
    #[cfg(feature = "kafka")]
    Kafka(crate::sources::kafka::KafkaSourceConfig),
}

const SOURCE_TYPES: &str = "stdin, tcp, udp, http, kafka";

impl SourceConfig {
    fn parse(kind: &str, table: toml::Table) -> Result<Self, FieldError> {
        Ok(match kind {
            "stdin" => Self::Stdin(deserialize(table)?),
            "tcp" => Self::Tcp(deserialize(table)?),
            "udp" => Self::Udp(deserialize(table)?),
            "http" => Self::Http(deserialize(table)?),
            #[cfg(feature = "kafka")]
            "kafka" => Self::Kafka(deserialize(table)?),
            other => return Err(unknown_type(other, SOURCE_TYPES)),
        })
    }

    fn validate(&self) -> Result<(), FieldError> {
        match self {
            Self::Stdin(c) => c.validate(),
            Self::Tcp(c) => c.validate(),
            Self::Udp(c) => c.validate(),
            Self::Http(c) => c.validate(),
            #[cfg(feature = "kafka")]
            Self::Kafka(c) => c.validate(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum TransformConfig {
    Parse(ParseConfig),
    Enrich(EnrichConfig),
    Filter(FilterConfig),
    Route(RouteConfig),
    Sample(SampleConfig),
    Throttle(ThrottleConfig),
}

const TRANSFORM_TYPES: &str = "parse, enrich, filter, route, sample, throttle";

impl TransformConfig {
    fn parse(kind: &str, table: toml::Table) -> Result<Self, FieldError> {
        Ok(match kind {
            "parse" => Self::Parse(deserialize(table)?),
            "enrich" => Self::Enrich(deserialize(table)?),
            "filter" => Self::Filter(deserialize(table)?),
            "route" => Self::Route(deserialize(table)?),
            "sample" => Self::Sample(deserialize(table)?),
            "throttle" => Self::Throttle(deserialize(table)?),
            other => return Err(unknown_type(other, TRANSFORM_TYPES)),
        })
    }

    /// Named outputs, in the order `Outputs::push_named` indexes them.
    pub fn outputs(&self) -> Vec<String> {
        match self {
            Self::Parse(_) => ParseConfig::outputs()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            Self::Route(c) => c.outputs(),
            Self::Enrich(_) | Self::Filter(_) | Self::Sample(_) | Self::Throttle(_) => Vec::new(),
        }
    }

    /// Builds the runtime transform. Does no IO.
    pub fn build(&self, ctx: &TransformContext) -> Result<Box<dyn FunctionTransform>, FieldError> {
        Ok(match self {
            Self::Parse(c) => Box::new(c.validate_and_build(ctx)?),
            Self::Enrich(c) => Box::new(c.validate_and_build(ctx)?),
            Self::Filter(c) => Box::new(c.validate_and_build(ctx)?),
            Self::Route(c) => Box::new(c.validate_and_build(ctx)?),
            Self::Sample(c) => Box::new(c.validate_and_build(ctx)?),
            Self::Throttle(c) => Box::new(c.validate_and_build(ctx)?),
        })
    }
}

#[derive(Debug, Clone)]
pub enum SinkConfig {
    Console(ConsoleConfig),
    File(FileConfig),
    Blackhole(BlackholeConfig),
    Http(HttpSinkConfig),
    #[cfg(feature = "store")]
    Store(crate::store::StoreConfig),
    /// `alertmanager`, `webhook`, `slack`, `pagerduty`: the alert notifiers.
    Notify(NotifyConfig),
    #[cfg(feature = "kafka")]
    Kafka(crate::sinks::kafka::KafkaSinkConfig),
}

const SINK_TYPES: &str =
    "console, file, blackhole, http, store, kafka, alertmanager, webhook, slack, pagerduty";

impl SinkConfig {
    fn parse(kind: &str, table: toml::Table) -> Result<Self, FieldError> {
        Ok(match kind {
            "console" => Self::Console(deserialize(table)?),
            "file" => Self::File(deserialize(table)?),
            "blackhole" => Self::Blackhole(deserialize(table)?),
            "http" => Self::Http(deserialize(table)?),
            #[cfg(feature = "store")]
            "store" => Self::Store(deserialize(table)?),
            "alertmanager" => Self::Notify(NotifyConfig::Alertmanager(deserialize(table)?)),
            "webhook" => Self::Notify(NotifyConfig::Webhook(deserialize(table)?)),
            "slack" => Self::Notify(NotifyConfig::Slack(deserialize(table)?)),
            "pagerduty" => Self::Notify(NotifyConfig::Pagerduty(deserialize(table)?)),
            #[cfg(feature = "kafka")]
            "kafka" => Self::Kafka(deserialize(table)?),
            other => return Err(unknown_type(other, SINK_TYPES)),
        })
    }

    fn validate(&self) -> Result<(), FieldError> {
        match self {
            Self::Console(_) | Self::Blackhole(_) => Ok(()),
            Self::File(c) => c.validate(),
            Self::Http(c) => c.validate(),
            #[cfg(feature = "store")]
            Self::Store(c) => c.validate(),
            Self::Notify(c) => c.validate(),
            #[cfg(feature = "kafka")]
            Self::Kafka(c) => c.validate(),
        }
    }
}

fn unknown_type(kind: &str, known: &str) -> FieldError {
    FieldError::new(
        "type",
        format!("unknown type `{kind}` (expected one of: {known})"),
    )
}

/// Deserialises a component table, turning serde's error into the field it is about.
fn deserialize<T: DeserializeOwned>(table: toml::Table) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|err| {
        let path = err.path().to_string();
        let message = err.inner().to_string().trim_end().replace('\n', " ");
        // Depending on the container, serde reports an unknown field at its parent or at the
        // field itself; name the field itself, once.
        let field = match message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        {
            Some(name) if path == "." => name.to_string(),
            Some(name) if path == name || path.ends_with(&format!(".{name}")) => path,
            Some(name) => format!("{path}.{name}"),
            None if path == "." => message
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split('`').next())
                .unwrap_or("(table)")
                .to_string(),
            None => path,
        };
        FieldError::new(field, message)
    })
}

/// Phase one: turns the TOML document into typed component specs.
pub(super) fn parse_components(
    file: &str,
    mut doc: toml::Table,
) -> Result<Pipeline, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut pipeline = Pipeline {
        file: file.to_string(),
        shutdown_timeout_secs: super::DEFAULT_SHUTDOWN_TIMEOUT_SECS,
        api: None,
        sources: Vec::new(),
        transforms: Vec::new(),
        sinks: Vec::new(),
        alerts: Vec::new(),
    };
    let mut seen_ids = std::collections::HashMap::new();

    for kind in [
        ComponentKind::Source,
        ComponentKind::Transform,
        ComponentKind::Sink,
        ComponentKind::Alert,
    ] {
        let section = match kind {
            ComponentKind::Source => "sources",
            ComponentKind::Transform => "transforms",
            ComponentKind::Sink => "sinks",
            ComponentKind::Alert => "alerts",
        };
        let Some(value) = doc.remove(section) else {
            continue;
        };
        let toml::Value::Table(components) = value else {
            errors.push(ConfigError::TopLevel {
                file: file.into(),
                field: section.into(),
                message: format!("expected a table of components, e.g. [{section}.my_id]"),
            });
            continue;
        };
        for (id, value) in components {
            let fail = |field: &str, message: String| ConfigError::Component {
                file: file.into(),
                kind,
                id: id.clone(),
                field: field.into(),
                message,
            };
            if let Some(first) = seen_ids.insert(id.clone(), kind) {
                errors.push(fail(
                    "id",
                    format!("id `{id}` is already used by a {first}; ids must be unique"),
                ));
                continue;
            }
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                errors.push(fail(
                    "id",
                    "ids may contain only letters, digits, `_` and `-`".into(),
                ));
                continue;
            }
            let toml::Value::Table(mut table) = value else {
                errors.push(fail("(table)", "expected a table".into()));
                continue;
            };
            // An alert rule has no `type`: its `kind` is a field of its own config.
            let kind_name = match table.remove("type") {
                None if kind == ComponentKind::Alert => String::new(),
                Some(_) if kind == ComponentKind::Alert => {
                    errors.push(fail(
                        "type",
                        "an alert rule has no `type`; set `kind = \"threshold\" | \"ratio\" | \"absence\"`".into(),
                    ));
                    continue;
                }
                Some(toml::Value::String(s)) => s,
                Some(_) => {
                    errors.push(fail("type", "expected a string".into()));
                    continue;
                }
                None => {
                    errors.push(fail("type", "missing field `type`".into()));
                    continue;
                }
            };
            let inputs = if kind == ComponentKind::Source {
                if table.contains_key("inputs") {
                    errors.push(fail("inputs", "sources take no inputs".into()));
                    continue;
                }
                Vec::new()
            } else {
                match table.remove("inputs") {
                    None => Vec::new(),
                    Some(toml::Value::Array(items)) => {
                        let mut refs = Vec::new();
                        for item in items {
                            match item {
                                toml::Value::String(s) => refs.push(OutputRef::parse(&s)),
                                _ => errors
                                    .push(fail("inputs", "expected an array of strings".into())),
                            }
                        }
                        refs
                    }
                    Some(_) => {
                        errors.push(fail("inputs", "expected an array of strings".into()));
                        continue;
                    }
                }
            };
            match kind {
                ComponentKind::Alert => {
                    match deserialize::<crate::alert::AlertConfig>(table)
                        .and_then(|c| c.validate_and_build(&id))
                    {
                        Ok(rule) => pipeline.alerts.push(AlertSpec { id, inputs, rule }),
                        Err(e) => errors.push(fail(&e.field, e.message)),
                    }
                }
                ComponentKind::Source => match SourceConfig::parse(&kind_name, table)
                    .and_then(|c| c.validate().map(|()| c))
                {
                    Ok(config) => pipeline.sources.push(SourceSpec { id, config }),
                    Err(e) => errors.push(fail(&e.field, e.message)),
                },
                ComponentKind::Transform => {
                    let parsed = TransformConfig::parse(&kind_name, table).and_then(|c| {
                        let ctx = TransformContext { id: id.clone() };
                        c.build(&ctx).map(|_| c)
                    });
                    match parsed {
                        Ok(config) => {
                            pipeline
                                .transforms
                                .push(TransformSpec { id, inputs, config })
                        }
                        Err(e) => errors.push(fail(&e.field, e.message)),
                    }
                }
                ComponentKind::Sink => {
                    let buffer = match table.remove("buffer") {
                        None => BufferConfig::default(),
                        Some(toml::Value::Table(t)) => match deserialize::<BufferConfig>(t)
                            .map_err(|e| FieldError::new(format!("buffer.{}", e.field), e.message))
                            .and_then(|b| b.validate().map(|()| b))
                        {
                            Ok(b) => b,
                            Err(e) => {
                                errors.push(fail(&e.field, e.message));
                                continue;
                            }
                        },
                        Some(_) => {
                            errors.push(fail(
                                "buffer",
                                "expected a table, e.g. buffer = { type = \"disk\", path = \"...\" }"
                                    .into(),
                            ));
                            continue;
                        }
                    };
                    match SinkConfig::parse(&kind_name, table)
                        .and_then(|c| c.validate().map(|()| c))
                    {
                        Ok(config) => pipeline.sinks.push(SinkSpec {
                            id,
                            inputs,
                            buffer,
                            config,
                        }),
                        Err(e) => errors.push(fail(&e.field, e.message)),
                    }
                }
            }
        }
    }
    for (key, value) in doc {
        match (key.as_str(), value) {
            ("shutdown_timeout_secs", toml::Value::Integer(secs)) if secs >= 0 => {
                pipeline.shutdown_timeout_secs = secs as u64;
            }
            ("api", toml::Value::Table(table)) => {
                match deserialize::<crate::api::ApiConfig>(table)
                    .and_then(|api| api.validate().map(|()| api))
                {
                    Ok(api) => pipeline.api = Some(api),
                    Err(e) => errors.push(ConfigError::TopLevel {
                        file: file.into(),
                        field: format!("api.{}", e.field),
                        message: e.message,
                    }),
                }
            }
            ("api", _) => errors.push(ConfigError::TopLevel {
                file: file.into(),
                field: key,
                message: "expected a table: [api] address = \"127.0.0.1:8686\"".into(),
            }),
            ("shutdown_timeout_secs", _) => errors.push(ConfigError::TopLevel {
                file: file.into(),
                field: key,
                message: "expected a number of seconds (0 or more)".into(),
            }),
            _ => errors.push(ConfigError::TopLevel {
                file: file.into(),
                field: key,
                message:
                    "unknown top-level field (expected api, sources, transforms, sinks, alerts, shutdown_timeout_secs)"
                        .into(),
            }),
        }
    }
    if pipeline.sources.is_empty() && errors.is_empty() {
        errors.push(ConfigError::TopLevel {
            file: file.into(),
            field: "sources".into(),
            message: "a pipeline needs at least one source".into(),
        });
    }
    if errors.is_empty() {
        Ok(pipeline)
    } else {
        Err(errors)
    }
}
