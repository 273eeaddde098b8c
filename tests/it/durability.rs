//! Durability: kill -9 loses no acknowledged event; a dead sink does not hold up the others.

use std::collections::HashMap;
use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::util::{counter, sluice_bin, tempdir, wait_until, Router, TIMEOUT};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Waits for `child` with a bound; kills it and fails the test if it does not finish.
fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("router did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The crash test. Numbered events flow from an acknowledging source (stdin from a file,
/// with a checkpoint) into a disk-buffered file sink; the router is killed with SIGKILL at
/// random moments and restarted; a last run finishes the input. Every event (all of them
/// are acknowledged by then) must be in the output: gaps = 0. Duplicates (events delivered
/// again after a kill) are allowed by at-least-once, and counted.
///
/// A run that finishes the whole input before its kill does not count as a kill: the test
/// appends another chunk of numbered events to the input (the checkpoint resumes in the
/// same file) and goes on, so every counted kill interrupts a router at work.
///
/// Short mode (the test suite): 20 kills. Long mode:
/// `SLUICE_CRASH_KILLS=100 cargo test --release --test it crash -- --nocapture`
#[test]
fn crash_kill9_at_random_moments_loses_no_acknowledged_event() {
    let kills = env_number("SLUICE_CRASH_KILLS", 20);
    let chunk = env_number("SLUICE_CRASH_EVENTS", 200_000);
    let seed = env_number(
        "SLUICE_CRASH_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    println!(
        "crash test: {kills} kills, chunks of {chunk} events, seed {seed} (SLUICE_CRASH_SEED to replay)"
    );
    let mut rng = fastrand::Rng::with_seed(seed);

    let dir = tempdir();
    let input = dir.path().join("numbers.log");
    let out = dir.path().join("out.log");
    let config = dir.path().join("crash.toml");
    let log = dir.path().join("router.log");
    let mut events = 0u64;
    let append_chunk = |events: &mut u64| {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&input)
            .unwrap();
        let mut w = std::io::BufWriter::new(file);
        for i in *events..*events + chunk {
            writeln!(
                w,
                "seq={i:010} payload=abcdefghijklmnopqrstuvwxyz0123456789"
            )
            .unwrap();
        }
        *events += chunk;
    };
    append_chunk(&mut events);
    std::fs::write(
        &config,
        format!(
            r#"
[sources.numbers]
type = "stdin"
checkpoint_path = "{dir}/state/numbers.checkpoint"

[sinks.out]
type = "file"
inputs = ["numbers"]
path = "{out}"
encoding = "text"
buffer = {{ type = "disk", path = "{dir}/buffer", max_bytes = 268435456 }}
"#,
            dir = dir.path().display(),
            out = out.display()
        ),
    )
    .unwrap();
    let spawn = || -> Child {
        Command::new(sluice_bin())
            .args(["up", "--config"])
            .arg(&config)
            .stdin(std::fs::File::open(&input).unwrap())
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap(),
            )
            .spawn()
            .unwrap()
    };

    let mut finished_before_kill = 0;
    let mut killed = 0;
    while killed < kills {
        assert!(
            finished_before_kill < kills * 5,
            "runs keep finishing before the kill"
        );
        let mut child = spawn();
        // A random moment: this sleep picks when to kill, it synchronises nothing.
        std::thread::sleep(Duration::from_millis(rng.u64(5..=250)));
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "run failed: {status:?}");
            finished_before_kill += 1;
            append_chunk(&mut events);
            continue;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        killed += 1;
    }
    let mut last = spawn();
    let status = wait_bounded(&mut last, TIMEOUT * 4);
    let router_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.success(),
        "final run failed: {status:?}\n{router_log}"
    );

    let output = std::fs::read(&out).unwrap();
    let mut seen: HashMap<u64, u32> = HashMap::with_capacity(events as usize);
    for line in output.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let text = std::str::from_utf8(line).expect("utf-8 line");
        let seq: u64 = text
            .strip_prefix("seq=")
            .and_then(|t| t.get(..10))
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("malformed output line {text:?}"));
        assert!(
            text.ends_with("payload=abcdefghijklmnopqrstuvwxyz0123456789"),
            "torn line {text:?}"
        );
        *seen.entry(seq).or_default() += 1;
    }
    let gaps = (0..events).filter(|i| !seen.contains_key(i)).count();
    let duplicates: u64 = seen.values().map(|c| u64::from(c - 1)).sum();
    let damaged = router_log.matches("damage").count();
    println!(
        "crash test: kills={kills} finished_before_kill={finished_before_kill} events={events} gaps={gaps} duplicates={duplicates} damage_reports={damaged}"
    );
    assert_eq!(gaps, 0, "acknowledged events lost (seed {seed})");
    assert!(
        seen.keys().all(|k| *k < events),
        "events that were never sent"
    );
}

