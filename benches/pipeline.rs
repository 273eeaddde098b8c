//! Cost per event of a parse → enrich → route chain, the transforms of a typical pipeline,
//! driven the way the topology drives them (one owned event at a time into `Outputs`).
//!
//! `cargo bench --bench pipeline -- --warm-up-time 1 --measurement-time 3`

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sluice::config::Pipeline;
use sluice::event::{Event, EventMeta};
use sluice::transforms::{FunctionTransform, Outputs, TransformContext};

const PIPELINE: &str = r#"
[sources.in]
type = "stdin"

[transforms.parse]
type = "parse"
inputs = ["in"]
format = "auto"

[transforms.enrich]
type = "enrich"
inputs = ["parse"]
set = { environment = "prod", service = "{{ app }}-svc" }
add_host = true

[transforms.route]
type = "route"
inputs = ["enrich"]
routes = { errors = 'level >= "error"', slow = 'duration_ms > 500', checkout = 'app == "checkout" and not message contains "healthz"' }

[sinks.out]
type = "blackhole"
inputs = ["route.errors", "route.slow", "route.checkout", "route._unmatched"]
"#;

/// Deterministic mixed lines: JSON, logfmt, access log and plain text, as gen_logs.py writes.
fn lines(n: usize) -> Vec<Bytes> {
    let levels = ["info", "info", "info", "debug", "warn", "error"];
    let apps = ["checkout", "orders", "users", "gateway"];
    (0..n)
        .map(|i| {
            let level = levels[i % levels.len()];
            let app = apps[i % apps.len()];
            let line = match i % 4 {
                0 | 1 => format!(
                    r#"{{"ts":"2026-11-23T10:00:{:02}.{:03}Z","level":"{level}","app":"{app}","msg":"request completed","duration_ms":{},"status":200,"path":"/api/orders/{i}","trace_id":"{:016x}"}}"#,
                    i % 60, i % 1000, (i * 37) % 900, i * 7919
                ),
                2 => format!(
                    r#"time=2026-11-23T10:00:{:02}Z level={level} app={app} msg="cache miss" key=user:{i} duration_ms={}"#,
                    i % 60, (i * 13) % 700
                ),
                _ => format!(
                    r#"10.1.{}.{} - - [23/Nov/2026:10:00:{:02} +0000] "GET /api/search?q={i} HTTP/1.1" {} 5123 "-" "curl/8.5.0""#,
                    i % 255, (i * 7) % 255, i % 60, [200, 200, 404, 503][i % 4]
                ),
            };
            Bytes::from(line)
        })
        .collect()
}

fn chain(c: &mut Criterion) {
    let pipeline = Pipeline::from_str("bench.toml", PIPELINE, |_| None).expect("valid pipeline");
    let mut stages: Vec<(Box<dyn FunctionTransform>, Outputs)> = pipeline
        .transforms
        .iter()
        .map(|t| {
            let ctx = TransformContext { id: t.id.clone() };
            (
                t.config.build(&ctx).expect("builds"),
                Outputs::new(t.config.outputs().len()),
            )
        })
        .collect();
    let input = lines(1000);
    let mut group = c.benchmark_group("chain");
    group.throughput(Throughput::Elements(input.len() as u64));
    group.bench_function("parse_enrich_route", |b| {
        b.iter_batched(
            || {
                input
                    .iter()
                    .map(|l| {
                        let mut e = Event::from_message(l.clone());
                        e.meta = EventMeta {
                            received_at: 1_795_000_000_000_000_000,
                            ..Default::default()
                        };
                        e
                    })
                    .collect::<Vec<_>>()
            },
            |events| {
                let mut batch = events;
                let mut routed = 0usize;
                for (i, (function, outputs)) in stages.iter_mut().enumerate() {
                    for event in batch.drain(..) {
                        function.transform(event, outputs);
                    }
                    let last = i == 2;
                    for (_, events) in outputs.drain() {
                        if last {
                            routed += events.len();
                        } else {
                            batch.extend(events);
                        }
                    }
                }
                routed
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, chain);
criterion_main!(benches);
