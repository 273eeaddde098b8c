//! The `file` source against the real thing: files rotated by Debian's `logrotate` while a
//! writer appends to them, a `sluice up` killed with SIGKILL and restarted, `read_from`,
//! `exclude`, oversized lines and a damaged checkpoint file. Every wait polls a condition
//! (a file's content, a log line) with a deadline.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::{read_lines, sluice_up, spawn_router, tempdir, RouterProcess, TIMEOUT};

/// A pipeline: a file source reading `include` (plus `extra` source options) into a text
/// file sink at `out`, and its dead letters into `out.dead`.
pub(crate) fn write_config(dir: &Path, include: &str, extra: &str, out: &Path) -> PathBuf {
    let config = dir.join("pipeline.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[sources.files]
type = "file"
include = ["{include}"]
glob_interval_ms = 50
rotate_wait_ms = 300
data_dir = "{data}"
{extra}

[sinks.out]
type = "file"
inputs = ["files"]
path = "{out}"
encoding = "text"

[sinks.dead]
type = "file"
inputs = ["files.dead_letter"]
path = "{out}.dead"
"#,
            data = dir.join("data").display(),
            out = out.display(),
        ),
    )
    .unwrap();
    config
}

/// Waits until `condition` holds; panics after [`TIMEOUT`] with `what`.
pub(crate) fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub(crate) fn line(seq: u64) -> String {
    format!("seq={seq:08} the quick brown fox")
}

pub(crate) fn seq_of(line: &str) -> u64 {
    line.strip_prefix("seq=")
        .and_then(|rest| rest.get(..8))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a numbered line: {line:?}"))
}

/// How the writer reaches its file.
#[derive(Clone, Copy)]
pub(crate) enum Writing {
    /// Opens the file for each burst of lines (never creating it), as a program that
    /// reopens its log does: after logrotate's `create`, lines go to the new file.
    Reopen,
    /// Keeps one descriptor in append mode, as a program that never reopens (logrotate's
    /// `copytruncate` case): after a truncation its writes land at the start again.
    Keep,
}

/// Appends numbered lines to `path` in bursts until `stop`; returns how many it wrote.
pub(crate) fn spawn_writer(
    path: PathBuf,
    writing: Writing,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let open = || std::fs::OpenOptions::new().append(true).open(&path);
        let mut kept = match writing {
            Writing::Keep => Some(open().expect("log file exists")),
            Writing::Reopen => None,
        };
        let mut seq = 0u64;
        let mut rng = fastrand::Rng::with_seed(7);
        while !stop.load(Ordering::Relaxed) {
            let burst: String = (seq..seq + rng.u64(1..20))
                .map(|s| line(s) + "\n")
                .collect();
            let written = match &mut kept {
                Some(file) => file.write_all(burst.as_bytes()),
                // Between logrotate's rename and its create the file is missing: try again.
                None => open().and_then(|mut file| file.write_all(burst.as_bytes())),
            };
            match written {
                Ok(()) => seq += burst.lines().count() as u64,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("writer: {e}"),
            }
            // Pacing (about 10k lines/s), not synchronisation.
            std::thread::sleep(Duration::from_millis(1));
        }
        seq
    })
}

