//! End to end: real sockets and files, the whole path from bytes to sinks.

use std::io::Write as _;
use std::process::{Command, Stdio};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::util::{counter, have_tool, read_lines, sluice_bin, tempdir, wait_until, Router};

const LEVELS: [&str; 5] = ["debug", "info", "warn", "error", "critical"];

/// TCP → parse → route → two file sinks: every event lands exactly where its condition
/// sends it, and each connection's events keep their order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_parse_route_two_files_every_event_where_its_condition_sends_it() {
    let dir = tempdir();
    let errors_path = dir.path().join("errors.log");
    let rest_path = dir.path().join("rest.log");
    let router = Router::start(&format!(
        r#"
[sources.e2e_tcp]
type = "tcp"
address = "127.0.0.1:0"

[transforms.e2e_parse]
type = "parse"
inputs = ["e2e_tcp"]
format = "json"

[transforms.e2e_route]
type = "route"
inputs = ["e2e_parse"]
routes = {{ errors = 'level >= "error"' }}

[sinks.e2e_errors]
type = "file"
inputs = ["e2e_route.errors"]
path = "{}"

[sinks.e2e_rest]
type = "file"
inputs = ["e2e_route._unmatched"]
path = "{}"
"#,
        errors_path.display(),
        rest_path.display()
    ))
    .await;
    let addr = router.addr("e2e_tcp");

    const CONNECTIONS: usize = 4;
    const PER_CONNECTION: usize = 2500;
    let mut senders = Vec::new();
    for conn in 0..CONNECTIONS {
        senders.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let mut payload = String::new();
            for seq in 0..PER_CONNECTION {
                let level = LEVELS[(seq * 7 + conn) % LEVELS.len()];
                payload.push_str(&format!(
                    "{{\"conn\":{conn},\"seq\":{seq},\"level\":\"{}\",\"msg\":\"event {seq}\"}}\n",
                    level.to_uppercase()
                ));
            }
            stream.write_all(payload.as_bytes()).await.unwrap();
            stream.shutdown().await.unwrap();
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    let total = (CONNECTIONS * PER_CONNECTION) as u64;
    wait_until("all events written", || {
        counter("component_sent_events_total", "e2e_errors", None)
            + counter("component_sent_events_total", "e2e_rest", None)
            == total
    })
    .await;
    router.stop().await;

    let mut seen = vec![vec![None::<bool>; PER_CONNECTION]; CONNECTIONS];
    let mut last_seq = [[-1i64; 2]; CONNECTIONS];
    for (file_index, path) in [&errors_path, &rest_path].into_iter().enumerate() {
        for line in read_lines(path) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            let conn = v["conn"].as_u64().unwrap() as usize;
            let seq = v["seq"].as_i64().unwrap();
            let level = v["level"].as_str().unwrap();
            let is_error = matches!(level, "error" | "critical");
            assert_eq!(is_error, file_index == 0, "{line} landed in the wrong file");
            assert!(
                seen[conn][seq as usize].replace(is_error).is_none(),
                "duplicate {line}"
            );
            assert!(seq > last_seq[conn][file_index], "order broken at {line}");
            last_seq[conn][file_index] = seq;
        }
    }
    let missing: usize = seen.iter().flatten().filter(|s| s.is_none()).count();
    assert_eq!(missing, 0, "events missing");
}

