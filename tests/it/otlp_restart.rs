//! A router stopped mid-run behind the OpenTelemetry Python SDK's OTLP/HTTP exporter, and
//! its OTLP/gRPC one (`tests/otlp/emit_across_restart.py`): the router drains on SIGTERM
//! while batches are being exported, the exporter meets a closed port and retries with its
//! backoff (over HTTP it retries connection errors and 429/502/503/504, over gRPC
//! UNAVAILABLE and OTLP's other retryable codes, up to its timeout), the router starts
//! again on the same port, and the exports carry on. Every record of an export the SDK saw
//! succeed is in the router's output (a record may be there twice, after a retry of an
//! export whose answer was lost; counted, not refused).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use serde_json::Value;

use crate::otlp::sdk_available;
use crate::otlp_grpc::grpc_sdk_available;
use crate::util::{free_port, read_lines, repo_root, sluice_up, spawn_router, tempdir, TIMEOUT};

const BATCH: usize = 50;

/// The script's stdout, line by line, and every line seen so far.
struct Script {
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Script {
    /// Reads lines until one satisfies `wanted`, which it returns.
    fn until(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(TIMEOUT)
                .unwrap_or_else(|_| panic!("no line {what}; seen: {:?}", self.seen));
            self.seen.push(line.clone());
            if wanted(&line) {
                return line;
            }
        }
    }
}

#[test]
fn the_sdk_retries_across_a_router_restart_and_loses_nothing_acknowledged() {
    if sdk_available() {
        across_a_restart(false);
    }
}

#[test]
fn the_sdk_retries_over_grpc_across_a_router_restart_and_loses_nothing_acknowledged() {
    if grpc_sdk_available() {
        across_a_restart(true);
    }
}

fn across_a_restart(grpc: bool) {
    let dir = tempdir();
    let out = dir.path().join("out.log");
    let (port, grpc_port) = (free_port(), free_port());
    let config = dir.path().join("router.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[sources.otel_restart]
type = "http"
address = "127.0.0.1:{port}"
grpc_address = "127.0.0.1:{grpc_port}"

[sinks.otel_restart_out]
type = "file"
inputs = ["otel_restart"]
path = "{}"
"#,
            out.display()
        ),
    )
    .unwrap();
    let router = spawn_router(sluice_up(&config));

    let stderr = std::fs::File::create(dir.path().join("script.err")).unwrap();
    let mut child = Command::new("python3")
        .arg(repo_root().join("tests/otlp/emit_across_restart.py"))
        .args(match grpc {
            false => [
                format!("http://127.0.0.1:{port}/v1/logs"),
                BATCH.to_string(),
                "http".into(),
            ],
            true => [
                format!("http://127.0.0.1:{grpc_port}"),
                BATCH.to_string(),
                "grpc".into(),
            ],
        })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("python3 runs");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut script = Script {
        lines,
        seen: Vec::new(),
    };
    script.until("ready", |l| l == "ready");

    writeln!(stdin, "batches 4").unwrap();
    script.until("after four batches", |l| l == "done");
    assert!(
        script.seen.iter().all(|l| !l.contains("failed")),
        "{:?}",
        script.seen
    );

    // Mid-run: once the next group has begun, the router drains and exits.
    writeln!(stdin, "batches 6").unwrap();
    script.until("the fifth batch", |l| l.starts_with("exported 5 "));
    router.signal("-TERM");
    let (status, log) = router.finish();
    assert!(status.success(), "a graceful stop: {log}");
    // Exports that can only meet the closed port, whatever the drain let through.
    writeln!(stdin, "batches 2").unwrap();
    let retry = script.until("a retry against the closed port", |l| {
        l.starts_with("retrying") && l.contains("refused")
    });
    let router = spawn_router(sluice_up(&config));
    script.until("the six batches", |l| l == "done");
    script.until("the last two batches", |l| l == "done");
    drop(stdin);
    let summary: Value = serde_json::from_str(&script.until("the summary", |l| l.starts_with('{')))
        .expect("a JSON summary");
    assert!(child.wait().unwrap().success());
    router.signal("-TERM");
    let (status, log) = router.finish();
    assert!(status.success(), "{log}");

    let numbers = |key: &str| -> Vec<u64> {
        summary[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect()
    };
    let (succeeded, failed) = (numbers("succeeded"), numbers("failed"));
    let retries = summary["retries"].as_u64().unwrap();
    let mut written: BTreeMap<u64, usize> = BTreeMap::new();
    for line in read_lines(&out) {
        let event: Value = serde_json::from_str(&line).unwrap();
        let message = event["message"].as_str().unwrap();
        let n = message.strip_prefix("record ").unwrap().parse().unwrap();
        *written.entry(n).or_default() += 1;
    }
    let missing: Vec<u64> = succeeded
        .iter()
        .filter(|n| !written.contains_key(n))
        .copied()
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert!(retries >= 1, "the exporter retried: {:?}", script.seen);
    // The router came back within the exporter's timeout: it gave up on nothing.
    assert!(failed.is_empty(), "exports given up: {failed:?}");
    assert_eq!(succeeded.len(), 12 * BATCH);
    let duplicates = written.values().filter(|times| **times > 1).count();
    println!(
        "{} records, {retries} retries, {duplicates} written twice; {retry}",
        succeeded.len()
    );
}
