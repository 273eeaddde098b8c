//! HTTP ingest, driven by a real client (curl): gzip NDJSON, plain text, a Heroku logplex
//! drain body with a retried frame id, and every refusal with its status and reason.

use std::io::Write;

use crate::util::{counter, have_tool, read_lines, tempdir, wait_until, Router};

/// Runs curl against `url` with `args`; returns (status, body).
async fn curl(url: String, args: Vec<String>) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("curl")
            .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", "30"])
            .args(&args)
            .arg(&url)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_ingest_with_curl() {
    if !have_tool("curl") {
        return;
    }
    let dir = tempdir();
    let out = dir.path().join("out.log");
    let router = Router::start(&format!(
        r#"
[sources.http_in]
type = "http"
address = "127.0.0.1:0"
max_body_bytes = 65536
decoding = "auto"

[sinks.http_out]
type = "file"
inputs = ["http_in"]
path = "{}"
"#,
        out.display()
    ))
    .await;
    let url = format!("http://{}/v1/logs", router.addr("http_in"));
    let sent = |n: u64| move || counter("component_sent_events_total", "http_out", None) == n;

    // gzip NDJSON
    let ndjson = dir.path().join("batch.ndjson.gz");
    {
        let file = std::fs::File::create(&ndjson).unwrap();
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        for i in 0..3 {
            writeln!(gz, "{{\"app\":\"web\",\"seq\":{i},\"level\":\"info\"}}").unwrap();
        }
        gz.finish().unwrap();
    }
    let (status, body) = curl(
        url.clone(),
        args(&[
            "-H",
            "Content-Type: application/x-ndjson",
            "-H",
            "Content-Encoding: gzip",
            "--data-binary",
            &format!("@{}", ndjson.display()),
        ]),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"accepted":3}"#));
    // 200 means acknowledged: the events are already written.
    assert!(sent(3)(), "answered before the sink delivered");

    // plain text lines
    let (status, body) = curl(
        url.clone(),
        args(&[
            "-H",
            "Content-Type: text/plain",
            "--data-binary",
            "level=warn msg=one\nplain two\n",
        ]),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"accepted":2}"#));

    // Heroku logplex-1 drain body, then the same frame retried
    let msgs = [
        "<190>1 2026-11-23T10:00:00.000000+00:00 host app web.1 - GET /cart 200",
        "<190>1 2026-11-23T10:00:01.000000+00:00 host app web.2 - GET /pay 500",
    ];
    let logplex: String = msgs.iter().map(|m| format!("{} {m}", m.len())).collect();
    for expect_duplicate in [false, true] {
        let (status, body) = curl(
            url.clone(),
            args(&[
                "-H",
                "Content-Type: application/logplex-1",
                "-H",
                "Logplex-Msg-Count: 2",
                "-H",
                "Logplex-Frame-Id: frame-0001",
                "--data-binary",
                &logplex,
            ]),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body.contains("duplicate"), expect_duplicate, "{body}");
    }

    // refusals, each with a reason
    let big = "x".repeat(70_000);
    let refusals: Vec<(Vec<String>, u16, &str)> = vec![
        (
            args(&[
                "-H",
                "Content-Type: application/x-ndjson",
                "--data-binary",
                "{\"ok\":1}\n{broken\n",
            ]),
            400,
            "malformed body",
        ),
        (
            args(&["-H", "Content-Type: text/plain", "--data-binary", &big]),
            413,
            "max_body_bytes",
        ),
        (
            args(&["-H", "Content-Type: image/png", "--data-binary", "x"]),
            415,
            "content-type",
        ),
        (
            args(&["-H", "Content-Encoding: br", "--data-binary", "x"]),
            415,
            "content-encoding",
        ),
        (
            args(&["-H", "Content-Encoding: gzip", "--data-binary", "not gzip"]),
            400,
            "gzip",
        ),
        (
            args(&[
                "-H",
                "Content-Type: application/logplex-1",
                "-H",
                "Logplex-Msg-Count: 3",
                "--data-binary",
                &logplex,
            ]),
            400,
            "logplex-msg-count",
        ),
        (args(&["-X", "GET"]), 405, "POST"),
    ];
    for (request, expect_status, reason) in refusals {
        let (status, body) = curl(url.clone(), request.clone()).await;
        assert_eq!(status, expect_status, "{request:?}: {body}");
        assert!(body.contains(reason), "{request:?}: {body}");
    }
    let (status, _) = curl(
        url.replace("/v1/logs", "/nope"),
        args(&["--data-binary", "x"]),
    )
    .await;
    assert_eq!(status, 404);

    wait_until("all accepted events written", sent(7)).await;
    router.stop().await;
    let lines = read_lines(&out);
    assert_eq!(lines.len(), 7, "{lines:?}");
    let joined = lines.join("\n");
    assert!(joined.contains("\"instance\":\"web.2\""), "{joined}");
    assert!(
        !joined.contains("broken"),
        "a refused body must ingest nothing"
    );
    assert_eq!(
        counter("component_http_responses_total", "http_in", None),
        1 + 1 + 2 + 7 + 1
    );
}