/// Runs logrotate `rotations` times on `log` with `mode` (`create` or `copytruncate`),
/// each time once the file holds at least a few KiB and its first line reached `out`: a
/// file renamed away before any scan found it at its path is never seen (as with any
/// poller; real rotations are minutes apart, not milliseconds).
pub(crate) fn rotate(dir: &Path, log: &Path, mode: &str, rotations: usize, out: &Path) {
    let conf = dir.join("logrotate.conf");
    std::fs::write(
        &conf,
        format!(
            "{} {{\n  rotate 1000\n  {mode}\n  nocompress\n  missingok\n}}\n",
            log.display()
        ),
    )
    .unwrap();
    for _ in 0..rotations {
        wait_for("the log to fill", || {
            std::fs::metadata(log).is_ok_and(|m| m.len() >= 4096)
        });
        let first = read_lines(log).into_iter().next().expect("a line");
        wait_for("the router to read the log", || {
            std::fs::read_to_string(out).is_ok_and(|o| o.contains(&first))
        });
        let output = Command::new("logrotate")
            .arg("-f")
            .arg("-s")
            .arg(dir.join("logrotate.state"))
            .arg(&conf)
            .output()
            .expect("logrotate runs");
        assert!(
            output.status.success(),
            "logrotate failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Whether the router logged a line containing every one of `needles`, before or after
/// its "router started" line (sources start as the topology logs it).
pub(crate) fn logged(router: &mut RouterProcess, needles: &[&str]) -> bool {
    router
        .startup_log
        .lines()
        .any(|l| needles.iter().all(|n| l.contains(n)))
        || router.wait_for_log(needles)
}

pub(crate) fn stop(router: RouterProcess) -> String {
    router.signal("-TERM");
    let (status, log) = router.finish();
    assert!(status.success(), "router failed: {log}");
    log
}

#[test]
fn logrotate_create_every_line_arrives_once_in_order() {
    if !crate::util::have_tool("logrotate") {
        return;
    }
    let dir = tempdir();
    let log = dir.path().join("app.log");
    let out = dir.path().join("out.log");
    std::fs::write(&log, "").unwrap();
    let config = write_config(dir.path(), &log.display().to_string(), "", &out);
    let mut router = spawn_router(sluice_up(&config));
    let stop_writing = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(log.clone(), Writing::Reopen, stop_writing.clone());
    rotate(dir.path(), &log, "create", 20, &out);
    stop_writing.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    wait_for("every line", || read_lines(&out).len() as u64 >= written);
    // Each rotated file is closed once read to its end and rotate_wait_ms have passed.
    for rotated in 1..=20 {
        assert!(
            router.wait_for_log(&["closed", "app.log"]),
            "rotated file {rotated} not closed"
        );
    }
    let log_text = stop(router);
    let expected: Vec<String> = (0..written).map(line).collect();
    assert_eq!(read_lines(&out), expected, "router log:\n{log_text}");
    assert!(
        dir.path().join("app.log.20").exists(),
        "20 rotations happened"
    );
}

#[test]
fn logrotate_copytruncate_loses_only_the_copy_window_and_duplicates_nothing() {
    if !crate::util::have_tool("logrotate") {
        return;
    }
    let dir = tempdir();
    let log = dir.path().join("app.log");
    let out = dir.path().join("out.log");
    std::fs::write(&log, "").unwrap();
    let config = write_config(dir.path(), &format!("{}*", log.display()), "", &out);
    let router = spawn_router(sluice_up(&config));
    let stop_writing = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(log.clone(), Writing::Keep, stop_writing.clone());
    let rotations = 20;
    rotate(dir.path(), &log, "copytruncate", rotations, &out);
    // The writer's last line must come after the last truncate: lines written between
    // logrotate's copy and its truncate are lost by design, and on a busy machine the
    // writer's last burst could otherwise fall in that window (the wait below would then
    // look for a line that cannot arrive).
    let after_rotation = std::fs::metadata(&log).map_or(0, |m| m.len());
    wait_for("a write after the last rotation", || {
        std::fs::metadata(&log).is_ok_and(|m| m.len() > after_rotation)
    });
    stop_writing.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    let last = line(written - 1);
    wait_for("the last line", || read_lines(&out).contains(&last));
    let log_text = stop(router);
    let seqs: Vec<u64> = read_lines(&out).iter().map(|l| seq_of(l)).collect();
    if let Some(w) = seqs.windows(2).find(|w| w[0] >= w[1]) {
        panic!(
            "line {} after line {}: duplicated or out of order; router log:\n{log_text}",
            w[1], w[0]
        );
    }
    // What is lost is what the writer appended between logrotate's copy and its truncate:
    // at most one run of lines per rotation.
    let gaps = seqs.windows(2).filter(|w| w[1] != w[0] + 1).count() + usize::from(seqs[0] != 0);
    let lost = written - seqs.len() as u64;
    println!("copytruncate: {written} lines written, {lost} lost in {gaps} gaps over {rotations} rotations");
    assert!(gaps <= rotations, "{gaps} gaps for {rotations} rotations");
    assert!(
        log_text.contains("file truncated or rewritten"),
        "{log_text}"
    );
}

#[test]
fn kill_9_and_restart_loses_nothing_and_repeats_only_the_unacknowledged_tail() {
    let dir = tempdir();
    let log = dir.path().join("app.log");
    let out = dir.path().join("out.log");
    std::fs::write(&log, "").unwrap();
    let config = write_config(dir.path(), &log.display().to_string(), "", &out);
    let stop_writing = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(log.clone(), Writing::Keep, stop_writing.clone());
    let kills = 5;
    let mut rng = fastrand::Rng::with_seed(16);
    let mut resumed_at = Vec::new();
    for kill in 0..kills {
        let before = read_lines(&out).len();
        let mut router = spawn_router(sluice_up(&config));
        if kill > 0 {
            assert!(
                logged(&mut router, &["watching file", "from=\"checkpoint\""]),
                "a restart resumes from the checkpoint"
            );
        }
        // Killed while lines flow: once it has written some and checkpointed, at a random
        // moment after.
        wait_for("output", || read_lines(&out).len() > before + 100);
        wait_for("a checkpoint", || {
            dir.path().join("data/files/checkpoints.json").exists()
        });
        std::thread::sleep(Duration::from_millis(rng.u64(0..200)));
        router.child.kill().unwrap(); // SIGKILL
        router.child.wait().unwrap();
        // The checkpoint covers only lines the sink wrote: every line before it is out.
        let text = std::fs::read_to_string(dir.path().join("data/files/checkpoints.json")).unwrap();
        let checkpoints: serde_json::Value = serde_json::from_str(&text).unwrap();
        let offset = checkpoints["files"][0]["offset"].as_u64().unwrap();
        let line_len = line(0).len() as u64 + 1;
        assert_eq!(offset % line_len, 0, "a checkpoint mid-line: {text}");
        let out_seqs: std::collections::HashSet<u64> =
            read_lines(&out).iter().map(|l| seq_of(l)).collect();
        let acknowledged = offset / line_len;
        resumed_at.push(acknowledged);
        assert!(
            (0..acknowledged).all(|seq| out_seqs.contains(&seq)),
            "the checkpoint ({acknowledged} lines) is past lines not written"
        );
    }
    stop_writing.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    let router = spawn_router(sluice_up(&config));
    let last = line(written - 1);
    wait_for("the last line", || read_lines(&out).last() == Some(&last));
    stop(router);

    let lines = read_lines(&out);
    let seqs: Vec<u64> = lines.iter().map(|l| seq_of(l)).collect();
    assert_eq!(seqs[0], 0);
    // Nothing skipped: each line is the next one, or a step back to where the checkpoint
    // was (a restart re-reading what was not acknowledged yet), at most once per kill.
    let mut back_steps = 0;
    let mut duplicates = 0u64;
    for w in seqs.windows(2) {
        assert!(w[1] <= w[0] + 1, "lines {} to {} lost", w[0] + 1, w[1] - 1);
        if w[1] <= w[0] {
            assert!(
                resumed_at.contains(&w[1]),
                "re-read from line {} but the checkpoints were at {resumed_at:?}",
                w[1]
            );
            back_steps += 1;
            duplicates += w[0] + 1 - w[1];
        }
    }
    assert!(
        back_steps <= kills,
        "{back_steps} re-reads for {kills} kills"
    );
    assert_eq!(*seqs.iter().max().unwrap(), written - 1);
    println!("kill -9: {kills} kills, {written} lines, {duplicates} re-read after a kill");
}

#[test]
fn read_from_end_skips_what_was_there_and_beginning_reads_it() {
    for (read_from, expect_old) in [("end", false), ("beginning", true)] {
        let dir = tempdir();
        let log = dir.path().join("app.log");
        let out = dir.path().join("out.txt");
        std::fs::write(&log, "old 1\nold 2\n").unwrap();
        let config = write_config(
            dir.path(),
            &dir.path().join("*.log").display().to_string(),
            &format!("read_from = \"{read_from}\""),
            &out,
        );
        let mut router = spawn_router(sluice_up(&config));
        assert!(logged(&mut router, &["watching file", "app.log"]));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .unwrap()
            .write_all(b"new 1\n")
            .unwrap();
        // A file that appears after the start is read from its beginning either way.
        std::fs::write(dir.path().join("later.log"), "later 1\n").unwrap();
        wait_for("the new lines", || {
            let lines = read_lines(&out);
            lines.contains(&"new 1".to_string()) && lines.contains(&"later 1".to_string())
        });
        stop(router);
        let lines = read_lines(&out);
        assert_eq!(
            lines.contains(&"old 1".to_string()),
            expect_old,
            "read_from = {read_from}: {lines:?}"
        );
        if expect_old {
            let app: Vec<_> = lines.iter().filter(|l| !l.starts_with("later")).collect();
            assert_eq!(app, ["old 1", "old 2", "new 1"]);
        }
    }
}

#[test]
fn events_carry_path_and_host_and_excluded_files_are_not_read() {
    let dir = tempdir();
    let out = dir.path().join("out.json");
    std::fs::write(dir.path().join("app.log"), "kept\n").unwrap();
    std::fs::write(dir.path().join("debug.log"), "excluded\n").unwrap();
    // A symlink to the kept file: followed, and read once.
    std::os::unix::fs::symlink(dir.path().join("app.log"), dir.path().join("link.log")).unwrap();
    // A symlink to a file the globs do not match: read through the link.
    std::fs::create_dir(dir.path().join("real")).unwrap();
    std::fs::write(dir.path().join("real/target.txt"), "via link\n").unwrap();
    std::os::unix::fs::symlink(
        dir.path().join("real/target.txt"),
        dir.path().join("other.log"),
    )
    .unwrap();
    let config = dir.path().join("pipeline.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[sources.files]
type = "file"
include = ["{d}/*.log"]
exclude = ["*/debug.log"]
glob_interval_ms = 50
data_dir = "{d}/data"

[sinks.out]
type = "file"
inputs = ["files"]
path = "{out}"
"#,
            d = dir.path().display(),
            out = out.display()
        ),
    )
    .unwrap();
    let router = spawn_router(sluice_up(&config));
    wait_for("both lines", || read_lines(&out).len() >= 2);
    stop(router);
    let mut events: Vec<serde_json::Value> = read_lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    events.sort_by_key(|e| e["message"].as_str().unwrap_or_default().to_string());
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["message"], "kept");
    assert_eq!(events[1]["message"], "via link");
    assert!(events[1]["path"].as_str().unwrap().ends_with("/other.log"));
    let path = events[0]["path"].as_str().unwrap();
    assert!(
        path.ends_with("/app.log") || path.ends_with("/link.log"),
        "{path}"
    );
    let host = gethostname_of_this_machine();
    assert_eq!(events[0]["host"], host.as_str());
    let checkpoints =
        std::fs::read_to_string(dir.path().join("data/files/checkpoints.json")).unwrap();
    assert!(!checkpoints.contains("debug.log"), "{checkpoints}");
}

fn gethostname_of_this_machine() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn oversized_lines_are_counted_and_dead_lettered_and_the_rest_flows() {
    let dir = tempdir();
    let log = dir.path().join("app.log");
    let out = dir.path().join("out.log");
    let long = "x".repeat(5000);
    std::fs::write(&log, format!("before\n{long}\nafter\n")).unwrap();
    let config = write_config(
        dir.path(),
        &log.display().to_string(),
        "max_line_bytes = 1000",
        &out,
    );
    let api_config = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("[api]\naddress = \"127.0.0.1:0\"\n{api_config}"),
    )
    .unwrap();
    let router = spawn_router(sluice_up(&config));
    wait_for("the line after", || read_lines(&out).len() >= 2);
    let api: std::net::SocketAddr = router.address_of("api").expect("api").parse().unwrap();
    let metrics = crate::api::http_get(api, "/metrics").1;
    stop(router);
    assert_eq!(read_lines(&out), ["before", "after"]);
    assert!(
        metrics.contains(
            "sluice_component_errors_total{component_id=\"files\",reason=\"oversized\"} 1"
        ),
        "{metrics}"
    );
    let dead = read_lines(&PathBuf::from(format!("{}.dead", out.display())));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0].contains("\"reason_code\":\"oversized\""),
        "{}",
        dead[0]
    );
}

