//! OTLP encoding and decoding: 1,000 events into one `ExportLogsServiceRequest`'s protobuf (the
//! `opentelemetry` sink's work per request) and the request's protobuf back into events
//! (the http source's), and the same by prost's messages, the reference.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice::event::{Event, Map, Value};
use sluice::sinks::opentelemetry::request;
use sluice::sources::otlp::{decode_protobuf, decode_protobuf_with_prost};

/// Events as the OTLP source makes them: three apps, a scope, attributes of several types.
fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let mut attributes = Map::new();
            attributes.insert("http.route", Value::from("/api/orders/{id}"));
            attributes.insert("http.status_code", Value::Integer(200 + (i % 3) as i64));
            attributes.insert("duration_ms", Value::Float(i as f64 * 0.5));
            attributes.insert("cached", Value::Bool(i % 2 == 0));
            let mut scope = Map::new();
            scope.insert("name", Value::from("io.shop.http"));
            scope.insert("version", Value::from("2.1.0"));
            let mut fields = Map::new();
            fields.insert("app", Value::from(["checkout", "billing", "search"][i % 3]));
            fields.insert("instance", Value::from("pod-7"));
            fields.insert("host", Value::from("node-1"));
            fields.insert("scope", Value::Object(scope));
            fields.insert(
                "message",
                Value::from(format!("request {i} served in 12 ms").as_str()),
            );
            fields.insert("level", Value::from("info"));
            fields.insert("severity_text", Value::from("INFO"));
            fields.insert("severity_number", Value::Integer(9));
            fields.insert(
                "timestamp",
                Value::Timestamp(1_795_000_000_000_000_000 + i as i64),
            );
            fields.insert("trace_id", Value::from("5b8efff798038103d269b633813fc60c"));
            fields.insert("span_id", Value::from("eee19b7ec3c1b174"));
            fields.insert("attributes", Value::Object(attributes));
            Event::new(fields)
        })
        .collect()
}

fn otlp(c: &mut Criterion) {
    let events = events(1000);
    let refs: Vec<&Event> = events.iter().collect();
    let mut group = c.benchmark_group("otlp");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("encode_1000_events_to_request", |b| {
        b.iter(|| request(&refs))
    });
    let body = Bytes::from(request(&refs));
    group.bench_function("decode_1000_record_request", |b| {
        b.iter(|| decode_protobuf(&body).expect("decodes").events)
    });
    // The reference: prost's messages first, then the same mapping.
    group.bench_function("decode_1000_record_request_with_prost", |b| {
        b.iter(|| decode_protobuf_with_prost(&body).expect("decodes").events)
    });
    group.finish();
}

criterion_group!(benches, otlp);
criterion_main!(benches);
