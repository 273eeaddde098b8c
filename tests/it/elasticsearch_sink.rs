//! The `elasticsearch` sink against a recording server that answers `POST /_bulk` as
//! Elasticsearch's documentation specifies (no Elasticsearch or OpenSearch can be installed
//! here): NDJSON checked (content type, the closing newline), per-item statuses in a 200
//! with `errors: true` for a partly failed request (`mapper_parsing_exception` for a
//! document whose `n` is not a number, 429 `es_rejected_execution_exception` once for a
//! document marked `flaky`, 409 for a `create` of an existing `_id`), `filter_path`
//! honoured, whole-request errors (401 without credentials, scripted 503s).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::io::{Read, Write};
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

use crate::util::{counter, read_lines, tempdir, wait_until, Router, TIMEOUT};

/// `elastic:changeme`, as the sink sends it.
const AUTH: &str = "Basic ZWxhc3RpYzpjaGFuZ2VtZQ==";

#[derive(Default)]
struct Cluster {
    /// Per index, the stored documents by `_id`.
    indices: Mutex<BTreeMap<String, BTreeMap<String, Value>>>,
    /// Messages of `flaky` documents already refused once with 429.
    refused_once: Mutex<HashSet<String>>,
    /// Statuses to answer whole requests with first (then the bulk is processed).
    fail_first: Mutex<Vec<u16>>,
    /// Per request: its path and query, and the number of items it held.
    requests: Mutex<Vec<(String, usize)>>,
    next_id: Mutex<u64>,
}