/// `sluice up` on stdin exits 0 at EOF after writing every line byte for byte, including
/// a final line without a newline and a line that is not UTF-8.
#[test]
fn stdin_passthrough_is_byte_exact_and_exits_at_eof() {
    let dir = tempdir();
    let out = dir.path().join("out.log");
    let config = dir.path().join("a.toml");
    std::fs::write(
        &config,
        format!(
            "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"{}\"\nencoding = \"text\"\n",
            out.display()
        ),
    )
    .unwrap();
    let mut input = Vec::new();
    for i in 0..50_000 {
        input.extend_from_slice(format!("line {i} with some payload\r\n").as_bytes());
    }
    input.extend_from_slice(b"bad utf8 \xff\xfe here\n");
    input.extend_from_slice(b"last line without newline");

    let mut child = Command::new(sluice_bin())
        .args(["up", "--config"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let mut expected = input.clone();
    expected.push(b'\n');
    assert_eq!(std::fs::read(&out).unwrap(), expected);
}

/// util-linux `logger`, a real syslog sender, over TCP with RFC 6587 octet counting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logger_sends_octet_counted_syslog_over_tcp() {
    if !have_tool("logger") {
        return;
    }
    let dir = tempdir();
    let out = dir.path().join("syslog.log");
    let router = Router::start(&format!(
        r#"
[sources.e2e_logger]
type = "tcp"
address = "127.0.0.1:0"
framing = "octet_counting"
decoding = "syslog"

[transforms.e2e_logger_parse]
type = "parse"
inputs = ["e2e_logger"]
format = "auto"

[sinks.e2e_logger_out]
type = "file"
inputs = ["e2e_logger_parse"]
path = "{}"
"#,
        out.display()
    ))
    .await;
    let port = router.addr("e2e_logger").port().to_string();
    for (i, priority) in ["user.err", "daemon.info", "local0.warning"]
        .iter()
        .enumerate()
    {
        let status = Command::new("logger")
            .args(["--tcp", "--octet-count", "-n", "127.0.0.1", "-P", &port])
            .args(["-t", "billing", "-p", priority, "--rfc5424"])
            .arg(format!("payment {i} processed"))
            .status()
            .unwrap();
        assert!(status.success());
    }
    wait_until("three syslog events", || {
        counter("component_sent_events_total", "e2e_logger_out", None) == 3
    })
    .await;
    router.stop().await;
    let lines = read_lines(&out);
    let mut events: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Each logger run is its own connection: order across connections is not defined.
    events.sort_by_key(|e| e["message"].as_str().unwrap_or_default().to_string());
    let expect_levels = ["error", "info", "warn"];
    for (i, event) in events.iter().enumerate() {
        assert_eq!(
            event["message"],
            format!("payment {i} processed"),
            "{event}"
        );
        assert_eq!(event["app"], "billing", "{event}");
        assert_eq!(event["level"], expect_levels[i], "{event}");
        assert!(
            event["timestamp"].as_str().is_some_and(|t| t.len() >= 20),
            "{event}"
        );
    }
}

/// UDP datagrams, one and several lines each, each event stamped with the sender's address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_datagrams_become_events() {
    let dir = tempdir();
    let out = dir.path().join("udp.log");
    let router = Router::start(&format!(
        r#"
[sources.e2e_udp]
type = "udp"
address = "127.0.0.1:0"
decoding = "auto"

[sinks.e2e_udp_out]
type = "file"
inputs = ["e2e_udp"]
path = "{}"
"#,
        out.display()
    ))
    .await;
    let addr = router.addr("e2e_udp");
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket
        .send_to(
            b"<11>Nov 23 10:00:00 web1 nginx[12]: upstream timed out",
            addr,
        )
        .await
        .unwrap();
    socket
        .send_to(b"level=info msg=\"two\"\nlevel=warn msg=\"three\"\n", addr)
        .await
        .unwrap();
    wait_until("three udp events", || {
        counter("component_sent_events_total", "e2e_udp_out", None) == 3
    })
    .await;
    router.stop().await;
    let lines = read_lines(&out);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].contains("upstream timed out") && lines[0].contains("\"app\":\"nginx\""),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("\"msg\":\"two\""), "{}", lines[1]);
    assert!(lines[2].contains("\"msg\":\"three\""), "{}", lines[2]);
}

