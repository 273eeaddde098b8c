//! The `opentelemetry` sink, between two router processes: router A reads OTLP on its http
//! source and forwards it with its OTLP sink to router B's http source, over OTLP/HTTP and
//! over OTLP/gRPC (B's `grpc_address`). What B writes must equal, field for field, what A
//! wrote itself; and records B's pipeline rejects come back to A as OTLP's
//! `partial_success`. Retries and dead-letter against a scripted server (HTTP) and against
//! B's own refusals (gRPC: a rate limit's RESOURCE_EXHAUSTED with its RetryInfo, a missing
//! token's UNAUTHENTICATED).

use std::io::{Read, Write};
use std::path::Path;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::Value;

use crate::util::{
    free_port, read_lines, sluice_up, spawn_router, tempdir, wait_until, RouterProcess, TIMEOUT,
};

fn any(value: any_value::Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(value) })
}

fn text(s: &str) -> Option<AnyValue> {
    any(any_value::Value::StringValue(s.into()))
}

fn kv(key: &str, value: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value,
        ..Default::default()
    }
}

/// Attributes of every OTLP value type: string, int, double, bool, bytes, array, map, and
/// an empty value; arrays and maps nest the others.
fn every_type(i: usize) -> Vec<KeyValue> {
    let scalars = vec![
        kv("string", text(&format!("value {i}"))),
        kv(
            "int",
            any(any_value::Value::IntValue(-(i as i64) * 1_000_000_007)),
        ),
        kv(
            "double",
            any(any_value::Value::DoubleValue(i as f64 + 0.25)),
        ),
        kv("bool", any(any_value::Value::BoolValue(i % 2 == 0))),
        kv(
            "bytes",
            any(any_value::Value::BytesValue(vec![0, i as u8, 255])),
        ),
        kv("empty", None),
    ];
    let mut all = scalars.clone();
    all.push(kv(
        "array",
        any(any_value::Value::ArrayValue(ArrayValue {
            values: scalars.iter().filter_map(|kv| kv.value.clone()).collect(),
        })),
    ));
    all.push(kv(
        "map",
        any(any_value::Value::KvlistValue(KeyValueList {
            values: scalars,
        })),
    ));
    all
}

/// Three apps (one on Kubernetes), two scopes each, records with every body kind,
/// severity, time and id; `reject` marks the records router B is set up to refuse.
fn corpus(records_per_scope: usize, reject: impl Fn(usize) -> bool) -> ExportLogsServiceRequest {
    let mut resource_logs = Vec::new();
    let mut n = 0;
    for app in ["checkout", "billing", "search"] {
        let mut attributes = vec![
            kv("service.name", text(app)),
            kv("service.instance.id", text(&format!("{app}-1"))),
            kv("host.name", text("node-1")),
            kv("deployment.environment", text("prod")),
        ];
        if app == "search" {
            attributes.extend([
                kv("k8s.pod.name", text("search-7d9")),
                kv("k8s.namespace.name", text("shop")),
                kv("k8s.deployment.name", text("search")),
            ]);
        }
        let mut scope_logs = Vec::new();
        for scope in ["io.shop.http", "io.shop.db"] {
            let mut log_records = Vec::new();
            for _ in 0..records_per_scope {
                let i = n;
                n += 1;
                let body = match i % 4 {
                    0 => text(&format!("request {i} served")),
                    1 => any(any_value::Value::KvlistValue(KeyValueList {
                        values: vec![
                            kv("message", text(&format!("structured {i}"))),
                            kv("user", text("ada")),
                            kv("tries", any(any_value::Value::IntValue(3))),
                        ],
                    })),
                    2 => any(any_value::Value::DoubleValue(1.5)),
                    _ => None,
                };
                let mut attributes = every_type(i);
                attributes.push(kv("reject", any(any_value::Value::BoolValue(reject(i)))));
                log_records.push(LogRecord {
                    time_unix_nano: if i % 5 == 4 {
                        0
                    } else {
                        1_795_000_000_000_000_000 + i as u64
                    },
                    observed_time_unix_nano: 1_795_000_000_500_000_000 + i as u64,
                    severity_number: [0, 5, 9, 13, 17, 21][i % 6],
                    severity_text: ["", "DEBUG", "", "WARNING", "Error", "FATAL"][i % 6].into(),
                    body,
                    attributes,
                    dropped_attributes_count: (i % 3) as u32,
                    flags: 1,
                    trace_id: (0..16).map(|b| (b * 17 + i) as u8).collect(),
                    span_id: (0..8).map(|b| (b * 31 + i) as u8).collect(),
                    event_name: if i % 2 == 0 {
                        "shop.request".into()
                    } else {
                        String::new()
                    },
                });
            }
            scope_logs.push(ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: scope.into(),
                    version: "2.1.0".into(),
                    attributes: vec![kv("scope.kind", text("library"))],
                    dropped_attributes_count: 0,
                }),
                log_records,
                ..Default::default()
            });
        }
        resource_logs.push(ResourceLogs {
            resource: Some(Resource {
                attributes,
                dropped_attributes_count: 1,
                ..Default::default()
            }),
            scope_logs,
            ..Default::default()
        });
    }
    ExportLogsServiceRequest { resource_logs }
}

