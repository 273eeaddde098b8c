//! What the chain benches share: the parse → enrich → route pipeline of a typical config,
//! built into function transforms and driven the way the topology drives them (one owned
//! event at a time into `Outputs`).

use bytes::Bytes;
use sluice::event::{Event, EventMeta};
use sluice::pipeline::Pipeline;
use sluice::transforms::{FunctionTransform, Outputs};

/// A stdin source, parse(auto) → enrich → route with three routes, and a blackhole;
/// `checkout_app` is the app the third route picks.
pub(crate) fn chain_toml(checkout_app: &str) -> String {
    format!(
        r#"
[sources.in]
type = "stdin"

[transforms.parse]
type = "parse"
inputs = ["in"]
format = "auto"

[transforms.enrich]
type = "enrich"
inputs = ["parse"]
set = {{ environment = "prod", service = "{{{{ app }}}}-svc" }}
add_host = true

[transforms.route]
type = "route"
inputs = ["enrich"]
routes = {{ errors = 'level >= "error"', slow = 'duration_ms > 500', checkout = 'app == "{checkout_app}" and not message contains "healthz"' }}

[sinks.out]
type = "blackhole"
inputs = ["route.errors", "route.slow", "route.checkout", "route._unmatched"]
"#
    )
}

/// The pipeline's transforms, in config order (each reads the one before).
pub(crate) struct Chain {
    stages: Vec<(Box<dyn FunctionTransform>, Outputs)>,
}

impl Chain {
    pub(crate) fn new(pipeline: Pipeline) -> Self {
        let stages = pipeline
            .transforms
            .into_iter()
            .map(|t| {
                let named = t.transform.outputs.len();
                (t.transform.function, Outputs::new(named))
            })
            .collect();
        Self { stages }
    }

    /// Runs `events` through every stage; the last stage's outputs (all routes) go to `out`.
    pub(crate) fn run(&mut self, mut events: Vec<Event>, out: &mut Vec<Event>) {
        let last = self.stages.len().saturating_sub(1);
        for (i, (function, outputs)) in self.stages.iter_mut().enumerate() {
            for event in events.drain(..) {
                function.transform(event, outputs);
            }
            for (_, routed) in outputs.drain() {
                if i == last {
                    out.extend(routed);
                } else {
                    events.extend(routed);
                }
            }
        }
    }
}

/// Events of `lines` as a source makes them, received at `received_at`.
pub(crate) fn events(lines: &[Bytes], received_at: i64) -> Vec<Event> {
    lines
        .iter()
        .map(|line| {
            let mut event = Event::from_message(line.clone());
            event.meta = EventMeta {
                received_at,
                ..Default::default()
            };
            event
        })
        .collect()
}
