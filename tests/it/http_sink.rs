//! The `http` sink against real HTTP servers on 127.0.0.1: router-to-router forwarding into
//! another router's http source, retries of 5xx answers, dead-lettering of a 400, and
//! config errors that name the field.

use std::net::SocketAddr;

use sluice::pipeline::Pipeline;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::recorder::{Recorder, ANY_PATH};
use crate::util::{counter, read_lines, tempdir, wait_until, Router};

async fn send_lines(addr: SocketAddr, lines: impl Iterator<Item = String>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut data = String::new();
    for line in lines {
        data.push_str(&line);
        data.push('\n');
    }
    stream.write_all(data.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
}

fn messages_of(path: &std::path::Path) -> Vec<String> {
    read_lines(path)
        .iter()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            event["message"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Router A (tcp → http sink) forwards to router B (http source → file): every event
/// arrives once, in order, over several requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_to_router_forwarding() {
    let dir = tempdir();
    let out = dir.path().join("b.log");
    let b = Router::start(&format!(
        r#"
[sources.r2r_b_in]
type = "http"
address = "127.0.0.1:0"

[sinks.r2r_b_out]
type = "file"
inputs = ["r2r_b_in"]
path = "{}"
"#,
        out.display()
    ))
    .await;
    let a = Router::start(&format!(
        r#"
[sources.r2r_a_in]
type = "tcp"
address = "127.0.0.1:0"

[sinks.r2r_a_fwd]
type = "http"
inputs = ["r2r_a_in"]
uri = "http://{}/v1/logs"
compression = "gzip"
batch_max_events = 100
headers = {{ x-forwarded-by = "sluice-a" }}
"#,
        b.addr("r2r_b_in")
    ))
    .await;
    let n = 1000;
    send_lines(a.addr("r2r_a_in"), (0..n).map(|i| format!("line {i}"))).await;
    wait_until("router B wrote every event", || {
        counter("component_sent_events_total", "r2r_b_out", None) == n
    })
    .await;
    a.stop().await;
    b.stop().await;
    let expected: Vec<String> = (0..n).map(|i| format!("line {i}")).collect();
    assert_eq!(messages_of(&out), expected);
    assert_eq!(counter("component_sent_events_total", "r2r_a_fwd", None), n);
    assert_eq!(
        counter("component_errors_total", "r2r_a_fwd", Some("write_failed")),
        0
    );
    // At most 100 events per request: at least 10 requests were answered 200 by B.
    let accepted = sluice::telemetry::counter_value(
        "component_http_responses_total",
        &[("component_id", "r2r_b_in"), ("code", "200")],
    );
    assert!(accepted >= 10, "{accepted} requests");
}

/// Two 500s, then 200: each event arrives exactly once, after the retries, which are
/// counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried() {
    let (addr, recorder) =
        Recorder::start(&[(ANY_PATH, 500, "boom"), (ANY_PATH, 500, "boom")]).await;
    let router = Router::start(&format!(
        r#"
[sources.retry_in]
type = "tcp"
address = "127.0.0.1:0"

[sinks.retry_http]
type = "http"
inputs = ["retry_in"]
uri = "http://{addr}/ingest"
retry = {{ initial_backoff_ms = 10, max_backoff_secs = 1 }}
"#
    ))
    .await;
    send_lines(
        router.addr("retry_in"),
        (0..5).map(|i| format!("event {i}")),
    )
    .await;
    wait_until("events delivered", || {
        counter("component_sent_events_total", "retry_http", None) == 5
    })
    .await;
    router.stop().await;
    let expected: Vec<String> = (0..5).map(|i| format!("event {i}")).collect();
    assert_eq!(recorder.messages(), expected);
    assert!(recorder.requests() >= 3);
    assert_eq!(counter("component_retries_total", "retry_http", None), 2);
    assert_eq!(
        counter("component_errors_total", "retry_http", Some("write_failed")),
        2
    );
    assert!(recorder
        .content_types()
        .iter()
        .all(|t| t == "application/x-ndjson"));
}

/// A 429's `Retry-After` is honoured (instead of the 1 ms backoff), capped by
/// `max_backoff_secs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_up_to_the_cap() {
    let (addr, recorder) = Recorder::start(&[(ANY_PATH, 429, "slow down")]).await;
    let router = Router::start(&format!(
        r#"
[sources.after_in]
type = "tcp"
address = "127.0.0.1:0"

[sinks.after_http]
type = "http"
inputs = ["after_in"]
uri = "http://{addr}/ingest"
retry = {{ initial_backoff_ms = 1, max_backoff_secs = 1 }}
"#
    ))
    .await;
    let started = std::time::Instant::now();
    send_lines(router.addr("after_in"), std::iter::once("late".to_string())).await;
    wait_until("event delivered", || {
        counter("component_sent_events_total", "after_http", None) == 1
    })
    .await;
    let elapsed = started.elapsed();
    router.stop().await;
    assert_eq!(recorder.messages(), ["late"]);
    assert!(
        elapsed >= std::time::Duration::from_millis(900),
        "retried after {elapsed:?}, before Retry-After (capped at 1 s)"
    );
    assert_eq!(counter("component_retries_total", "after_http", None), 1);
}