/// Isolation: one sink's destination (a FIFO nobody reads) is unavailable for 30 s while a
/// second sink on the same source keeps receiving everything at full rate; when the first
/// comes back it catches up from its disk buffer and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_sink_with_disk_buffer_does_not_hold_up_the_others() {
    const OUTAGE: Duration = Duration::from_secs(30);
    const BURST: usize = 2_000;
    const BURST_EVERY: Duration = Duration::from_millis(100);
    let dir = tempdir();
    let fifo = dir.path().join("down.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let healthy = dir.path().join("healthy.log");
    let router = Router::start(&format!(
        r#"
[sources.iso_tcp]
type = "tcp"
address = "127.0.0.1:0"

[sinks.iso_down]
type = "file"
inputs = ["iso_tcp"]
path = "{}"
encoding = "text"
buffer = {{ type = "disk", path = "{}/buffer", fsync = false }}

[sinks.iso_healthy]
type = "file"
inputs = ["iso_tcp"]
path = "{}"
encoding = "text"
"#,
        fifo.display(),
        dir.path().display(),
        healthy.display()
    ))
    .await;
    // Only acts if the test fails early: unblocks the down sink so the runtime can stop.
    // Declared after the router so that it drops first (the router's drop waits for the
    // sink thread).
    let mut panic_guard = Some(crate::util::FifoDrain(fifo.clone()));
    let addr = router.addr("iso_tcp");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let mut sent = 0usize;
    let mut expected = Vec::new();
    let mut worst_lag = Duration::ZERO;
    while started.elapsed() < OUTAGE {
        let mut burst = Vec::new();
        for _ in 0..BURST {
            burst.extend_from_slice(format!("iso {sent:09}\n").as_bytes());
            sent += 1;
        }
        expected.extend_from_slice(&burst);
        let burst_sent = Instant::now();
        stream.write_all(&burst).await.unwrap();
        // The healthy sink keeps up with every burst during the outage.
        wait_until("healthy sink keeps up", || {
            counter("component_sent_events_total", "iso_healthy", None) == sent as u64
        })
        .await;
        worst_lag = worst_lag.max(burst_sent.elapsed());
        tokio::time::sleep(BURST_EVERY).await;
    }
    assert_eq!(
        counter("component_sent_events_total", "iso_down", None),
        0,
        "the down sink cannot have delivered anything"
    );
    println!("isolation: {sent} events during a {OUTAGE:?} outage; healthy sink's worst lag behind a burst {worst_lag:?}");
    stream.shutdown().await.unwrap();
    drop(stream);

    // The destination comes back: read the FIFO until the sink closes it at shutdown.
    std::mem::forget(panic_guard.take());
    let reader_path = fifo.clone();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut std::fs::File::open(reader_path).unwrap(), &mut all)
            .unwrap();
        all
    });
    wait_until("down sink caught up", || {
        counter("component_sent_events_total", "iso_down", None) == sent as u64
    })
    .await;
    router.stop().await;
    let caught_up = reader.join().unwrap();
    assert_eq!(
        caught_up, expected,
        "the recovered sink got everything, in order"
    );
    assert_eq!(std::fs::read(&healthy).unwrap(), expected);
}