impl Cluster {
    async fn start(fail_first: &[u16]) -> (SocketAddr, Arc<Cluster>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cluster = Arc::new(Cluster::default());
        *cluster.fail_first.lock().unwrap() = fail_first.to_vec();
        let shared = cluster.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let cluster = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let cluster = cluster.clone();
                        async move { Ok::<_, Infallible>(cluster.handle(request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, cluster)
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let target = request
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        let gzip = header("content-encoding") == "gzip";
        let content_type = header("content-type");
        let authorization = header("authorization");
        let raw = request.into_body().collect().await.unwrap().to_bytes();
        let mut body = Vec::new();
        if gzip {
            flate2::read::GzDecoder::new(&raw[..])
                .read_to_end(&mut body)
                .unwrap();
        } else {
            body = raw.to_vec();
        }
        if !target.starts_with("/_bulk") {
            return answer(404, json!({"error": "no handler", "status": 404}));
        }
        if authorization != AUTH {
            let reason = "missing authentication credentials for REST request [/_bulk]";
            return answer(
                401,
                json!({"error": {"root_cause": [{"type": "security_exception", "reason": reason}], "type": "security_exception", "reason": reason}, "status": 401}),
            );
        }
        if !content_type.starts_with("application/x-ndjson")
            && !content_type.starts_with("application/json")
        {
            let error = format!("Content-Type header [{content_type}] is not supported");
            return answer(406, json!({"error": error, "status": 406}));
        }
        if let Some(status) = {
            let mut fail = self.fail_first.lock().unwrap();
            (!fail.is_empty()).then(|| fail.remove(0))
        } {
            return answer(
                status,
                json!({"error": {"type": "cluster_block_exception", "reason": "blocked"}, "status": status}),
            );
        }
        if !body.ends_with(b"\n") {
            let reason = "The bulk request must be terminated by a newline [\\n]";
            return answer(
                400,
                json!({"error": {"root_cause": [{"type": "illegal_argument_exception", "reason": reason}], "type": "illegal_argument_exception", "reason": reason}, "status": 400}),
            );
        }
        let lines: Vec<Value> = body
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("NDJSON"))
            .collect();
        assert_eq!(lines.len() % 2, 0, "an action and a document per item");
        let mut items = Vec::new();
        let mut errors = false;
        for pair in lines.chunks(2) {
            let (action, meta) = pair[0].as_object().unwrap().iter().next().unwrap();
            let item = self.item(action, meta, &pair[1]);
            errors |= item["status"].as_u64().unwrap() >= 300;
            items.push(json!({ action.clone(): item }));
        }
        self.requests
            .lock()
            .unwrap()
            .push((target.clone(), items.len()));
        let filtered = target.contains("filter_path=errors,items.*.status,items.*.error");
        if filtered {
            for item in &mut items {
                for (_, inner) in item.as_object_mut().unwrap() {
                    inner
                        .as_object_mut()
                        .unwrap()
                        .retain(|k, _| k == "status" || k == "error");
                }
            }
        }
        answer(200, json!({"took": 3, "errors": errors, "items": items}))
    }

    /// One item, as the documentation shows its answer.
    fn item(&self, action: &str, meta: &Value, doc: &Value) -> Value {
        let index = meta["_index"].as_str().unwrap().to_string();
        let id = match meta["_id"].as_str() {
            Some(id) => id.to_string(),
            None => {
                let mut next = self.next_id.lock().unwrap();
                *next += 1;
                format!("auto-{next}")
            }
        };
        let error = |status: u16, kind: &str, reason: String, cause: Option<Value>| {
            let mut error = json!({"type": kind, "reason": reason, "index": index});
            if let Some(cause) = cause {
                error["caused_by"] = cause;
            }
            json!({"_index": index, "_id": id, "status": status, "error": error})
        };
        if let Some(n) = doc.get("n").filter(|n| !n.is_i64()) {
            return error(
                400,
                "mapper_parsing_exception",
                format!("failed to parse field [n] of type [long] in document with id '{id}'. Preview of field's value: '{}'", n.as_str().unwrap_or("?")),
                Some(json!({"type": "illegal_argument_exception", "reason": format!("For input string: {n}")})),
            );
        }
        if doc["flaky"] == true {
            let message = doc["message"].as_str().unwrap().to_string();
            if self.refused_once.lock().unwrap().insert(message) {
                return error(
                    429,
                    "es_rejected_execution_exception",
                    "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=120, max_coordinating_and_primary_bytes=107374182]".into(),
                    None,
                );
            }
        }
        let mut indices = self.indices.lock().unwrap();
        let docs = indices.entry(index.clone()).or_default();
        let exists = docs.contains_key(&id);
        if exists && action == "create" {
            return error(
                409,
                "version_conflict_engine_exception",
                format!("[{id}]: version conflict, document already exists (current version [1])"),
                None,
            );
        }
        docs.insert(id.clone(), doc.clone());
        let (status, result) = if exists {
            (200, "updated")
        } else {
            (201, "created")
        };
        json!({"_index": index, "_id": id, "_version": 1, "result": result,
               "_shards": {"total": 2, "successful": 1, "failed": 0},
               "_seq_no": 0, "_primary_term": 1, "status": status})
    }

    fn documents(&self) -> BTreeMap<String, Vec<Value>> {
        self.indices
            .lock()
            .unwrap()
            .iter()
            .map(|(index, docs)| (index.clone(), docs.values().cloned().collect()))
            .collect()
    }
}

fn answer(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
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

/// A partly failed bulk request: stored items are acknowledged, the 429 items alone are
/// sent again and stored, the `mapper_parsing_exception` items go to dead-letter with the
/// reason; every document lands in the index its app and time name, with `@timestamp`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_are_stored_retried_or_dead_lettered_one_by_one() {
    let (addr, cluster) = Cluster::start(&[]).await;
    let dir = tempdir();
    let dead = dir.path().join("dead.log");
    let router = Router::start(&format!(
        r#"
[sources.es_in]
type = "tcp"
address = "127.0.0.1:0"

[transforms.es_parse]
type = "parse"
inputs = ["es_in"]
format = "json"

[sinks.es_out]
type = "elasticsearch"
inputs = ["es_parse"]
endpoint = "http://{addr}"
index = "logs-{{{{ app }}}}-%Y.%m.%d"
user = "elastic"
password = "changeme"
compression = "gzip"
batch_max_events = 500
batch_timeout_ms = 200
retry = {{ initial_backoff_ms = 10, max_backoff_secs = 1 }}

[sinks.es_dead]
type = "file"
inputs = ["es_out.dead_letter"]
path = "{}"
"#,
        dead.display()
    ))
    .await;
    let n = 200;
    let bad = |i: usize| i % 50 == 7;
    let flaky = |i: usize| i % 40 == 3;
    let line = |i: usize| {
        let mut event = json!({
            "timestamp": format!("2026-12-0{}T10:00:00Z", 5 + i % 2),
            "app": if i % 3 == 0 { "web" } else { "db" },
            "message": format!("event {i}"),
            "n": if bad(i) { json!("abc") } else { json!(i) },
        });
        if flaky(i) {
            event["flaky"] = json!(true);
        }
        event.to_string()
    };
    send_lines(router.addr("es_in"), (0..n).map(line)).await;
    wait_until("every event stored or dead-lettered", || {
        counter("component_sent_events_total", "es_out", None)
            + counter("component_dead_lettered_events_total", "es_out", None)
            == n as u64
    })
    .await;
    router.stop().await;

    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in (0..n).filter(|&i| !bad(i)) {
        let app = if i % 3 == 0 { "web" } else { "db" };
        let index = format!("logs-{app}-2026.12.0{}", 5 + i % 2);
        expected
            .entry(index)
            .or_default()
            .push(format!("event {i}"));
    }
    let documents = cluster.documents();
    let stored: BTreeMap<String, Vec<String>> = documents
        .iter()
        .map(|(index, docs)| {
            let mut messages: Vec<String> = docs
                .iter()
                .map(|d| d["message"].as_str().unwrap().to_string())
                .collect();
            messages.sort_by_key(|m| m[6..].parse::<usize>().unwrap());
            (index.clone(), messages)
        })
        .collect();
    assert_eq!(stored, expected);
    let sample = &documents["logs-web-2026.12.05"][0];
    assert!(sample["@timestamp"]
        .as_str()
        .unwrap()
        .starts_with("2026-12-05T10:00:00"));
    assert!(sample.get("timestamp").is_none());

    // The retries carried only the items refused with 429.
    let requests = cluster.requests.lock().unwrap().clone();
    let flaky_count = (0..n).filter(|&i| flaky(i)).count();
    let items: usize = requests.iter().map(|(_, items)| items).sum();
    assert_eq!(items, n + flaky_count, "{requests:?}");
    assert!(requests
        .iter()
        .all(|(target, _)| target.starts_with("/_bulk?filter_path=")));
    assert!(counter("component_retries_total", "es_out", None) >= 1);

    let letters: Vec<Value> = read_lines(&dead)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut messages: Vec<&str> = letters
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    messages.sort();
    assert_eq!(messages, ["event 107", "event 157", "event 57", "event 7"]);
    for letter in &letters {
        let reason = letter["dead_letter"]["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("HTTP 400: mapper_parsing_exception: failed to parse field [n]"),
            "{reason}"
        );
        assert!(reason.contains("For input string"), "{reason}");
        assert_eq!(letter["dead_letter"]["reason_code"], "rejected");
    }
}

/// Whole-request 503s are retried; the http source answers its client only once the
/// documents are stored; with `id_field` a document sent again as `create` meets a 409 and
/// counts as delivered (stored once), with `index` it is replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_request_retries_and_ids() {
    let (addr, cluster) = Cluster::start(&[503, 503]).await;
    let router = Router::start(&format!(
        r#"
[sources.es_ids_in]
type = "http"
address = "127.0.0.1:0"

[sinks.es_ids]
type = "elasticsearch"
inputs = ["es_ids_in"]
endpoint = "http://{addr}/"
index = "ids"
id_field = "id"
user = "elastic"
password = "changeme"
batch_timeout_ms = 0
retry = {{ initial_backoff_ms = 10, max_backoff_secs = 1 }}
"#
    ))
    .await;
    let ingest = router.addr("es_ids_in");
    let post = |body: String| {
        tokio::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(ingest).unwrap();
            stream.set_read_timeout(Some(TIMEOUT)).unwrap();
            let head = format!(
                "POST /v1/logs HTTP/1.0\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(body.as_bytes()).unwrap();
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            answer
        })
    };
    let first = post(
        (0..10)
            .map(|i| format!("{{\"id\":\"doc-{i}\",\"message\":\"first {i}\"}}\n"))
            .collect(),
    );
    let answer = first.await.unwrap();
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    // Answered after storing: the documents are there.
    assert_eq!(cluster.documents()["ids"].len(), 10);
    assert_eq!(counter("component_retries_total", "es_ids", None), 2);
    // The same ids again, as `create`: 409 each, delivered, nothing replaced or dead-lettered.
    let again = post(
        (0..10)
            .map(|i| format!("{{\"id\":\"doc-{i}\",\"message\":\"again {i}\"}}\n"))
            .collect(),
    );
    assert!(again.await.unwrap().starts_with("HTTP/1.0 200"));
    let docs = cluster.documents();
    assert!(docs["ids"]
        .iter()
        .all(|d| d["message"].as_str().unwrap().starts_with("first")));
    assert_eq!(counter("component_sent_events_total", "es_ids", None), 20);
    assert_eq!(
        counter("component_dead_lettered_events_total", "es_ids", None),
        0
    );
    router.stop().await;
    let statuses: HashMap<String, usize> = cluster
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|(t, n)| (t.clone(), *n))
        .collect();
    assert!(statuses.keys().all(|t| t.starts_with("/_bulk?")));
}

