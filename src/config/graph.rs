//! Graph validation: inputs resolve to existing outputs, and nothing forms a cycle. Works on
//! [`Node`]s (id, kind, inputs, named outputs), so it knows no component type.

use std::collections::HashMap;

use super::{ComponentKind, ConfigError};

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

/// One component as the graph sees it.
#[derive(Debug, Clone)]
pub struct Node {
    pub kind: ComponentKind,
    pub id: String,
    pub inputs: Vec<OutputRef>,
    /// Named outputs, in the order the component indexes them (index 0 is the default
    /// output, then these from 1). A sink's default output cannot be consumed.
    pub outputs: Vec<String>,
}

/// A checked graph: every input resolves. Answers which output index an input reads.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    named: HashMap<String, Vec<String>>,
}

impl Graph {
    /// Checks `nodes` (inputs exist, named outputs exist, no cycle); errors name `file`.
    pub fn check(file: &str, nodes: &[Node]) -> Result<Graph, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let producers: HashMap<&str, &Node> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
        for node in nodes.iter().filter(|n| n.kind != ComponentKind::Source) {
            let err = |message: String| ConfigError::Component {
                file: file.into(),
                kind: node.kind,
                id: node.id.clone(),
                field: "inputs".into(),
                message,
            };
            if node.inputs.is_empty() {
                errors.push(err("at least one input is required".into()));
            }
            for input in &node.inputs {
                let Some(producer) = producers.get(input.component.as_str()) else {
                    errors.push(err(format!(
                        "input `{input}` does not exist (no source or transform `{}`)",
                        input.component
                    )));
                    continue;
                };
                match &input.output {
                    None if producer.kind == ComponentKind::Sink => errors.push(err(format!(
                        "input `{input}` is a sink; a sink's only output is `{input}.dead_letter`"
                    ))),
                    Some(out) if !producer.outputs.iter().any(|n| n == out) => {
                        let offered = if producer.outputs.is_empty() {
                            "it has no named outputs".to_string()
                        } else {
                            format!("it offers: {}", producer.outputs.join(", "))
                        };
                        errors.push(err(format!(
                            "input `{input}`: `{}` has no output `{out}` ({offered})",
                            input.component
                        )));
                    }
                    _ => {}
                }
                if input.component == node.id {
                    errors.push(err(format!("input `{input}` is the component itself")));
                }
            }
        }
        if errors.is_empty() {
            if let Some(cycle) = find_cycle(nodes) {
                let first = producers[cycle[0].as_str()];
                errors.push(ConfigError::Component {
                    file: file.into(),
                    kind: first.kind,
                    id: first.id.clone(),
                    field: "inputs".into(),
                    message: format!("cycle: {}", cycle.join(" -> ")),
                });
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let named = nodes
            .iter()
            .map(|n| (n.id.clone(), n.outputs.clone()))
            .collect();
        Ok(Graph { named })
    }

    /// The name of output `index` of `id`: `ID` for the default output, `ID.NAME` for a
    /// named one.
    pub fn output_name(&self, id: &str, index: usize) -> String {
        match index
            .checked_sub(1)
            .and_then(|i| self.named.get(id).and_then(|named| named.get(i)))
        {
            Some(name) => format!("{id}.{name}"),
            None => id.to_string(),
        }
    }

    /// The output index `input` reads: 0 for the default output, 1.. for named outputs.
    pub fn output_index(&self, input: &OutputRef) -> usize {
        let Some(name) = &input.output else { return 0 };
        // Checking guarantees the name exists.
        self.named
            .get(&input.component)
            .and_then(|named| named.iter().position(|o| o == name))
            .map_or(0, |i| i + 1)
    }
}

/// Depth-first search over consumer-to-producer edges, with an explicit stack so that a
/// chain of any length is checked without recursion; returns one cycle if any.
fn find_cycle(nodes: &[Node]) -> Option<Vec<String>> {
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let edges: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| {
            n.inputs
                .iter()
                .filter_map(|i| index.get(i.component.as_str()).copied())
                .collect()
        })
        .collect();
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Visiting,
        Done,
    }
    let mut marks = vec![Mark::New; nodes.len()];
    let mut order: Vec<usize> = (0..nodes.len()).collect();
    order.sort_unstable_by(|a, b| nodes[*a].id.cmp(&nodes[*b].id));
    for root in order {
        if marks[root] != Mark::New {
            continue;
        }
        // (node, next edge to follow)
        let mut stack = vec![(root, 0usize)];
        marks[root] = Mark::Visiting;
        while let Some((node, edge)) = stack.last_mut() {
            let node = *node;
            match edges[node].get(*edge) {
                Some(&next) => {
                    *edge += 1;
                    match marks[next] {
                        Mark::New => {
                            marks[next] = Mark::Visiting;
                            stack.push((next, 0));
                        }
                        Mark::Visiting => {
                            let start = stack.iter().position(|(n, _)| *n == next).unwrap_or(0);
                            let mut cycle: Vec<String> = stack[start..]
                                .iter()
                                .map(|(n, _)| nodes[*n].id.clone())
                                .collect();
                            cycle.push(nodes[next].id.clone());
                            return Some(cycle);
                        }
                        Mark::Done => {}
                    }
                }
                None => {
                    marks[node] = Mark::Done;
                    stack.pop();
                }
            }
        }
    }
    None
}