/// A slow sink slows the source instead of losing events: the file sink writes into a FIFO
/// that the test drains slowly; the TCP sender is held back and every event still arrives,
/// in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_sink_applies_backpressure_without_loss() {
    let dir = tempdir();
    let fifo = dir.path().join("slow.fifo");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let router = Router::start(&format!(
        r#"
[sources.bp_tcp]
type = "tcp"
address = "127.0.0.1:0"

[sinks.bp_out]
type = "file"
inputs = ["bp_tcp"]
path = "{}"
encoding = "text"
buffer = {{ max_bytes = 65536 }}
"#,
        fifo.display()
    ))
    .await;
    let addr = router.addr("bp_tcp");
    const N: usize = 200_000;
    let reader_path = fifo.clone();
    // Reads the FIFO in small, slow steps; returns everything read.
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut f = std::fs::File::open(reader_path).unwrap();
        let mut all = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut reads = 0u64;
        loop {
            let n = f.read(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            all.extend_from_slice(&chunk[..n]);
            reads += 1;
            if reads % 64 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        all
    });
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut payload = Vec::new();
    for i in 0..N {
        payload.extend_from_slice(format!("backpressure line {i:08}\n").as_bytes());
    }
    stream.write_all(&payload).await.unwrap();
    stream.shutdown().await.unwrap();
    drop(stream);
    wait_until("sink wrote everything", || {
        counter("component_sent_events_total", "bp_out", None) == N as u64
    })
    .await;
    // While the sink was slow the queue stayed within its byte bound.
    router.stop().await;
    let all = reader.join().unwrap();
    assert_eq!(all, payload, "every line arrives, in order");
    assert_eq!(
        counter("component_discarded_events_total", "bp_out", None),
        0
    );
}

