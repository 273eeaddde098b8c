//! The `file` source's other inputs: compressed rotated files made by the real `gzip` and
//! `logrotate` (read once across a restart, a corrupt one counted while the rest flows),
//! files in UTF-16 and Latin-1 (`encoding`), and the `stdin` source's `multiline` on a
//! real Java stack trace. Every wait polls a condition with a deadline.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{read_lines, repo_root, sluice_bin, sluice_up, spawn_router, tempdir, TIMEOUT};

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A pipeline: file sources (`[sources.ID]` bodies given) into one text file sink at `out`,
/// with the API on an ephemeral port for `/metrics`.
fn write_config(dir: &Path, sources: &[(&str, String)], out: &Path) -> PathBuf {
    let mut toml = String::from("[api]\naddress = \"127.0.0.1:0\"\n\n");
    for (id, body) in sources {
        toml.push_str(&format!(
            "[sources.{id}]\ntype = \"file\"\nglob_interval_ms = 50\nrotate_wait_ms = 300\ndata_dir = \"{}\"\n{body}\n\n",
            dir.join("data").display()
        ));
    }
    let inputs: Vec<String> = sources.iter().map(|(id, _)| format!("\"{id}\"")).collect();
    toml.push_str(&format!(
        "[sinks.out]\ntype = \"file\"\ninputs = [{}]\npath = \"{}\"\nencoding = \"text\"\n",
        inputs.join(", "),
        out.display()
    ));
    let config = dir.join("pipeline.toml");
    std::fs::write(&config, toml).unwrap();
    config
}

fn lines(prefix: &str, range: std::ops::Range<u32>) -> Vec<String> {
    range
        .map(|i| format!("{prefix} {i:06} the quick brown fox"))
        .collect()
}

fn append(path: &Path, lines: &[String]) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
}