#[test]
fn a_damaged_checkpoint_file_is_reported_and_ignored() {
    let dir = tempdir();
    let log = dir.path().join("app.log");
    let out = dir.path().join("out.log");
    std::fs::write(&log, "one\ntwo\n").unwrap();
    let config = write_config(dir.path(), &log.display().to_string(), "", &out);
    let checkpoints = dir.path().join("data/files/checkpoints.json");
    std::fs::create_dir_all(checkpoints.parent().unwrap()).unwrap();
    std::fs::write(&checkpoints, b"{\"version\":1,\"files\":[{\"fing").unwrap();
    let mut router = spawn_router(sluice_up(&config));
    assert!(logged(
        &mut router,
        &["WARN", "checkpoint file damaged", "files"]
    ));
    wait_for("the lines", || read_lines(&out).len() == 2);
    stop(router);
    assert_eq!(read_lines(&out), ["one", "two"]);
    assert!(dir
        .path()
        .join("data/files/checkpoints.json.damaged")
        .exists());
    // A good checkpoint was written in its place: a restart reads nothing again.
    let text = std::fs::read_to_string(&checkpoints).unwrap();
    assert!(text.contains("\"offset\": 8"), "{text}");
}

#[test]
fn a_deleted_file_is_read_to_its_end_then_closed() {
    let dir = tempdir();
    let log = dir.path().join("app.log");
    let out = dir.path().join("out.txt");
    let mut writer = std::fs::File::create(&log).unwrap();
    writer.write_all(b"before delete\n").unwrap();
    let config = write_config(dir.path(), &log.display().to_string(), "", &out);
    let mut router = spawn_router(sluice_up(&config));
    wait_for("the first line", || read_lines(&out).len() == 1);
    std::fs::remove_file(&log).unwrap();
    // The writer still holds the file: what it writes after the deletion is read too.
    writer
        .write_all(b"after delete\nno newline at the end")
        .unwrap();
    assert!(
        router.wait_for_log(&["closed", "app.log"]),
        "closed after rotate_wait_ms"
    );
    stop(router);
    assert_eq!(
        read_lines(&out),
        ["before delete", "after delete", "no newline at the end"]
    );
}

