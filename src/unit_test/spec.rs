//! A pipeline's `[[tests]]` tables read and checked against the pipeline they test:
//! every component a test names exists and is of a kind the harness runs, every condition
//! compiles. Errors name the file, the test and the field.
//!
//! ```toml
//! [[tests]]
//! name = "errors go to the alert route"
//! no_outputs_from = ["by_level.other"]
//! [[tests.inputs]]
//! insert_at = "parse"
//! value = "2026-12-06T01:00:00Z ERROR db down"
//! [[tests.outputs]]
//! extract_from = "by_level.errors"
//! conditions = ['level == "error"']
//! ```

use std::collections::HashSet;

use bytes::Bytes;
use serde::Deserialize;

use super::TestConfigError;
use crate::condition::Condition;
use crate::config::{deserialize, ConfigError, OutputRef};
use crate::event::{Map, Value};
use crate::pipeline::Pipeline;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestConfig {
    name: String,
    #[serde(default)]
    inputs: Vec<InputConfig>,
    #[serde(default)]
    outputs: Vec<OutputConfig>,
    #[serde(default)]
    no_outputs_from: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputConfig {
    insert_at: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    log_fields: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputConfig {
    extract_from: String,
    #[serde(default)]
    conditions: Vec<String>,
}

/// One checked test.
#[derive(Debug)]
pub(super) struct UnitTest {
    pub(super) name: String,
    pub(super) inputs: Vec<TestInput>,
    pub(super) outputs: Vec<ExpectedOutput>,
    /// Outputs from which no event may come out.
    pub(super) no_outputs_from: Vec<OutputRef>,
}

/// An event put in at a component, in the order the test lists them.
#[derive(Debug)]
pub(super) struct TestInput {
    /// A transform (the event enters it) or a source (the event leaves it, to every
    /// component reading it).
    pub(super) insert_at: String,
    pub(super) event: InputEvent,
}

#[derive(Debug)]
pub(super) enum InputEvent {
    /// A raw line: at a source, decoded with the source's `decoding`; at a transform, the
    /// event `{ "message": LINE }`.
    Line(Bytes),
    Fields(Map),
}

/// What must come out of one output: at least one event, and one that satisfies every
/// condition.
#[derive(Debug)]
pub(super) struct ExpectedOutput {
    pub(super) extract_from: OutputRef,
    pub(super) conditions: Vec<Condition>,
}

/// Reads the `tests` value of `file` (an array of tables) and checks each test against
/// `pipeline`. Every problem is reported, not only the first.
pub(super) fn read_tests(
    file: &str,
    tests: toml::Value,
    pipeline: &Pipeline,
) -> Result<Vec<UnitTest>, Vec<TestConfigError>> {
    let toml::Value::Array(tables) = tests else {
        return Err(vec![TestConfigError::Pipeline(ConfigError::TopLevel {
            file: file.into(),
            field: "tests".into(),
            message: "expected an array of tables: [[tests]]".into(),
        })]);
    };
    let mut errors = Vec::new();
    let mut checked = Vec::new();
    let mut names = HashSet::new();
    for (index, value) in tables.into_iter().enumerate() {
        let fail = |test: String, field: &str, message: String| TestConfigError::Test {
            file: file.into(),
            test,
            field: field.into(),
            message,
        };
        let unnamed = format!("#{}", index + 1);
        let toml::Value::Table(table) = value else {
            errors.push(fail(unnamed, "(table)", "expected a table".into()));
            continue;
        };
        let name = match table.get("name") {
            Some(toml::Value::String(name)) => name.clone(),
            _ => unnamed,
        };
        let config = match deserialize::<TestConfig>(table) {
            Ok(config) => config,
            Err(e) => {
                errors.push(fail(name, &e.field, e.message));
                continue;
            }
        };
        if !names.insert(config.name.clone()) {
            errors.push(fail(
                name,
                "name",
                "another test of this file has the same name".into(),
            ));
            continue;
        }
        match check(config, pipeline) {
            Ok(test) => checked.push(test),
            Err(problems) => errors.extend(
                problems
                    .into_iter()
                    .map(|(field, message)| fail(name.clone(), &field, message)),
            ),
        }
    }
    if errors.is_empty() {
        Ok(checked)
    } else {
        Err(errors)
    }
}

/// The components a test may name, by kind.
struct Components<'a> {
    pipeline: &'a Pipeline,
}

impl Components<'_> {
    fn is_source(&self, id: &str) -> bool {
        self.pipeline.sources.iter().any(|s| s.id == id)
    }

    fn transform_outputs(&self, id: &str) -> Option<&[String]> {
        self.pipeline
            .transforms
            .iter()
            .find(|t| t.id == id)
            .map(|t| t.transform.outputs.as_slice())
    }

    /// What `id` is when it is a component a test cannot take events from.
    fn kind_of_other(&self, id: &str) -> Option<String> {
        if self.pipeline.sinks.iter().any(|s| s.id == id) {
            Some(format!(
                "`{id}` is a sink; tests do not run sinks, name the transform feeding it"
            ))
        } else if self.pipeline.alerts.iter().any(|a| a.id == id) {
            Some(format!(
                "`{id}` is an alert rule; tests do not run alert rules"
            ))
        } else if self.is_source(id) {
            Some(format!(
                "`{id}` is a source; events are taken from transforms only"
            ))
        } else {
            None
        }
    }

    /// `COMPONENT[.OUTPUT]` naming an output of a transform.
    fn output(&self, text: &str) -> Result<OutputRef, String> {
        let output = OutputRef::parse(text);
        let Some(named) = self.transform_outputs(&output.component) else {
            return Err(self.kind_of_other(&output.component).unwrap_or_else(|| {
                format!("no transform `{}` in the pipeline", output.component)
            }));
        };
        match &output.output {
            Some(name) if !named.iter().any(|n| n == name) => {
                let offered = if named.is_empty() {
                    "it has no named outputs".to_string()
                } else {
                    format!("it offers: {}", named.join(", "))
                };
                Err(format!(
                    "`{}` has no output `{name}` ({offered})",
                    output.component
                ))
            }
            _ => Ok(output),
        }
    }
}

