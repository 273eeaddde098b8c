//! HTTP ingest, driven by a real client (curl): gzip and zstd NDJSON, plain text, a Heroku logplex
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
# Plain text and curl's default form type, which the requests below send; refused unless
# listed (a web page could send them from anywhere).
content_types = ["application/x-ndjson", "application/logplex-1", "text/plain", "application/x-www-form-urlencoded"]

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

    // zstd NDJSON
    let zstd_body = dir.path().join("batch.ndjson.zst");
    let lines = "{\"app\":\"api\",\"seq\":1}\n{\"app\":\"api\",\"seq\":2}\n";
    std::fs::write(&zstd_body, zstd::encode_all(lines.as_bytes(), 3).unwrap()).unwrap();
    let (status, body) = curl(
        url.clone(),
        args(&[
            "-H",
            "Content-Type: application/x-ndjson",
            "-H",
            "Content-Encoding: zstd",
            "--data-binary",
            &format!("@{}", zstd_body.display()),
        ]),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"accepted":2}"#));
    // A small zstd body that expands past max_body_bytes is refused, not inflated.
    let bomb = dir.path().join("bomb.zst");
    std::fs::write(&bomb, zstd::encode_all(&[b'a'; 1 << 20][..], 3).unwrap()).unwrap();
    assert!(std::fs::metadata(&bomb).unwrap().len() < 65536);

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
            args(&["-H", "Content-Encoding: zstd", "--data-binary", "not zstd"]),
            400,
            "zstd",
        ),
        (
            args(&[
                "-H",
                "Content-Encoding: zstd",
                "--data-binary",
                &format!("@{}", bomb.display()),
            ]),
            413,
            "max_body_bytes",
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

    wait_until("all accepted events written", sent(9)).await;
    router.stop().await;
    let lines = read_lines(&out);
    assert_eq!(lines.len(), 9, "{lines:?}");
    let joined = lines.join("\n");
    assert!(joined.contains("\"instance\":\"web.2\""), "{joined}");
    assert!(
        !joined.contains("broken"),
        "a refused body must ingest nothing"
    );
    assert_eq!(
        counter("component_http_responses_total", "http_in", None),
        1 + 1 + 1 + 2 + 9 + 1
    );
}

/// Per-app tokens (bearer, drain-URL basic auth, query parameter) decide the `app` of every
/// event; a missing token is 401, a wrong one 403; an app over its rate limit gets 429 with
/// Retry-After while another app is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_rate_limits_per_app() {
    if !have_tool("curl") {
        return;
    }
    let dir = tempdir();
    let out = dir.path().join("out.log");
    let tokens_file = dir.path().join("tokens");
    std::fs::write(&tokens_file, "# token app\nw0rk3r worker\n").unwrap();
    let router = Router::start(&format!(
        r#"
[sources.auth_in]
type = "http"
address = "127.0.0.1:0"
tokens = {{ "s3cr3t" = "web" }}
tokens_file = "{}"
rate_limit = {{ events_per_sec = 5 }}

[sinks.auth_out]
type = "file"
inputs = ["auth_in"]
path = "{}"
"#,
        tokens_file.display(),
        out.display()
    ))
    .await;
    let addr = router.addr("auth_in");
    let url = format!("http://{addr}/v1/logs");
    let lines = |n: usize, tag: &str| -> String {
        (0..n)
            .map(|i| format!("{{\"app\":\"spoofed\",\"msg\":\"{tag} {i}\"}}\n"))
            .collect()
    };
    let ndjson = "Content-Type: application/x-ndjson";
    let cases: Vec<(String, Vec<String>, u16)> = vec![
        (
            url.clone(),
            args(&["-H", ndjson, "--data-binary", &lines(1, "none")]),
            401,
        ),
        (
            url.clone(),
            args(&[
                "-H",
                ndjson,
                "-H",
                "Authorization: Bearer nope",
                "--data-binary",
                &lines(1, "bad"),
            ]),
            403,
        ),
        (
            url.clone(),
            args(&[
                "-H",
                ndjson,
                "-H",
                "Authorization: Bearer s3cr3t",
                "--data-binary",
                &lines(3, "bearer"),
            ]),
            200,
        ),
        // Heroku drain style: the token is the URL's user.
        (
            format!("http://s3cr3t@{addr}/v1/logs"),
            args(&["-H", ndjson, "--data-binary", &lines(1, "basic")]),
            200,
        ),
        // Over web's 5 events/s: 429, retry later.
        (
            url.clone(),
            args(&[
                "-H",
                ndjson,
                "-H",
                "Authorization: Bearer s3cr3t",
                "--data-binary",
                &lines(4, "over"),
            ]),
            429,
        ),
        // Another app has its own bucket.
        (
            format!("{url}?token=w0rk3r"),
            args(&["-H", ndjson, "--data-binary", &lines(5, "worker")]),
            200,
        ),
    ];
    for (target, request, expected) in cases {
        let (status, body) = curl(target.clone(), request).await;
        assert_eq!(status, expected, "{target}: {body}");
    }
    wait_until("accepted events written", || {
        counter("component_sent_events_total", "auth_out", None) == 9
    })
    .await;
    router.stop().await;
    let events: Vec<serde_json::Value> = read_lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 9);
    for event in &events {
        let msg = event["msg"].as_str().unwrap();
        let expected_app = if msg.starts_with("worker") {
            "worker"
        } else {
            "web"
        };
        assert_eq!(
            event["app"], expected_app,
            "the token decides the app: {event}"
        );
    }
    assert_eq!(
        counter("component_rate_limited_requests_total", "auth_in", None),
        1
    );
}