/// `gzip -k`, the real one.
fn gzip(path: &Path) {
    let status = Command::new("gzip").arg("-kf").arg(path).status().unwrap();
    assert!(status.success());
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

fn metrics(router: &crate::util::RouterProcess) -> String {
    let api: std::net::SocketAddr = router.address_of("api").expect("api").parse().unwrap();
    crate::api::http_get(api, "/metrics").1
}

fn stop(router: crate::util::RouterProcess) -> String {
    router.signal("-TERM");
    let (status, log) = router.finish();
    assert!(status.success(), "router failed: {log}");
    log
}

#[test]
fn rotated_gz_files_are_read_once_across_a_restart() {
    if !crate::util::have_tool("logrotate") {
        return;
    }
    let dir = tempdir();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let out = dir.path().join("out.log");
    // An old rotation, compressed before the router ever ran.
    let old = logs.join("app.log.3");
    append(&old, &lines("old", 0..300));
    gzip(&old);
    std::fs::remove_file(&old).unwrap();
    let app = logs.join("app.log");
    append(&app, &lines("first", 0..100));
    let include = format!("include = [\"{}/app.log*\"]", logs.display());
    let config = write_config(dir.path(), &[("files", include)], &out);
    let router = spawn_router(sluice_up(&config));
    let mut expected = [lines("old", 0..300), lines("first", 0..100)].concat();
    wait_for("the old rotation and the live file", || {
        read_lines(&out).len() >= expected.len()
    });

    // logrotate renames app.log to app.log.1 and compresses it at once: the plain file was
    // read already, so its .gz is read from that file's checkpoint (nothing is left).
    let status_file = dir.path().join("logrotate.status");
    let rotate_config = dir.path().join("logrotate.conf");
    std::fs::write(
        &rotate_config,
        format!(
            "{} {{\n  rotate 5\n  create\n  compress\n  missingok\n}}\n",
            app.display()
        ),
    )
    .unwrap();
    let status = Command::new("logrotate")
        .arg("-f")
        .arg("-s")
        .arg(&status_file)
        .arg(&rotate_config)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(logs.join("app.log.1.gz").exists());
    let second = lines("second", 0..50);
    append(&app, &second);
    expected.extend(second);
    wait_for("the new file", || read_lines(&out).len() >= expected.len());
    let checkpoints = dir.path().join("data/files/checkpoints.json");
    wait_for("both compressed files checkpointed as done", || {
        std::fs::read_to_string(&checkpoints)
            .is_ok_and(|t| t.matches("\"done\": true").count() == 2)
    });
    let first_log = stop(router);
    assert_eq!(
        sorted(read_lines(&out)),
        sorted(expected.clone()),
        "{first_log}"
    );

    let router = spawn_router(sluice_up(&config));
    let third = lines("third", 0..20);
    append(&app, &third);
    expected.extend(third);
    wait_for("the lines written after the restart", || {
        read_lines(&out).len() >= expected.len()
    });
    // One more scan after the lines arrived: nothing else comes.
    std::thread::sleep(Duration::from_millis(300));
    let second_log = stop(router);
    assert_eq!(
        sorted(read_lines(&out)),
        sorted(expected),
        "every line exactly once:\n{second_log}"
    );
    assert!(
        !second_log.contains("reading compressed file once"),
        "{second_log}"
    );
}

#[test]
fn a_corrupt_gz_is_counted_and_named_while_other_files_flow() {
    let dir = tempdir();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let out = dir.path().join("out.log");
    let good = logs.join("good.log");
    append(&good, &lines("good", 0..200));
    gzip(&good);
    std::fs::remove_file(&good).unwrap();
    // A truncated compressed file: its first half, as a copy cut short leaves it.
    let bad = logs.join("bad.log");
    let bad_lines: Vec<String> = (0..5000)
        .map(|i| format!("bad {i:06} {:x}", i * 7919))
        .collect();
    append(&bad, &bad_lines);
    gzip(&bad);
    std::fs::remove_file(&bad).unwrap();
    let bad_gz = logs.join("bad.log.gz");
    let whole = std::fs::read(&bad_gz).unwrap();
    std::fs::write(&bad_gz, &whole[..whole.len() / 2]).unwrap();
    let plain = logs.join("plain.log");
    append(&plain, &lines("plain", 0..100));
    let include = format!("include = [\"{}/*\"]", logs.display());
    let config = write_config(dir.path(), &[("files", include)], &out);
    let mut router = spawn_router(sluice_up(&config));
    let has = |prefix: &str, n: usize| {
        read_lines(&out)
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
            >= n
    };
    wait_for("the good files", || has("good ", 200) && has("plain ", 100));
    assert!(
        router.wait_for_log(&["WARN", "bad.log.gz", "corrupt or truncated gzip"]),
        "the corrupt file is named"
    );
    let more = lines("plain", 100..110);
    append(&plain, &more);
    wait_for("lines written after the corrupt file", || {
        has("plain ", 110)
    });
    let metrics = metrics(&router);
    stop(router);
    assert!(
        metrics.contains(
            "sluice_component_errors_total{component_id=\"files\",reason=\"corrupt_gzip\"} 1"
        ),
        "{metrics}"
    );
    // What came out of the corrupt file before its break is whole lines, in order.
    let got_bad: Vec<String> = read_lines(&out)
        .into_iter()
        .filter(|l| l.starts_with("bad "))
        .collect();
    assert!(got_bad.len() < bad_lines.len());
    assert_eq!(got_bad[..], bad_lines[..got_bad.len()]);
}

#[test]
fn utf16le_with_a_bom_and_latin1_arrive_as_utf8_and_resume_in_the_file_s_bytes() {
    let dir = tempdir();
    let out = dir.path().join("out.log");
    let utf16 = dir.path().join("win.log");
    let latin1 = dir.path().join("legacy.log");
    let to_utf16 =
        |text: &str| -> Vec<u8> { text.encode_utf16().flat_map(u16::to_le_bytes).collect() };
    let mut raw = vec![0xFF, 0xFE]; // the byte-order mark
    raw.extend(to_utf16("héllo wörld ✓ 日本\r\nsecond line 𝄞\r\n"));
    // A lone surrogate: replaced and counted.
    raw.extend([0x41, 0x00, 0x00, 0xD8, b'\n', 0x00]);
    std::fs::write(&utf16, &raw).unwrap();
    std::fs::write(&latin1, b"caf\xe9 na\xefve \xa9 2026\nZ\xfcrich\n").unwrap();
    let config = write_config(
        dir.path(),
        &[
            (
                "win",
                format!(
                    "include = [\"{}\"]\nencoding = \"utf-16le\"",
                    utf16.display()
                ),
            ),
            (
                "legacy",
                format!(
                    "include = [\"{}\"]\nencoding = \"latin1\"",
                    latin1.display()
                ),
            ),
        ],
        &out,
    );
    let router = spawn_router(sluice_up(&config));
    wait_for("five lines", || read_lines(&out).len() >= 5);
    let metrics = metrics(&router);
    stop(router);
    assert_eq!(
        sorted(read_lines(&out)),
        sorted(
            [
                "héllo wörld ✓ 日本",
                "second line 𝄞",
                "A\u{FFFD}",
                "café naïve © 2026",
                "Zürich"
            ]
            .map(String::from)
            .to_vec()
        )
    );
    assert!(
        metrics.contains(
            "sluice_component_errors_total{component_id=\"win\",reason=\"invalid_encoding\"} 1"
        ),
        "{metrics}"
    );
    // The checkpoint is an offset in the file's own bytes: its length.
    let checkpoints =
        std::fs::read_to_string(dir.path().join("data/win/checkpoints.json")).unwrap();
    assert!(
        checkpoints.contains(&format!("\"offset\": {}", raw.len())),
        "{checkpoints}"
    );

    // A restart reads only what was appended, from there.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&utf16)
        .unwrap();
    file.write_all(&to_utf16("after restart ü\n")).unwrap();
    let router = spawn_router(sluice_up(&config));
    wait_for("the appended line", || read_lines(&out).len() >= 6);
    std::thread::sleep(Duration::from_millis(200));
    stop(router);
    let got = read_lines(&out);
    assert_eq!(got.len(), 6, "{got:?}");
    assert_eq!(got[5], "after restart ü");
}

#[test]
fn stdin_multiline_joins_a_java_stack_trace() {
    let dir = tempdir();
    let out = dir.path().join("out.json");
    let config = dir.path().join("pipeline.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[sources.in]
type = "stdin"
multiline = {{ preset = "java" }}

[sinks.out]
type = "file"
inputs = ["in"]
path = "{}"
encoding = "json"
"#,
            out.display()
        ),
    )
    .unwrap();
    let trace =
        std::fs::read_to_string(repo_root().join("tests/corpus/multiline/java/01.txt")).unwrap();
    let trace = trace.trim_end_matches('\n');
    let input = format!("starting up\n{trace}\nrequest served\n{trace}\nshutting down\n");
    let mut child = Command::new(sluice_bin())
        .args(["up", "--config"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap(); // the pipe closes here: EOF ends the source, the router drains and exits
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let messages: Vec<String> = read_lines(&out)
        .iter()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            event["message"].as_str().unwrap().to_string()
        })
        .collect();
    // As Java logs it: the trace belongs to the line before it.
    assert_eq!(
        messages,
        [
            format!("starting up\n{trace}"),
            format!("request served\n{trace}"),
            "shutting down".to_string()
        ]
    );
    assert!(trace.lines().count() > 5, "a real trace: {trace}");
}

#[test]
fn stdin_multiline_sends_a_group_idle_for_its_timeout_while_stdin_stays_open() {
    let dir = tempdir();
    let out = dir.path().join("out.json");
    let config = dir.path().join("pipeline.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[sources.in]
type = "stdin"
multiline = {{ preset = "java", timeout_ms = 200 }}

[sinks.out]
type = "file"
inputs = ["in"]
path = "{}"
encoding = "json"
"#,
            out.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(sluice_bin())
        .args(["up", "--config"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"failed\njava.lang.IllegalStateException: boom\n\tat A.b(A.java:1)\n")
        .unwrap();
    stdin.flush().unwrap();
    // Nothing more comes and stdin stays open: the timeout alone sends the group.
    wait_for("the idle group", || !read_lines(&out).is_empty());
    let event: serde_json::Value = serde_json::from_str(&read_lines(&out)[0]).unwrap();
    assert_eq!(
        event["message"],
        "failed\njava.lang.IllegalStateException: boom\n\tat A.b(A.java:1)"
    );
    drop(stdin);
    assert!(child.wait().unwrap().success());
    assert_eq!(read_lines(&out).len(), 1);
}
