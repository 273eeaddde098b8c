//! Live taps end to end: `GET /v1/tap` and `sluice tap` show the events leaving any output
//! (or entering a component), filtered by a query, in a pipeline with no store at all.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::store::http;
use crate::util::{sluice_bin, tempdir, Router, TIMEOUT};

/// No store: taps need none.
fn pipeline(out: &std::path::Path) -> String {
    format!(
        r#"
[api]
address = "127.0.0.1:0"

[sources.in]
type = "http"
address = "127.0.0.1:0"
decoding = "json"

[transforms.split]
type = "route"
inputs = ["in"]
routes = {{ errors = 'level == "error"' }}

[sinks.errors_file]
type = "file"
inputs = ["split.errors"]
path = "{}"

[sinks.rest]
type = "blackhole"
inputs = ["split._unmatched"]
"#,
        out.display()
    )
}

/// `GET path` on the API as a raw stream (HTTP/1.0: the body runs to the close).
fn open_stream(api: SocketAddr, path_and_query: &str) -> std::net::TcpStream {
    let mut stream = std::net::TcpStream::connect(api).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let request = format!("GET {path_and_query} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("request");
    stream
}

/// Reads `stream` until `done` holds for what was read, or the deadline passes.
fn read_until(stream: &mut std::net::TcpStream, mut done: impl FnMut(&str) -> bool) -> String {
    let deadline = Instant::now() + TIMEOUT;
    let mut seen = String::new();
    let mut buf = vec![0u8; 64 * 1024];
    while !done(&seen) && Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("read failed: {e}"),
        }
    }
    seen
}

/// The `seq` of every event in an SSE stream, in order.
fn seqs(stream: &str) -> Vec<u64> {
    stream
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| v["seq"].as_u64())
        .collect()
}

fn events(range: std::ops::Range<u64>) -> String {
    range
        .map(|i| {
            let level = if i % 3 == 0 { "error" } else { "info" };
            format!("{{\"seq\":{i},\"level\":\"{level}\",\"app\":\"tapped\"}}\n")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taps_show_each_output_and_the_inputs_of_a_component() {
    let dir = tempdir();
    let router = Router::start(&pipeline(&dir.path().join("errors.log"))).await;
    let (ingest, api) = (router.addr("in"), router.addr("api"));
    tokio::task::spawn_blocking(move || {
        let mut errors = open_stream(api, "/v1/tap?component=split.errors");
        let mut rest = open_stream(api, "/v1/tap?inputs_of=rest&q=seq:%3E%3D10");
        let mut source = open_stream(api, "/v1/tap?component=in&q=level:error");
        for s in [&mut errors, &mut rest, &mut source] {
            let hello = read_until(s, |t| t.contains(": tailing"));
            assert!(hello.contains("200 OK"), "{hello}");
        }
        let (status, text) = http(ingest, "POST", "/v1/logs", events(0..30).as_bytes());
        assert_eq!(status, 200, "{text}");
        let last = |t: &str, seq: u64| t.contains(&format!("\"seq\":{seq},"));
        let got = read_until(&mut errors, |t| last(t, 27));
        assert_eq!(
            seqs(&got),
            (0..30).filter(|i| i % 3 == 0).collect::<Vec<_>>()
        );
        let got = read_until(&mut rest, |t| last(t, 29));
        assert_eq!(
            seqs(&got),
            (10..30).filter(|i| i % 3 != 0).collect::<Vec<_>>(),
            "what `rest` reads, matching the query"
        );
        let got = read_until(&mut source, |t| last(t, 27));
        assert_eq!(
            seqs(&got),
            (0..30).filter(|i| i % 3 == 0).collect::<Vec<_>>()
        );
    })
    .await
    .expect("tap test");
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tap_on_an_unknown_output_says_which_exist() {
    let dir = tempdir();
    let router = Router::start(&pipeline(&dir.path().join("errors.log"))).await;
    let api = router.addr("api");
    let answers = tokio::task::spawn_blocking(move || {
        [
            http(api, "GET", "/v1/tap?component=split.warnings", b""),
            http(api, "GET", "/v1/tap?inputs_of=nothing", b""),
            http(api, "GET", "/v1/tap", b""),
            http(api, "GET", "/v1/tap?component=in&q=level:(", b""),
        ]
    })
    .await
    .expect("requests");
    let (status, text) = &answers[0];
    assert_eq!(*status, 400);
    assert!(
        text.contains("no output `split.warnings`") && text.contains("split.errors"),
        "{text}"
    );
    assert_eq!(answers[1].0, 400, "{}", answers[1].1);
    assert!(answers[1].1.contains("`nothing`"), "{}", answers[1].1);
    assert_eq!(answers[2].0, 400, "{}", answers[2].1);
    assert!(answers[2].1.contains("component="), "{}", answers[2].1);
    assert_eq!(answers[3].0, 400, "{}", answers[3].1);
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sluice_tap_prints_a_components_events_until_the_router_stops() {
    let dir = tempdir();
    let router = Router::start(&pipeline(&dir.path().join("errors.log"))).await;
    let (ingest, api) = (router.addr("in"), router.addr("api"));
    let mut child = std::process::Command::new(sluice_bin())
        .args(["tap", "--json", "--no-retry", "--url"])
        .arg(api.to_string())
        .args(["split.errors", "-q", "seq:>=3"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sluice tap starts");
    let stdout = child.stdout.take().expect("stdout");
    let (printed, rx) = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // The tap is live once an event comes out of it: post one matching error until
        // it does, then the rest.
        let deadline = Instant::now() + TIMEOUT;
        let mut printed = Vec::new();
        while printed.is_empty() {
            assert!(Instant::now() < deadline, "sluice tap printed nothing");
            let (status, _) = http(ingest, "POST", "/v1/logs", events(3..4).as_bytes());
            assert_eq!(status, 200);
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                printed.push(line);
            }
        }
        let (status, _) = http(ingest, "POST", "/v1/logs", events(0..10).as_bytes());
        assert_eq!(status, 200);
        while !printed.last().is_some_and(|l| l.contains("\"seq\":9,")) {
            match rx.recv_timeout(TIMEOUT) {
                Ok(line) => printed.push(line),
                Err(_) => break,
            }
        }
        (printed, rx)
    })
    .await
    .expect("reader");
    let seqs: Vec<u64> = printed
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["seq"].as_u64())
        .collect();
    // Errors with seq >= 3 only, in order: the probes (3) first, then 3, 6, 9.
    assert!(seqs.ends_with(&[3, 6, 9]), "{printed:?}");
    assert!(
        seqs[..seqs.len() - 3].iter().all(|s| *s == 3),
        "{printed:?}"
    );
    assert_eq!(
        seqs.len(),
        printed.len(),
        "every line is an event: {printed:?}"
    );
    router.stop().await;
    let status = child.wait().expect("sluice tap exits");
    drop(rx);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("sluice tap: router closed the stream"),
        "{stderr}"
    );
}