fn check(config: TestConfig, pipeline: &Pipeline) -> Result<UnitTest, Vec<(String, String)>> {
    let components = Components { pipeline };
    let mut problems = Vec::new();
    if config.inputs.is_empty() {
        problems.push(("inputs".into(), "a test needs at least one input".into()));
    }
    if config.outputs.is_empty() && config.no_outputs_from.is_empty() {
        problems.push((
            "outputs".into(),
            "a test needs `outputs` or `no_outputs_from`".into(),
        ));
    }
    let mut inputs = Vec::new();
    for (i, input) in config.inputs.into_iter().enumerate() {
        let field = |name: &str| format!("inputs[{i}].{name}");
        if components.transform_outputs(&input.insert_at).is_none()
            && !components.is_source(&input.insert_at)
        {
            let message = components
                .kind_of_other(&input.insert_at)
                .unwrap_or_else(|| {
                    format!(
                        "no transform or source `{}` in the pipeline",
                        input.insert_at
                    )
                });
            problems.push((field("insert_at"), message));
        }
        let event = match (input.value, input.log_fields) {
            (Some(line), None) => InputEvent::Line(Bytes::from(line)),
            (None, Some(table)) => InputEvent::Fields(table_to_map(table)),
            _ => {
                problems.push((
                    field("value"),
                    "give either `value` (a raw line) or `log_fields` (a table)".into(),
                ));
                continue;
            }
        };
        inputs.push(TestInput {
            insert_at: input.insert_at,
            event,
        });
    }
    let mut outputs = Vec::new();
    for (i, output) in config.outputs.into_iter().enumerate() {
        let extract_from = components.output(&output.extract_from);
        let mut conditions = Vec::new();
        for (j, source) in output.conditions.iter().enumerate() {
            match Condition::compile(source) {
                Ok(condition) => conditions.push(condition),
                Err(e) => problems.push((format!("outputs[{i}].conditions[{j}]"), e.to_string())),
            }
        }
        match extract_from {
            Ok(extract_from) => outputs.push(ExpectedOutput {
                extract_from,
                conditions,
            }),
            Err(message) => problems.push((format!("outputs[{i}].extract_from"), message)),
        }
    }
    let mut no_outputs_from = Vec::new();
    for (i, text) in config.no_outputs_from.iter().enumerate() {
        match components.output(text) {
            Ok(output) => no_outputs_from.push(output),
            Err(message) => problems.push((format!("no_outputs_from[{i}]"), message)),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(UnitTest {
        name: config.name,
        inputs,
        outputs,
        no_outputs_from,
    })
}

fn table_to_map(table: toml::Table) -> Map {
    let mut map = Map::with_capacity(table.len());
    for (key, value) in table {
        map.insert(key, toml_to_value(value));
    }
    map
}

/// TOML into an event value; a TOML date-time becomes its text, as it would arrive in JSON.
fn toml_to_value(value: toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::Bytes(Bytes::from(s)),
        toml::Value::Integer(i) => Value::Integer(i),
        toml::Value::Float(f) => Value::Float(f),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::Bytes(Bytes::from(d.to_string())),
        toml::Value::Array(items) => Value::Array(items.into_iter().map(toml_to_value).collect()),
        toml::Value::Table(table) => Value::Object(table_to_map(table)),
    }
}
