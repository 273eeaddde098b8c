//! The API listener: /health, /metrics (checked by Prometheus's own `promtool`).

use std::io::{Read, Write};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::util::{counter, have_tool, tempdir, wait_until, Router};

/// A plain HTTP/1.1 GET over a fresh connection; returns (status, body).
pub(crate) fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A plain HTTP/1.1 POST of a text body (octet-stream) with a bearer token; returns the status.
fn http_post_text(addr: std::net::SocketAddr, token: &str, body: &str) -> u16 {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /v1/logs HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_report_the_pipeline() {
    let dir = tempdir();
    let router = Router::start(&format!(
        r#"
[api]
address = "127.0.0.1:0"

[sources.api_tcp]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"

[sources.api_http]
type = "http"
address = "127.0.0.1:0"
tokens = {{ "t0k" = "shop" }}

[sinks.api_out]
type = "file"
inputs = ["api_tcp", "api_http"]
path = "{}/out.log"
buffer = {{ type = "memory", max_bytes = 1048576 }}
"#,
        dir.path().display()
    ))
    .await;
    let mut s = TcpStream::connect(router.addr("api_tcp")).await.unwrap();
    s.write_all(b"{\"a\":1}\n{\"a\":2}\nnot json\n")
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    wait_until("events written", || {
        counter("component_sent_events_total", "api_out", None) == 2
    })
    .await;
    let http = router.addr("api_http");
    let status = tokio::task::spawn_blocking(move || http_post_text(http, "t0k", "one\ntwo\n"))
        .await
        .unwrap();
    assert_eq!(status, 200, "an acknowledged POST");
    let api = router.addr(sluice::topology::API_ID);
    let (health_status, health) = tokio::task::spawn_blocking(move || http_get(api, "/health"))
        .await
        .unwrap();
    assert_eq!(health_status, 200);
    assert!(health.contains("ok"), "{health}");
    let (status, metrics) = tokio::task::spawn_blocking(move || http_get(api, "/metrics"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    for needle in [
        "sluice_component_received_events_total{component_id=\"api_tcp\"} 2",
        "sluice_component_sent_events_total{component_id=\"api_out\"} 4",
        "sluice_component_errors_total{component_id=\"api_tcp\",reason=\"parse_error\"} 1",
        // per-app ingest
        "sluice_component_received_events_by_app_total{component_id=\"api_http\",app=\"shop\"} 2",
        // buffer usage: the sink's queue is drained, and its configured size is reported
        "# TYPE sluice_buffer_usage_bytes gauge",
        "sluice_buffer_usage_bytes{component_id=\"api_out\",buffer=\"memory\"} 0",
        "sluice_buffer_capacity_bytes{component_id=\"api_out\",buffer=\"memory\"} 1048576",
        // acknowledgement latency of the one POST
        "# TYPE sluice_acknowledgement_latency_seconds histogram",
        "sluice_acknowledgement_latency_seconds_count{component_id=\"api_http\"} 1",
        "sluice_acknowledgement_latency_seconds_bucket{component_id=\"api_http\",le=\"+Inf\"} 1",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in:\n{metrics}");
    }
    let (missing, _) = tokio::task::spawn_blocking(move || http_get(api, "/nope"))
        .await
        .unwrap();
    assert_eq!(missing, 404);
    router.stop().await;

    if have_tool("promtool") {
        let (ok, report) = run_with_stdin("promtool", &["check", "metrics"], metrics.as_bytes());
        assert!(ok, "promtool check metrics failed:\n{report}");
    }
}

/// Runs `program args` with `input` on stdin; returns (success, stdout + stderr).
pub(crate) fn run_with_stdin(program: &str, args: &[&str], input: &[u8]) -> (bool, String) {
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A router without a store sink says so: `/v1/query` and friends answer 404 naming the
/// missing sink (and `sluice query` passes that on), `/` is a page linking to `/metrics`
/// rather than JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_without_a_store_says_so() {
    let router = Router::start(
        "[api]\naddress = \"127.0.0.1:0\"\n[sources.ns_in]\ntype = \"tcp\"\naddress = \"127.0.0.1:0\"\n[sinks.ns_out]\ntype = \"blackhole\"\ninputs = [\"ns_in\"]\n",
    )
    .await;
    let api = router.addr("api");
    let (status, body) = tokio::task::spawn_blocking(move || http_get(api, "/v1/query?q=x"))
        .await
        .unwrap();
    assert_eq!(status, 404);
    assert!(body.contains("no store sink"), "{body}");
    let (status, page) = tokio::task::spawn_blocking(move || http_get(api, "/"))
        .await
        .unwrap();
    assert_eq!(status, 404);
    assert!(
        page.contains("<html") && page.contains("href=\"/metrics\""),
        "{page}"
    );
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(crate::util::sluice_bin())
            .args(["query", "--url", &format!("http://{api}"), "level:error"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("no store sink"), "{stderr}");
    router.stop().await;
}