#[test]
fn files_older_than_ignore_older_secs_wait_until_written() {
    let dir = tempdir();
    let out = dir.path().join("out.txt");
    let old = dir.path().join("old.log");
    std::fs::write(&old, "old 1\n").unwrap();
    let touched = Command::new("touch")
        .args(["-d", "2 days ago"])
        .arg(&old)
        .status()
        .unwrap();
    assert!(touched.success());
    std::fs::write(dir.path().join("new.log"), "new 1\n").unwrap();
    let config = write_config(
        dir.path(),
        &dir.path().join("*.log").display().to_string(),
        "ignore_older_secs = 3600",
        &out,
    );
    let router = spawn_router(sluice_up(&config));
    wait_for("the new file's line", || read_lines(&out) == ["new 1"]);
    // A line written after the start arrives; the old file, were it open, would have been
    // read in the same rounds.
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("new.log"))
        .unwrap()
        .write_all(b"new 2\n")
        .unwrap();
    wait_for("the new file's second line", || read_lines(&out).len() >= 2);
    assert_eq!(read_lines(&out), ["new 1", "new 2"]);
    // Written again, the old file is read from its beginning.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&old)
        .unwrap()
        .write_all(b"old 2\n")
        .unwrap();
    wait_for("the old file's lines", || read_lines(&out).len() == 4);
    stop(router);
    assert_eq!(read_lines(&out), ["new 1", "new 2", "old 1", "old 2"]);
}

