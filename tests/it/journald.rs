//! The `journald` source against real journal files: `systemd-journal-remote` (Debian's
//! `systemd-journal-remote`) turns a Journal Export Format stream written by the test into
//! a journal file, and the source's real `journalctl` reads it through `journal_directory`.
//! Every wait polls a condition (the sink's file) with a deadline.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{
    counter, read_lines, services_required, sluice_up, spawn_router, tempdir, wait_until, Router,
    TIMEOUT,
};

const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";
/// The boot every test entry belongs to, so that `current_boot_only` (journalctl's
/// latest boot in the directory) includes them.
const BOOT_ID: &str = "0123456789abcdef0123456789abcdef";

/// True when journal-remote and journalctl are installed; fails the test when services
/// are required and they are not.
fn have_journal_tools() -> bool {
    let found = Path::new(JOURNAL_REMOTE).exists() && crate::util::have_tool("journalctl");
    if !found {
        assert!(
            !services_required(),
            "{JOURNAL_REMOTE} and journalctl are required (SLUICE_REQUIRE_SERVICES is set)"
        );
        println!("skipping: systemd-journal-remote not installed (run scripts/test)");
    }
    found
}

/// One entry in Journal Export Format: text fields as `NAME=value`, and (for values that
/// are not text) `NAME\n<64-bit little-endian length><bytes>\n`.
struct Entry {
    fields: Vec<(&'static str, Vec<u8>)>,
}

impl Entry {
    /// An entry with its time, of the boot [`BOOT_ID`].
    fn new(micros: u64) -> Self {
        Self::of_boot(micros, BOOT_ID)
    }

    fn of_boot(micros: u64, boot: &str) -> Self {
        Self {
            fields: vec![
                ("__REALTIME_TIMESTAMP", micros.to_string().into_bytes()),
                ("__MONOTONIC_TIMESTAMP", micros.to_string().into_bytes()),
                ("_BOOT_ID", boot.as_bytes().to_vec()),
            ],
        }
    }

    fn with(mut self, name: &'static str, value: impl AsRef<[u8]>) -> Self {
        self.fields.push((name, value.as_ref().to_vec()));
        self
    }

