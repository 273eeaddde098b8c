//! Cost of evaluating 100 alert-style conditions per event: one by one
//! ([`Condition::check_fields`]) against all together ([`ConditionSet::eval`]).
//!
//! The conditions are the shapes alert rules repeat with different thresholds: a severity
//! floor plus a status threshold, status and duration thresholds, and a `level !=` filter.
//! Throughput is per event, so criterion's time per element is the cost of all 100
//! conditions on one event.
//!
//! `cargo bench --bench conditions -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice::condition::{Condition, ConditionSet, SetResults};
use sluice::event::{Map, Value};

fn conditions() -> Vec<Condition> {
    (0..100)
        .map(|i| {
            let src = match i % 4 {
                0 => format!(r#"level >= "error" and status >= {}"#, 500 + i),
                1 => format!("status >= {}", 400 + i),
                2 => format!("duration_ms > {}", 500 + i),
                _ => format!(r#"level != "debug{i}""#),
            };
            Condition::compile(&src).expect("bench condition compiles")
        })
        .collect()
}

fn events() -> Vec<Map> {
    let variants = [
        ("info", "app-7", 437, 404),
        ("error", "app-3", 1203, 503),
        ("warn", "app-1", 12, 200),
        ("info", "app-9", 580, 429),
    ];
    variants
        .iter()
        .enumerate()
        .map(|(i, &(level, app, duration, status))| {
            let json = format!(
                r#"{{"ts":"2026-11-23T10:00:01.00{i}Z","level":"{level}","app":"{app}","msg":"request completed","duration_ms":{duration},"status":{status},"path":"/api/orders/{i}"}}"#
            );
            match serde_json::from_str::<Value>(&json) {
                Ok(Value::Object(map)) => map,
                other => panic!("bench event is not an object: {other:?}"),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let conditions = conditions();
    let events = events();
    let set = ConditionSet::new(&conditions);

    // The two must agree before their speed is worth comparing.
    let mut results = SetResults::default();
    for e in &events {
        set.eval(e, &mut results);
        let one_by_one: Vec<bool> = conditions.iter().map(|c| c.check_fields(e)).collect();
        assert_eq!(results.as_slice(), &one_by_one[..]);
    }

    let mut group = c.benchmark_group("100_conditions");
    group.throughput(Throughput::Elements(events.len() as u64));
    // Both produce the 100 results per event into reused storage.
    group.bench_function("one_by_one", |b| {
        let mut results = vec![false; conditions.len()];
        b.iter(|| {
            for e in &events {
                let e = std::hint::black_box(e);
                for (out, c) in results.iter_mut().zip(&conditions) {
                    *out = c.check_fields(e);
                }
                std::hint::black_box(&results);
            }
        })
    });
    group.bench_function("condition_set", |b| {
        let mut results = SetResults::default();
        b.iter(|| {
            for e in &events {
                set.eval(std::hint::black_box(e), &mut results);
                std::hint::black_box(results.as_slice());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
