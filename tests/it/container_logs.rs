//! Container logs through the `file` source: a directory laid out as the kubelet lays out
//! `/var/log/pods` (CRI format, partial lines, stdout and stderr interleaved) and a Docker
//! json-file log with a split long line and a line cut by a crash
//! (tests/corpus/container/, written by its generate.py with the events expected of each
//! file). Each file's events must be exactly those, stream by stream.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{read_lines, repo_root, sluice_up, spawn_router, tempdir, TIMEOUT};

fn corpus() -> PathBuf {
    repo_root().join("tests/corpus/container")
}

/// `(stream, message, time)` of the expected events, time as the sink writes it.
fn expected(name: &str) -> Vec<(String, String, Option<String>)> {
    read_lines(&corpus().join("expected").join(name))
        .iter()
        .map(|line| {
            let e: Value = serde_json::from_str(line).unwrap();
            let time = e["time"].as_str().map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .unwrap()
                    .to_utc()
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            });
            (
                e["stream"].as_str().unwrap().to_string(),
                e["message"].as_str().unwrap().to_string(),
                time,
            )
        })
        .collect()
}

/// The expected events of the file at `relative` (under the corpus).
fn expected_of(relative: &str) -> Vec<(String, String, Option<String>)> {
    expected(&format!("{}.jsonl", relative.replace('/', "__")))
}

fn written(path: &Path) -> Vec<Value> {
    read_lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The events of one stream, in order, as `(message, time)`; times are compared only where
/// `with_time`.
fn of_stream(
    events: &[(String, String, Option<String>)],
    stream: &str,
    with_time: bool,
) -> Vec<(String, Option<String>)> {
    events
        .iter()
        .filter(|(s, _, _)| s == stream)
        .map(|(_, m, t)| (m.clone(), t.clone().filter(|_| with_time)))
        .collect()
}

fn got(events: &[Value], file: &str) -> Vec<(String, String, Option<String>)> {
    events
        .iter()
        .filter(|e| e["path"].as_str().unwrap().ends_with(file))
        .map(|e| {
            (
                e["stream"].as_str().unwrap().to_string(),
                e["message"].as_str().unwrap().to_string(),
                e["timestamp"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn check(
    got: &[(String, String, Option<String>)],
    want: &[(String, String, Option<String>)],
    with_time: bool,
    what: &str,
) {
    assert_eq!(got.len(), want.len(), "{what}: {got:#?}");
    for stream in ["stdout", "stderr"] {
        assert_eq!(
            of_stream(got, stream, with_time),
            of_stream(want, stream, with_time),
            "{what}: {stream}"
        );
    }
}

#[test]
fn kubelet_and_docker_files_become_the_containers_lines() {
    let dir = tempdir();
    let dir = dir.path();
    let root = corpus();
    let out = |name: &str| dir.join(format!("{name}.json"));
    let source = |id: &str, include: &str, options: &str| {
        format!(
            r#"
[sources.{id}]
type = "file"
include = ["{}/{include}"]
glob_interval_ms = 50
{options}

[sinks.{id}_out]
type = "file"
inputs = ["{id}"]
path = "{}"
encoding = "json"

[sinks.{id}_dead]
type = "file"
inputs = ["{id}.dead_letter"]
path = "{}.dead"
encoding = "json"
"#,
            root.display(),
            out(id).display(),
            out(id).display(),
        )
    };
    let config = dir.join("pipeline.toml");
    std::fs::write(
        &config,
        [
            source("pods", "var/log/pods/*/*/*.log", r#"container = "cri""#),
            source(
                "docker",
                "var/lib/docker/containers/*/*-json.log",
                r#"container = "docker""#,
            ),
            // Both formats told apart per line, the Java container's trace joined.
            source(
                "java",
                "var/log/pods/*/app/*.log",
                r#"container = "auto"
multiline = { preset = "java", timeout_ms = 200 }"#,
            ),
            // A joined line longer than the source's limit is cut there.
            source(
                "small",
                "var/log/pods/*/nginx/*.log",
                r#"container = "cri"
max_line_bytes = 20000"#,
            ),
        ]
        .concat(),
    )
    .unwrap();
    let router = spawn_router(sluice_up(&config));

    let nginx = "var/log/pods/default_web-7d4b9c8f6d-x2x7k_3c1f6a2e-8d7b-4b9e-9f64-2a1d0c5e7b11/nginx/0.log";
    let app =
        "var/log/pods/default_web-7d4b9c8f6d-x2x7k_3c1f6a2e-8d7b-4b9e-9f64-2a1d0c5e7b11/app/1.log";
    let cid = "4f1be8c2d2a7b3c9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7";
    let docker = format!("var/lib/docker/containers/{cid}/{cid}-json.log");
    let java = expected("var__log__pods__app.java.jsonl");
    let want = [
        ("pods", expected_of(nginx).len() + expected_of(app).len()),
        ("docker", expected_of(&docker).len()),
        ("java", java.len()),
        ("small", expected_of(nginx).len()),
    ];
    let deadline = Instant::now() + TIMEOUT;
    while !want.iter().all(|(id, n)| read_lines(&out(id)).len() >= *n)
        || read_lines(&dir.join("docker.json.dead")).is_empty()
    {
        assert!(Instant::now() < deadline, "timed out waiting for {want:?}");
        // Polling the sinks' files; not synchronisation.
        std::thread::sleep(Duration::from_millis(20));
    }
    router.signal("-TERM");
    let (status, log) = router.finish();
    assert!(status.success(), "{log}");

    let pods = written(&out("pods"));
    check(&got(&pods, nginx), &expected_of(nginx), true, "cri nginx");
    check(&got(&pods, app), &expected_of(app), true, "cri app");
    check(
        &got(&written(&out("docker")), &format!("{cid}-json.log")),
        &expected_of(&docker),
        true,
        "docker",
    );
    check(
        &got(&written(&out("java")), "1.log"),
        &java,
        false,
        "cri + multiline",
    );
    let trace = &java.iter().find(|(s, _, _)| s == "stderr").unwrap();
    assert!(
        got(&written(&out("java")), "1.log")
            .iter()
            .any(|(_, m, t)| m == &trace.1 && t == &trace.2),
        "the joined trace keeps the time of its first line"
    );

    let small = got(&written(&out("small")), "0.log");
    let long = &expected_of(nginx)[3].1;
    assert!(long.len() > 20_000);
    assert!(
        small.iter().any(|(_, m, _)| m == &long[..20_000]),
        "the long line cut at max_line_bytes"
    );
    assert_eq!(
        small.len(),
        expected_of(nginx).len(),
        "the rest of the file still read"
    );

    let dead = written(&dir.join("docker.json.dead"));
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0]["reason_code"], "parse_error");
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("not a docker json-file log line"),
        "{}",
        dead[0]["reason"]
    );
    assert_eq!(dead[0]["message"], r#"{"log":"cut by a cra"#);
}