/// POSTs an OTLP protobuf body; the status and the answer's body.
fn post_otlp(address: &str, body: &[u8]) -> (u16, Vec<u8>) {
    post_typed(address, "application/x-protobuf", body)
}

fn post_typed(address: &str, content_type: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = std::net::TcpStream::connect(address).expect("connects");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let head = format!(
        "POST /v1/logs HTTP/1.0\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("writes");
    stream.write_all(body).expect("writes");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response[split + 4..].to_vec())
}

fn start(dir: &Path, name: &str, toml: &str) -> RouterProcess {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, toml).expect("config written");
    spawn_router(sluice_up(&config))
}

fn events(path: &Path) -> Vec<Value> {
    read_lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).expect("json lines"))
        .collect()
}

/// Router B: OTLP in (HTTP, and gRPC on the address returned), records marked `reject` to
/// a sink that can never deliver (a closed port, one attempt), the rest to a file.
fn router_b(dir: &Path) -> (RouterProcess, String) {
    let grpc = format!("127.0.0.1:{}", free_port());
    let unreachable = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = unreachable.local_addr().unwrap();
    drop(unreachable);
    let router = start(
        dir,
        "b",
        &format!(
            r#"
[sources.b_in]
type = "http"
address = "127.0.0.1:0"
grpc_address = "{grpc}"

[transforms.b_route]
type = "route"
inputs = ["b_in"]
routes = {{ rejected = 'attributes.reject == true' }}

[sinks.b_out]
type = "file"
inputs = ["b_route._unmatched"]
path = "{}"

[sinks.b_nowhere]
type = "http"
inputs = ["b_route.rejected"]
uri = "http://{closed}/v1/logs"
retry = {{ max_attempts = 1 }}
"#,
            dir.join("b.log").display()
        ),
    );
    (router, grpc)
}

