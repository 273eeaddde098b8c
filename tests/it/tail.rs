//! Live tail end to end: a stalled client overflows alone, shutdown ends every tail, and
//! `sluice tail` prints live events, says when the router stops and reconnects.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::store::{address_of, http, json, store_pipeline};
use crate::util::{free_port, sluice_bin, sluice_up, spawn_router, tempdir, Router, TIMEOUT};

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
    let request = format!("GET /v1/tail?q={query} HTTP/1.0\r\nHost: localhost\r\n\r\n");
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
        // The live client reports the newest `seq` it has read, so that each batch is sent
        // once it has read the one before: a reader that keeps up, on a store of any speed.
        let (progress, read_up_to) = std::sync::mpsc::channel::<usize>();
        let reader = std::thread::spawn(move || {
            let last = format!("\"seq\":{}}}", BATCHES * PER_BATCH - 1);
            let ok = read_sse_until(&mut live, &mut live_seen, |s| {
                let newest = s
                    .rfind("\"seq\":")
                    .map(|at| &s[at + 6..])
                    .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|digits| digits.parse().ok());
                if let Some(seq) = newest {
                    let _ = progress.send(seq);
                }
                s.contains(&last)
            });
            (ok, live_seen)
        });
        for b in 0..BATCHES {
            if b > 0 {
                let wanted = b * PER_BATCH - 1;
                let deadline = Instant::now() + TIMEOUT;
                while let Ok(seq) =
                    read_up_to.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                {
                    if seq >= wanted || Instant::now() >= deadline {
                        break;
                    }
                }
            }
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
        // Until the marker's data line is whole: a read may end inside it.
        let got_marker = read_sse_until(&mut stalled, &mut stalled_seen, |s| {
            s.split("event: overflow\ndata: ")
                .nth(1)
                .is_some_and(|rest| rest.contains('\n'))
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

/// `sluice tail --json` as a process, its stdout and stderr read line by line on threads.
struct TailProcess {
    child: std::process::Child,
    stdout: std::sync::mpsc::Receiver<String>,
    stderr: std::sync::mpsc::Receiver<String>,
    /// Its stderr so far, for failure messages.
    said: String,
}

impl TailProcess {
    fn spawn(api: SocketAddr, extra: &[&str]) -> TailProcess {
        let mut child = std::process::Command::new(sluice_bin())
            // A scheme-less address means http://, and a query may start with a negation.
            .args(["tail", "--url", &api.to_string(), "--json"])
            .args(extra)
            .arg("-app:other app:clitail")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("sluice tail runs");
        let stdout = lines(child.stdout.take().expect("stdout"));
        let stderr = lines(child.stderr.take().expect("stderr"));
        TailProcess {
            child,
            stdout,
            stderr,
            said: String::new(),
        }
    }

    /// Posts a matching and a non-matching event until the tail prints one: events sent
    /// before it (re)connected are not live. Returns the printed event.
    fn next_live_event(&self, ingest: SocketAddr) -> serde_json::Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let events = b"{\"app\":\"clitail\",\"message\":\"live one\"}\n{\"app\":\"other\",\"message\":\"not this\"}\n";
            assert_eq!(http(ingest, "POST", "/v1/logs", events).0, 200);
            if let Ok(line) = self.stdout.recv_timeout(Duration::from_millis(200)) {
                return json(&line);
            }
            assert!(Instant::now() < deadline, "sluice tail printed nothing");
        }
    }

    /// Waits for a line on stderr containing `needle`; false if the tail exited first.
    fn says(&mut self, needle: &str) -> bool {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.stderr.recv_timeout(left) else {
                return false;
            };
            self.said.push_str(&line);
            self.said.push('\n');
            if line.contains(needle) {
                return true;
            }
        }
    }

    /// Waits for the tail to exit (its stderr reaches EOF then); returns status and stderr.
    fn finish(mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.said.push_str(&line);
                    self.said.push('\n');
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    panic!("sluice tail did not exit: {}", self.said)
                }
            }
        }
        let status = self.child.wait().expect("sluice tail exits");
        (status, std::mem::take(&mut self.said))
    }
}

impl Drop for TailProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of `reader`, sent one by one from a thread until EOF.
fn lines(reader: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(reader)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Writes a store pipeline to `config` whose API listens on `api_port`, so that a router
/// restarted on it is found at the same address.
fn write_pipeline(config: &std::path::Path, data: &std::path::Path, api_port: u16) {
    // The API's address is the pipeline's first.
    let pipeline =
        store_pipeline(data, "").replacen("127.0.0.1:0", &format!("127.0.0.1:{api_port}"), 1);
    std::fs::write(config, pipeline).expect("config");
}

/// `sluice tail` prints live events; when the router stops it says so and reconnects,
/// saying why each attempt failed, until a router answers at the address again.
#[test]
fn cli_tail_says_when_the_router_stops_and_reconnects() {
    let dir = tempdir();
    let config = dir.path().join("router.toml");
    write_pipeline(&config, &dir.path().join("store"), free_port());
    let router = spawn_router(sluice_up(&config));
    let ingest = address_of(&router.startup_log, "in");
    let api = address_of(&router.startup_log, "api");
    let mut tail = TailProcess::spawn(api, &[]);
    assert_eq!(tail.next_live_event(ingest)["message"], "live one");

    router.signal("-TERM");
    let (status, log) = router.finish();
    assert!(status.success(), "{log}");
    assert!(tail.says("router closed the stream"), "{}", tail.said);
    // Nothing listens now: an attempt fails and says when the next one is.
    assert!(tail.says("retrying in 2 s"), "{}", tail.said);

    let router = spawn_router(sluice_up(&config));
    let ingest = address_of(&router.startup_log, "in");
    assert!(tail.says("reconnected"), "{}", tail.said);
    assert_eq!(tail.next_live_event(ingest)["message"], "live one");
    drop(tail);
    router.signal("-TERM");
    let (status, log) = router.finish();
    assert!(status.success(), "{log}");
}

/// With `--no-retry`, `sluice tail` says the router closed the stream and exits 0.
#[test]
fn cli_tail_no_retry_exits_when_the_router_stops() {
    let dir = tempdir();
    let config = dir.path().join("router.toml");
    std::fs::write(&config, store_pipeline(&dir.path().join("store"), "")).expect("config");
    let router = spawn_router(sluice_up(&config));
    let ingest = address_of(&router.startup_log, "in");
    let api = address_of(&router.startup_log, "api");
    let tail = TailProcess::spawn(api, &["--no-retry"]);
    assert_eq!(tail.next_live_event(ingest)["message"], "live one");
    router.signal("-TERM");
    let (tail_status, said) = tail.finish();
    let (status, log) = router.finish();
    assert!(status.success(), "{log}");
    assert!(tail_status.success(), "{said}");
    assert!(said.contains("router closed the stream"), "{said}");
    assert!(!said.contains("reconnecting"), "{said}");
}
