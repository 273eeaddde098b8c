//! Live tail end to end: a stalled client overflows alone, shutdown ends every tail, and
//! `sluice tail` prints live events.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::store::{address_of, http, json, store_pipeline};
use crate::util::{sluice_bin, sluice_up, spawn_router, tempdir, Router, TIMEOUT};

/// Reads the SSE stream of `stream` (an HTTP/1.0 response: close-delimited) until `done`
/// says so or the deadline passes.
fn read_sse_until(
    stream: &mut std::net::TcpStream,
    seen: &mut String,
    mut done: impl FnMut(&str) -> bool,
) -> bool {
    let deadline = Instant::now() + TIMEOUT;
    let mut buf = vec![0u8; 64 * 1024];
    while !done(seen) {
        if Instant::now() > deadline {
            return false;
        }
        match stream.read(&mut buf) {
            Ok(0) => return done(seen),
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("tail read failed: {e}"),
        }
    }
    true
}

/// Opens `GET /v1/tail`; `recv_buffer` makes the socket's receive buffer small before
/// connecting, so a stalled client holds little in the kernel and the router's per-client
/// queue is what fills.
fn open_tail(api: SocketAddr, query: &str, recv_buffer: Option<u32>) -> std::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut stream = runtime
        .block_on(async move {
            let stream = socket.connect(api).await?;
            stream.into_std()
        })
        .expect("tail connects");
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let request = format!("GET /v1/tail?q={query} HTTP/1.0\r\nHost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("request");
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_a_stalled_client_overflows_alone() {
    const BATCHES: usize = 100;
    const PER_BATCH: usize = 100;
    let dir = tempdir();
    let router = Router::start(&store_pipeline(dir.path(), "tail_buffer_events = 500")).await;
    let (ingest, api) = (router.addr("in"), router.addr("api"));
    let result = tokio::task::spawn_blocking(move || {
        let mut live = open_tail(api, "app:tailtest", None);
        let mut stalled = open_tail(api, "app:tailtest", Some(4096));
        // Both streams are established (the hub sends a comment first) before ingesting.
        let mut live_seen = String::new();
        assert!(read_sse_until(&mut live, &mut live_seen, |s| s.contains(": tailing")));
        let mut stalled_seen = String::new();
        assert!(read_sse_until(&mut stalled, &mut stalled_seen, |s| s.contains(": tailing")));
        let padding = "x".repeat(1000);
        let reader = std::thread::spawn(move || {
            let last = format!("\"seq\":{}}}", BATCHES * PER_BATCH - 1);
            let ok = read_sse_until(&mut live, &mut live_seen, |s| s.contains(&last));
            (ok, live_seen)
        });
        for b in 0..BATCHES {
            let mut body = String::new();
            for i in 0..PER_BATCH {
                body.push_str(&format!(
                    r#"{{"app":"tailtest","message":"{padding}","seq":{}}}"#,
                    b * PER_BATCH + i
                ));
                body.push('\n');
            }
            let (status, text) = http(ingest, "POST", "/v1/logs", body.as_bytes());
            assert_eq!(status, 200, "{text}");
        }
        // Every POST was answered 200, i.e. committed: the pipeline never waited for the
        // stalled client. The store holds them all.
        let (_, counted) = http(api, "GET", "/v1/query?q=app:tailtest&limit=1", b"");
        let (live_ok, live_seen) = reader.join().expect("reader");
        // Now the stalled client reads again and hears about its loss.
        let got_marker = read_sse_until(&mut stalled, &mut stalled_seen, |s| {
            s.contains("event: overflow")
        });
        (counted, live_ok, live_seen, got_marker, stalled_seen)
    })
    .await
    .expect("tail test");
    let (counted, live_ok, live_seen, got_marker, stalled_seen) = result;
    assert_eq!(json(&counted)["total"], (BATCHES * PER_BATCH) as u64);
    assert!(live_ok, "the live client saw the last event");
    assert_eq!(
        live_seen.matches("data: {").count(),
        BATCHES * PER_BATCH,
        "the live client got every event"
    );
    assert!(!live_seen.contains("event: overflow"));
    assert!(got_marker, "the stalled client was told of its overflow");
    let marker = stalled_seen
        .split("event: overflow\ndata: ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .expect("marker data");
    let dropped = json(marker)["dropped"].as_u64().expect("dropped count");
    assert!(dropped > 0);
    assert!(crate::util::counter("store_tail_dropped_events_total", "store", None) >= dropped);
    router.stop().await;
}

/// An idle `GET /v1/tail` client must not hold up shutdown: its stream ends when SIGTERM
/// starts the drain, so the router drains and exits 0. A stream outliving the shutdown holds
/// the API listener, and with it the router, until the deadline (exit 1, "events still in
/// flight", though none are).
#[test]
fn an_idle_tail_client_does_not_hold_up_shutdown() {
    let dir = tempdir();
    let config = dir.path().join("router.toml");
    let pipeline = store_pipeline(&dir.path().join("store"), "");
    // With nothing in flight, only a stream that outlives the shutdown can make the router
    // reach this deadline; it would then exit 1 saying so.
    std::fs::write(&config, format!("shutdown_timeout_secs = 20\n{pipeline}")).expect("config");
    let mut router = spawn_router(sluice_up(&config));
    let api = address_of(&router.startup_log, "api");
    let mut tail = open_tail(api, "", None);
    let mut seen = String::new();
    assert!(read_sse_until(&mut tail, &mut seen, |s| s.contains(": tailing")));
    router.signal("-TERM");
    assert!(
        router.wait_for_log(&["router stopped; all in-flight events drained"]),
        "the router did not drain within {TIMEOUT:?}"
    );
    let (status, log) = router.finish();
    assert!(status.success(), "{log}");
    assert!(!log.contains("shutdown deadline passed"), "{log}");
    // The client saw its stream end (HTTP/1.0: the connection closes).
    let mut rest = [0u8; 1024];
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match tail.read(&mut rest) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("tail read failed: {e}"),
        }
        assert!(Instant::now() < deadline, "the tail stream stayed open");
    }
}

#[test]
fn cli_tail_prints_live_events() {
    let dir = tempdir();
    let config = dir.path().join("router.toml");
    std::fs::write(&config, store_pipeline(&dir.path().join("store"), "")).expect("config");
    let router = spawn_router(sluice_up(&config));
    let ingest = address_of(&router.startup_log, "in");
    let api = address_of(&router.startup_log, "api");
    let url = format!("http://{api}");
    // `sluice tail` prints live events as they arrive (JSON lines with --json).
    let mut tail = std::process::Command::new(sluice_bin())
        .args(["tail", "--url", &url, "--json", "app:clitail"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sluice tail runs");
    let stdout = tail.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + TIMEOUT;
    // Posted until one arrives: events sent before the tail connected are not live.
    let line = loop {
        let event = b"{\"app\":\"clitail\",\"message\":\"live one\"}\n{\"app\":\"other\",\"message\":\"not this\"}\n";
        assert_eq!(http(ingest, "POST", "/v1/logs", event).0, 200);
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            break line;
        }
        assert!(Instant::now() < deadline, "sluice tail printed nothing");
    };
    assert_eq!(json(&line)["message"], "live one");
    let _ = tail.kill();
    let _ = tail.wait();
    router.signal("-TERM");
    let _ = router.finish();
}