/// Router A: OTLP in, written to a file and forwarded by the OTLP sink to `uri`; what the
/// sink gives up on goes to its own file.
fn router_a(dir: &Path, uri: &str, extra: &str) -> RouterProcess {
    start(
        dir,
        "a",
        &format!(
            r#"
[api]
address = "127.0.0.1:0"

[sources.a_in]
type = "http"
address = "127.0.0.1:0"

[sinks.a_out]
type = "file"
inputs = ["a_in"]
path = "{}"

[sinks.a_otlp]
type = "opentelemetry"
inputs = ["a_in"]
uri = "{uri}"
compression = "gzip"
batch_max_events = 25
{extra}

[sinks.a_dead]
type = "file"
inputs = ["a_otlp.dead_letter"]
path = "{}"
"#,
            dir.join("a.log").display(),
            dir.join("a_dead.log").display(),
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_trip_through_the_otlp_sink_keeps_every_field() {
    round_trip(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_trip_over_grpc_keeps_every_field() {
    round_trip(true).await;
}

async fn round_trip(grpc: bool) {
    let dir = tempdir();
    let (b, b_grpc) = router_b(dir.path());
    let b_addr = b.address_of("b_in").expect("b listens");
    let a = if grpc {
        router_a(
            dir.path(),
            &format!("http://{b_grpc}"),
            "protocol = \"grpc\"",
        )
    } else {
        router_a(dir.path(), &format!("http://{b_addr}/v1/logs"), "")
    };
    let a_addr = a.address_of("a_in").expect("a listens");
    let body = corpus(10, |_| false).encode_to_vec();
    let (status, answer) = tokio::task::spawn_blocking(move || post_otlp(&a_addr, &body))
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    // A answers after every sink acknowledged, its OTLP sink only once B answered, and B
    // only once its file sink wrote: both files are complete now.
    let (a_events, b_events) = (
        events(&dir.path().join("a.log")),
        events(&dir.path().join("b.log")),
    );
    assert_eq!(a_events.len(), 60);
    assert_eq!(b_events.len(), 60, "every record reached router B");
    // The sink groups by resource and scope, so B may see another order: match by trace id.
    let key = |e: &Value| e["trace_id"].as_str().expect("a trace id").to_string();
    let mut b_by_trace: std::collections::HashMap<String, &Value> =
        b_events.iter().map(|e| (key(e), e)).collect();
    for event in &a_events {
        let twin = b_by_trace
            .remove(&key(event))
            .expect("B has the same record");
        assert_eq!(twin, event, "field-for-field equality");
    }
    // Not vacuous: the corpus's every attribute type is in what was compared.
    let first = &a_events[0];
    assert_eq!(first["attributes"]["int"], 0);
    assert_eq!(first["attributes"]["double"], 0.25);
    assert_eq!(first["attributes"]["bool"], true);
    assert_eq!(first["attributes"]["bytes"], "AAD/");
    assert_eq!(first["attributes"]["empty"], Value::Null);
    assert_eq!(first["attributes"]["array"][4], "AAD/");
    assert_eq!(first["attributes"]["map"]["string"], "value 0");
    assert_eq!(first["app"], "checkout");
    assert_eq!(first["scope"]["name"], "io.shop.http");
    let search = a_events.iter().find(|e| e["app"] == "search").unwrap();
    assert_eq!(search["kubernetes"]["deployment_name"], "search");
    assert!(
        a_events.iter().any(|e| e["user"] == "ada"),
        "a structured body"
    );
    assert!(a_events.iter().any(|e| e["level"] == "critical"));
}

fn metric(api: &str, name: &str, labels: &str) -> u64 {
    let (_, text) = crate::store::http(api.parse().unwrap(), "GET", "/metrics", b"");
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(labels))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_rejected_downstream_come_back_as_a_partial_success() {
    let dir = tempdir();
    let (b, _) = router_b(dir.path());
    let b_addr = b.address_of("b_in").expect("b listens");

    // B itself answers a partial success counting the records it rejected.
    let body = corpus(2, |i| i % 3 == 0).encode_to_vec();
    let b_post = b_addr.clone();
    let (status, answer) = tokio::task::spawn_blocking(move || post_otlp(&b_post, &body))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let response = ExportLogsServiceResponse::decode(answer.as_slice()).expect("an OTLP answer");
    let partial = response.partial_success.expect("a partial success");
    assert_eq!(partial.rejected_log_records, 4, "{}", partial.error_message);
    assert!(
        partial.error_message.contains("4 of 12"),
        "{}",
        partial.error_message
    );
    // The same in OTLP's JSON mapping, which writes 64-bit counts as strings.
    let json = serde_json::to_vec(&corpus(2, |i| i % 3 == 0)).unwrap();
    let b_post = b_addr.clone();
    let (status, answer) =
        tokio::task::spawn_blocking(move || post_typed(&b_post, "application/json", &json))
            .await
            .unwrap();
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_slice(&answer).expect("a JSON answer");
    assert_eq!(
        answer["partialSuccess"]["rejectedLogRecords"], "4",
        "{answer}"
    );
    wait_until("B wrote the accepted records", || {
        read_lines(&dir.path().join("b.log")).len() == 16
    })
    .await;

    // A's OTLP sink reads it: a partial rejection is counted, a whole one dead-lettered.
    let a = router_a(dir.path(), &format!("http://{b_addr}/v1/logs"), "");
    let a_addr = a.address_of("a_in").expect("a listens");
    let api = a.address_of("api").expect("the api listens");
    let body = corpus(2, |i| i % 3 == 0).encode_to_vec();
    let post = a_addr.clone();
    let (status, _) = tokio::task::spawn_blocking(move || post_otlp(&post, &body))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let labels = "component_id=\"a_otlp\",reason=\"partial_success\"";
    let api_for_metric = api.clone();
    let discarded = tokio::task::spawn_blocking(move || {
        metric(
            &api_for_metric,
            "sluice_component_discarded_events_total",
            labels,
        )
    })
    .await
    .unwrap();
    assert_eq!(discarded, 4, "A counted the records B rejected");
    assert!(read_lines(&dir.path().join("a_dead.log")).is_empty());

    let body = corpus(1, |_| true).encode_to_vec();
    let (status, _) = tokio::task::spawn_blocking(move || post_otlp(&a_addr, &body))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let dead = events(&dir.path().join("a_dead.log"));
    assert_eq!(dead.len(), 6, "every record of a request B rejected whole");
    let reason = dead[0]["dead_letter"]["reason"].as_str().unwrap();
    assert!(reason.contains("the server rejected"), "{reason}");
}

/// Against a scripted server: a 429 is retried no sooner than its `Retry-After`, a 400 sends
/// the events to dead-letter with the status in the reason, and requests are OTLP protobuf.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_retries_honouring_retry_after_and_dead_letters_a_refusal() {
    use tokio::io::AsyncWriteExt;

    use crate::recorder::{Recorder, ANY_PATH};
    use crate::util::{counter, Router};

    let (addr, recorder) =
        Recorder::start(&[(ANY_PATH, 429, "slow down"), (ANY_PATH, 400, "bad export")]).await;
    let dir = tempdir();
    let dead = dir.path().join("dead.log");
    let router = Router::start(&format!(
        r#"
[sources.otlp_retry_in]
type = "tcp"
address = "127.0.0.1:0"

[sinks.otlp_retry_out]
type = "opentelemetry"
inputs = ["otlp_retry_in"]
uri = "http://{addr}/v1/logs"
retry = {{ initial_backoff_ms = 1, max_backoff_secs = 1 }}

[sinks.otlp_retry_dead]
type = "file"
inputs = ["otlp_retry_out.dead_letter"]
path = "{}"
"#,
        dead.display()
    ))
    .await;
    let input = router.addr("otlp_retry_in");
    let send = |line: &'static str| async move {
        let mut stream = tokio::net::TcpStream::connect(input).await.unwrap();
        stream.write_all(line.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
    };
    let started = std::time::Instant::now();
    send("refused\n").await;
    wait_until("the refused event dead-lettered", || {
        read_lines(&dead).len() == 1
    })
    .await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= std::time::Duration::from_millis(900),
        "retried after {elapsed:?}, before Retry-After (capped at 1 s)"
    );
    let letter: Value = serde_json::from_str(&read_lines(&dead)[0]).unwrap();
    assert_eq!(letter["message"], "refused");
    let reason = letter["dead_letter"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("400") && reason.contains("bad export"),
        "{reason}"
    );
    assert_eq!(
        counter("component_retries_total", "otlp_retry_out", None),
        1
    );

    send("accepted\n").await;
    wait_until("the next event sent", || {
        counter("component_sent_events_total", "otlp_retry_out", None) == 1
    })
    .await;
    assert_eq!(recorder.requests(), 3);
    assert!(recorder
        .content_types()
        .iter()
        .all(|t| t == "application/x-protobuf"));
    router.stop().await;
}
