//! Attacks on the listeners (issue 15), replayed small enough to run in seconds: each
//! asserts the router sheds the attacker and a well-behaved client still gets through.
//! Limits are set low in each pipeline so that the timeouts fire within a second or two.
//!
//! These routers run inside the test binary, whose memory every concurrent test shares, so
//! their memory is measured where the router is a process of its own: the descriptor flood
//! here, and every memory-heavy attack at once in `hardening_memory.rs`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::util::{counter, read_lines, tempdir, wait_until, Router};

/// How long any one wait for the router to act may take before the test fails.
const BOUND: Duration = Duration::from_secs(10);

/// Reads until the router closes the connection (EOF or reset) and returns what it sent,
/// or panics after [`BOUND`].
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the router did not close the connection");
    String::from_utf8_lossy(&got).into_owned()
}

/// One request on a fresh connection from `from` (a loopback address), answered and
/// closed: the response's status line.
async fn request(from: &str, to: SocketAddr, raw: &str) -> String {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(to).await.expect("connects");
    stream.write_all(raw.as_bytes()).await.unwrap();
    let response = read_until_closed(&mut stream).await;
    response.lines().next().unwrap_or("").to_string()
}

fn post(body: &str) -> String {
    format!(
        "POST /v1/logs HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

const HEALTH: &str = "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

/// A slowloris client: sends a request head one byte every 100 ms and never finishes it.
/// Returns how long the router held the connection.
async fn slowloris(to: SocketAddr) -> Duration {
    let started = Instant::now();
    let stream = TcpStream::connect(to).await.expect("connects");
    let (mut reader, mut writer) = stream.into_split();
    let trickle = async move {
        let head = "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Padding: ";
        for byte in head.bytes().chain(std::iter::repeat(b'a')) {
            if writer.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let closed = async move {
        let mut buf = [0u8; 512];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    let held = tokio::time::timeout(BOUND, async {
        tokio::select! {
            _ = closed => {}
            _ = trickle => {}
        }
    })
    .await;
    assert!(held.is_ok(), "a slowloris connection outlived {BOUND:?}");
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_cut_off_at_the_header_timeout_on_the_api_and_the_http_source() {
    let dir = tempdir();
    let out = dir.path().join("out.log");
    let router = Router::start(&format!(
        r#"
[api]
address = "127.0.0.1:0"
header_timeout_secs = 1

[sources.hard_loris]
type = "http"
address = "127.0.0.1:0"
header_timeout_secs = 1

[sinks.hard_loris_out]
type = "file"
inputs = ["hard_loris"]
path = "{}"
"#,
        out.display()
    ))
    .await;
    let api = router.addr("api");
    let source = router.addr("hard_loris");
    let attackers: Vec<_> = (0..40)
        .map(|i| tokio::spawn(slowloris(if i % 2 == 0 { api } else { source })))
        .collect();
    // While they trickle, well-behaved clients are answered.
    let health = request("127.0.0.1", api, HEALTH).await;
    assert!(health.contains(" 200 "), "{health}");
    let posted = request("127.0.0.1", source, &post("{\"message\":\"polite\"}\n")).await;
    assert!(posted.contains(" 200 "), "{posted}");
    for attacker in attackers {
        let held = attacker.await.unwrap();
        // Cut off by the 1 s header timeout: not before, and well before the bound.
        assert!(
            held >= Duration::from_millis(900) && held < Duration::from_secs(4),
            "a slowloris connection was held {held:?}"
        );
    }
    wait_until("the polite event", || read_lines(&out).len() == 1).await;
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_shorter_than_its_content_length_gets_408() {
    let dir = tempdir();
    let out = dir.path().join("out.log");
    let router = Router::start(&format!(
        r#"
[sources.hard_short]
type = "http"
address = "127.0.0.1:0"
body_grace_secs = 1
min_body_bytes_per_sec = 1024

[sinks.hard_short_out]
type = "file"
inputs = ["hard_short"]
path = "{}"
"#,
        out.display()
    ))
    .await;
    let source = router.addr("hard_short");
    let started = Instant::now();
    let lying = "POST /v1/logs HTTP/1.1\r\nHost: localhost\r\n\
                 Content-Type: application/x-ndjson\r\nContent-Length: 100000\r\n\r\n\
                 {\"message\":\"short\"}\n";
    let status = request("127.0.0.1", source, lying).await;
    assert!(status.contains(" 408 "), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(
        counter(
            "component_refused_requests_total",
            "hard_short",
            Some("body_too_slow")
        ),
        1
    );
    // Nothing of the incomplete body was ingested; a whole one still is.
    let posted = request("127.0.0.1", source, &post("{\"message\":\"whole\"}\n")).await;
    assert!(posted.contains(" 200 "), "{posted}");
    wait_until("the whole event", || read_lines(&out).len() == 1).await;
    assert!(read_lines(&out)[0].contains("whole"));
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickled_below_the_minimum_rate_gets_408() {
    let dir = tempdir();
    let out = dir.path().join("out.log");
    let router = Router::start(&format!(
        r#"
[sources.hard_trickle]
type = "http"
address = "127.0.0.1:0"
body_grace_secs = 1
min_body_bytes_per_sec = 1024

[sinks.hard_trickle_out]
type = "file"
inputs = ["hard_trickle"]
path = "{}"
"#,
        out.display()
    ))
    .await;
    let source = router.addr("hard_trickle");
    let stream = TcpStream::connect(source).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = "POST /v1/logs HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: application/x-ndjson\r\nContent-Length: 5000\r\n\r\n";
    writer.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    // 20 bytes every 100 ms: 200 B/s, a fifth of the minimum.
    let trickle = tokio::spawn(async move {
        let line = "{\"message\":\"slow\"}\n";
        while writer.write_all(line.as_bytes()).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut answer = String::new();
    let read = tokio::time::timeout(BOUND, reader.read_to_string(&mut answer)).await;
    assert!(read.is_ok(), "the router did not answer the trickle");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // Grace (1 s) plus what 200 B/s buys at 1 KiB/s: about 1.25 s.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered after {:?}",
        started.elapsed()
    );
    trickle.abort();
    assert!(
        read_lines(&out).is_empty(),
        "nothing of the slow body is ingested"
    );
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_in_flight_budget_get_503_until_room_is_made() {
    let dir = tempdir();
    let out = dir.path().join("out.log");
    let router = Router::start(&format!(
        r#"
[sources.hard_budget]
type = "http"
address = "127.0.0.1:0"
max_body_bytes = 1000
max_body_bytes_in_flight = 2000

[sinks.hard_budget_out]
type = "file"
inputs = ["hard_budget"]
path = "{}"
"#,
        out.display()
    ))
    .await;
    let source = router.addr("hard_budget");
    let head = "POST /v1/logs HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: application/x-ndjson\r\nContent-Length: 1000\r\n\r\n";
    // Two requests that declare 1000 bytes each and send none take the whole budget.
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(source).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        holders.push(stream);
    }
    let accepted = || counter("component_connections_accepted_total", "hard_budget", None);
    wait_until("both holders accepted", || accepted() == 2).await;
    let refused = || {
        counter(
            "component_refused_requests_total",
            "hard_budget",
            Some("body_budget"),
        )
    };
    // The third is refused at once, asked to come back, and nothing of it is held.
    let third = crate::util::poll("a refusal over the budget", || async {
        let mut stream = TcpStream::connect(source).await.ok()?;
        stream.write_all(head.as_bytes()).await.ok()?;
        let answer = read_until_closed(&mut stream).await;
        answer.starts_with("HTTP/1.1 503").then_some(answer)
    })
    .await;
    assert!(
        third.to_ascii_lowercase().contains("retry-after: 1"),
        "{third}"
    );
    assert!(refused() >= 1);
    // The holders leave: their share comes back and a post goes through.
    drop(holders);
    let posted = crate::util::poll("a post once room is made", || async {
        let status = request("127.0.0.1", source, &post("{\"message\":\"fits\"}\n")).await;
        status.contains(" 200 ").then_some(status)
    })
    .await;
    assert!(posted.contains(" 200 "));
    wait_until("the event", || read_lines(&out).len() == 1).await;
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_ip_cap_are_refused_while_another_ip_gets_through() {
    let dir = tempdir();
    let out = dir.path().join("out.log");
    let router = Router::start(&format!(
        r#"
[sources.hard_perip]
type = "http"
address = "127.0.0.1:0"
max_connections_per_ip = 2

[sinks.hard_perip_out]
type = "file"
inputs = ["hard_perip"]
path = "{}"
"#,
        out.display()
    ))
    .await;
    let source = router.addr("hard_perip");
    // Two idle connections fill 127.0.0.1's share: wait until the router holds both.
    let _held: Vec<TcpStream> = vec![
        TcpStream::connect(source).await.unwrap(),
        TcpStream::connect(source).await.unwrap(),
    ];
    let accepted = || counter("component_connections_accepted_total", "hard_perip", None);
    wait_until("both connections accepted", || accepted() == 2).await;
    let mut third = TcpStream::connect(source).await.unwrap();
    let answer = read_until_closed(&mut third).await;
    assert_eq!(
        answer, "",
        "a refused connection is closed without an answer"
    );
    let refused = || {
        counter(
            "component_connections_refused_total",
            "hard_perip",
            Some("max_connections_per_ip"),
        )
    };
    assert_eq!(refused(), 1);
    // Another address is not concerned.
    let posted = request("127.0.0.2", source, &post("{\"message\":\"other ip\"}\n")).await;
    assert!(posted.contains(" 200 "), "{posted}");
    wait_until("the other ip's event", || read_lines(&out).len() == 1).await;
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tcp_source_closes_idle_connections_and_frees_their_slot() {
    let dir = tempdir();
    let out = dir.path().join("out.log");
    let router = Router::start(&format!(
        r#"
[sources.hard_idle]
type = "tcp"
address = "127.0.0.1:0"
idle_timeout_secs = 1
max_connections_per_ip = 1

[sinks.hard_idle_out]
type = "file"
inputs = ["hard_idle"]
path = "{}"
"#,
        out.display()
    ))
    .await;
    let source = router.addr("hard_idle");
    let accepted = || counter("component_connections_accepted_total", "hard_idle", None);
    let started = Instant::now();
    let mut idle = TcpStream::connect(source).await.unwrap();
    wait_until("the idle connection accepted", || accepted() == 1).await;
    // The cap is reached: a second connection is refused at once, not queued.
    let mut queued = TcpStream::connect(source).await.unwrap();
    read_until_closed(&mut queued).await;
    assert_eq!(
        counter(
            "component_connections_refused_total",
            "hard_idle",
            Some("max_connections_per_ip")
        ),
        1
    );
    read_until_closed(&mut idle).await;
    let held = started.elapsed();
    assert!(
        held >= Duration::from_millis(900) && held < Duration::from_secs(5),
        "the idle connection was held {held:?}"
    );
    assert_eq!(
        counter(
            "component_connections_closed_total",
            "hard_idle",
            Some("idle_timeout")
        ),
        1
    );
    // Its slot is free again.
    let mut sender = TcpStream::connect(source).await.unwrap();
    sender.write_all(b"after the idler\n").await.unwrap();
    wait_until("the sender's line", || read_lines(&out).len() == 1).await;
    assert!(read_lines(&out)[0].contains("after the idler"));
    drop(sender);
    router.stop().await;
}

/// Seconds since midnight UTC of a log line's leading RFC 3339 time
/// (`2026-12-07T18:57:29.066513Z  WARN …`).
fn logged_at(line: &str) -> f64 {
    let clock = line
        .get(11..26)
        .unwrap_or_else(|| panic!("no time at the start of {line}"));
    let parts: Vec<f64> = clock
        .split(':')
        .map(|p| p.parse().unwrap_or_else(|_| panic!("not a time: {line}")))
        .collect();
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}

/// `sluice up` under a low descriptor limit (soft 64, hard 128): it raises the soft limit
/// to the hard one and says so; flooded past it, it backs off EMFILE and logs it at most
/// once a second with a count, and serves again once the flood leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descriptors_run_out_and_the_router_recovers() {
    let dir = tempdir();
    let out = dir.path().join("out.log");
    let config = dir.path().join("emfile.toml");
    std::fs::write(
        &config,
        format!(
            "[sources.hard_emfile]\ntype = \"http\"\naddress = \"127.0.0.1:0\"\n\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"hard_emfile\"]\npath = \"{}\"\n",
            out.display()
        ),
    )
    .unwrap();
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg("ulimit -S -n 64 && ulimit -H -n 128 && exec \"$0\" up --config \"$1\"")
        .arg(crate::util::sluice_bin())
        .arg(&config);
    let mut router = crate::util::spawn_router(command);
    assert!(
        router
            .startup_log
            .lines()
            .any(|l| l.contains("open descriptor limit") && l.contains("limit=128")),
        "{}",
        router.startup_log
    );
    let address: SocketAddr = router.address.clone().expect("address").parse().unwrap();
    // More connections than the router has descriptors: the kernel completes them all,
    // the router accepts until EMFILE.
    let mut flood = Vec::new();
    for _ in 0..160 {
        flood.push(TcpStream::connect(address).await.expect("connects"));
    }
    // Warnings at most once a second (each counts the failures not logged before it),
    // judged by the times the router wrote on them: the first may have waited in the pipe
    // while the flood was still connecting, so when the test reads it says nothing.
    let first = router
        .wait_for_log_line(&["accept failed"])
        .expect("no accept warning");
    let second = router
        .wait_for_log_line(&["accept failed"])
        .expect("no second accept warning");
    // Across midnight the second clock reads less than the first.
    let gap = (logged_at(&second) - logged_at(&first)).rem_euclid(86_400.0);
    assert!(gap >= 0.9, "{gap} s between\n{first}\n{second}");
    drop(flood);
    let posted = crate::util::poll("a post after the flood", || async {
        let status = tokio::time::timeout(
            Duration::from_secs(5),
            request("127.0.0.1", address, &post("{\"message\":\"after\"}\n")),
        )
        .await
        .ok()?;
        status.contains(" 200 ").then_some(status)
    })
    .await;
    assert!(posted.contains(" 200 "));
    wait_until("the event after the flood", || read_lines(&out).len() == 1).await;
    // Resting, this router (no store) holds about 20 MiB; the flood adds at most its
    // descriptors' worth of connections (128 × a 16 KiB buffer) and nothing per refused
    // attempt, so 96 MiB is far above what it needs and far below what unbounded accept
    // retries or queued connections would take.
    let peak_mib = crate::util::status_kib(router.child.id(), "VmHWM") / 1024;
    assert!(
        peak_mib < 96,
        "peak resident set {peak_mib} MiB under the flood"
    );
    router.signal("-TERM");
    let (status, log) = router.finish();
    assert!(status.success(), "{log}");
    let warnings = log.lines().filter(|l| l.contains("accept failed")).count();
    assert!(warnings <= 12, "{warnings} accept warnings:\n{log}");
}