/// A 400 is fatal: the events go to `ID.dead_letter` with the status and the response body
/// in the reason, without retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_go_to_dead_letter() {
    let (addr, recorder) = Recorder::start(&[(ANY_PATH, 400, "bad payload: no field x")]).await;
    let dir = tempdir();
    let dead = dir.path().join("dead.log");
    let router = Router::start(&format!(
        r#"
[sources.fatal_in]
type = "tcp"
address = "127.0.0.1:0"

[sinks.fatal_http]
type = "http"
inputs = ["fatal_in"]
uri = "http://{addr}/ingest"
encoding = "json_array"

[sinks.fatal_dead]
type = "file"
inputs = ["fatal_http.dead_letter"]
path = "{}"
"#,
        dead.display()
    ))
    .await;
    send_lines(
        router.addr("fatal_in"),
        ["one", "two"].map(String::from).into_iter(),
    )
    .await;
    wait_until("dead letters written", || {
        counter("component_sent_events_total", "fatal_dead", None) == 2
    })
    .await;
    router.stop().await;
    let letters: Vec<serde_json::Value> = read_lines(&dead)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0]["message"], "one");
    assert_eq!(letters[1]["message"], "two");
    let info = &letters[0]["dead_letter"];
    assert_eq!(info["component_id"], "fatal_http");
    assert_eq!(info["reason_code"], "fatal");
    let reason = info["reason"].as_str().unwrap();
    assert!(reason.contains("400"), "{reason}");
    assert!(reason.contains("bad payload: no field x"), "{reason}");
    assert!(recorder.lines().is_empty());
    assert_eq!(counter("component_retries_total", "fatal_http", None), 0);
    assert_eq!(
        counter("component_dead_lettered_events_total", "fatal_http", None),
        2
    );
}

/// A `json_array` body is one JSON array with `Content-Type: application/json`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_array_encoding() {
    let (addr, recorder) = Recorder::start(&[]).await;
    let router = Router::start(&format!(
        r#"
[sources.array_in]
type = "tcp"
address = "127.0.0.1:0"

[sinks.array_http]
type = "http"
inputs = ["array_in"]
uri = "http://{addr}/"
encoding = "json_array"
compression = "gzip"
"#
    ))
    .await;
    send_lines(
        router.addr("array_in"),
        ["a", "b"].map(String::from).into_iter(),
    )
    .await;
    wait_until("events delivered", || {
        counter("component_sent_events_total", "array_http", None) == 2
    })
    .await;
    router.stop().await;
    let bodies = recorder.lines();
    let messages: Vec<String> = bodies
        .iter()
        .flat_map(|body| {
            let array: Vec<serde_json::Value> = serde_json::from_str(body).unwrap();
            array
                .into_iter()
                .map(|e| e["message"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(messages, ["a", "b"]);
    assert!(recorder
        .content_types()
        .iter()
        .all(|t| t == "application/json"));
}

#[test]
fn config_errors_name_the_field() {
    let cases = [
        ("uri = \"ftp://example.com/logs\"", "field `uri`"),
        ("uri = \"not a uri\"", "field `uri`"),
        ("uri = \"localhost:8080\"", "field `uri`"),
        (
            "uri = \"http://127.0.0.1:1/\"\nbatch_max_events = 0",
            "field `batch_max_events`",
        ),
        (
            "uri = \"http://127.0.0.1:1/\"\nbatch_max_bytes = 0",
            "field `batch_max_bytes`",
        ),
        (
            "uri = \"http://127.0.0.1:1/\"\nencoding = \"xml\"",
            "field `encoding`",
        ),
        (
            "uri = \"http://127.0.0.1:1/\"\nheaders = { \"bad name\" = \"v\" }",
            "field `headers.bad name`",
        ),
        ("uri = \"http://127.0.0.1:1/\"\nurl = \"x\"", "field `url`"),
    ];
    for (body, expected) in cases {
        let toml = format!(
            "[sources.in]\ntype = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n[sinks.out]\ntype = \"http\"\ninputs = [\"in\"]\n{body}\n"
        );
        let errors = match Pipeline::from_str("broken.toml", &toml, |_| None) {
            Ok(_) => panic!("{body}: accepted"),
            Err(errors) => errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        };
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{body}: {errors:?}"
        );
    }
    let good = "[sources.in]\ntype = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n[sinks.out]\ntype = \"http\"\ninputs = [\"in\"]\nuri = \"http://127.0.0.1:8080/v1/logs\"\n";
    assert!(Pipeline::from_str("good.toml", good, |_| None).is_ok());
}
