//! OpenTelemetry logs into the http source: the OpenTelemetry Python SDK's own OTLP/HTTP
//! exporter (protobuf) posts to `/v1/logs`, as an instrumented app would, and every record
//! arrives with its fields mapped by the semantic conventions; the OTLP JSON form is read on
//! the same path; bad requests (malformed protobuf, gzip bombs, other content types) are
//! refused with their reason. Oversize bodies are the http source's, tested in `http.rs`.

use std::process::Command;

use crate::store::{http, json};
use crate::util::{read_lines, repo_root, services_required, tempdir, wait_until, Router, TIMEOUT};

/// Whether python3 has the OpenTelemetry SDK and exporter; fails when services are required.
pub(crate) fn sdk_available() -> bool {
    let found = Command::new("python3")
        .args([
            "-c",
            "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            !services_required(),
            "the OpenTelemetry SDK for python3 is required (SLUICE_REQUIRE_SERVICES is set) but missing"
        );
        println!("skipping: the OpenTelemetry python SDK is missing (run scripts/test)");
    }
    found
}

async fn router(out: &std::path::Path) -> Router {
    Router::start(&format!(
        r#"
[sources.otel]
type = "http"
address = "127.0.0.1:0"

[sinks.otel_out]
type = "file"
inputs = ["otel"]
path = "{}"
"#,
        out.display()
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_exports_logs_by_the_semantic_conventions() {
    if !sdk_available() {
        return;
    }
    let dir = tempdir();
    let out = dir.path().join("otel.log");
    let router = router(&out).await;
    let endpoint = format!("http://{}/v1/logs", router.addr("otel"));
    let script = repo_root().join("tests/otlp/emit.py");
    let status = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .args([&endpoint, "20"])
            .status()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    assert!(status.success(), "the exporter reported a failed export");
    wait_until("every record written", || read_lines(&out).len() == 20).await;
    let events: Vec<serde_json::Value> = read_lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (i, event) in events.iter().enumerate() {
        assert_eq!(
            event["message"],
            format!("payment {i} processed"),
            "{event}"
        );
        assert_eq!(event["level"], if i % 2 == 1 { "error" } else { "info" });
        assert_eq!(
            event["severity_text"],
            if i % 2 == 1 { "ERROR" } else { "INFO" }
        );
        assert_eq!(event["app"], "checkout");
        assert_eq!(event["instance"], "pod-7");
        assert_eq!(event["kubernetes"]["pod_namespace"], "shop");
        assert_eq!(event["scope"]["name"], "payments");
        assert_eq!(event["attributes"]["order.id"], i);
        assert!(
            event["timestamp"]
                .as_str()
                .is_some_and(|t| t.starts_with("20")),
            "{event}"
        );
        assert!(
            event["resource"]["attributes"]["telemetry.sdk.language"] == "python",
            "other resource attributes are kept: {event}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_json_is_read_and_malformed_requests_are_refused() {
    let dir = tempdir();
    let out = dir.path().join("otel.log");
    let router = router(&out).await;
    let addr = router.addr("otel");
    let body = br#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},"scopeLogs":[{"logRecords":[{"timeUnixNano":"1795000000000000000","severityNumber":17,"body":{"stringValue":"db down"},"traceId":"5b8efff798038103d269b633813fc60c"}]}]}]}"#;
    let (status, text) = tokio::task::spawn_blocking(move || http(addr, "POST", "/v1/logs", body))
        .await
        .unwrap();
    assert_eq!((status, text.as_str()), (200, "{}"));
    wait_until("the record written", || read_lines(&out).len() == 1).await;
    let event: serde_json::Value = serde_json::from_str(&read_lines(&out)[0]).unwrap();
    assert_eq!(event["message"], "db down");
    assert_eq!(event["level"], "error");
    assert_eq!(event["app"], "api");
    assert_eq!(event["trace_id"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(event["timestamp"], "2026-11-18T11:06:40.000000Z");

    let bad = br#"{"resourceLogs": 5}"#;
    let (status, text) = tokio::task::spawn_blocking(move || http(addr, "POST", "/v1/logs", bad))
        .await
        .unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("invalid OTLP JSON"), "{text}");
    // An NDJSON event is still an event, not an OTLP request.
    let ndjson = b"{\"message\":\"plain\",\"resource\":1}\n";
    let (status, _) = tokio::task::spawn_blocking(move || http(addr, "POST", "/v1/logs", ndjson))
        .await
        .unwrap();
    assert_eq!(status, 200);
    wait_until("the NDJSON event written", || read_lines(&out).len() == 2).await;
}

/// A log is found from its trace: the trace id an OTLP record carries is a field of the
/// store like any other, so `trace_id:<hex>` finds that record and no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_log_is_found_by_its_trace_id() {
    let dir = tempdir();
    let router = Router::start(&format!(
        r#"
[api]
address = "127.0.0.1:0"

[sources.otel]
type = "http"
address = "127.0.0.1:0"

[sinks.store]
type = "store"
inputs = ["otel"]
path = "{}"
commit_interval_ms = 20
"#,
        dir.path().display()
    ))
    .await;
    let (ingest, api) = (router.addr("otel"), router.addr("api"));
    let record = |trace: &str, body: &str| {
        format!(
            r#"{{"timeUnixNano":"1795000000000000000","severityNumber":9,"body":{{"stringValue":"{body}"}},"traceId":"{trace}","spanId":"0102030405060708"}}"#
        )
    };
    let body = format!(
        r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"checkout"}}}}]}},"scopeLogs":[{{"logRecords":[{},{}]}}]}}]}}"#,
        record("5b8efff798038103d269b633813fc60c", "payment authorised"),
        record("0af7651916cd43dd8448eb211c80319c", "cart emptied"),
    );
    let (status, text) =
        tokio::task::spawn_blocking(move || http(ingest, "POST", "/v1/logs", body.as_bytes()))
            .await
            .unwrap();
    assert_eq!((status, text.as_str()), (200, "{}"));
    let query = move |q: &'static str| {
        tokio::task::spawn_blocking(move || {
            let path = format!("/v1/query?q={q}&from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z");
            let (status, body) = http(api, "GET", &path, b"");
            assert_eq!(status, 200, "{body}");
            json(&body)
        })
    };
    // Polled, as `wait_until` polls, but off the runtime's threads: the router answers on them.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while query("app:checkout").await.unwrap()["total"] != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the records never became searchable"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let found = query("trace_id:5b8efff798038103d269b633813fc60c")
        .await
        .unwrap();
    assert_eq!(found["total"], 1, "{found}");
    let event = &found["events"][0];
    assert_eq!(event["message"], "payment authorised", "{found}");
    assert_eq!(event["span_id"], "0102030405060708", "{found}");
}

