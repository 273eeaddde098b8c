//! Shutdown at the deadline, with a sink's destination down, acknowledges nothing that was
//! not delivered.
//!
//! Each case puts a disk buffer in front of a sink whose destination is down (a Kafka
//! broker port nobody listens on, an HTTP endpoint that refuses connections, a webhook
//! likewise, a file in a directory nobody may write), sends a few events, and stops the
//! router with SIGTERM and `shutdown_timeout_secs = 1`. At the deadline the sink's task is
//! cancelled with the batch in hand; whatever that drop reports must not move the buffer's
//! acknowledged position, so the next start delivers the events again. The cancellation
//! races the process's exit (the loss this guards against showed in about 1 run in 6), so
//! each case runs many rounds.

use std::io::Write as _;
use std::path::Path;

use crate::util::{free_port, sluice_up, spawn_router, tempdir};

/// Rounds per case: a defect that shows once in 6 runs escapes 20 rounds 2.6 % of the time.
const ROUNDS: usize = 20;

struct Case {
    name: &'static str,
    /// `[sinks.out]` without its buffer; `{dir}` is the round's directory.
    sink: &'static str,
    /// Alert rules feed the sink (a notifier takes alert events only).
    via_alert: bool,
}

#[cfg(feature = "kafka")]
const KAFKA: Case = Case {
    name: "kafka",
    sink: r#"type = "kafka"
bootstrap_servers = "127.0.0.1:{port}"
topic = "logs"
librdkafka_options = { "message.timeout.ms" = 100 }
"#,
    via_alert: false,
};

const OTHERS: &[Case] = &[
    Case {
        name: "http",
        sink: r#"type = "http"
uri = "http://127.0.0.1:{port}/v1/logs"
retry = { initial_backoff_ms = 20 }
"#,
        via_alert: false,
    },
    Case {
        name: "webhook",
        sink: r#"type = "webhook"
url = "http://127.0.0.1:{port}/hook"
retry = { initial_backoff_ms = 20 }
"#,
        via_alert: true,
    },
    Case {
        name: "file",
        sink: r#"type = "file"
path = "{dir}/locked/out.log"
retry = { initial_backoff_ms = 20 }
"#,
        via_alert: false,
    },
];

fn config(case: &Case, dir: &Path, port: u16) -> String {
    let dir_text = dir.display().to_string();
    let sink = case
        .sink
        .replace("{port}", &port.to_string())
        .replace("{dir}", &dir_text);
    let (alert, sink_input) = if case.via_alert {
        (
            format!(
                r#"
[alerts.burst]
inputs = ["in"]
condition = 'level == "error"'
group_by = ["app"]
kind = "threshold"
window_secs = 1
threshold = 1
state_path = "{dir_text}/burst.json"
"#
            ),
            "burst",
        )
    } else {
        (String::new(), "in")
    };
    format!(
        r#"
shutdown_timeout_secs = 1

[sources.in]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"
{alert}
[sinks.out]
inputs = ["{sink_input}"]
buffer = {{ type = "disk", path = "{dir_text}/buffer" }}
{sink}"#
    )
}

/// Records waiting in the disk buffer at `path` (0 before it exists).
fn unacknowledged(path: &Path) -> u64 {
    if !path.exists() {
        return 0;
    }
    sluice::buffer::disk::check(path)
        .map(|check| check.report.unacked_records)
        .unwrap_or(0)
}

/// One round: events in, SIGTERM, exit at the deadline; returns the records buffered before
/// the stop and after the exit.
fn round(case: &Case, dir: &Path) -> (u64, u64) {
    let config_path = dir.join("pipeline.toml");
    std::fs::write(&config_path, config(case, dir, free_port())).unwrap();
    let mut router = spawn_router(sluice_up(&config_path));
    let address = router.address_of("in").expect("tcp source address");
    let mut tcp = std::net::TcpStream::connect(&address).unwrap();
    for i in 0..3 {
        writeln!(
            tcp,
            r#"{{"level":"error","app":"billing","message":"m{i}"}}"#
        )
        .unwrap();
    }
    drop(tcp);
    // The sink has the batch in hand once it retries.
    assert!(
        router.wait_for_log(&["component_id=out", "; retrying"]),
        "{}: the sink never tried its destination",
        case.name
    );
    // The lines may have arrived in more than one read, so the sink can be retrying the
    // first batch before the last is on disk: wait for all of them (the buffer's own report
    // is the only signal of that from outside).
    let buffer = dir.join("buffer");
    let wanted = if case.via_alert { 1 } else { 3 };
    let deadline = std::time::Instant::now() + crate::util::TIMEOUT;
    let before = loop {
        let n = unacknowledged(&buffer);
        if n >= wanted {
            break n;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}: only {n} of {wanted} records reached the disk buffer",
            case.name
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert_eq!(before, wanted, "{}", case.name);
    router.signal("-TERM");
    let (_status, log) = router.finish();
    let after = unacknowledged(&buffer);
    assert!(
        log.contains("shutdown deadline passed"),
        "{}: the sink should still have been trying at the deadline:\n{log}",
        case.name
    );
    (before, after)
}

fn run_case(case: &Case) {
    for i in 0..ROUNDS {
        let dir = tempdir();
        if case.name == "file" {
            lock_dir(&dir.path().join("locked"));
        }
        let (before, after) = round(case, dir.path());
        if case.name == "file" {
            unlock_dir(&dir.path().join("locked"));
        }
        assert_eq!(
            after, before,
            "{} round {i}: buffered records acknowledged at shutdown although never delivered",
            case.name
        );
    }
}

/// A directory even root cannot create files in: immutable (ext4's `chattr +i`).
fn lock_dir(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    let status = std::process::Command::new("chattr")
        .arg("+i")
        .arg(path)
        .status()
        .expect("chattr runs (e2fsprogs)");
    assert!(status.success(), "chattr +i failed");
}

fn unlock_dir(path: &Path) {
    let _ = std::process::Command::new("chattr")
        .arg("-i")
        .arg(path)
        .status();
}

#[test]
fn shutdown_deadline_with_destination_down_acknowledges_nothing_undelivered() {
    std::thread::scope(|scope| {
        #[cfg(feature = "kafka")]
        let kafka = Some(&KAFKA);
        #[cfg(not(feature = "kafka"))]
        let kafka = None;
        let runs: Vec<_> = OTHERS
            .iter()
            .chain(kafka)
            .map(|case| scope.spawn(move || run_case(case)))
            .collect();
        for run in runs {
            if let Err(panic) = run.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
}