    fn export(&self, out: &mut Vec<u8>) {
        for (name, value) in &self.fields {
            if value.contains(&b'\n') || std::str::from_utf8(value).is_err() {
                out.extend_from_slice(name.as_bytes());
                out.push(b'\n');
                out.extend_from_slice(&(value.len() as u64).to_le_bytes());
                out.extend_from_slice(value);
            } else {
                out.extend_from_slice(name.as_bytes());
                out.push(b'=');
                out.extend_from_slice(value);
            }
            out.push(b'\n');
        }
        out.push(b'\n');
    }
}

/// Appends `entries` to the journal file `DIR/remote.journal` with one journal-remote run.
fn write_journal(dir: &Path, entries: &[Entry]) {
    let mut stream = Vec::new();
    for entry in entries {
        entry.export(&mut stream);
    }
    let mut child = Command::new(JOURNAL_REMOTE)
        .arg(format!("--output={}", dir.join("remote.journal").display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("journal-remote runs");
    child.stdin.take().unwrap().write_all(&stream).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "journal-remote failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Numbered entries `from..to` of unit `seq.service`.
fn numbered(from: u64, to: u64) -> Vec<Entry> {
    (from..to)
        .map(|n| {
            Entry::new(1_700_000_000_000_000 + n)
                .with("_SYSTEMD_UNIT", "seq.service")
                .with("MESSAGE", format!("seq={n:08}"))
        })
        .collect()
}

fn json_lines(path: &Path) -> Vec<Value> {
    read_lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The numbers of the entries in the sink's file, in order. Scanned as text, not parsed
/// line by line: a kill -9 can leave the sink's last line torn, and the restarted sink
/// appends to it (the torn entry was not acknowledged, so it comes again whole).
fn seqs(path: &Path) -> Vec<u64> {
    const NEEDLE: &str = "\"message\":\"seq=";
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.match_indices(NEEDLE)
        .filter_map(|(at, _)| text.get(at + NEEDLE.len()..at + NEEDLE.len() + 8))
        .filter_map(|n| n.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maps_every_field_and_filters_by_unit_and_match() {
    if !have_journal_tools() {
        return;
    }
    let dir = tempdir();
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    write_journal(
        &journal,
        &[
            // A previous boot's: only `current_boot_only = false` reads it.
            Entry::of_boot(1_699_999_000_000_000, "fedcba9876543210fedcba9876543210")
                .with("SYSLOG_IDENTIFIER", "kernel")
                .with("MESSAGE", "last boot"),
            Entry::new(1_700_000_000_123_456)
                .with("_SYSTEMD_UNIT", "nginx.service")
                .with("SYSLOG_IDENTIFIER", "nginx")
                .with("_HOSTNAME", "web-1")
                .with("PRIORITY", "3")
                .with("_PID", "4242")
                .with("MESSAGE", "upstream timed out"),
            Entry::new(1_700_000_001_000_000)
                .with("SYSLOG_IDENTIFIER", "cron")
                .with("_HOSTNAME", "web-1")
                .with("PRIORITY", "6")
                .with("MESSAGE", b"\xffbinary\x01"),
            Entry::new(1_700_000_002_000_000)
                .with("_SYSTEMD_UNIT", "db.service")
                .with("PRIORITY", "4")
                .with("MESSAGE", "line one\nline two"),
        ],
    );
    let out = |name: &str| dir.path().join(format!("{name}.json"));
    let config = format!(
        r#"
[sources.all]
type = "journald"
journal_directory = "{journal}"

[sources.every_boot]
type = "journald"
journal_directory = "{journal}"
current_boot_only = false

[sources.nginx]
type = "journald"
journal_directory = "{journal}"
units = ["nginx.service"]

[sources.warnings]
type = "journald"
journal_directory = "{journal}"
matches = ["PRIORITY=4", "PRIORITY=6"]

[sinks.out_all]
type = "file"
inputs = ["all"]
path = "{all}"

[sinks.out_every_boot]
type = "file"
inputs = ["every_boot"]
path = "{every_boot}"

[sinks.out_nginx]
type = "file"
inputs = ["nginx"]
path = "{nginx}"

[sinks.out_warnings]
type = "file"
inputs = ["warnings"]
path = "{warnings}"
"#,
        journal = journal.display(),
        all = out("all").display(),
        every_boot = out("every_boot").display(),
        nginx = out("nginx").display(),
        warnings = out("warnings").display(),
    );
    let router = Router::start(&config).await;
    wait_until("every source's entries", || {
        read_lines(&out("all")).len() == 3
            && read_lines(&out("every_boot")).len() == 4
            && !read_lines(&out("nginx")).is_empty()
            && read_lines(&out("warnings")).len() == 2
    })
    .await;
    router.stop().await;

    let all = json_lines(&out("all"));
    let nginx = &all[0];
    assert_eq!(nginx["message"], "upstream timed out");
    assert_eq!(nginx["timestamp"], "2023-11-14T22:13:20.123456Z");
    assert_eq!(nginx["level"], "error");
    assert_eq!(nginx["app"], "nginx.service");
    assert_eq!(nginx["host"], "web-1");
    assert_eq!(nginx["journald"]["_pid"], "4242");
    assert_eq!(nginx["journald"]["syslog_identifier"], "nginx");
    assert_eq!(nginx["journald"]["_boot_id"], BOOT_ID);
    assert!(nginx["journald"]["__cursor"].is_string());
    assert!(nginx["journald"].get("message").is_none());
    let cron = &all[1];
    assert_eq!(cron["message"], "\u{fffd}binary\u{1}");
    assert_eq!(cron["app"], "cron", "SYSLOG_IDENTIFIER without a unit");
    assert_eq!(cron["level"], "info");
    let db = &all[2];
    assert_eq!(db["message"], "line one\nline two");
    assert_eq!(db["level"], "warn");
    assert!(db.get("host").is_none());
    let every_boot = json_lines(&out("every_boot"));
    assert_eq!(every_boot[0]["message"], "last boot");
    assert_eq!(every_boot[1..], all[..]);

    let nginx_only = json_lines(&out("nginx"));
    assert_eq!(nginx_only.len(), 1);
    assert_eq!(nginx_only[0]["app"], "nginx.service");
    let warnings: Vec<_> = json_lines(&out("warnings"))
        .iter()
        .map(|v| v["level"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(warnings, ["info", "warn"]);
}

/// A pipeline: the journald source on `journal` with its checkpoint in `data`, into `out`.
fn process_config(dir: &Path, journal: &Path, out: &Path) -> PathBuf {
    let config = dir.join("pipeline.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[sources.journal]
type = "journald"
journal_directory = "{journal}"
data_dir = "{data}"
batch_size = 50

[sinks.out]
type = "file"
inputs = ["journal"]
path = "{out}"
"#,
            journal = journal.display(),
            data = dir.join("data").display(),
            out = out.display(),
        ),
    )
    .unwrap();
    config
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn resumes_from_its_cursor_after_a_restart_and_a_kill_9() {
    if !have_journal_tools() {
        return;
    }
    let dir = tempdir();
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    let out = dir.path().join("out.json");
    let config = process_config(dir.path(), &journal, &out);

    // A clean stop and start: the second run reads only what was appended meanwhile.
    write_journal(&journal, &numbered(0, 100));
    let router = spawn_router(sluice_up(&config));
    wait_for("the first 100 entries", || seqs(&out).len() == 100);
    router.signal("-TERM");
    let (status, log) = router.finish();
    assert!(status.success(), "{log}");
    write_journal(&journal, &numbered(100, 150));
    let mut router = spawn_router(sluice_up(&config));
    // The source may say so before or after the router's "router started".
    assert!(
        router.startup_log.contains("resuming from checkpoint")
            || router.wait_for_log(&["resuming from checkpoint"]),
        "{}",
        router.startup_log
    );
    wait_for("the appended entries", || seqs(&out).len() >= 150);
    // Entries appended while it runs are followed, too.
    write_journal(&journal, &numbered(150, 200));
    wait_for("the entries appended live", || seqs(&out).len() >= 200);
    router.signal("-TERM");
    assert!(router.finish().0.success());
    assert_eq!(seqs(&out), (0..200).collect::<Vec<_>>(), "no duplicates");

    // kill -9 while it reads: nothing acknowledged is lost, only the tail is read again.
    let total = 5_000;
    write_journal(&journal, &numbered(200, total));
    let mut router = spawn_router(sluice_up(&config));
    wait_for("some of the large batch", || seqs(&out).len() > 400);
    let journalctl = children(router.child.id());
    router.child.kill().unwrap(); // SIGKILL
    router.child.wait().unwrap();
    // The killed router's journalctl would live on until the journal's next entry (its
    // write then fails on the closed pipe); this test's journal gets none.
    for pid in journalctl {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
    let before_restart = seqs(&out).len();
    let router = spawn_router(sluice_up(&config));
    wait_for("every entry", || {
        let mut seen = seqs(&out);
        seen.sort_unstable();
        seen.dedup();
        seen.len() as u64 == total
    });
    router.signal("-TERM");
    assert!(router.finish().0.success());
    let all = seqs(&out);
    let mut seen = all.clone();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen, (0..total).collect::<Vec<_>>(), "nothing lost");
    let duplicates = all.len() - seen.len();
    println!("kill -9 after {before_restart} lines written: {duplicates} entries read again");
    // Only what was written after the last checkpoint can come again: a tail, in order.
    assert!(
        all[..200].iter().copied().eq(0..200),
        "the clean restarts repeated nothing"
    );
}

/// The processes `pid` started.
fn children(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_journalctl_fails_the_start_naming_the_field() {
    let dir = tempdir();
    let config = dir.path().join("pipeline.toml");
    std::fs::write(
        &config,
        r#"
[sources.journal]
type = "journald"
journalctl_path = "/nonexistent/journalctl"

[sinks.out]
type = "blackhole"
inputs = ["journal"]
"#,
    )
    .unwrap();
    let out = sluice_up(&config)
        .stdin(Stdio::null())
        .output()
        .expect("sluice runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("journal") && stderr.contains("journalctl_path"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journalctl_exiting_is_restarted_and_counted() {
    let dir = tempdir();
    // A stand-in that prints one entry and exits, as a journalctl failing would.
    let fake = dir.path().join("journalctl");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'not json'\necho '{\"MESSAGE\":\"hi\",\"__CURSOR\":\"c1\"}'\necho 'complaint' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = dir.path().join("out.json");
    let router = Router::start(&format!(
        r#"
[sources.flaky]
type = "journald"
journalctl_path = "{fake}"

[sinks.out]
type = "file"
inputs = ["flaky"]
path = "{out}"
"#,
        fake = fake.display(),
        out = out.display(),
    ))
    .await;
    wait_until("two restarts", || {
        counter("component_errors_total", "flaky", Some("journalctl_exited")) >= 2
            && read_lines(&out).len() >= 2
    })
    .await;
    router.stop().await;
    assert!(counter("component_errors_total", "flaky", Some("invalid_json")) >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_now_skips_what_was_there_on_a_first_start() {
    if !have_journal_tools() {
        return;
    }
    let dir = tempdir();
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    write_journal(&journal, &numbered(0, 20));
    let (from_start, from_now) = (dir.path().join("start.json"), dir.path().join("now.json"));
    let router = Router::start(&format!(
        r#"
[sources.from_start]
type = "journald"
journal_directory = "{journal}"

[sources.from_now]
type = "journald"
journal_directory = "{journal}"
since_now = true

[sinks.start]
type = "file"
inputs = ["from_start"]
path = "{start}"

[sinks.now]
type = "file"
inputs = ["from_now"]
path = "{now}"
"#,
        journal = journal.display(),
        start = from_start.display(),
        now = from_now.display(),
    ))
    .await;
    wait_until("the existing entries", || seqs(&from_start).len() == 20).await;
    // `from_now`'s journalctl gives no sign that it has found the journal's end, and an
    // entry appended before it did is (rightly) skipped: so append until one arrives.
    let mut next = 20;
    let deadline = Instant::now() + TIMEOUT;
    while seqs(&from_now).is_empty() {
        assert!(
            Instant::now() < deadline,
            "since_now never read an appended entry"
        );
        write_journal(&journal, &numbered(next, next + 5));
        next += 5;
        let attempt = Instant::now() + Duration::from_secs(1);
        while seqs(&from_now).is_empty() && Instant::now() < attempt {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    wait_until("every appended entry", || {
        seqs(&from_start).len() as u64 == next && seqs(&from_now).last() == Some(&(next - 1))
    })
    .await;
    router.stop().await;
    let now = seqs(&from_now);
    assert!(now[0] >= 20, "since_now read the journal's past: {now:?}");
    assert_eq!(now, (now[0]..next).collect::<Vec<_>>());
}
