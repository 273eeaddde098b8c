//! OpenTelemetry logs into the http source: the OpenTelemetry Python SDK's own OTLP/HTTP
//! exporter (protobuf) posts to `/v1/logs`, as an instrumented app would, and every record
//! arrives with its fields mapped by the semantic conventions; the OTLP JSON form is read on
//! the same path.

use std::process::Command;

use crate::store::http;
use crate::util::{read_lines, repo_root, services_required, tempdir, wait_until, Router};

/// Whether python3 has the OpenTelemetry SDK and exporter; fails when services are required.
fn sdk_available() -> bool {
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
