//! `request.concurrency` on the `opentelemetry` sink, against `sink_concurrency.rs`'s gate
//! speaking OTLP/HTTP: several export requests are inside the server at once (the sink
//! did not wait for one answer before sending the next), never more than asked, each record
//! exported once; and events are still acknowledged only once the server answered the
//! request holding them.

use std::io::{Read, Write};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;
use serde_json::{Map, Value};

use crate::sink_concurrency::{send_lines, Gate, Protocol};
use crate::util::{counter, read_lines, tempdir, wait_until, Router, TIMEOUT};

/// OTLP/HTTP: each record's body, a key-value list of the event's fields, as a document;
/// a success is an empty answer (no `partial_success`).
const OTLP: Protocol = Protocol {
    documents: otlp_documents,
    accepted: "",
};

fn otlp_documents(body: &[u8]) -> Vec<Value> {
    let request = ExportLogsServiceRequest::decode(body).expect("an OTLP export request");
    let records = request
        .resource_logs
        .into_iter()
        .flat_map(|r| r.scope_logs)
        .flat_map(|s| s.log_records);
    records
        .map(|record| {
            let Some(any_value::Value::KvlistValue(list)) = record.body.and_then(|b| b.value)
            else {
                panic!("a body of the event's fields");
            };
            let fields: Map<String, Value> = list
                .values
                .into_iter()
                .map(|kv| {
                    let value = match kv.value.and_then(|v| v.value) {
                        Some(any_value::Value::StringValue(s)) => Value::from(s),
                        Some(any_value::Value::IntValue(i)) => Value::from(i),
                        other => panic!("{}: {other:?}", kv.key),
                    };
                    (kv.key, value)
                })
                .collect();
            Value::Object(fields)
        })
        .collect()
}

fn pipeline(id: &str, source: &str, uri: &str, dead: &std::path::Path) -> String {
    pipeline_batches_of(10, id, source, uri, dead)
}

fn pipeline_batches_of(
    batch_max_events: usize,
    id: &str,
    source: &str,
    uri: &str,
    dead: &std::path::Path,
) -> String {
    format!(
        r#"
[sources.{id}_in]
type = "{source}"
address = "127.0.0.1:0"
decoding = "json"

[sinks.{id}]
type = "opentelemetry"
inputs = ["{id}_in"]
uri = "{uri}"
batch_max_events = {batch_max_events}
request = {{ concurrency = 4 }}
retry = {{ max_attempts = 1 }}

[sinks.{id}_dead]
type = "file"
inputs = ["{id}.dead_letter"]
path = "{}"
"#,
        dead.display()
    )
}

fn event(i: u64) -> String {
    format!(r#"{{"message":"event {i}","n":{i}}}"#)
}

/// With `concurrency = 4` and a server that answers only once four exports are inside it,
/// four are; never more, and every record is exported once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_otlp_exports_are_in_flight_at_once_and_no_more() {
    let (addr, gate) = Gate::start_with(4, "none is poisoned", OTLP).await;
    let dir = tempdir();
    let dead = dir.path().join("dead.log");
    let uri = format!("http://{addr}/v1/logs");
    let router = Router::start(&pipeline("otlp_conc", "tcp", &uri, &dead)).await;
    let n = 200u64;
    send_lines(router.addr("otlp_conc_in"), (0..n).map(event)).await;
    wait_until("every record exported", || {
        counter("component_sent_events_total", "otlp_conc", None) == n
    })
    .await;
    router.stop().await;
    assert_eq!(
        *gate.peak.lock().unwrap(),
        4,
        "export requests inside the server at once"
    );
    let stored = gate.stored.lock().unwrap();
    assert_eq!(stored.len(), n as usize);
    assert!(stored.values().all(|times| *times == 1), "exported twice");
    assert!(read_lines(&dead).is_empty());
}

/// POSTs NDJSON to the http source; its status (given only once every sink acknowledged).
fn post_ndjson(address: std::net::SocketAddr, body: &str) -> u16 {
    let mut stream = std::net::TcpStream::connect(address).expect("connects");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let head = format!(
        "POST /v1/logs HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("writes");
    stream.write_all(body.as_bytes()).expect("writes");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Four exports held inside the server: the http source's client has no answer and no
/// event counts as sent until the server answers them; then all are acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_in_flight_are_acknowledged_only_once_answered() {
    // Never opens by itself: the test opens it.
    let (addr, gate) = Gate::start_with(usize::MAX, "none is poisoned", OTLP).await;
    let dir = tempdir();
    let dead = dir.path().join("dead.log");
    let uri = format!("http://{addr}/v1/logs");
    let router = Router::start(&pipeline("otlp_conc_ack", "http", &uri, &dead)).await;
    let input = router.addr("otlp_conc_ack_in");
    let body: String = (0..40).map(|i| event(i) + "\n").collect();
    let post = tokio::task::spawn_blocking(move || post_ndjson(input, &body));
    let mut inside = gate.inside.subscribe();
    tokio::time::timeout(TIMEOUT, inside.wait_for(|n| *n == 4))
        .await
        .expect("four exports inside the server")
        .unwrap();
    assert!(!post.is_finished(), "answered before the exports were");
    assert_eq!(
        counter("component_sent_events_total", "otlp_conc_ack", None),
        0
    );
    gate.opened.send_replace(true);
    assert_eq!(post.await.unwrap(), 200);
    // The source answered after the acknowledgement, which came after the server's answers.
    assert_eq!(
        counter("component_sent_events_total", "otlp_conc_ack", None),
        40
    );
    assert_eq!(gate.stored.lock().unwrap().len(), 40);
    router.stop().await;
    assert!(read_lines(&dead).is_empty());
}

/// Requests in flight keep their events' room in the sink's queue until answered, so the
/// default queue must hold `concurrency` full requests. Four POSTs of 100 events of 4 KiB
/// make four full requests, all inside the server at once: 1.6 MiB, more than the 1 MiB a
/// sink's queue had whatever its concurrency, which let two out and held the third
/// waiting for room, so that larger events were sent about one request at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_queue_holds_every_export_in_flight() {
    let (addr, gate) = Gate::start_with(4, "none is poisoned", OTLP).await;
    let dir = tempdir();
    let dead = dir.path().join("dead.log");
    let uri = format!("http://{addr}/v1/logs");
    let id = "otlp_room";
    let router = Router::start(&pipeline_batches_of(100, id, "http", &uri, &dead)).await;
    let input = router.addr(&format!("{id}_in"));
    let padding = "x".repeat(4096);
    // One POST, one batch of 100: each export request is exactly one POST's events.
    let posts: Vec<_> = (0..4u64)
        .map(|post| {
            let body: String = (post * 100..(post + 1) * 100)
                .map(|i| format!(r#"{{"message":"event {i} {padding}","n":{i}}}"#) + "\n")
                .collect();
            tokio::task::spawn_blocking(move || post_ndjson(input, &body))
        })
        .collect();
    for post in posts {
        assert_eq!(post.await.unwrap(), 200);
    }
    router.stop().await;
    assert_eq!(
        *gate.peak_docs.lock().unwrap(),
        400,
        "records inside the server at once"
    );
    assert_eq!(gate.stored.lock().unwrap().len(), 400);
    assert!(read_lines(&dead).is_empty());
}
