//! OTLP/gRPC on the http source's `grpc_address`, with real gRPC clients: the OpenTelemetry
//! Python SDK's own gRPC exporter (through Python's logging bridge, inside a span), whose
//! every record arrives mapped and whose exports succeed; and grpcio sending raw bytes
//! (`tests/otlp/grpc_send.py`): malformed protobuf, oversize messages, gzip bombs, missing
//! and unknown tokens, an unknown method, each refused with its status, counted, and
//! nothing else affected. The listener on TLS, with the `opentelemetry` sink over gRPC and
//! the SDK as clients, each refused without the CA.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use prost::Message;
use serde_json::Value;

use crate::util::{
    free_port, read_lines, repo_root, services_required, tempdir, wait_until, Router,
};

/// Whether python3 has the SDK's gRPC exporter (and grpcio); fails when services are
/// required.
pub(crate) fn grpc_sdk_available() -> bool {
    let found = Command::new("python3")
        .args([
            "-c",
            "import grpc, opentelemetry.sdk, opentelemetry.exporter.otlp.proto.grpc",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            !services_required(),
            "the OpenTelemetry SDK's gRPC exporter for python3 is required (SLUICE_REQUIRE_SERVICES is set) but missing"
        );
        println!("skipping: the OpenTelemetry python gRPC exporter is missing (run scripts/test)");
    }
    found
}

async fn router(id: &str, grpc: &str, out: &Path, extra: &str) -> Router {
    Router::start(&format!(
        r#"
[sources.{id}]
type = "http"
address = "127.0.0.1:0"
grpc_address = "{grpc}"
{extra}

[sinks.{id}_out]
type = "file"
inputs = ["{id}"]
path = "{}"
"#,
        out.display()
    ))
    .await
}

