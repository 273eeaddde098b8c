//! `request.concurrency`: the elasticsearch sink against a recording `_bulk` server that
//! holds each request until as many as the test wants are in flight at once (or it is
//! released), so that several requests are seen inside the server together; then one of
//! them refused for good while the others are stored: each event is stored or
//! dead-lettered, once. The gate serves other sinks too (`otlp_sink_concurrency.rs`):
//! what differs is how a request's documents are read and what a success answers.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::watch;

use tokio::io::AsyncWriteExt;

use crate::util::{counter, read_lines, tempdir, wait_until, Router};

/// Longest a request is held waiting for others (a sink sending one at a time); the test
/// then fails on the peak it saw.
const HOLD: Duration = Duration::from_secs(10);

/// What the gate's server speaks: how a request body is read into documents (each with a
/// `message` and an `n`), and the body a success is answered with.
pub(crate) struct Protocol {
    pub(crate) documents: fn(&[u8]) -> Vec<Value>,
    pub(crate) accepted: &'static str,
}

/// Elasticsearch's `_bulk`: NDJSON of action and document lines.
const BULK: Protocol = Protocol {
    documents: bulk_documents,
    accepted: r#"{"errors":false}"#,
};

fn bulk_documents(body: &[u8]) -> Vec<Value> {
    body.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .skip(1)
        .step_by(2)
        .map(|l| serde_json::from_slice(l).expect("NDJSON"))
        .collect()
}

pub(crate) struct Gate {
    /// Requests inside the server now; each waits until `want` are, then answers, and so
    /// do all later ones (`opened`, which a test may also set itself).
    pub(crate) inside: watch::Sender<usize>,
    pub(crate) opened: watch::Sender<bool>,
    want: usize,
    pub(crate) peak: Mutex<usize>,
    /// Documents inside the server now, and the most at once.
    docs_inside: Mutex<usize>,
    pub(crate) peak_docs: Mutex<usize>,
    /// Per stored document's `n`, how many times it was stored.
    pub(crate) stored: Mutex<BTreeMap<u64, usize>>,
    /// A request holding a document with this message is refused whole (400).
    poison: &'static str,
    protocol: Protocol,
}

impl Gate {
    async fn start(want: usize, poison: &'static str) -> (SocketAddr, Arc<Gate>) {
        Self::start_with(want, poison, BULK).await
    }

    pub(crate) async fn start_with(
        want: usize,
        poison: &'static str,
        protocol: Protocol,
    ) -> (SocketAddr, Arc<Gate>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gate = Arc::new(Gate {
            inside: watch::channel(0).0,
            opened: watch::channel(false).0,
            want,
            peak: Mutex::new(0),
            docs_inside: Mutex::new(0),
            peak_docs: Mutex::new(0),
            stored: Mutex::new(BTreeMap::new()),
            poison,
            protocol,
        });
        let shared = gate.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let gate = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let gate = gate.clone();
                        async move { Ok::<_, Infallible>(gate.handle(request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, gate)
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let body = request.into_body().collect().await.unwrap().to_bytes();
        let docs = (self.protocol.documents)(&body);
        self.inside.send_modify(|n| *n += 1);
        {
            let mut inside = self.docs_inside.lock().unwrap();
            *inside += docs.len();
            let mut peak = self.peak_docs.lock().unwrap();
            *peak = (*peak).max(*inside);
        }
        {
            let mut peak = self.peak.lock().unwrap();
            *peak = (*peak).max(*self.inside.borrow());
            if *peak >= self.want {
                self.opened.send_replace(true);
            }
        }
        let mut opened = self.opened.subscribe();
        let _ = tokio::time::timeout(HOLD, opened.wait_for(|open| *open)).await;
        let refused = docs.iter().any(|d| d["message"] == self.poison);
        if !refused {
            let mut stored = self.stored.lock().unwrap();
            for doc in &docs {
                *stored.entry(doc["n"].as_u64().unwrap()).or_default() += 1;
            }
        }
        *self.docs_inside.lock().unwrap() -= docs.len();
        self.inside.send_modify(|n| *n -= 1);
        let (status, answer) = if refused {
            (
                400,
                json!({"error": {"type": "illegal_argument_exception", "reason": "poisoned"}, "status": 400})
                    .to_string(),
            )
        } else {
            (200, self.protocol.accepted.to_string())
        };
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(answer)))
            .unwrap()
    }
}

