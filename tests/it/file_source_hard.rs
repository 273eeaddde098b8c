//! The file source under the harder conditions: kill -9 while tailing and
//! rotating, binary content, a 1 GiB line, and a file the router may not read.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::file_source::{
    line, rotate, seq_of, spawn_writer, stop, wait_for, write_config, Writing,
};
use crate::util::{read_lines, sluice_up, spawn_router, tempdir};

/// Kills: `SLUICE_FILE_KILLS` (the long mode runs 100), 20 in the suite.
fn kills() -> usize {
    std::env::var("SLUICE_FILE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// kill -9 at random moments while a program writes and logrotate rotates (`create`) every
/// other round: after a last restart every line written is out, none lost.
#[test]
fn kill_9_while_tailing_and_rotating_loses_nothing() {
    if !crate::util::have_tool("logrotate") {
        return;
    }
    let dir = tempdir();
    let log = dir.path().join("app.log");
    let out = dir.path().join("out.log");
    std::fs::write(&log, "").unwrap();
    // The rotated files are matched too: lines renamed away while the router was down are
    // found by their checkpoint in the rotated file.
    let config = write_config(dir.path(), &format!("{}*", log.display()), "", &out);
    let stop_writing = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(log.clone(), Writing::Reopen, stop_writing.clone());
    let mut rng = fastrand::Rng::with_seed(161);
    let kills = kills();
    for kill in 0..kills {
        let before = read_lines(&out).len();
        let mut router = spawn_router(sluice_up(&config));
        wait_for("output", || read_lines(&out).len() > before + 50);
        if kill % 2 == 1 {
            rotate(dir.path(), &log, "create", 1, &out);
        }
        std::thread::sleep(Duration::from_millis(rng.u64(0..150)));
        router.child.kill().unwrap(); // SIGKILL
        router.child.wait().unwrap();
    }
    stop_writing.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    let router = spawn_router(sluice_up(&config));
    let all_out = || {
        let seen: std::collections::HashSet<u64> =
            read_lines(&out).iter().map(|l| seq_of(l)).collect();
        seen.len() as u64 == written
    };
    wait_for("every line written", all_out);
    stop(router);
    let lines = read_lines(&out);
    let seen: std::collections::BTreeSet<u64> = lines.iter().map(|l| seq_of(l)).collect();
    assert_eq!(seen, (0..written).collect(), "every line, none lost");
    println!(
        "kill -9 while rotating: {kills} kills, {} rotations, {written} lines, {} read twice",
        kills / 2,
        lines.len() as u64 - written
    );
}

/// A file of random bytes (NULs, invalid UTF-8, long runs without a newline) beside a text
/// file: the text file's lines all arrive in order, the binary one's over-long frames are
/// counted and dead-lettered, and the router stops cleanly.
#[test]
fn a_binary_file_is_read_as_bytes_and_the_rest_flows() {
    let dir = tempdir();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let mut rng = fastrand::Rng::with_seed(3);
    let binary: Vec<u8> = (0..2 * 1024 * 1024).map(|_| rng.u8(..)).collect();
    std::fs::write(logs.join("core.bin.log"), binary).unwrap();
    let good: Vec<String> = (0..1000).map(line).collect();
    std::fs::write(logs.join("app.log"), good.join("\n") + "\n").unwrap();
    let out = dir.path().join("out.log");
    let config = write_config(
        dir.path(),
        &format!("{}/*.log", logs.display()),
        "max_line_bytes = 1024",
        &out,
    );
    // The output holds the binary file's bytes too: read as bytes, not text.
    let text_lines = |out: &std::path::Path| -> Vec<String> {
        std::fs::read(out)
            .unwrap_or_default()
            .split(|b| *b == b'\n')
            .filter(|l| l.starts_with(b"seq="))
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    };
    let router = spawn_router(sluice_up(&config));
    wait_for("the text file's lines", || {
        text_lines(&out).len() >= good.len()
    });
    let log = stop(router);
    let text = text_lines(&out);
    assert_eq!(text, good, "the text file, in order");
    assert!(!log.contains("panicked"), "{log}");
    // 2 MiB of random bytes hold about 8,000 newlines; runs longer than 1 KiB between them
    // are dead-lettered, each with its reason.
    let dead = read_lines(&std::path::PathBuf::from(format!("{}.dead", out.display())));
    assert!(!dead.is_empty(), "some runs exceed 1 KiB at this seed");
    assert!(
        dead.iter()
            .all(|d| d.contains("\"reason_code\":\"oversized\"")),
        "{dead:?}"
    );
}

/// A 1 GiB line between two short ones: the router skips it as oversized (counted,
/// dead-lettered with its reason, not held in memory) and reads on.
#[test]
fn a_one_gigabyte_line_is_skipped_and_counted_without_holding_it() {
    let dir = tempdir();
    let log = dir.path().join("huge.log");
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&log).unwrap());
        file.write_all(b"before\n").unwrap();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..1024 {
            file.write_all(&chunk).unwrap();
        }
        file.write_all(b"\nafter\n").unwrap();
    }
    let out = dir.path().join("out.log");
    let config = write_config(dir.path(), &log.display().to_string(), "", &out);
    let router = spawn_router(sluice_up(&config));
    let pid = router.child.id();
    let mut peak_kib = 0u64;
    wait_for("the line after", || {
        peak_kib = peak_kib.max(rss_kib(pid));
        read_lines(&out).len() >= 2
    });
    stop(router);
    assert_eq!(read_lines(&out), ["before", "after"]);
    let dead = read_lines(&std::path::PathBuf::from(format!("{}.dead", out.display())));
    assert_eq!(dead.len(), 1, "one oversized frame");
    assert!(
        dead[0].contains("\"reason_code\":\"oversized\""),
        "{}",
        dead[0]
    );
    assert!(
        dead[0].len() < 1 << 20,
        "the dead letter does not carry the whole line"
    );
    println!(
        "a 1 GiB line: the router's peak RSS was {} MiB",
        peak_kib / 1024
    );
    assert!(
        peak_kib < 256 * 1024,
        "the router held {peak_kib} KiB reading a 1 GiB line"
    );
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A file the router may not read (run as `nobody` through `setpriv`, since root reads
/// everything): a warning names it, `component_errors_total{reason="open_failed"}` counts
/// the attempts, and the readable file beside it flows.
#[test]
fn an_unreadable_file_is_reported_and_counted_and_the_rest_flows() {
    use std::os::unix::fs::PermissionsExt;
    let is_root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    if !is_root || !crate::util::have_tool("setpriv") {
        return;
    }
    let dir = tempdir();
    let open = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    open(dir.path(), 0o777);
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    open(&logs, 0o755);
    std::fs::write(logs.join("secret.log"), "hidden\n").unwrap();
    open(&logs.join("secret.log"), 0o600);
    let good: Vec<String> = (0..100).map(line).collect();
    std::fs::write(logs.join("app.log"), good.join("\n") + "\n").unwrap();
    open(&logs.join("app.log"), 0o644);
    let out = dir.path().join("out.log");
    let config = write_config(dir.path(), &format!("{}/*.log", logs.display()), "", &out);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[api]\naddress = \"127.0.0.1:0\"\n");
    std::fs::write(&config, text).unwrap();
    open(&config, 0o644);
    let mut command = std::process::Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(crate::util::sluice_bin())
        .args(["up", "--config"])
        .arg(&config);
    let mut router = spawn_router(command);
    let api = router.address.clone().expect("api address");
    wait_for("the readable file", || read_lines(&out).len() >= good.len());
    assert!(crate::file_source::logged(
        &mut router,
        &["cannot open file", "secret.log"]
    ));
    wait_for("the failed open counted", || {
        crate::tansu::metric(
            &api,
            "sluice_component_errors_total{component_id=\"files\",reason=\"open_failed\"}",
        ) >= 1
    });
    stop(router);
    assert_eq!(read_lines(&out), good);
}
