//! Cost per event of a parse → enrich → route chain, the transforms of a typical pipeline,
//! and of `dedupe`, `redact`, `log_to_metric` and `remap`, driven the way the topology drives them (one owned event at a time into `Outputs`).
//!
//! `cargo bench --bench pipeline -- --warm-up-time 1 --measurement-time 3`

mod common;

/// The allocator the router ships with (src/main.rs), so that per-event figures are those
/// of the binary: glibc's malloc returns pages to the kernel after every batch here and
/// faults them back in, a cost the router does not pay.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use bytes::Bytes;
use common::{chain_toml, events, Chain};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sluice::pipeline::Pipeline;

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
    let pipeline = Pipeline::from_str("bench.toml", &chain_toml("checkout"), |_| None)
        .expect("valid pipeline");
    let mut chain = Chain::new(pipeline);
    let input = lines(1000);
    let mut group = c.benchmark_group("chain");
    group.throughput(Throughput::Elements(input.len() as u64));
    let mut routed = Vec::with_capacity(input.len());
    group.bench_function("parse_enrich_route", |b| {
        b.iter_batched(
            || events(&input, 1_795_000_000_000_000_000),
            |batch| {
                routed.clear();
                chain.run(batch, &mut routed);
                routed.len()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// `dedupe` with its defaults (every field but the timestamp) on the same lines, each one
/// new (a round number appended): the worst case, a digest, a cache insert and an eviction
/// per event.
fn dedupe(c: &mut Criterion) {
    use sluice::transforms::{dedupe::DedupeConfig, FunctionTransform, Outputs, TransformContext};
    let config: DedupeConfig = toml::from_str("").expect("defaults");
    let mut dedupe = config
        .build(&TransformContext {
            id: "bench_dedupe".into(),
        })
        .expect("valid");
    let input = lines(1000);
    let mut group = c.benchmark_group("transforms");
    group.throughput(Throughput::Elements(input.len() as u64));
    let mut round = 0u64;
    group.bench_function("dedupe", |b| {
        b.iter_batched(
            || {
                round += 1;
                let fresh: Vec<Bytes> = input
                    .iter()
                    .map(|l| Bytes::from(format!("{} {round}", String::from_utf8_lossy(l))))
                    .collect();
                events(&fresh, 1_795_000_000_000_000_000)
            },
            |batch| {
                let mut out = Outputs::new(0);
                out.reserve_default(batch.len());
                for event in batch {
                    dedupe.transform(event, &mut out);
                }
                // Sent on to the sinks, which drop them: criterion drops them untimed.
                out
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// `redact` with every built-in detector on the same lines (about 200 bytes, a few with an
/// IP address to mask).
fn redact(c: &mut Criterion) {
    use sluice::transforms::{redact::RedactConfig, FunctionTransform, Outputs, TransformContext};
    let config: RedactConfig = toml::from_str("").expect("defaults");
    let mut redact = config
        .build(&TransformContext {
            id: "bench_redact".into(),
        })
        .expect("valid");
    let input = lines(1000);
    let mut group = c.benchmark_group("transforms");
    group.throughput(Throughput::Elements(input.len() as u64));
    group.bench_function("redact", |b| {
        b.iter_batched(
            || events(&input, 1_795_000_000_000_000_000),
            |batch| {
                let mut out = Outputs::new(0);
                out.reserve_default(batch.len());
                for event in batch {
                    redact.transform(event, &mut out);
                }
                // Sent on to the sinks, which drop them: criterion drops them untimed.
                out
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// `log_to_metric` with a request counter tagged by app and status and a latency histogram
/// tagged by app (target: 200 ns per event), on events as the chain's parser leaves them.
fn log_to_metric(c: &mut Criterion) {
    use sluice::transforms::{
        log_to_metric::LogToMetricConfig, FunctionTransform, Outputs, TransformContext,
    };
    let config: LogToMetricConfig = toml::from_str(
        r#"metrics = [
            { type = "counter", name = "bench_requests_total", tags = { app = "{{ app }}", status = "{{ status }}" } },
            { type = "histogram", field = "duration_ms", name = "bench_request_duration", buckets = [5, 10, 25, 50, 100, 250, 500, 1000], tags = { app = "{{ app }}" } },
        ]"#,
    )
    .expect("valid");
    let mut transform = config
        .build(&TransformContext {
            id: "bench_log_to_metric".into(),
        })
        .expect("valid");
    let input: Vec<sluice::event::Event> = (0..1000)
        .map(|i| {
            let json = format!(
                r#"{{"app":"{}","status":{},"duration_ms":{},"message":"request completed"}}"#,
                ["checkout", "orders", "users", "gateway"][i % 4],
                [200, 200, 404, 503][i % 4],
                (i * 37) % 900
            );
            match serde_json::from_str(&json).expect("json") {
                sluice::event::Value::Object(map) => sluice::event::Event::new(map),
                _ => unreachable!("an object"),
            }
        })
        .collect();
    let mut group = c.benchmark_group("transforms");
    group.throughput(Throughput::Elements(input.len() as u64));
    group.bench_function("log_to_metric", |b| {
        b.iter_batched(
            || input.clone(),
            |batch| {
                let mut out = Outputs::new(0);
                out.reserve_default(batch.len());
                for event in batch {
                    transform.transform(event, &mut out);
                }
                // Sent on to the sinks, which drop them: criterion drops them untimed.
                out
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// `remap` running a 10-statement program of the kind that replaces `enrich` (set,
/// compute, convert, branch, delete) over events already parsed into fields.
fn remap(c: &mut Criterion) {
    use sluice::event::{Event, Map, Value};
    use sluice::transforms::{remap::RemapConfig, FunctionTransform, Outputs, TransformContext};
    const PROGRAM: &str = r#"
.service = downcase(.app) + "-" + .env
.duration_s = (to_float(.duration_ms) ?? 0.0) / 1000
.slow = .duration_ms > 500
.status_class = (to_int(.status) ?? 0) / 100 >= 5
if .level == "debug" { .sampled = true } else { .sampled = false }
.http.method = "GET"
.http.path = .path
del(.trace_id)
.region = "eu-west-1"
.host_id = upcase(.host)
"#;
    let config: RemapConfig = toml::from_str(&format!("source = '''{PROGRAM}'''")).expect("config");
    let mut remap = config
        .build(&TransformContext {
            id: "bench_remap".into(),
        })
        .expect("valid");
    let levels = ["info", "info", "debug", "warn", "error"];
    let apps = ["Checkout", "orders", "Users", "gateway"];
    let input: Vec<Map> = (0..1000)
        .map(|i| {
            let mut map = Map::with_capacity(16);
            map.insert("timestamp", Value::Timestamp(1_795_000_000_000_000_000 + i));
            map.insert("level", Value::from(levels[i as usize % levels.len()]));
            map.insert("app", Value::from(apps[i as usize % apps.len()]));
            map.insert("env", Value::from("prod"));
            map.insert("host", Value::from("node-7"));
            map.insert("message", Value::from("request completed"));
            map.insert("duration_ms", Value::Integer((i * 37) % 900));
            map.insert("status", Value::from(["200", "404", "503"][i as usize % 3]));
            map.insert("path", Value::from(format!("/api/orders/{i}")));
            map.insert("trace_id", Value::from(format!("{:016x}", i * 7919)));
            map
        })
        .collect();
    let mut group = c.benchmark_group("transforms");
    group.throughput(Throughput::Elements(input.len() as u64));
    group.bench_function("remap_10_statements", |b| {
        b.iter_batched(
            || input.iter().cloned().map(Event::new).collect::<Vec<_>>(),
            |batch| {
                let mut out = Outputs::new(RemapConfig::outputs().len());
                out.reserve_default(batch.len());
                for event in batch {
                    remap.transform(event, &mut out);
                }
                // Sent on to the sinks, which drop them: criterion drops them untimed.
                out
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, chain, dedupe, redact, log_to_metric, remap);
criterion_main!(benches);