/// Without credentials the cluster answers 401 to the whole request: every event goes to
/// dead-letter with the security exception's text, without retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorised_requests_go_to_dead_letter() {
    let (addr, cluster) = Cluster::start(&[]).await;
    let dir = tempdir();
    let dead = dir.path().join("dead.log");
    let router = Router::start(&format!(
        r#"
[sources.es_auth_in]
type = "tcp"
address = "127.0.0.1:0"

[sinks.es_auth]
type = "elasticsearch"
inputs = ["es_auth_in"]
endpoint = "http://{addr}"
action = "index"
batch_timeout_ms = 0

[sinks.es_auth_dead]
type = "file"
inputs = ["es_auth.dead_letter"]
path = "{}"
"#,
        dead.display()
    ))
    .await;
    send_lines(
        router.addr("es_auth_in"),
        (0..5).map(|i| format!("line {i}")),
    )
    .await;
    wait_until("dead-lettered", || read_lines(&dead).len() == 5).await;
    router.stop().await;
    let letter: Value = serde_json::from_str(&read_lines(&dead)[0]).unwrap();
    let reason = letter["dead_letter"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("HTTP 401"), "{reason}");
    assert!(reason.contains("security_exception"), "{reason}");
    assert_eq!(counter("component_retries_total", "es_auth", None), 0);
    assert!(cluster.documents().is_empty());
}

