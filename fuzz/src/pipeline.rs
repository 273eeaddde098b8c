//! The pipeline config target: `Pipeline::from_str` on arbitrary UTF-8 text.
//!
//! Invariants:
//! - it never panics, and an error list is never empty;
//! - every error's text starts with the file name (`FILE: ...`);
//! - an `Ok` pipeline is what validation promises: at least one source; ids unique and
//!   made of letters, digits, `_` and `-`; every input names an existing source or
//!   transform (never a sink, never the component itself) and, when it names an output,
//!   one that component offers; every source's framing validates; every sink's buffer
//!   validates again;
//! - loading the same text again gives the same components and wiring.

use std::collections::HashSet;

use sluice::config::OutputRef;
use sluice::pipeline::{Pipeline, Source};
use sluice::sources::SOURCE_OUTPUTS;

const FILE: &str = "fuzz/pipeline.toml";

/// A fixed environment, so `${HOME}` and friends resolve the same in every run.
fn env(name: &str) -> Option<String> {
    match name {
        "HOME" => Some("/home/fuzz".into()),
        "PORT" => Some("5140".into()),
        "ADDR" => Some("127.0.0.1:5140".into()),
        "EMPTY" => Some(String::new()),
        "QUOTE" => Some("\"".into()),
        _ => None,
    }
}

pub fn pipeline_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Pipeline::from_str(FILE, text, env) {
        Ok(pipeline) => {
            check_valid(&pipeline);
            let again = Pipeline::from_str(FILE, text, env).expect("the same text loads again");
            assert_eq!(wiring(&again), wiring(&pipeline));
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "an empty error list");
            for error in errors {
                let text = error.to_string();
                assert!(
                    text.starts_with(&format!("{FILE}: ")),
                    "error without the file name: {text}"
                );
            }
        }
    }
}

type Wiring = Vec<(String, Vec<String>)>;

fn wiring(p: &Pipeline) -> Wiring {
    let refs = |inputs: &[OutputRef]| inputs.iter().map(ToString::to_string).collect();
    p.sources
        .iter()
        .map(|s| (s.id.clone(), Vec::new()))
        .chain(p.transforms.iter().map(|t| (t.id.clone(), refs(&t.inputs))))
        .chain(p.sinks.iter().map(|s| (s.id.clone(), refs(&s.inputs))))
        .collect()
}

fn check_valid(p: &Pipeline) {
    assert_eq!(p.file, FILE);
    assert!(!p.sources.is_empty(), "a pipeline without sources");
    let mut ids = HashSet::new();
    for (id, _) in wiring(p) {
        assert!(
            !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "id {id:?}"
        );
        assert!(ids.insert(id.clone()), "id {id} used twice");
    }

    for source in &p.sources {
        let framing = match &source.source {
            Source::Stdin(c) => &c.framing,
            Source::File(c) => &c.framing,
            Source::Tcp(c) => &c.framing,
            Source::Udp(c) => &c.framing,
            Source::Http(c) => &c.framing,
            // Lines of the kubelet's files: the file source it runs frames them.
            Source::KubernetesLogs(_) => continue,
            // One JSON entry per line of journalctl's output, bounded by max_entry_bytes.
            Source::Journald(_) => continue,
        };
        assert!(framing.validate().is_ok(), "{}: {framing:?}", source.id);
    }
    for sink in &p.sinks {
        if let Err(e) = sink.buffer.validate() {
            panic!("sink {} validated but its buffer does not: {e}", sink.id);
        }
    }

    let outputs_of = |component: &str| -> Option<Vec<String>> {
        if p.sources.iter().any(|s| s.id == component) {
            return Some(SOURCE_OUTPUTS.iter().map(|s| s.to_string()).collect());
        }
        p.transforms
            .iter()
            .find(|t| t.id == component)
            .map(|t| t.transform.outputs.clone())
    };
    let consumers = p
        .transforms
        .iter()
        .map(|t| (&t.id, &t.inputs))
        .chain(p.sinks.iter().map(|s| (&s.id, &s.inputs)));
    for (id, inputs) in consumers {
        assert!(!inputs.is_empty(), "{id} has no inputs");
        for input in inputs {
            assert_ne!(&input.component, id, "{id} reads itself");
            let Some(outputs) = outputs_of(&input.component) else {
                panic!("{id}: input {input} does not exist");
            };
            if let Some(output) = &input.output {
                assert!(outputs.contains(output), "{id}: no output {input}");
            }
        }
    }
}
