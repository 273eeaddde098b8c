//! The file sink: backpressure, rotation on SIGUSR1, dead-lettering on fatal errors, and
//! delivery through a disk buffer.

use std::io::Write as _;
use std::process::{Command, Stdio};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::util::{counter, read_lines, sluice_bin, tempdir, wait_until, Router};

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

/// SIGUSR1 makes the file sink reopen: after logrotate renames the file, new events go to a
/// fresh file at the configured path. A real signal to a real router process (reopening is
/// process-wide, so it must not run inside the shared test process).
#[test]
fn file_sink_reopens_after_rotation_on_sigusr1() {
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
    let mut router = crate::util::spawn_router(crate::util::sluice_up(&config));
    let address = router.address.clone().expect("tcp source address");
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
    router.signal("-USR1");
    // The signal is handled asynchronously: a line sent before the handler ran would still
    // go to the renamed file (the inode check runs once a second, and only when writing).
    assert!(router.wait_for_log(&["sigusr1: reopening files"]));
    send(b"after rotation\n");
    wait_for(&out, &["after rotation"]);
    router.signal("-TERM");
    let (status, log) = router.finish();
    assert!(status.success(), "{log}");
    assert_eq!(read_lines(&rotated), ["before rotation"]);
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
    up_with_stdin(&config, &input);
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

/// A destination whose open blocks for longer than `idle_timeout_secs` (a FIFO waiting for
/// its reader) stays open after the first write: the idle clock starts once the file is
/// open. Before, the file was closed right after the first write, the reader saw EOF, and the
/// next write blocked for ever in open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_open_does_not_count_as_idle_time() {
    let dir = tempdir();
    let fifo = dir.path().join("late-reader.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let router = Router::start(&format!(
        r#"
[sources.late_tcp]
type = "tcp"
address = "127.0.0.1:0"

[sinks.late_fifo]
type = "file"
inputs = ["late_tcp"]
path = "{}"
encoding = "text"
idle_timeout_secs = 1
"#,
        fifo.display()
    ))
    .await;
    // Unblocks the sink if an assertion fails before the reader opened the FIFO. Declared
    // after the router so that it drops first: the router's drop waits for the sink thread.
    let _drain = crate::util::FifoDrain(fifo.clone());
    let mut stream = TcpStream::connect(router.addr("late_tcp")).await.unwrap();
    stream.write_all(b"one\n").await.unwrap();
    // The scenario, not synchronisation: the sink waits in open() longer than its idle
    // timeout before a reader shows up.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let reader_path = fifo.clone();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::open(reader_path).unwrap(), &mut text)
            .unwrap();
        text
    });
    wait_until("first line written", || {
        counter("component_sent_events_total", "late_fifo", None) == 1
    })
    .await;
    stream.write_all(b"two\n").await.unwrap();
    wait_until("second line written to the same open FIFO", || {
        counter("component_sent_events_total", "late_fifo", None) == 2
    })
    .await;
    drop(stream);
    router.stop().await;
    assert_eq!(reader.join().unwrap(), "one\ntwo\n");
}

/// A path templated from a field sends each event to its own file, in input order, however
/// the apps interleave within a batch.
#[test]
fn templated_path_splits_events_by_field() {
    let dir = tempdir();
    let config = dir.path().join("split.toml");
    std::fs::write(
        &config,
        format!(
            "[sources.in]\ntype = \"stdin\"\ndecoding = \"json\"\n[sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"{}/{{{{ app }}}}.log\"\nencoding = \"json\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let apps = ["web", "api", "worker"];
    let mut input = String::new();
    let mut expected: Vec<Vec<String>> = vec![Vec::new(); apps.len()];
    for i in 0..30_000 {
        // An uneven interleaving, so runs of one app vary in length within a batch.
        let a = (i * i + i / 7) % apps.len();
        input.push_str(&format!("{{\"app\":\"{}\",\"n\":{i}}}\n", apps[a]));
        expected[a].push(i.to_string());
    }
    up_with_stdin(&config, &input);
    for (app, want) in apps.iter().zip(expected) {
        let text = std::fs::read_to_string(dir.path().join(format!("{app}.log"))).unwrap();
        let got: Vec<String> = text
            .lines()
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(v["app"], *app, "{line} in {app}.log");
                v["n"].to_string()
            })
            .collect();
        assert_eq!(got, want, "{app}.log");
    }
}

/// Runs `sluice up --config config` with `input` on stdin until it exits at EOF; asserts
/// that it exits successfully.
fn up_with_stdin(config: &std::path::Path, input: &str) {
    let mut child = Command::new(sluice_bin())
        .args(["up", "--config"])
        .arg(config)
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
}