/// `max_open_files` with a glob matching 2,000 files and a bound of 500: the rest wait,
/// counted in `file_source_waiting_files` and reported; files read to their end are closed
/// after a second idle so the waiting ones get their turn; every line arrives once, and a
/// file closed that way is opened again when it grows, from where it was left.
#[test]
fn files_beyond_max_open_files_wait_their_turn_and_every_line_arrives_once() {
    const FILES: usize = 2_000;
    let dir = tempdir();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    for f in 0..FILES {
        std::fs::write(logs.join(format!("f{f:04}.log")), format!("f{f:04}-0\n")).unwrap();
    }
    let out = dir.path().join("out.log");
    let config = write_config(
        dir.path(),
        &format!("{}/*.log", logs.display()),
        "max_open_files = 500",
        &out,
    );
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[api]\naddress = \"127.0.0.1:0\"\n");
    std::fs::write(&config, text).unwrap();
    let mut router = spawn_router(sluice_up(&config));
    let api = router.address.clone().expect("api address");
    let waiting = |api: &str| crate::tansu::metric(api, "sluice_file_source_waiting_files");
    assert!(logged(&mut router, &["max_open_files", "waiting=1500"]));
    wait_for("every file read", || read_lines(&out).len() >= FILES);
    wait_for("no file waits", || waiting(&api) == 0);
    // A file closed while idle is opened again when it grows, from its checkpoint.
    let mut first = std::fs::OpenOptions::new()
        .append(true)
        .open(logs.join("f0000.log"))
        .unwrap();
    writeln!(first, "f0000-1").unwrap();
    wait_for("the appended line", || read_lines(&out).len() > FILES);
    stop(router);
    let mut lines = read_lines(&out);
    lines.sort();
    let mut expected: Vec<String> = (0..FILES).map(|f| format!("f{f:04}-0")).collect();
    expected.push("f0000-1".into());
    expected.sort();
    assert_eq!(lines, expected, "every line once");
}
