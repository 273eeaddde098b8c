//! Graph validation: inputs resolve to existing outputs, and transforms form no cycle.

use std::collections::{HashMap, HashSet};

use super::{ComponentKind, ConfigError, Pipeline};

/// A reference to one output of a source or transform: `ID` (the default output) or
/// `ID.NAME` (a named output).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutputRef {
    pub component: String,
    pub output: Option<String>,
}

impl OutputRef {
    pub fn parse(s: &str) -> OutputRef {
        match s.split_once('.') {
            Some((component, output)) => OutputRef {
                component: component.to_string(),
                output: Some(output.to_string()),
            },
            None => OutputRef {
                component: s.to_string(),
                output: None,
            },
        }
    }
}

impl std::fmt::Display for OutputRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.output {
            Some(o) => write!(f, "{}.{}", self.component, o),
            None => f.write_str(&self.component),
        }
    }
}

pub(super) fn validate(p: &Pipeline) -> Result<(), Vec<ConfigError>> {
    let mut errors = Vec::new();
    // Named outputs each producer offers.
    let mut producers: HashMap<&str, Vec<String>> = HashMap::new();
    for s in &p.sources {
        producers.insert(
            &s.id,
            crate::sources::SOURCE_OUTPUTS
                .iter()
                .map(|o| o.to_string())
                .collect(),
        );
    }
    for t in &p.transforms {
        producers.insert(&t.id, t.config.outputs());
    }
    // An alert rule's only output is its default one: the alert events.
    for a in &p.alerts {
        producers.insert(&a.id, Vec::new());
    }
    let sink_ids: HashSet<&str> = p.sinks.iter().map(|s| s.id.as_str()).collect();
    for s in &p.sinks {
        producers.insert(
            &s.id,
            crate::sinks::SINK_OUTPUTS
                .iter()
                .map(|o| o.to_string())
                .collect(),
        );
    }

    let consumers = p
        .transforms
        .iter()
        .map(|t| (ComponentKind::Transform, &t.id, &t.inputs))
        .chain(
            p.sinks
                .iter()
                .map(|s| (ComponentKind::Sink, &s.id, &s.inputs)),
        )
        .chain(
            p.alerts
                .iter()
                .map(|a| (ComponentKind::Alert, &a.id, &a.inputs)),
        );
    for (kind, id, inputs) in consumers {
        let err = |message: String| ConfigError::Component {
            file: p.file.clone(),
            kind,
            id: id.clone(),
            field: "inputs".into(),
            message,
        };
        if inputs.is_empty() {
            errors.push(err("at least one input is required".into()));
        }
        for input in inputs {
            match producers.get(input.component.as_str()) {
                Some(_)
                    if input.output.is_none() && sink_ids.contains(input.component.as_str()) =>
                {
                    errors.push(err(format!(
                        "input `{input}` is a sink; a sink's only output is `{input}.dead_letter`"
                    )))
                }
                None => errors.push(err(format!(
                    "input `{input}` does not exist (no source or transform `{}`)",
                    input.component
                ))),
                Some(named) => {
                    if let Some(out) = &input.output {
                        if !named.iter().any(|n| n == out) {
                            let offered = if named.is_empty() {
                                "it has no named outputs".to_string()
                            } else {
                                format!("it offers: {}", named.join(", "))
                            };
                            errors.push(err(format!(
                                "input `{input}`: `{}` has no output `{out}` ({offered})",
                                input.component
                            )));
                        }
                    }
                    if input.component == *id {
                        errors.push(err(format!("input `{input}` is the component itself")));
                    }
                }
            }
        }
    }

    // Each rule replaces its state file as a whole: two rules on one file would erase
    // each other's firing alerts.
    let mut state_paths: HashMap<&std::path::Path, &str> = HashMap::new();
    for a in &p.alerts {
        if let Some(first) = state_paths.insert(&a.rule.state_path, &a.id) {
            errors.push(ConfigError::Component {
                file: p.file.clone(),
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

    if let Some(cycle) = find_cycle(p) {
        let kind = if sink_ids.contains(cycle[0].as_str()) {
            ComponentKind::Sink
        } else if p.alerts.iter().any(|a| a.id == cycle[0]) {
            ComponentKind::Alert
        } else {
            ComponentKind::Transform
        };
        errors.push(ConfigError::Component {
            file: p.file.clone(),
            kind,
            id: cycle[0].clone(),
            field: "inputs".into(),
            message: format!("cycle: {}", cycle.join(" -> ")),
        });
    }

    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Depth-first search over consumer-to-producer edges (transforms, alert rules, and sinks
/// through their dead-letter outputs); returns one cycle if any.
fn find_cycle(p: &Pipeline) -> Option<Vec<String>> {
    let edges: HashMap<&str, Vec<&str>> = p
        .transforms
        .iter()
        .map(|t| (t.id.as_str(), &t.inputs))
        .chain(p.sinks.iter().map(|s| (s.id.as_str(), &s.inputs)))
        .chain(p.alerts.iter().map(|a| (a.id.as_str(), &a.inputs)))
        .map(|(id, inputs)| (id, inputs.iter().map(|i| i.component.as_str()).collect()))
        .collect();
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    let mut marks: HashMap<&str, Mark> = HashMap::new();

    fn visit<'a>(
        node: &'a str,
        edges: &HashMap<&'a str, Vec<&'a str>>,
        marks: &mut HashMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Visiting) => {
                let start = stack.iter().position(|n| *n == node).unwrap_or(0);
                let mut cycle: Vec<String> = stack[start..].iter().map(|s| s.to_string()).collect();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            None => {}
        }
        let next = edges.get(node)?;
        marks.insert(node, Mark::Visiting);
        stack.push(node);
        for n in next {
            if let Some(c) = visit(n, edges, marks, stack) {
                return Some(c);
            }
        }
        stack.pop();
        marks.insert(node, Mark::Done);
        None
    }

    let mut ids: Vec<&str> = edges.keys().copied().collect();
    ids.sort_unstable();
    for id in ids {
        let mut stack = Vec::new();
        if let Some(c) = visit(id, &edges, &mut marks, &mut stack) {
            return Some(c);
        }
    }
    None
}
