//! End to end: whole pipelines and the router process — routing, stdin passthrough and
//! checkpoints, the embedded default pipeline, graceful and bounded shutdown.

use std::io::Write as _;
use std::process::{Command, Stdio};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::util::{counter, read_lines, sluice_bin, tempdir, wait_until, Router};

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

/// The README's first command: `sluice up` with no `--config` runs the embedded default
/// pipeline (TCP and UDP on 5140, parse, enrich, file under data/) and, on SIGTERM, drains
/// and exits 0.
#[test]
fn default_pipeline_parses_tcp_and_udp_and_drains_on_sigterm() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let mut command = Command::new(sluice_bin());
    command
        .arg("up")
        .current_dir(dir.path())
        .env("SLUICE_TCP", "127.0.0.1:5140")
        .env("SLUICE_UDP", "127.0.0.1:5140")
        .env("SLUICE_HTTP", "127.0.0.1:8080")
        .env("SLUICE_DATA_DIR", &data);
    let router = crate::util::spawn_router(command);
    assert!(
        router.startup_log.contains("127.0.0.1:5140"),
        "{}",
        router.startup_log
    );
    // No pipelines/default.toml exists here: the log must not name it as the file.
    assert!(
        router
            .startup_log
            .contains("pipeline=embedded default pipeline"),
        "{}",
        router.startup_log
    );

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
    router.signal("-TERM");
    let (exit, rest) = router.finish();
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

/// With `checkpoint_path`, stdin (a file) is acknowledged end to end: after a complete run
/// the checkpoint sits at the end of the input, and a second run resumes there and writes
/// nothing again. A bad line goes to the source's dead-letter output, not lost. The first
/// line is longer than one read, so a read yields no event, which must not hold up the
/// checkpoint.
#[test]
fn stdin_checkpoint_resumes_after_acknowledged_input() {
    let dir = tempdir();
    let input = dir.path().join("input.log");
    let out = dir.path().join("out.log");
    let dead = dir.path().join("dead.log");
    let checkpoint = dir.path().join("state/stdin.checkpoint");
    let config = dir.path().join("ack.toml");
    let mut text = format!("{{\"seq\":-1,\"pad\":\"{}\"}}\n", "x".repeat(90 * 1024));
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
    assert_eq!(read_lines(&out).len(), 10_001);
    assert_eq!(read_lines(&dead).len(), 1);
    let cp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&checkpoint).unwrap()).unwrap();
    assert_eq!(cp["offset"], text.len() as u64);
    run();
    assert_eq!(
        read_lines(&out).len(),
        10_001,
        "second run must resume at the end"
    );
}

/// SIGTERM with a sink that never drains: the router waits `shutdown_timeout_secs`, says so,
/// and exits non-zero instead of hanging.
#[test]
fn shutdown_deadline_bounds_the_drain() {
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
            "shutdown_timeout_secs = 1\n[api]\naddress = \"127.0.0.1:0\"\n[sources.in]\ntype = \"tcp\"\naddress = \"127.0.0.1:0\"\n[sinks.stuck]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"{}\"\n",
            fifo.display()
        ),
    )
    .unwrap();
    let router = crate::util::spawn_router(crate::util::sluice_up(&config));
    let mut tcp = std::net::TcpStream::connect(router.address_of("in").expect("address")).unwrap();
    tcp.write_all(b"this line can never be written\n").unwrap();
    drop(tcp);
    // Signal only once the line is inside the router: a SIGTERM that wins the race with the
    // read would find nothing to drain.
    let api: std::net::SocketAddr = router.address_of("api").expect("api").parse().unwrap();
    let deadline = std::time::Instant::now() + crate::util::TIMEOUT;
    while !crate::api::http_get(api, "/metrics")
        .1
        .contains("sluice_component_received_events_total{component_id=\"in\"} 1")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the line never arrived"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let started = std::time::Instant::now();
    router.signal("-TERM");
    let (status, rest) = router.finish();
    assert!(!status.success(), "{rest}");
    assert!(rest.contains("shutdown deadline passed"), "{rest}");
    assert!(started.elapsed() < crate::util::TIMEOUT);
}

/// Every subcommand's error reaches one printer: `error: ` and the cause chain on one line,
/// with no cause repeated; a TOML syntax error keeps toml's own picture of the line.
#[test]
fn errors_are_printed_once_each_with_their_causes() {
    let dir = tempdir();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = dir.path().join("taken.toml");
    std::fs::write(
        &config,
        format!(
            "[sources.in]\ntype = \"tcp\"\naddress = \"{}\"\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\n",
            taken.local_addr().unwrap()
        ),
    )
    .unwrap();
    let output = Command::new(sluice_bin())
        .args(["up", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(line.contains("source `in`"), "{line}");
    assert_eq!(line.matches("Address already in use").count(), 1, "{line}");

    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[sources.in\ntype = \"stdin\"\n").unwrap();
    let output = Command::new(sluice_bin())
        .arg("validate")
        .arg(&broken)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.contains("1 | [sources.in") && stderr.contains('^'),
        "the line and a caret: {stderr}"
    );
}

/// A router whose stderr reader went away (a supervisor restarted, a test gave up) still
/// drains and exits on SIGTERM: the failed log write is dropped, not reported with a panic
/// that killed the task that logged it (the signal handler).
#[test]
fn sigterm_stops_a_router_whose_stderr_was_closed() {
    use std::io::BufRead as _;
    let dir = tempdir();
    let config = dir.path().join("pipeline.toml");
    std::fs::write(
        &config,
        "[sources.tcp]\ntype = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"tcp\"]\n",
    )
    .unwrap();
    let mut child = crate::util::sluice_up(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("router started") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "router exited early"
        );
    }
    drop(stderr);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + crate::util::TIMEOUT;
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("a router with a closed stderr ignored SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert!(exit.success(), "{exit}");
}