pub(crate) async fn send_lines(addr: SocketAddr, lines: impl Iterator<Item = String>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let data: String = lines.map(|line| line + "\n").collect();
    stream.write_all(data.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
}

fn pipeline(id: &str, addr: SocketAddr, concurrency: usize, dead: &std::path::Path) -> String {
    format!(
        r#"
[sources.{id}_in]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"

[sinks.{id}]
type = "elasticsearch"
inputs = ["{id}_in"]
endpoint = "http://{addr}"
index = "conc"
batch_max_events = 10
batch_timeout_ms = 0
request = {{ concurrency = {concurrency} }}
retry = {{ max_attempts = 1 }}

[sinks.{id}_dead]
type = "file"
inputs = ["{id}.dead_letter"]
path = "{}"
"#,
        dead.display()
    )
}

/// With `concurrency = 4` and a server that answers only once four requests are inside it,
/// four are: the sink did not wait for one answer before sending the next. Never more than
/// four, and every event is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_requests_are_in_flight_at_once_and_no_more() {
    let (addr, gate) = Gate::start(4, "none is poisoned").await;
    let dir = tempdir();
    let dead = dir.path().join("dead.log");
    let router = Router::start(&pipeline("conc_es", addr, 4, &dead)).await;
    let n = 200u64;
    send_lines(
        router.addr("conc_es_in"),
        (0..n).map(|i| format!(r#"{{"message":"event {i}","n":{i}}}"#)),
    )
    .await;
    wait_until("every event stored", || {
        counter("component_sent_events_total", "conc_es", None) == n
    })
    .await;
    router.stop().await;
    assert_eq!(
        *gate.peak.lock().unwrap(),
        4,
        "requests inside the server at once"
    );
    let stored = gate.stored.lock().unwrap();
    assert_eq!(stored.len(), n as usize);
    assert!(stored.values().all(|times| *times == 1), "stored twice");
    assert!(read_lines(&dead).is_empty());
}

/// One request of several in flight is refused for good: its events, and only those, go
/// to dead-letter; every other event is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failed_request_in_flight_touches_no_other() {
    let (addr, gate) = Gate::start(3, "poison").await;
    let dir = tempdir();
    let dead = dir.path().join("dead.log");
    let router = Router::start(&pipeline("conc_fail", addr, 3, &dead)).await;
    let n = 120u64;
    send_lines(
        router.addr("conc_fail_in"),
        (0..n).map(|i| match i {
            55 => format!(r#"{{"message":"poison","n":{i}}}"#),
            _ => format!(r#"{{"message":"event {i}","n":{i}}}"#),
        }),
    )
    .await;
    wait_until("every event stored or dead-lettered", || {
        let sent = counter("component_sent_events_total", "conc_fail", None);
        sent + read_lines(&dead).len() as u64 == n
    })
    .await;
    router.stop().await;
    assert!(
        *gate.peak.lock().unwrap() >= 2,
        "requests in flight at once"
    );
    let letters: Vec<u64> = read_lines(&dead)
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(letters.contains(&55), "{letters:?}");
    assert!(
        letters.len() <= 10,
        "one request's events at most: {letters:?}"
    );
    let stored = gate.stored.lock().unwrap();
    assert!(stored.values().all(|times| *times == 1), "stored twice");
    for i in 0..n {
        let in_store = stored.contains_key(&i);
        assert_ne!(
            in_store,
            letters.contains(&i),
            "event {i}: stored xor dead-lettered"
        );
    }
}