fn events(path: &Path) -> Vec<Value> {
    read_lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).expect("json lines"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_exports_logs_over_grpc_with_their_trace_context() {
    if !grpc_sdk_available() {
        return;
    }
    let dir = tempdir();
    let out = dir.path().join("otel.log");
    let grpc = format!("127.0.0.1:{}", free_port());
    let _router = router("otel_grpc", &grpc, &out, "").await;
    let script = repo_root().join("tests/otlp/emit.py");
    let endpoint = format!("http://{grpc}");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .args([&endpoint, "20", "grpc"])
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "the exporter reported a failed export: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ids = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let (trace_id, span_id) = ids.split_once(' ').expect("TRACE SPAN");
    // The exporter answers only after the acknowledgement: every record is written.
    let events = events(&out);
    assert_eq!(events.len(), 20);
    for (i, event) in events.iter().enumerate() {
        assert_eq!(
            event["message"],
            format!("payment {i} processed"),
            "{event}"
        );
        assert_eq!(event["level"], if i % 2 == 1 { "error" } else { "info" });
        assert_eq!(event["app"], "checkout");
        assert_eq!(event["instance"], "pod-7");
        assert_eq!(event["kubernetes"]["pod_namespace"], "shop");
        assert_eq!(event["scope"]["name"], "payments");
        assert_eq!(event["attributes"]["order.id"], i);
        assert_eq!(event["trace_id"], trace_id, "{event}");
        assert_eq!(event["span_id"], span_id, "{event}");
        // W3C flags: sampled (1), and the SDK's random trace id (2).
        let flags = event["trace_flags"].as_i64().expect("trace flags");
        assert_eq!(flags & 1, 1, "sampled: {event}");
        assert_eq!(
            event["resource"]["attributes"]["telemetry.sdk.language"],
            "python"
        );
    }
    let ok = sluice::telemetry::counter_value(
        "component_grpc_responses_total",
        &[("component_id", "otel_grpc"), ("code", "Ok")],
    );
    assert_eq!(ok, 20, "one export per record (SimpleLogRecordProcessor)");
}

/// One export call of `body` by grpcio: its JSON answer line.
async fn send(grpc: &str, body: Vec<u8>, gzip: bool, token: &str) -> Value {
    let dir = tempdir();
    let path = dir.path().join("body.bin");
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(&body))
        .expect("body written");
    let script = repo_root().join("tests/otlp/grpc_send.py");
    let mut command = Command::new("python3");
    command.arg(script).arg(grpc).arg(&path);
    command.arg(if gzip { "gzip" } else { "none" });
    if !token.is_empty() {
        command.arg(token);
    }
    let output = tokio::task::spawn_blocking(move || command.output().expect("python3 runs"))
        .await
        .unwrap();
    drop(dir);
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|_| {
        panic!(
            "no answer line: {text} {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn request(message: &str) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
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
    }
}

/// A bad request: its name, body, whether gzipped, token, the status code expected, and
/// words its details must hold.
type Case = (
    &'static str,
    Vec<u8>,
    bool,
    &'static str,
    &'static str,
    &'static str,
);

fn responses(id: &str, code: &str) -> u64 {
    sluice::telemetry::counter_value(
        "component_grpc_responses_total",
        &[("component_id", id), ("code", code)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_grpc_requests_get_a_clear_status_are_counted_and_affect_nothing_else() {
    if !grpc_sdk_available() {
        return;
    }
    let dir = tempdir();
    let out = dir.path().join("otel.log");
    let grpc = format!("127.0.0.1:{}", free_port());
    let _router = router(
        "otel_grpc_bad",
        &grpc,
        &out,
        "max_body_bytes = 65536\ntokens = { \"s3cret\" = \"billing\" }",
    )
    .await;
    let id = "otel_grpc_bad";
    // 1 MiB of one repeated string inflates from about 1 KiB of gzip.
    let bomb = request(&"a".repeat(1 << 20)).encode_to_vec();
    let oversize = request(&"b".repeat(100_000)).encode_to_vec();
    let mut unknown = request("with an unknown field").encode_to_vec();
    unknown.extend_from_slice(&[0xf8, 0x3e, 0x01]); // field 999, varint 1
    let far_future = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    LogRecord {
                        time_unix_nano: u64::MAX,
                        ..request("far future").resource_logs[0].scope_logs[0].log_records[0]
                            .clone()
                    },
                    request("now").resource_logs[0].scope_logs[0].log_records[0].clone(),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let good = "s3cret";
    let cases: Vec<Case> = vec![
        (
            "malformed protobuf",
            b"\x0a\xff\xff\xff".to_vec(),
            false,
            good,
            "INVALID_ARGUMENT",
            "invalid OTLP protobuf",
        ),
        (
            "oversize message",
            oversize,
            false,
            good,
            "RESOURCE_EXHAUSTED",
            "max_body_bytes",
        ),
        (
            "gzip bomb",
            bomb,
            true,
            good,
            "RESOURCE_EXHAUSTED",
            "max_body_bytes",
        ),
        (
            "no token",
            request("x").encode_to_vec(),
            false,
            "",
            "UNAUTHENTICATED",
            "token is required",
        ),
        (
            "unknown token",
            request("x").encode_to_vec(),
            false,
            "guess",
            "UNAUTHENTICATED",
            "unknown token",
        ),
        ("unknown fields", unknown, false, good, "OK", ""),
        (
            "a time past 2262",
            far_future.encode_to_vec(),
            true,
            good,
            "OK",
            "",
        ),
    ];
    for (name, body, gzip, token, code, needle) in cases {
        let answer = send(&grpc, body, gzip, token).await;
        assert_eq!(answer["code"], code, "{name}: {answer}");
        assert!(
            answer["details"].as_str().unwrap().contains(needle),
            "{name}: {answer}"
        );
        if name == "a time past 2262" {
            assert_eq!(answer["rejected"], 1, "{answer}");
            assert!(
                answer["message"].as_str().unwrap().contains("1 of 2"),
                "{answer}"
            );
        }
    }
    let answer = send(
        &grpc,
        request("after the bad ones").encode_to_vec(),
        false,
        good,
    )
    .await;
    assert_eq!(answer["code"], "OK", "{answer}");
    assert_eq!(answer["rejected"], 0, "{answer}");
    // Every answer came after the file write: the good records are there, nothing else.
    let events = events(&out);
    let messages: Vec<Value> = events.iter().map(|e| e["message"].clone()).collect();
    assert_eq!(
        messages,
        ["with an unknown field", "now", "after the bad ones"]
    );
    assert!(
        events.iter().all(|e| e["app"] == "billing"),
        "the token's app"
    );
    assert_eq!(responses(id, "InvalidArgument"), 1);
    assert_eq!(responses(id, "ResourceExhausted"), 2);
    assert_eq!(responses(id, "Unauthenticated"), 2);
    assert_eq!(responses(id, "Ok"), 3);
    wait_until("the unmappable record counted", || {
        sluice::telemetry::counter_value(
            "component_errors_total",
            &[("component_id", id), ("reason", "unmappable_record")],
        ) == 1
    })
    .await;
}

/// The sink over gRPC against a router's own refusals: an app over its rate limit gets
/// RESOURCE_EXHAUSTED with a `RetryInfo`, after which the sink retries once (not on its own
/// 1 ms backoff); a sink without the token gets UNAUTHENTICATED and dead-letters at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_sink_waits_as_retry_info_says_and_dead_letters_a_refusal() {
    use tokio::io::AsyncWriteExt;

    use crate::util::counter;

    let dir = tempdir();
    let out = dir.path().join("b.log");
    let grpc = format!("127.0.0.1:{}", free_port());
    let _b = router(
        "otlp_gs_b",
        &grpc,
        &out,
        "tokens = { \"tok\" = \"shop\" }\nrate_limit = { events_per_sec = 1 }",
    )
    .await;
    let dead = dir.path().join("dead.log");
    let a = Router::start(&format!(
        r#"
[sources.otlp_gs_in]
type = "tcp"
address = "127.0.0.1:0"

[sinks.otlp_gs_out]
type = "opentelemetry"
inputs = ["otlp_gs_in"]
protocol = "grpc"
uri = "http://{grpc}"
compression = "gzip"
headers = {{ authorization = "Bearer tok" }}
retry = {{ initial_backoff_ms = 1, max_backoff_secs = 5 }}

[sinks.otlp_gs_anon]
type = "opentelemetry"
inputs = ["otlp_gs_in"]
protocol = "grpc"
uri = "http://{grpc}"
retry = {{ initial_backoff_ms = 1, max_backoff_secs = 5 }}

[sinks.otlp_gs_dead]
type = "file"
inputs = ["otlp_gs_anon.dead_letter"]
path = "{}"
"#,
        dead.display()
    ))
    .await;
    let input = a.addr("otlp_gs_in");
    let send = |line: &'static str| async move {
        let mut stream = tokio::net::TcpStream::connect(input).await.unwrap();
        stream.write_all(line.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
    };
    send("first\n").await;
    wait_until("the first event exported", || {
        counter("component_sent_events_total", "otlp_gs_out", None) == 1
    })
    .await;
    // Within the second the bucket needs to refill: refused with a RetryInfo of 1 s.
    send("second\n").await;
    wait_until("the second event exported", || {
        counter("component_sent_events_total", "otlp_gs_out", None) == 2
    })
    .await;
    assert_eq!(
        counter("component_retries_total", "otlp_gs_out", None),
        1,
        "one retry, after the RetryInfo's delay"
    );
    assert_eq!(responses("otlp_gs_b", "ResourceExhausted"), 1);
    let written: Vec<Value> = events(&out);
    assert_eq!(written.len(), 2);
    assert!(written.iter().all(|e| e["app"] == "shop"));

    wait_until(
        "both events dead-lettered by the sink without a token",
        || read_lines(&dead).len() == 2,
    )
    .await;
    let letter: Value = serde_json::from_str(&read_lines(&dead)[0]).unwrap();
    let reason = letter["dead_letter"]["reason"].as_str().unwrap();
    assert!(reason.contains("Unauthenticated"), "{reason}");
    assert_eq!(counter("component_retries_total", "otlp_gs_anon", None), 0);
    a.stop().await;
}

/// Certificates for a gRPC listener on TLS: the server's for `localhost`, the CA that signed
/// it, and another CA that did not, each written to `dir`; (crt, key, ca, other ca).
fn tls_files(dir: &Path) -> [std::path::PathBuf; 4] {
    use crate::certs::issue;

    let (ca, ca_cert, ca_key) = issue(&["sluice otlp ca"], None);
    let (server, _, _) = issue(&["localhost"], Some((&ca_cert, &ca_key)));
    let (other_ca, _, _) = issue(&["someone else's ca"], None);
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    [
        write("server.crt", &server.cert_pem),
        write("server.key", &server.key_pem),
        write("ca.crt", &ca.cert_pem),
        write("other-ca.crt", &other_ca.cert_pem),
    ]
}

/// The gRPC listener on TLS: the sink with `protocol = "grpc"` over `https://`, trusting
/// the listener's CA, delivers every event acknowledged; one trusting another CA cannot
/// connect and dead-letters its events after its one attempt, and nothing of it arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_sink_delivers_over_tls_and_a_client_without_the_ca_fails() {
    use tokio::io::AsyncWriteExt;

    use crate::util::counter;

    let dir = tempdir();
    let [crt, key, ca, other_ca] = tls_files(dir.path());
    let out = dir.path().join("b.log");
    let port = free_port();
    let tls = format!(
        "tls = {{ crt_file = \"{}\", key_file = \"{}\" }}",
        crt.display(),
        key.display()
    );
    let _b = router("otlp_tls_b", &format!("127.0.0.1:{port}"), &out, &tls).await;
    let dead = dir.path().join("dead.log");
    let a = Router::start(&format!(
        r#"
[sources.otlp_tls_in]
type = "tcp"
address = "127.0.0.1:0"

[sinks.otlp_tls_out]
type = "opentelemetry"
inputs = ["otlp_tls_in"]
protocol = "grpc"
uri = "https://localhost:{port}"
compression = "gzip"
tls = {{ ca_file = "{}" }}
request = {{ concurrency = 2 }}

[sinks.otlp_tls_stranger]
type = "opentelemetry"
inputs = ["otlp_tls_in"]
protocol = "grpc"
uri = "https://localhost:{port}"
tls = {{ ca_file = "{}" }}
retry = {{ max_attempts = 1 }}

[sinks.otlp_tls_dead]
type = "file"
inputs = ["otlp_tls_stranger.dead_letter"]
path = "{}"
"#,
        ca.display(),
        other_ca.display(),
        dead.display()
    ))
    .await;
    let mut stream = tokio::net::TcpStream::connect(a.addr("otlp_tls_in"))
        .await
        .unwrap();
    let lines: String = (0..50).map(|i| format!("secret {i}\n")).collect();
    stream.write_all(lines.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
    wait_until("every event exported over TLS", || {
        counter("component_sent_events_total", "otlp_tls_out", None) == 50
    })
    .await;
    wait_until("the stranger's events dead-lettered", || {
        read_lines(&dead).len() == 50
    })
    .await;
    a.stop().await;
    // Acknowledged only after B answered, and B answered after writing.
    let written: Vec<String> = events(&out)
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        written.len(),
        50,
        "only the trusting sink's events: {written:?}"
    );
    assert!((0..50).all(|i| written.contains(&format!("secret {i}"))));
    let letter: Value = serde_json::from_str(&read_lines(&dead)[0]).unwrap();
    let reason = letter["dead_letter"]["reason"].as_str().unwrap();
    assert!(reason.contains("invalid peer certificate"), "{reason}");
    assert_eq!(
        counter("component_sent_events_total", "otlp_tls_stranger", None),
        0
    );
}

/// The Python SDK's gRPC exporter against the same TLS listener: with the CA
/// (`OTEL_EXPORTER_OTLP_CERTIFICATE`) every record arrives and every export succeeds;
/// with no CA but the system's it cannot export.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_exports_over_grpc_with_tls_only_when_it_trusts_the_ca() {
    if !grpc_sdk_available() {
        return;
    }
    let dir = tempdir();
    let [crt, key, ca, _] = tls_files(dir.path());
    let out = dir.path().join("otel.log");
    let port = free_port();
    let tls = format!(
        "tls = {{ crt_file = \"{}\", key_file = \"{}\" }}",
        crt.display(),
        key.display()
    );
    let _router = router("otel_grpc_tls", &format!("127.0.0.1:{port}"), &out, &tls).await;
    let emit = |ca: Option<std::path::PathBuf>| {
        let mut command = Command::new("python3");
        command.arg(repo_root().join("tests/otlp/emit.py")).args([
            &format!("https://localhost:{port}"),
            "5",
            "grpc",
        ]);
        command.env_remove("OTEL_EXPORTER_OTLP_CERTIFICATE");
        if let Some(ca) = ca {
            command.env("OTEL_EXPORTER_OTLP_CERTIFICATE", ca);
        }
        tokio::task::spawn_blocking(move || command.output().expect("python3 runs"))
    };
    let trusting = emit(Some(ca)).await.unwrap();
    assert!(
        trusting.status.success(),
        "an export failed: {}",
        String::from_utf8_lossy(&trusting.stderr)
    );
    assert_eq!(
        events(&out).len(),
        5,
        "every record, written before the answer"
    );
    let stranger = emit(None).await.unwrap();
    assert!(
        !stranger.status.success(),
        "exported without trusting the listener's CA"
    );
    assert_eq!(events(&out).len(), 5, "nothing more arrived");
}
