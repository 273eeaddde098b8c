//! Runs one test through a freshly built pipeline's transforms, synchronously, without
//! tasks, queues, sockets or files: the test's events are put in where it says, every event
//! a transform sends out is handed to the transforms reading that output (in the order it
//! came out), and transforms that hold events back (`multiline`) are finished once every
//! input went through, upstream first, as the router finishes them when its input ends.
//! Sources, sinks and alert rules do not run; a line put in at a source is decoded with the
//! source's `decoding`, as the source decodes one frame.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::codec::DecodingConfig;
use crate::config::OutputRef;
use crate::event::Event;
use crate::pipeline::{Pipeline, TransformSpec};
use crate::transforms::Outputs;

use super::spec::{InputEvent, UnitTest};

/// What came out of one output, and which expectations it did not meet.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(super) failures: Vec<Failure>,
    /// On failure, where the test's events went: each output that sent any, in pipeline
    /// order, with its count.
    pub(super) came_out: Vec<(String, usize)>,
    /// On failure, inputs that never entered the pipeline, and why.
    pub(super) notes: Vec<String>,
}

impl Outcome {
    pub(super) fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// One unmet expectation; `events` are the events that came out, in order.
#[derive(Debug)]
pub(super) enum Failure {
    /// `outputs[].extract_from` saw no event.
    NoEvents { output: String },
    /// Events came out, but none satisfied every condition. `held` is, per condition in the
    /// test's order, how many of the events satisfied it.
    Conditions {
        output: String,
        held: Vec<(String, usize)>,
        events: Vec<Event>,
    },
    /// `no_outputs_from` saw events.
    UnexpectedEvents { output: String, events: Vec<Event> },
}

/// Runs `test` on `pipeline`, which must be fresh: transforms keep state between events.
pub(super) fn run(pipeline: Pipeline, test: &UnitTest) -> Outcome {
    let decodings: HashMap<String, Option<DecodingConfig>> = pipeline
        .sources
        .iter()
        .map(|s| (s.id.clone(), s.source.decoding()))
        .collect();
    let mut graph = TransformGraph::new(pipeline);
    let mut notes = Vec::new();
    for (i, input) in test.inputs.iter().enumerate() {
        let at = &input.insert_at;
        if let Some(&transform) = graph.index.get(at) {
            let fields = match &input.event {
                InputEvent::Line(line) => Event::from_message(line.clone()).fields,
                InputEvent::Fields(fields) => fields.clone(),
            };
            graph.queue.push_back((transform, stamped(fields, None)));
        } else {
            // A source: the event leaves it as the source would have made it.
            let fields = match (&input.event, decodings.get(at).copied().flatten()) {
                (InputEvent::Line(line), Some(decoding)) => {
                    match decoding.build().decode(line.clone()) {
                        Ok(fields) => fields,
                        Err((error, _)) => {
                            notes.push(format!(
                                "inputs[{i}]: source `{at}` cannot decode the line as {} ({error}); it would go to `{at}.dead_letter`",
                                decoding.name()
                            ));
                            continue;
                        }
                    }
                }
                (InputEvent::Line(line), None) => Event::from_message(line.clone()).fields,
                (InputEvent::Fields(fields), _) => fields.clone(),
            };
            graph.deliver(at, 0, vec![stamped(fields, Some(at))]);
        }
        graph.drain();
    }
    graph.finish_all();
    let mut outcome = check(test, &graph);
    if !outcome.passed() {
        outcome.notes = notes;
    }
    outcome
}

/// An event received now, from `source` when it is put in at one.
fn stamped(fields: crate::event::Map, source: Option<&str>) -> Event {
    let mut event = Event::new(fields);
    event.meta.received_at = crate::event::now_nanos();
    event.meta.source = source.map(Arc::from);
    event
}

/// The transforms, who reads which output, and what came out of each output.
struct TransformGraph {
    transforms: Vec<TransformSpec>,
    buffers: Vec<Outputs>,
    index: HashMap<String, usize>,
    /// (producer id, output index) → the transforms reading it.
    consumers: HashMap<(String, usize), Vec<usize>>,
    /// (transform, output index) → every event that came out of it.
    came_out: HashMap<(usize, usize), Vec<Event>>,
    queue: VecDeque<(usize, Event)>,
}

impl TransformGraph {
    fn new(pipeline: Pipeline) -> Self {
        let Pipeline {
            transforms, graph, ..
        } = pipeline;
        let mut consumers: HashMap<(String, usize), Vec<usize>> = HashMap::new();
        for (i, t) in transforms.iter().enumerate() {
            for input in &t.inputs {
                let key = (input.component.clone(), graph.output_index(input));
                let readers = consumers.entry(key).or_default();
                // Reading one output twice does not make the router send it twice.
                if !readers.contains(&i) {
                    readers.push(i);
                }
            }
        }
        let index = transforms
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.clone(), i))
            .collect();
        let buffers = transforms
            .iter()
            .map(|t| Outputs::new(t.transform.outputs.len()))
            .collect();
        Self {
            transforms,
            buffers,
            index,
            consumers,
            came_out: HashMap::new(),
            queue: VecDeque::new(),
        }
    }

    /// Hands `events` from output `output` of `producer` to the transforms reading it.
    fn deliver(&mut self, producer: &str, output: usize, events: Vec<Event>) {
        let Some(readers) = self.consumers.get(&(producer.to_string(), output)) else {
            return;
        };
        for event in events {
            for &reader in readers {
                self.queue.push_back((reader, event.clone()));
            }
        }
    }

    /// Runs queued events through their transforms until none is left. The graph has no
    /// cycle (loading checked it), so this ends.
    fn drain(&mut self) {
        while let Some((at, event)) = self.queue.pop_front() {
            self.transforms[at]
                .transform
                .function
                .transform(event, &mut self.buffers[at]);
            self.send_on(at);
        }
    }

    /// Records what transform `at` sent out and passes it on.
    fn send_on(&mut self, at: usize) {
        let sent: Vec<(usize, Vec<Event>)> = self.buffers[at].drain().collect();
        for (output, events) in sent {
            self.came_out
                .entry((at, output))
                .or_default()
                .extend(events.iter().cloned());
            let id = self.transforms[at].id.clone();
            self.deliver(&id, output, events);
        }
    }

    /// Finishes every transform, each after all those it reads from, so what an upstream
    /// transform still held goes through the downstream ones before they finish.
    fn finish_all(&mut self) {
        for at in self.upstream_first() {
            self.transforms[at]
                .transform
                .function
                .finish(&mut self.buffers[at]);
            self.send_on(at);
            self.drain();
        }
    }

    /// Transform indices, each after the transforms it reads from (Kahn's algorithm).
    fn upstream_first(&self) -> Vec<usize> {
        let n = self.transforms.len();
        let mut waiting_on: Vec<usize> = vec![0; n];
        let mut readers: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, t) in self.transforms.iter().enumerate() {
            for input in &t.inputs {
                if let Some(&producer) = self.index.get(&input.component) {
                    waiting_on[i] += 1;
                    readers[producer].push(i);
                }
            }
        }
        let mut ready: VecDeque<usize> = (0..n).filter(|&i| waiting_on[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop_front() {
            order.push(i);
            for &reader in &readers[i] {
                waiting_on[reader] -= 1;
                if waiting_on[reader] == 0 {
                    ready.push_back(reader);
                }
            }
        }
        order
    }

    /// Every output that sent events, as `ID` or `ID.NAME`, with its count.
    fn outputs_with_events(&self) -> Vec<(String, usize)> {
        let mut seen: Vec<_> = self
            .came_out
            .iter()
            .map(|(&(at, output), events)| {
                let t = &self.transforms[at];
                let name = match output.checked_sub(1) {
                    None => t.id.clone(),
                    Some(named) => format!("{}.{}", t.id, t.transform.outputs[named]),
                };
                ((at, output), name, events.len())
            })
            .collect();
        seen.sort_unstable_by_key(|(key, _, _)| *key);
        seen.into_iter().map(|(_, name, n)| (name, n)).collect()
    }

    /// The events that came out of `output` (a transform's output; the spec checked it).
    fn events_of(&self, output: &OutputRef) -> &[Event] {
        let Some(&at) = self.index.get(&output.component) else {
            return &[];
        };
        let index = match &output.output {
            None => 0,
            Some(name) => self.transforms[at]
                .transform
                .outputs
                .iter()
                .position(|n| n == name)
                .map_or(0, |i| i + 1),
        };
        self.came_out
            .get(&(at, index))
            .map_or(&[][..], Vec::as_slice)
    }
}

fn check(test: &UnitTest, graph: &TransformGraph) -> Outcome {
    let mut failures = Vec::new();
    for expected in &test.outputs {
        let output = expected.extract_from.to_string();
        let events = graph.events_of(&expected.extract_from);
        if events.is_empty() {
            failures.push(Failure::NoEvents { output });
            continue;
        }
        let all_hold = |event: &Event| expected.conditions.iter().all(|c| c.check(event));
        if events.iter().any(all_hold) {
            continue;
        }
        let held = expected
            .conditions
            .iter()
            .map(|c| {
                let count = events.iter().filter(|e| c.check(e)).count();
                (c.source().to_string(), count)
            })
            .collect();
        failures.push(Failure::Conditions {
            output,
            held,
            events: events.to_vec(),
        });
    }
    for output in &test.no_outputs_from {
        let events = graph.events_of(output);
        if !events.is_empty() {
            failures.push(Failure::UnexpectedEvents {
                output: output.to_string(),
                events: events.to_vec(),
            });
        }
    }
    let came_out = if failures.is_empty() {
        Vec::new()
    } else {
        graph.outputs_with_events()
    };
    Outcome {
        failures,
        came_out,
        notes: Vec::new(),
    }
}
