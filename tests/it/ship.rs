//! `sluice ship` and `sluice run` (the binaries) against an in-process router with an
//! `http` source: a router outage mid-stream loses nothing and never blocks the writer.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{free_port, read_lines, sluice_bin, tempdir, Router};

/// A free port: bind port 0, note it, release it.
async fn router(port: u16, out: &Path) -> Router {
    Router::start(&format!(
        r#"
[sources.http_in]
type = "http"
address = "127.0.0.1:{port}"

[sinks.out]
type = "file"
inputs = ["http_in"]
path = "{}"
"#,
        out.display()
    ))
    .await
}

/// `sluice ship ARGS` with `input` on its stdin, run to its exit.
fn ship_stdin(input: &str, args: &[&str]) -> std::process::Output {
    let mut child = Command::new(sluice_bin())
        .arg("ship")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn spool_text(path: &Path) -> &str {
    path.to_str().expect("a temporary path is UTF-8")
}

fn records(paths: &[&Path]) -> Vec<serde_json::Value> {
    paths
        .iter()
        .flat_map(|p| read_lines(p))
        .map(|l| serde_json::from_str(&l).expect("json line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ship_survives_a_router_outage_without_blocking_the_writer() {
    const LINES: usize = 20_000;
    let dir = tempdir();
    let (out1, out2) = (dir.path().join("out1.log"), dir.path().join("out2.log"));
    let port = free_port();
    let first = router(port, &out1).await;

    let mut child = Command::new(sluice_bin())
        .args(["ship", "--to", &format!("http://127.0.0.1:{port}/v1/logs")])
        .args([
            "--app",
            "web",
            "--instance",
            "web.1",
            "--max-backoff-secs",
            "1",
        ])
        .arg("--spool")
        .arg(dir.path().join("spool"))
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let started = Instant::now();
    // ~1,250 lines a second for 16 s: the outage (3 s .. 13 s) is mid-stream.
    let writer = std::thread::spawn(move || {
        let mut longest = Duration::ZERO;
        for i in 0..LINES {
            let line = format!("line {i:06} {}\n", "x".repeat(i % 50));
            let t = Instant::now();
            stdin.write_all(line.as_bytes()).unwrap();
            longest = longest.max(t.elapsed());
            if i % 125 == 124 {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        drop(stdin); // EOF
        longest
    });

    tokio::time::sleep(Duration::from_secs(3)).await;
    first.stop().await;
    let down_at = started.elapsed();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let second = router(port, &out2).await;

    let longest_write = tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "ship failed: {stderr}");
    second.stop().await;

    let before = read_lines(&out1).len();
    let records = records(&[&out1, &out2]);
    let mut seen: HashMap<usize, usize> = HashMap::new();
    for r in &records {
        assert_eq!(r["app"], "web");
        assert_eq!(r["instance"], "web.1");
        assert_eq!(r["stream"], "stdout");
        let message = r["message"].as_str().unwrap();
        let seq: usize = message[5..11].parse().unwrap();
        assert_eq!(message.len(), 12 + seq % 50, "{message}");
        *seen.entry(seq).or_default() += 1;
    }
    let missing: Vec<usize> = (0..LINES).filter(|i| !seen.contains_key(i)).collect();
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    println!(
        "router down at {down_at:?} for 10 s; {before} lines before, {} after; {duplicates} duplicates; longest write {longest_write:?}; total {:?}",
        records.len() - before,
        started.elapsed()
    );
    assert!(
        missing.is_empty(),
        "{} lines missing, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        before > 0 && records.len() > before,
        "the outage was not mid-stream"
    );
    assert!(
        longest_write < Duration::from_secs(1),
        "a write blocked for {longest_write:?} while the router was down"
    );
    assert!(
        stderr.contains("cannot deliver"),
        "outage not reported: {stderr}"
    );
    // Everything acknowledged: the spool holds no batch.
    let left = std::fs::read_dir(dir.path().join("spool"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "batch"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ship_sends_a_leftover_spool_first_and_reports_an_unfinished_drain() {
    let dir = tempdir();
    let spool = dir.path().join("spool");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/v1/logs");
    // No router: the drain times out and says how many lines are left.
    let output = ship_stdin(
        "one\ntwo\n",
        &[
            "--to",
            &url,
            "--spool",
            spool_text(&spool),
            "--drain-timeout-secs",
            "1",
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("2 lines"), "{stderr}");

    // With the router up, the leftover goes first, then the new line.
    let out = dir.path().join("out.log");
    let router = router(port, &out).await;
    let output = tokio::task::spawn_blocking(move || {
        ship_stdin(
            "three\n",
            &[
                "--to",
                &url,
                "--spool",
                spool_text(&spool),
                "--drain-timeout-secs",
                "20",
            ],
        )
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    router.stop().await;
    let messages: Vec<String> = records(&[&out])
        .iter()
        .map(|r| r["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(messages, ["one", "two", "three"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_ships_both_streams_and_the_exit_code() {
    let dir = tempdir();
    let out = dir.path().join("out.log");
    let port = free_port();
    let router = router(port, &out).await;
    let spool = dir.path().join("spool");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(sluice_bin())
            .args([
                "run",
                "--app",
                "job",
                "--to",
                &format!("http://127.0.0.1:{port}/v1/logs"),
            ])
            .arg("--spool")
            .arg(spool)
            .args(["--", "sh", "-c", "echo out; echo err >&2; exit 3"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    router.stop().await;
    let records = records(&[&out]);
    let find = |key: &str, value: &str| {
        records
            .iter()
            .find(|r| r[key] == value)
            .unwrap_or_else(|| panic!("no {key}={value} in {records:?}"))
    };
    assert_eq!(find("message", "out")["stream"], "stdout");
    assert_eq!(find("message", "err")["stream"], "stderr");
    let start = find("event", "start");
    assert_eq!(start["command"], "sh -c echo out; echo err >&2; exit 3");
    let exit = find("event", "exit");
    assert_eq!(exit["code"], 3);
    assert!(records.iter().all(|r| r["app"] == "job"), "{records:?}");
    // The exit event comes after the command's lines.
    assert_eq!(records.last().unwrap()["event"], "exit");
}

/// `sluice run` whose local pipeline cannot start (another router holds its http port)
/// still runs the command, says why, and ships the lines to that address: here the other
/// router receives them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_starts_the_command_when_its_local_router_cannot_bind() {
    let dir = tempdir();
    let out = dir.path().join("other.log");
    let port = free_port();
    let other = router(port, &out).await;
    let config = dir.path().join("local.toml");
    std::fs::write(
        &config,
        format!(
            "[sources.local_http]\ntype = \"http\"\naddress = \"127.0.0.1:{port}\"\n[sinks.local_out]\ntype = \"blackhole\"\ninputs = [\"local_http\"]\n"
        ),
    )
    .unwrap();
    let spool = dir.path().join("spool");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(sluice_bin())
            .args(["run", "--app", "blocked", "--config"])
            .arg(&config)
            .arg("--spool")
            .arg(&spool)
            .args(["--", "sh", "-c", "echo still ran; exit 4"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    other.stop().await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("Address already in use") && stderr.contains("running the command anyway"),
        "{stderr}"
    );
    let records = records(&[&out]);
    assert!(
        records
            .iter()
            .any(|r| r["app"] == "blocked" && r["message"] == "still ran"),
        "{records:?}"
    );
}

/// `--to` takes a router's base URL as well as its ingest endpoint: without a path the lines
/// go to `/v1/logs`, and an address without a scheme means `http://`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ship_and_run_accept_a_routers_base_url() {
    let dir = tempdir();
    let out = dir.path().join("out.log");
    let port = free_port();
    let router = router(port, &out).await;
    let spool = dir.path().join("spool");
    let outputs = tokio::task::spawn_blocking(move || {
        let base = format!("http://127.0.0.1:{port}");
        let ship = |to: &str, line: &str| {
            ship_stdin(
                &format!("{line}\n"),
                &[
                    "--to",
                    to,
                    "--spool",
                    spool_text(&spool),
                    "--drain-timeout-secs",
                    "20",
                ],
            )
        };
        let run = Command::new(sluice_bin())
            .args(["run", "--app", "job", "--to", &base, "--spool"])
            .arg(&spool)
            .args(["--drain-timeout-secs", "20", "--", "echo", "ran"])
            .output()
            .unwrap();
        [
            ("ship, no path", ship(&base, "bare")),
            ("ship, path /", ship(&format!("{base}/"), "slash")),
            (
                "ship, no scheme",
                ship(&format!("127.0.0.1:{port}"), "schemeless"),
            ),
            ("run, no path", run),
        ]
    })
    .await
    .unwrap();
    router.stop().await;
    for (what, output) in &outputs {
        assert!(
            output.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let messages: Vec<String> = records(&[&out])
        .iter()
        .filter_map(|r| r["message"].as_str().map(str::to_string))
        .collect();
    for line in ["bare", "slash", "schemeless", "ran"] {
        assert!(
            messages.iter().any(|m| m == line),
            "{line} not in {messages:?}"
        );
    }
}

/// Without `--to`, `sluice run` starts the pipeline in its own process and delivers the
/// command's lines through it before exiting with the command's code.
#[test]
fn run_without_to_routes_through_a_local_pipeline() {
    let dir = tempdir();
    let out = dir.path().join("local.log");
    let config = dir.path().join("local.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[sources.local_http]
type = "http"
address = "127.0.0.1:0"

[sinks.local_file]
type = "file"
inputs = ["local_http"]
path = "{}"
"#,
            out.display()
        ),
    )
    .unwrap();
    let output = Command::new(sluice_bin())
        .args(["run", "--app", "solo", "--config"])
        .arg(&config)
        .arg("--spool")
        .arg(dir.path().join("spool"))
        .args(["--", "sh", "-c", "echo out; echo err >&2; exit 3"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    // Every line is in the file when `run` exits: it waited for the acknowledgements and
    // drained its pipeline.
    let records = records(&[&out]);
    assert!(records.iter().all(|r| r["app"] == "solo"), "{records:?}");
    let messages: Vec<_> = records
        .iter()
        .map(|r| (r["stream"].clone(), r["message"].clone()))
        .collect();
    assert!(
        messages.contains(&("stdout".into(), "out".into())),
        "{records:?}"
    );
    assert!(
        messages.contains(&("stderr".into(), "err".into())),
        "{records:?}"
    );
    assert_eq!(records.last().unwrap()["event"], "exit", "{records:?}");
    assert_eq!(records.last().unwrap()["code"], 3, "{records:?}");

    // A local pipeline without an http source cannot receive the lines: say so.
    std::fs::write(
        &config,
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\n",
    )
    .unwrap();
    let output = Command::new(sluice_bin())
        .args(["run", "--app", "solo", "--config"])
        .arg(&config)
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("needs an http source"), "{stderr}");
}

#[test]
fn run_forwards_sigterm_to_the_child() {
    let dir = tempdir();
    let port = free_port(); // no router: the lines stay in the spool
    let mut child = Command::new(sluice_bin())
        .args([
            "run",
            "--app",
            "job",
            "--to",
            &format!("http://127.0.0.1:{port}/v1/logs"),
        ])
        .args(["--drain-timeout-secs", "0", "--spool"])
        .arg(dir.path().join("spool"))
        .args([
            "--",
            "sh",
            "-c",
            "trap 'echo got term; exit 7' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the child started (its start event is spooled), then signal sluice.
    let deadline = Instant::now() + Duration::from_secs(10);
    let spool = dir.path().join("spool");
    let spooled = || {
        std::fs::read_dir(&spool)
            .map(|d| {
                d.filter_map(Result::ok)
                    .any(|e| e.path().extension().is_some_and(|x| x == "batch"))
            })
            .unwrap_or(false)
    };
    while !spooled() {
        assert!(
            Instant::now() < deadline,
            "the start event was never spooled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            // 7 from the child's trap; the drain timeout of 0 leaves the spool unsent, which
            // does not override a non-zero child code.
            assert_eq!(status.code(), Some(7));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sluice run did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_router_refuses_is_set_aside_and_reported() {
    let dir = tempdir();
    let out = dir.path().join("out.log");
    let port = free_port();
    // 413 for any batch: bodies over 10 bytes.
    let router = Router::start(&format!(
        r#"
[sources.http_in]
type = "http"
address = "127.0.0.1:{port}"
max_body_bytes = 10

[sinks.out]
type = "file"
inputs = ["http_in"]
path = "{}"
"#,
        out.display()
    ))
    .await;
    let spool = dir.path().join("spool");
    let spool_arg = spool.clone();
    let output = tokio::task::spawn_blocking(move || {
        ship_stdin(
            "a line too long for the router\n",
            &[
                "--to",
                &format!("http://127.0.0.1:{port}/v1/logs"),
                "--spool",
                spool_text(&spool_arg),
            ],
        )
    })
    .await
    .unwrap();
    router.stop().await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("413"), "{stderr}");
    assert!(stderr.contains("1 lines were refused"), "{stderr}");
    assert_eq!(std::fs::read_dir(spool.join("damaged")).unwrap().count(), 1);
}

/// Lines shipped while no router answers keep the time they were read (the router's parse
/// takes `read_at` when a line has no time of its own), not the time the router finally got
/// them, and their order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_lines_keep_the_time_they_were_read() {
    let dir = tempdir();
    let spool = dir.path().join("spool");
    let out = dir.path().join("out.log");
    let port = free_port();
    let ship = move |input: &str| {
        let to = format!("http://127.0.0.1:{port}/v1/logs");
        ship_stdin(
            input,
            &[
                "--app",
                "late",
                "--to",
                &to,
                "--spool",
                spool_text(&spool),
                "--drain-timeout-secs",
                "1",
            ],
        )
    };
    let outage = ship("first\nsecond\nthird\n");
    assert_eq!(
        outage.status.code(),
        Some(1),
        "no router yet: the lines stay spooled"
    );
    let before_router = sluice::event::format_timestamp(sluice::event::now_nanos());
    let router = Router::start(&format!(
        r#"
[sources.late_in]
type = "http"
address = "127.0.0.1:{port}"

[transforms.late_parse]
type = "parse"
inputs = ["late_in"]

[sinks.late_out]
type = "file"
inputs = ["late_parse"]
path = "{}"
"#,
        out.display()
    ))
    .await;
    let delivered = tokio::task::spawn_blocking(move || ship("")).await.unwrap();
    router.stop().await;
    assert!(
        delivered.status.success(),
        "{}",
        String::from_utf8_lossy(&delivered.stderr)
    );
    let records = records(&[&out]);
    let lines: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            (
                r["message"].as_str().unwrap_or_default().to_string(),
                r["timestamp"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let messages: Vec<&str> = lines.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(messages, ["first", "second", "third"], "{records:?}");
    for (message, timestamp) in &lines {
        // RFC 3339 in UTC with microseconds on both sides: text order is time order.
        assert!(
            timestamp.as_str() < before_router.as_str(),
            "{message} stamped {timestamp}, after the router came up at {before_router}"
        );
    }
    assert!(
        lines.windows(2).all(|w| w[0].1 < w[1].1),
        "read times in order: {lines:?}"
    );
}

/// The router's answer is read only up to a bound: a 2xx with a 64 MiB body delivers the
/// batch without the shipper taking in the whole body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ship_reads_a_bounded_part_of_the_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const ANSWER_BYTES: usize = 64 << 20;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Answers one request and returns how much of the body the kernel took from it before
    // the shipper hung up (the socket buffers hold a few MiB at most).
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        let complete = |request: &[u8]| {
            let text = String::from_utf8_lossy(request).to_lowercase();
            let Some(head_end) = text.find("\r\n\r\n") else {
                return false;
            };
            let length: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            request.len() >= head_end + 4 + length
        };
        while !complete(&request) {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the shipper hung up mid-request");
            request.extend_from_slice(&buf[..n]);
        }
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {ANSWER_BYTES}\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        while sent < ANSWER_BYTES {
            let left = chunk.len().min(ANSWER_BYTES - sent);
            match stream.write(&chunk[..left]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => sent += n,
            }
        }
        sent
    });
    let dir = tempdir();
    let spool = dir.path().join("spool");
    let output = tokio::task::spawn_blocking(move || {
        ship_stdin(
            "one line\n",
            &[
                "--to",
                &format!("http://{addr}/v1/logs"),
                "--spool",
                spool_text(&spool),
                "--drain-timeout-secs",
                "20",
            ],
        )
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let sent = server.await.unwrap();
    assert!(
        sent < ANSWER_BYTES / 4,
        "the shipper took {sent} bytes of a {ANSWER_BYTES}-byte answer"
    );
}