/// Over `https://` with `tls.ca_file`: the elasticsearch, loki and clickhouse sinks (one
/// client path, `sinks::batch::client`) deliver to a server whose certificate a test CA
/// signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_sinks_post_over_https_to_a_server_signed_by_their_ca() {
    let dir = tempdir();
    let (ca, ca_cert, ca_key) = crate::certs::issue(&["store sinks test ca"], None);
    let (server, _, _) = crate::certs::issue(&["127.0.0.1"], Some((&ca_cert, &ca_key)));
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let ca_file = write("ca.pem", &ca.cert_pem);
    let acceptor = sluice::tls::TlsConfig {
        crt_file: write("server.pem", &server.cert_pem),
        key_file: write("server.key", &server.key_pem),
        ca_file: None,
    }
    .acceptor()
    .unwrap();
    let (addr, recorder) = crate::recorder::Recorder::start_with(&[], Some(acceptor)).await;
    let router = Router::start(&format!(
        r#"
[sources.tls_in]
type = "tcp"
address = "127.0.0.1:0"

[sinks.tls_es]
type = "elasticsearch"
inputs = ["tls_in"]
endpoint = "https://{addr}"
index = "tls"
batch_timeout_ms = 0
tls = {{ ca_file = "{ca}" }}

[sinks.tls_loki]
type = "loki"
inputs = ["tls_in"]
endpoint = "https://{addr}"
batch_timeout_ms = 0
tls = {{ ca_file = "{ca}" }}

[sinks.tls_ch]
type = "clickhouse"
inputs = ["tls_in"]
endpoint = "https://{addr}"
table = "logs"
batch_timeout_ms = 0
tls = {{ ca_file = "{ca}" }}
"#,
        ca = ca_file.display()
    ))
    .await;
    send_lines(router.addr("tls_in"), (0..3).map(|i| format!("line {i}"))).await;
    wait_until("every sink delivered", || {
        ["tls_es", "tls_loki", "tls_ch"]
            .iter()
            .all(|id| counter("component_sent_events_total", id, None) == 3)
    })
    .await;
    router.stop().await;
    assert!(recorder.attempts("/_bulk") >= 1);
    assert!(recorder.attempts("/loki/api/v1/push") >= 1);
    assert!(recorder.attempts("/") >= 1);
}
