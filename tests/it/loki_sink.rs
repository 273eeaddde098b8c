//! The `loki` sink against a recording server that answers `POST /loki/api/v1/push` as
//! Loki's documentation specifies (no Loki can be installed here): JSON streams, 204 on
//! success, `X-Scope-OrgID` required (multi-tenant), entries of a stream older than the
//! newest it holds refused with 400 `entry out of order` (the others of the request kept),
//! scripted 5xx.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::util::{counter, read_lines, tempdir, wait_until, Router};

/// Per label set (as JSON), the entries kept: (nanos, line).
type Streams = BTreeMap<String, Vec<(i64, String)>>;

#[derive(Default)]
struct Loki {
    /// Per tenant, its streams.
    streams: Mutex<BTreeMap<String, Streams>>,
    fail_first: Mutex<Vec<u16>>,
    pushes: Mutex<usize>,
}

impl Loki {
    async fn start(fail_first: &[u16]) -> (SocketAddr, Arc<Loki>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let loki = Arc::new(Loki::default());
        *loki.fail_first.lock().unwrap() = fail_first.to_vec();
        let shared = loki.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let loki = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let loki = loki.clone();
                        async move { Ok::<_, Infallible>(loki.handle(request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, loki)
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_string();
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        let tenant = header("x-scope-orgid");
        let gzip = header("content-encoding") == "gzip";
        let content_type = header("content-type");
        let raw = request.into_body().collect().await.unwrap().to_bytes();
        let mut body = Vec::new();
        if gzip {
            flate2::read::GzDecoder::new(&raw[..])
                .read_to_end(&mut body)
                .unwrap();
        } else {
            body = raw.to_vec();
        }
        if path != "/loki/api/v1/push" {
            return answer(404, "404 page not found\n");
        }
        if tenant.is_empty() {
            return answer(401, "no org id\n");
        }
        if let Some(status) = {
            let mut fail = self.fail_first.lock().unwrap();
            (!fail.is_empty()).then(|| fail.remove(0))
        } {
            return answer(status, "internal server error\n");
        }
        *self.pushes.lock().unwrap() += 1;
        let push: Value = match content_type.as_str() {
            "application/json" => serde_json::from_slice(&body).expect("a JSON push body"),
            "application/x-protobuf" => protobuf_push(&body),
            other => panic!("unexpected content type {other}"),
        };
        let mut ignored = Vec::new();
        let mut total = 0;
        let mut all = self.streams.lock().unwrap();
        let tenant_streams = all.entry(tenant).or_default();
        for stream in push["streams"].as_array().unwrap() {
            let labels = stream["stream"].to_string();
            let kept = tenant_streams.entry(labels.clone()).or_default();
            for value in stream["values"].as_array().unwrap() {
                total += 1;
                let nanos: i64 = value[0].as_str().unwrap().parse().unwrap();
                let line = value[1].as_str().unwrap().to_string();
                if kept.last().is_some_and(|(last, _)| nanos < *last) {
                    ignored.push(format!(
                        "entry with timestamp {nanos} ignored, reason: 'entry out of order' for stream: {labels},"
                    ));
                    continue;
                }
                kept.push((nanos, line));
            }
        }
        if ignored.is_empty() {
            return answer(204, "");
        }
        answer(
            400,
            &format!(
                "{}\ntotal ignored: {} out of {total}\n",
                ignored.join("\n"),
                ignored.len()
            ),
        )
    }

    fn lines(&self, tenant: &str) -> BTreeMap<String, Vec<String>> {
        self.streams
            .lock()
            .unwrap()
            .get(tenant)
            .map(|streams| {
                streams
                    .iter()
                    .map(|(labels, entries)| {
                        (
                            labels.clone(),
                            entries.iter().map(|(_, l)| l.clone()).collect(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A snappy-compressed `logproto.PushRequest`, as the JSON push it stands for (labels
/// `{a="x", b="y"}` read into an object), so both bodies are checked the same way. Decoded
/// with the messages' field numbers from Loki's `push.proto`.
fn protobuf_push(body: &[u8]) -> Value {
    #[derive(Clone, PartialEq, prost::Message)]
    struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        streams: Vec<Stream>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Stream {
        #[prost(string, tag = "1")]
        labels: String,
        #[prost(message, repeated, tag = "2")]
        entries: Vec<Entry>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Entry {
        #[prost(message, optional, tag = "1")]
        timestamp: Option<Timestamp>,
        #[prost(string, tag = "2")]
        line: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Timestamp {
        #[prost(int64, tag = "1")]
        seconds: i64,
        #[prost(int32, tag = "2")]
        nanos: i32,
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .expect("a snappy block");
    let push = <PushRequest as prost::Message>::decode(&raw[..]).expect("a PushRequest");
    let streams: Vec<Value> = push
        .streams
        .iter()
        .map(|stream| {
            let inner = stream.labels.trim_start_matches('{').trim_end_matches('}');
            let labels: serde_json::Map<String, Value> = inner
                .split(", ")
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (name, quoted) = pair.split_once('=').expect("name=\"value\"");
                    let value: String = serde_json::from_str(quoted).expect("a quoted value");
                    (name.to_string(), Value::from(value))
                })
                .collect();
            let values: Vec<Value> = stream
                .entries
                .iter()
                .map(|entry| {
                    let t = entry.timestamp.clone().unwrap_or_default();
                    let nanos = t.seconds * 1_000_000_000 + i64::from(t.nanos);
                    json!([nanos.to_string(), entry.line])
                })
                .collect();
            json!({ "stream": labels, "values": values })
        })
        .collect();
    json!({ "streams": streams })
}

fn answer(status: u16, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    response
}

async fn send_lines(addr: SocketAddr, lines: impl Iterator<Item = String>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut data = String::new();
    for line in lines {
        data.push_str(&line);
        data.push('\n');
    }
    stream.write_all(data.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
}

/// Labels from templates, a guard on their sets, entries sorted per stream (sent newest
/// first, accepted by a Loki that refuses out-of-order entries), the tenant header, and a
/// 500 retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_labels_guard_and_order() {
    labels_guard_and_order("json", "gzip").await;
}

/// The same over Loki's protobuf push (snappy-compressed `PushRequest`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_labels_guard_and_order_over_protobuf() {
    labels_guard_and_order("protobuf", "none").await;
}

async fn labels_guard_and_order(protocol: &str, compression: &str) {
    let (addr, loki) = Loki::start(&[500]).await;
    // Its own id per protocol: the counters asserted below are per component.
    let id = format!("loki_out_{protocol}");
    let router = Router::start(&format!(
        r#"
[sources.loki_in]
type = "tcp"
address = "127.0.0.1:0"

[transforms.loki_parse]
type = "parse"
inputs = ["loki_in"]
format = "json"

[sinks.{id}]
type = "loki"
inputs = ["loki_parse"]
endpoint = "http://{addr}"
labels = {{ app = "{{{{ app }}}}", job = "sluice" }}
max_label_sets = 2
tenant_id = "team-a"
encoding = "text"
protocol = "{protocol}"
compression = "{compression}"
batch_timeout_ms = 200
retry = {{ initial_backoff_ms = 10, max_backoff_secs = 1 }}
"#
    ))
    .await;
    // Newest first: the sink must sort each stream's entries.
    let apps = ["web", "db", "cache", "queue"];
    let n = 40;
    send_lines(
        router.addr("loki_in"),
        (0..n).rev().map(|i| {
            json!({
                "timestamp": format!("2026-12-06T10:00:{i:02}Z"),
                "app": apps[i % 4],
                "message": format!("line {i}"),
            })
            .to_string()
        }),
    )
    .await;
    wait_until("every event pushed", || {
        counter("component_sent_events_total", &id, None) == n as u64
    })
    .await;
    router.stop().await;
    let lines = loki.lines("team-a");
    let stream = |filter: &dyn Fn(usize) -> bool| -> Vec<String> {
        (0..n)
            .filter(|&i| filter(i))
            .map(|i| format!("line {i}"))
            .collect()
    };
    let web = r#"{"app":"web","job":"sluice"}"#;
    let db = r#"{"app":"db","job":"sluice"}"#;
    let overflow = r#"{"job":"sluice","sluice_overflow":"true"}"#;
    // The first two sets seen (sent newest first: queue, then cache) get streams of
    // their own; the other apps share the fallback set.
    let first_two: Vec<&str> = (0..n).rev().map(|i| apps[i % 4]).take(2).collect();
    assert_eq!(first_two, ["queue", "cache"]);
    let expected = BTreeMap::from([
        (
            r#"{"app":"cache","job":"sluice"}"#.to_string(),
            stream(&|i| i % 4 == 2),
        ),
        (
            r#"{"app":"queue","job":"sluice"}"#.to_string(),
            stream(&|i| i % 4 == 3),
        ),
        (overflow.to_string(), stream(&|i| i % 4 < 2)),
    ]);
    assert_eq!(lines, expected);
    assert!(!lines.contains_key(web) && !lines.contains_key(db));
    assert_eq!(
        counter("component_label_overflow_events_total", &id, None),
        20
    );
    assert_eq!(counter("component_retries_total", &id, None), 1);
}

/// An entry older than its stream's newest is refused by Loki with a 400: not retried, the
/// push's events go to dead-letter with Loki's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_is_rejected_with_the_reason() {
    let (addr, loki) = Loki::start(&[]).await;
    let dir = tempdir();
    let dead = dir.path().join("dead.log");
    let router = Router::start(&format!(
        r#"
[sources.loki_ooo_in]
type = "tcp"
address = "127.0.0.1:0"

[transforms.loki_ooo_parse]
type = "parse"
inputs = ["loki_ooo_in"]
format = "json"

[sinks.loki_ooo]
type = "loki"
inputs = ["loki_ooo_parse"]
endpoint = "http://{addr}"
tenant_id = "team-b"
batch_timeout_ms = 0

[sinks.loki_ooo_dead]
type = "file"
inputs = ["loki_ooo.dead_letter"]
path = "{}"
"#,
        dead.display()
    ))
    .await;
    let event = |second: u32, message: &str| {
        json!({"timestamp": format!("2026-12-06T10:00:{second:02}Z"), "app": "web", "level": "info", "message": message}).to_string()
    };
    send_lines(router.addr("loki_ooo_in"), [event(30, "newer")].into_iter()).await;
    wait_until("the first push", || {
        counter("component_sent_events_total", "loki_ooo", None) == 1
    })
    .await;
    send_lines(router.addr("loki_ooo_in"), [event(10, "older")].into_iter()).await;
    wait_until("dead-lettered", || read_lines(&dead).len() == 1).await;
    router.stop().await;
    let letter: Value = serde_json::from_str(&read_lines(&dead)[0]).unwrap();
    assert_eq!(letter["message"], "older");
    let reason = letter["dead_letter"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("HTTP 400"), "{reason}");
    assert!(reason.contains("entry out of order"), "{reason}");
    assert_eq!(counter("component_retries_total", "loki_ooo", None), 0);
    // The default labels (app and level) and the whole event as the line.
    let lines = loki.lines("team-b");
    let kept = &lines[r#"{"app":"web","level":"info"}"#];
    assert_eq!(kept.len(), 1);
    let line: Value = serde_json::from_str(&kept[0]).unwrap();
    assert_eq!(line["message"], "newer");
    assert_eq!(*loki.pushes.lock().unwrap(), 2);
}