/// The README's first command: `sluice up` with no `--config` runs the embedded default
/// pipeline (TCP and UDP on 5140, parse, enrich, file under data/) and, on SIGTERM, drains
/// and exits 0.
#[test]
fn default_pipeline_parses_tcp_and_udp_and_drains_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let dir = tempdir();
    let data = dir.path().join("data");
    let mut child = Command::new(sluice_bin())
        .arg("up")
        .current_dir(dir.path())
        .env("SLUICE_LISTEN", "127.0.0.1")
        .env("SLUICE_DATA_DIR", &data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the startup line that says the router is serving (a signal, not a sleep).
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "router exited early: {log}"
        );
        log.push_str(&line);
        if line.contains("router started") {
            break;
        }
    }
    assert!(log.contains("127.0.0.1:5140"), "{log}");
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
        rest
    });

    let mut tcp = std::net::TcpStream::connect("127.0.0.1:5140").unwrap();
    tcp.write_all(b"{\"level\":\"ERROR\",\"msg\":\"card declined\",\"app\":\"billing\"}\n")
        .unwrap();
    let syslog = "<11>1 2026-11-23T10:00:00Z web1 shop 4242 - - checkout failed";
    tcp.write_all(format!("{} {syslog}\n", syslog.len()).as_bytes())
        .unwrap();
    drop(tcp);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(
        b"ts=2026-11-23T10:00:01Z level=warn app=api msg=\"slow query\"",
        "127.0.0.1:5140",
    )
    .unwrap();

    // The file sink's output is the observable signal that all three were processed.
    let files = || -> Vec<String> {
        std::fs::read_dir(&data)
            .map(|d| {
                d.flatten()
                    .flat_map(|e| read_lines(&e.path()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + crate::util::TIMEOUT;
    while files().len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "events not written: {:?}",
            files()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    let rest = drain.join().unwrap();
    assert!(exit.success(), "exit {exit:?}: {rest}");
    assert!(rest.contains("drained"), "{rest}");

    let mut events: Vec<serde_json::Value> = files()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    events.sort_by_key(|e| e["message"].as_str().unwrap_or_default().to_string());
    let summary: Vec<(String, String, String)> = events
        .iter()
        .map(|e| {
            assert!(e["host"].is_string(), "enrich adds host: {e}");
            assert!(e["timestamp"].is_string(), "{e}");
            (
                e["message"].as_str().unwrap_or_default().to_string(),
                e["level"].as_str().unwrap_or_default().to_string(),
                e["app"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("card declined".into(), "error".into(), "billing".into()),
            ("checkout failed".into(), "error".into(), "shop".into()),
            ("slow query".into(), "warn".into(), "api".into()),
        ]
    );
}

/// SIGHUP makes the file sink reopen: after logrotate renames the file, new events go to a
/// fresh file at the configured path. A real signal to a real router process (reopening is
/// process-wide, so it must not run inside the shared test process).
#[test]
fn file_sink_reopens_after_rotation_on_sighup() {
    let dir = tempdir();
    let out = dir.path().join("app.log");
    let rotated = dir.path().join("app.log.1");
    let output = out.clone();
    let config = dir.path().join("rotate.toml");
    std::fs::write(
        &config,
        format!(
            "[sources.in]\ntype = \"tcp\"\naddress = \"127.0.0.1:0\"\n[sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"{}\"\nencoding = \"text\"\n",
            output.display()
        ),
    )
    .unwrap();
    let (mut child, address) = crate::util::spawn_router(&config);
    let send = |line: &[u8]| {
        let mut s = std::net::TcpStream::connect(&address).unwrap();
        s.write_all(line).unwrap();
    };
    let wait_for = |path: &std::path::Path, expected: &[&str]| {
        let deadline = std::time::Instant::now() + crate::util::TIMEOUT;
        while read_lines(path) != expected {
            assert!(
                std::time::Instant::now() < deadline,
                "{path:?}: {:?}",
                read_lines(path)
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    send(b"before rotation\n");
    wait_for(&out, &["before rotation"]);
    std::fs::rename(&out, &rotated).unwrap();
    Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    // The reopen happens at the sink's next write, so this line proves it either way.
    send(b"after rotation\n");
    wait_for(&out, &["after rotation"]);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(read_lines(&rotated), ["before rotation"]);
}

/// With `checkpoint_path`, stdin (a file) is acknowledged end to end: after a complete run
/// the checkpoint sits at the end of the input, and a second run resumes there and writes
/// nothing again. A bad line goes to the source's dead-letter output, not lost.
#[test]
fn stdin_checkpoint_resumes_after_acknowledged_input() {
    let dir = tempdir();
    let input = dir.path().join("input.log");
    let out = dir.path().join("out.log");
    let dead = dir.path().join("dead.log");
    let checkpoint = dir.path().join("state/stdin.checkpoint");
    let config = dir.path().join("ack.toml");
    let mut text = String::new();
    for i in 0..10_000 {
        text.push_str(&format!("{{\"seq\":{i}}}\n"));
    }
    text.push_str("not json\n");
    std::fs::write(&input, &text).unwrap();
    std::fs::write(
        &config,
        format!(
            r#"
[sources.in]
type = "stdin"
decoding = "json"
checkpoint_path = "{}"

[sinks.out]
type = "file"
inputs = ["in"]
path = "{}"

[sinks.dead]
type = "file"
inputs = ["in.dead_letter"]
path = "{}"
"#,
            checkpoint.display(),
            out.display(),
            dead.display()
        ),
    )
    .unwrap();
    let run = || {
        let output = Command::new(sluice_bin())
            .args(["up", "--config"])
            .arg(&config)
            .stdin(std::fs::File::open(&input).unwrap())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run();
    assert_eq!(read_lines(&out).len(), 10_000);
    assert_eq!(read_lines(&dead).len(), 1);
    let cp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&checkpoint).unwrap()).unwrap();
    assert_eq!(cp["offset"], text.len() as u64);
    run();
    assert_eq!(
        read_lines(&out).len(),
        10_000,
        "second run must resume at the end"
    );
}

/// A sink that fails for good (its path is a directory) sends the events to its
/// dead-letter output with the reason; the other sink is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fatal_sink_error_goes_to_dead_letter_with_reason() {
    let dir = tempdir();
    let blocked = dir.path().join("is_a_directory");
    std::fs::create_dir(&blocked).unwrap();
    let dead = dir.path().join("dead.log");
    let router = Router::start(&format!(
        r#"
[sources.dlq_tcp]
type = "tcp"
address = "127.0.0.1:0"

[sinks.dlq_bad]
type = "file"
inputs = ["dlq_tcp"]
path = "{}"

[sinks.dlq_dead]
type = "file"
inputs = ["dlq_bad.dead_letter"]
path = "{}"
"#,
        blocked.display(),
        dead.display()
    ))
    .await;
    let mut s = TcpStream::connect(router.addr("dlq_tcp")).await.unwrap();
    s.write_all(b"one\ntwo\n").await.unwrap();
    s.shutdown().await.unwrap();
    wait_until("dead letters written", || {
        counter("component_sent_events_total", "dlq_dead", None) == 2
    })
    .await;
    router.stop().await;
    let letters: Vec<serde_json::Value> = read_lines(&dead)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0]["message"], "one");
    assert_eq!(letters[0]["dead_letter"]["component_id"], "dlq_bad");
    assert_eq!(letters[0]["dead_letter"]["reason_code"], "fatal");
    assert!(letters[0]["dead_letter"]["reason"]
        .as_str()
        .unwrap()
        .contains("directory"));
    assert_eq!(
        counter("component_dead_lettered_events_total", "dlq_bad", None),
        2
    );
}

/// SIGTERM with a sink that never drains: the router waits `shutdown_timeout_secs`, says so,
/// and exits non-zero instead of hanging.
#[test]
fn shutdown_deadline_bounds_the_drain() {
    use std::io::{BufRead, BufReader};
    let dir = tempdir();
    let fifo = dir.path().join("nobody-reads.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let config = dir.path().join("stuck.toml");
    std::fs::write(
        &config,
        format!(
            "shutdown_timeout_secs = 1\n[sources.in]\ntype = \"tcp\"\naddress = \"127.0.0.1:0\"\n[sinks.stuck]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"{}\"\n",
            fifo.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(sluice_bin())
        .args(["up", "--config"])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut address = None;
    let mut log = String::new();
    while address.is_none() || !log.contains("router started") {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "router exited early: {log}"
        );
        if line.contains("listening") {
            address = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("address="))
                .map(|a| a.to_string());
        }
        log.push_str(&line);
    }
    let mut tcp = std::net::TcpStream::connect(address.unwrap()).unwrap();
    tcp.write_all(b"this line can never be written\n").unwrap();
    drop(tcp);
    let started = std::time::Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(!status.success(), "{rest}");
    assert!(rest.contains("shutdown deadline passed"), "{rest}");
    assert!(started.elapsed() < crate::util::TIMEOUT);
}

/// A disk-buffered sink delivers everything, in order, and its buffer is empty afterwards.
#[test]
fn disk_buffered_sink_delivers_in_order() {
    let dir = tempdir();
    let out = dir.path().join("out.log");
    let buffer = dir.path().join("buffer");
    let config = dir.path().join("disk.toml");
    std::fs::write(
        &config,
        format!(
            "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"{}\"\nencoding = \"text\"\nbuffer = {{ type = \"disk\", path = \"{}\" }}\n",
            out.display(),
            buffer.display()
        ),
    )
    .unwrap();
    let mut input = String::new();
    for i in 0..100_000 {
        input.push_str(&format!("disk line {i}\n"));
    }
    let mut child = Command::new(sluice_bin())
        .args(["up", "--config"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), input);
    let check = Command::new(sluice_bin())
        .args(["buffer", "check"])
        .arg(&buffer)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(report.contains("unacknowledged: 0 records"), "{report}");
}

/// util-linux `logger` over UDP in RFC 3164 format, parsed and normalised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logger_sends_rfc3164_over_udp() {
    if !have_tool("logger") {
        return;
    }
    let dir = tempdir();
    let out = dir.path().join("udp3164.log");
    let router = Router::start(&format!(
        r#"
[sources.e2e_udp3164]
type = "udp"
address = "127.0.0.1:0"
decoding = "auto"

[transforms.e2e_udp3164_parse]
type = "parse"
inputs = ["e2e_udp3164"]

[sinks.e2e_udp3164_out]
type = "file"
inputs = ["e2e_udp3164_parse"]
path = "{}"
"#,
        out.display()
    ))
    .await;
    let port = router.addr("e2e_udp3164").port().to_string();
    let status = Command::new("logger")
        .args(["--udp", "--rfc3164", "-n", "127.0.0.1", "-P", &port])
        .args(["-t", "cron", "-p", "cron.warning"])
        .arg("job took too long")
        .status()
        .unwrap();
    assert!(status.success());
    wait_until("the syslog event", || {
        counter("component_sent_events_total", "e2e_udp3164_out", None) == 1
    })
    .await;
    router.stop().await;
    let event: serde_json::Value = serde_json::from_str(&read_lines(&out)[0]).unwrap();
    assert_eq!(event["message"], "job took too long", "{event}");
    assert_eq!(event["app"], "cron", "{event}");
    assert_eq!(event["level"], "warn", "{event}");
    assert_eq!(event["facility"], "cron", "{event}");
}
