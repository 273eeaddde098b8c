//! A pipeline document split into its parts: top-level settings and one table per
//! component, with the keys every component shares (`type`, `inputs`, `buffer`) taken out.
//! Nothing here knows a component type; the registry (`crate::pipeline`) turns each table
//! into a built component.

use super::{ComponentKind, ConfigError, FieldError, OutputRef};

/// A parsed pipeline file, before any component is built.
#[derive(Debug)]
pub struct Document {
    pub file: String,
    pub shutdown_timeout_secs: u64,
    /// The `[api]` table, if any.
    pub api: Option<toml::Table>,
    /// Components in document order: enrichment tables (built first: transforms look
    /// them up), sources, transforms, sinks, alert rules.
    pub components: Vec<ComponentTable>,
}

/// One component's table.
#[derive(Debug)]
pub struct ComponentTable {
    pub kind: ComponentKind,
    pub id: String,
    /// The `type` key (empty for alert rules, whose `kind` is a field of their own).
    pub type_name: String,
    pub inputs: Vec<OutputRef>,
    /// A sink's `buffer` table.
    pub buffer: Option<toml::Table>,
    /// Everything else: the component's own settings.
    pub table: toml::Table,
}

const SECTIONS: [(ComponentKind, &str); 5] = [
    (ComponentKind::EnrichmentTable, "enrichment_tables"),
    (ComponentKind::Source, "sources"),
    (ComponentKind::Transform, "transforms"),
    (ComponentKind::Sink, "sinks"),
    (ComponentKind::Alert, "alerts"),
];

/// The top-level table components of `kind` are written under (`transforms`…).
pub(super) fn section_of(kind: ComponentKind) -> Option<&'static str> {
    SECTIONS.iter().find(|(k, _)| *k == kind).map(|(_, s)| *s)
}

/// Splits the TOML document into top-level settings and component tables.
pub(super) fn split(file: &str, mut doc: toml::Table) -> Result<Document, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut document = Document {
        file: file.to_string(),
        shutdown_timeout_secs: super::DEFAULT_SHUTDOWN_TIMEOUT_SECS,
        api: None,
        components: Vec::new(),
    };
    let mut seen_ids = std::collections::HashMap::new();

    for (kind, section) in SECTIONS {
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
            match take_component(kind, &mut table) {
                Ok((type_name, inputs, buffer)) => document.components.push(ComponentTable {
                    kind,
                    id,
                    type_name,
                    inputs,
                    buffer,
                    table,
                }),
                Err(e) => errors.push(fail(&e.field, e.message)),
            }
        }
    }
    for (key, value) in doc {
        match (key.as_str(), value) {
            ("shutdown_timeout_secs", toml::Value::Integer(secs)) if secs >= 0 => {
                document.shutdown_timeout_secs = secs as u64;
            }
            ("api", toml::Value::Table(table)) => document.api = Some(table),
            // Unit tests (`sluice test`), checked by the command that runs them; the router
            // runs no test.
            ("tests", _) => {}
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
                    "unknown top-level field (expected api, enrichment_tables, sources, transforms, sinks, alerts, tests, shutdown_timeout_secs)"
                        .into(),
            }),
        }
    }
    let has_source = document
        .components
        .iter()
        .any(|c| c.kind == ComponentKind::Source);
    if !has_source && errors.is_empty() {
        errors.push(ConfigError::TopLevel {
            file: file.into(),
            field: "sources".into(),
            message: "a pipeline needs at least one source".into(),
        });
    }
    if errors.is_empty() {
        Ok(document)
    } else {
        Err(errors)
    }
}

type SharedKeys = (String, Vec<OutputRef>, Option<toml::Table>);

/// Takes `type`, `inputs` and a sink's `buffer` out of a component table.
fn take_component(kind: ComponentKind, table: &mut toml::Table) -> Result<SharedKeys, FieldError> {
    // An alert rule has no `type`: its `kind` is a field of its own config.
    let type_name =
        match table.remove("type") {
            None if kind == ComponentKind::Alert => String::new(),
            Some(_) if kind == ComponentKind::Alert => return Err(FieldError::new(
                "type",
                "an alert rule has no `type`; set `kind = \"threshold\" | \"ratio\" | \"absence\"`",
            )),
            Some(toml::Value::String(s)) => s,
            Some(_) => return Err(FieldError::new("type", "expected a string")),
            None => return Err(FieldError::new("type", "missing field `type`")),
        };
    let inputs = if matches!(kind, ComponentKind::Source | ComponentKind::EnrichmentTable) {
        if table.contains_key("inputs") {
            return Err(FieldError::new("inputs", format!("{kind}s take no inputs")));
        }
        Vec::new()
    } else {
        match table.remove("inputs") {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    toml::Value::String(s) => Ok(OutputRef::parse(&s)),
                    _ => Err(FieldError::new("inputs", "expected an array of strings")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(FieldError::new("inputs", "expected an array of strings")),
        }
    };
    let buffer = match (kind, table.remove("buffer")) {
        (_, None) => None,
        (ComponentKind::Sink, Some(toml::Value::Table(t))) => Some(t),
        (ComponentKind::Sink, Some(_)) => {
            return Err(FieldError::new(
                "buffer",
                "expected a table, e.g. buffer = { type = \"disk\", path = \"...\" }",
            ))
        }
        // Not a key of this kind: left for the component's own check to reject by name.
        (_, Some(value)) => {
            table.insert("buffer".into(), value);
            None
        }
    };
    Ok((type_name, inputs, buffer))
}
