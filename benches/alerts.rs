//! Cost of alert rules on the live stream: events/s through a parse → enrich → route chain
//! (benches/pipeline.rs) with 0, 10 and 100 rules watching its output, over 1,000 groups
//! (apps). The rules are a mix a team would write: per-app error thresholds, error ratios,
//! slow-request thresholds and absence checks, each grouped by `app`.
//!
//! Rules reading the same inputs run as one set in their own task in the router, in
//! parallel with the chain; this bench runs them on the same thread, so it measures their
//! whole CPU cost per event.
//!
//! `cargo bench --bench alerts -- --warm-up-time 1 --measurement-time 3`

mod common;

use bytes::Bytes;
use common::{chain_toml, events, Chain};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sluice::alert::RuleSet;
use sluice::event::Event;
use sluice::pipeline::Pipeline;

/// `n` rules of four shapes, each with its own condition so no work is shared.
fn rules_toml(n: usize) -> String {
    let mut toml = String::new();
    for i in 0..n {
        let rule = match i % 4 {
            0 => format!(
                "kind = \"threshold\"\ncondition = 'level >= \"error\" and status >= {}'\nthreshold = 100",
                500 + i
            ),
            1 => format!(
                "kind = \"ratio\"\ncondition = 'status >= {}'\nthreshold = 0.05\nmin_events = 20",
                400 + i
            ),
            2 => format!(
                "kind = \"threshold\"\ncondition = 'duration_ms > {}'\nthreshold = 50",
                500 + i
            ),
            _ => format!("kind = \"absence\"\ncondition = 'level != \"debug{i}\"'"),
        };
        toml.push_str(&format!(
            "\n[alerts.rule{i}]\ninputs = [\"route.errors\", \"route.slow\", \"route.checkout\", \"route._unmatched\"]\ngroup_by = [\"app\"]\nwindow_secs = 60\nstate_path = \"/nonexistent/rule{i}.json\"\n{rule}\n"
        ));
    }
    toml
}

/// Mixed lines (JSON, logfmt, access log) over 1,000 apps.
fn lines(n: usize) -> Vec<Bytes> {
    let levels = ["info", "info", "info", "debug", "warn", "error"];
    (0..n)
        .map(|i| {
            let level = levels[i % levels.len()];
            let app = format!("app-{}", (i * 7) % 1000);
            let line = match i % 3 {
                0 => format!(
                    r#"{{"ts":"2026-11-23T10:00:{:02}.{:03}Z","level":"{level}","app":"{app}","msg":"request completed","duration_ms":{},"status":{},"path":"/api/orders/{i}"}}"#,
                    i % 60, i % 1000, (i * 37) % 900, [200, 200, 404, 503][i % 4]
                ),
                1 => format!(
                    r#"time=2026-11-23T10:00:{:02}Z level={level} app={app} msg="cache miss" key=user:{i} duration_ms={} status={}"#,
                    i % 60, (i * 13) % 700, [200, 500][i % 2]
                ),
                _ => format!(
                    r#"{{"level":"{level}","app":"{app}","msg":"GET /api/search?q={i}","status":{},"duration_ms":{}}}"#,
                    [200, 200, 404, 503][i % 4], (i * 7) % 1000
                ),
            };
            Bytes::from(line)
        })
        .collect()
}

fn rules(c: &mut Criterion) {
    let input = lines(10_000);
    let mut group = c.benchmark_group("alerts");
    group.throughput(Throughput::Elements(input.len() as u64));
    for n in [0usize, 10, 100] {
        let text = format!("{}{}", chain_toml("app-1"), rules_toml(n));
        let pipeline = Pipeline::from_str("bench.toml", &text, |_| None).expect("valid pipeline");
        // The rules read the same inputs, so the router runs them as one set.
        let mut rules = RuleSet::new(pipeline.alerts.iter().map(|a| a.rule.clone()).collect());
        let mut chain = Chain::new(pipeline);
        let now = std::cell::Cell::new(1_795_000_000_000_000_000i64);
        let next_tick = std::cell::Cell::new(now.get());
        group.bench_function(format!("{n}_rules_1000_groups"), |b| {
            b.iter_batched(
                || events(&input, now.get()),
                |batch| {
                    let mut out = Vec::with_capacity(batch.len());
                    chain.run(batch, &mut out);
                    // Events 1 µs apart (the router's rate: a throughput bench models a
                    // busy stream) and a tick every simulated second, as the router's timer
                    // does; the windows move as they would.
                    for event in &out {
                        now.set(now.get() + 1_000);
                        if !rules.is_empty() {
                            rules.observe(event, now.get());
                        }
                    }
                    if now.get() >= next_tick.get() {
                        rules.tick(now.get());
                        next_tick.set(now.get() + 1_000_000_000);
                    }
                    out.len()
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

/// The rules alone: `RuleSet::observe` over events already parsed and enriched (what the
/// rule task does per event in the router), with a tick per simulated second.
fn rules_alone(c: &mut Criterion) {
    let mut group = c.benchmark_group("alerts_observe");
    for n in [10usize, 100] {
        let text = format!("{}{}", chain_toml("app-1"), rules_toml(n));
        let pipeline = Pipeline::from_str("bench.toml", &text, |_| None).expect("valid pipeline");
        let mut events = Vec::new();
        let batch: Vec<Event> = lines(10_000).into_iter().map(Event::from_message).collect();
        let mut rules = RuleSet::new(pipeline.alerts.iter().map(|a| a.rule.clone()).collect());
        Chain::new(pipeline).run(batch, &mut events);
        group.throughput(Throughput::Elements(events.len() as u64));
        let mut now = 1_795_000_000_000_000_000i64;
        let mut next_tick = now;
        group.bench_function(format!("{n}_rules_1000_groups"), |b| {
            b.iter(|| {
                for event in &events {
                    now += 1_000;
                    rules.observe(event, now);
                }
                if now >= next_tick {
                    rules.tick(now);
                    next_tick = now + 1_000_000_000;
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, rules, rules_alone);
criterion_main!(benches);