/// POSTs `body` to `/v1/logs` with extra header lines; the status and the answer's body.
fn post(addr: std::net::SocketAddr, headers: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(crate::util::TIMEOUT))
        .expect("timeout");
    let head = format!(
        "POST /v1/logs HTTP/1.0\r\nHost: localhost\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("writes");
    // The router may answer (413) before reading everything.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_otlp_requests_are_refused_and_counted_and_affect_nothing_else() {
    use std::io::Write;

    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use prost::Message;

    let dir = tempdir();
    let out = dir.path().join("otel.log");
    let router = Router::start(&format!(
        r#"
[sources.otel_bad]
type = "http"
address = "127.0.0.1:0"
max_body_bytes = 65536

[sinks.otel_out]
type = "file"
inputs = ["otel_bad"]
path = "{}"
"#,
        out.display()
    ))
    .await;
    let addr = router.addr("otel_bad");
    let protobuf = "Content-Type: application/x-protobuf\r\n";
    let gzip_protobuf = "Content-Type: application/x-protobuf\r\nContent-Encoding: gzip\r\n";
    let record = |message: &str| ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(message.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    // 1 MiB of a repeated string field inflates from about 1 KiB of gzip.
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    bomb.write_all(&record(&"a".repeat(1 << 20)).encode_to_vec())
        .unwrap();
    let bomb = bomb.finish().unwrap();
    assert!(bomb.len() < 65536);
    // A field number no OTLP version defines (unknown fields are skipped, as protobuf says).
    let mut unknown = record("with an unknown field").encode_to_vec();
    unknown.extend_from_slice(&[0xf8, 0x3e, 0x01]); // field 999, varint 1
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "malformed protobuf",
            protobuf,
            b"\x0a\xff\xff\xff".to_vec(),
            400,
            "invalid OTLP protobuf",
        ),
        (
            "not gzip",
            gzip_protobuf,
            b"plain".to_vec(),
            400,
            "invalid gzip body",
        ),
        ("gzip bomb", gzip_protobuf, bomb, 413, "max_body_bytes"),
        (
            "grpc's content type",
            "Content-Type: application/grpc\r\n",
            record("x").encode_to_vec(),
            415,
            "unsupported content-type",
        ),
        (
            "protobuf under another name",
            "Content-Type: application/protobuf\r\n",
            record("x").encode_to_vec(),
            415,
            "unsupported content-type",
        ),
        ("unknown fields", protobuf, unknown, 200, ""),
        (
            "a time past 2262",
            "Content-Type: application/json\r\n",
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[
                {"timeUnixNano":"18446744073709551615","body":{"stringValue":"far future"}},
                {"body":{"stringValue":"now"}}]}]}]}"#
                .to_vec(),
            200,
            r#""rejectedLogRecords":"1""#,
        ),
    ];
    for (name, headers, body, status, needle) in cases {
        let (got, text) = tokio::task::spawn_blocking(move || post(addr, headers, &body))
            .await
            .unwrap();
        assert_eq!(got, status, "{name}: {text}");
        assert!(text.contains(needle), "{name}: {text}");
    }
    let (got, _) = tokio::task::spawn_blocking(move || {
        post(
            addr,
            protobuf,
            &record("after the bad ones").encode_to_vec(),
        )
    })
    .await
    .unwrap();
    assert_eq!(got, 200);
    wait_until("the good records written", || read_lines(&out).len() == 3).await;
    let messages: Vec<serde_json::Value> = read_lines(&out)
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["message"].clone())
        .collect();
    assert_eq!(
        messages,
        ["with an unknown field", "now", "after the bad ones"]
    );
    let refused = sluice::telemetry::counter_value(
        "component_http_responses_total",
        &[("component_id", "otel_bad"), ("code", "413")],
    );
    assert_eq!(refused, 1, "the refusal is counted");
    let unmappable = sluice::telemetry::counter_value(
        "component_errors_total",
        &[
            ("component_id", "otel_bad"),
            ("reason", "unmappable_record"),
        ],
    );
    assert_eq!(unmappable, 1);
}
