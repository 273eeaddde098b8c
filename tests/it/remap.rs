//! The `remap` transform in a real router process: a file source, a remap program read
//! from a file, and a file sink on each of its three outputs.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::{read_lines, sluice_up, spawn_router, tempdir, TIMEOUT};

const PROGRAM: &str = r#"# shape web logs
if .level == "debug" { abort }
parsed, err = parse_key_value(.message)
if err == null {
  .user = parsed.user
  .latency_s = (to_float(parsed.ms) ?? 0.0) / 1000
}
.service = upcase(.app) + "/" + .env
.per_item = .bytes / .items
del(.secret)
"#;

fn json_lines(path: &Path) -> Vec<Value> {
    read_lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Only these fields of each written event: the file source adds its own (`path`,
/// `timestamp`...), which are not the program's business.
fn picked(event: &Value, fields: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for f in fields {
        if let Some(v) = event.get(*f) {
            out.insert((*f).to_string(), v.clone());
        }
    }
    Value::Object(out)
}

#[test]
fn remap_shapes_drops_and_fails_events_between_a_source_and_file_sinks() {
    let dir = tempdir();
    let dir = dir.path();
    let input = dir.join("in.log");
    let lines = [
        json!({"app": "web", "env": "prod", "message": "user=ann ms=250", "bytes": 10, "items": 4, "secret": "s"}),
        json!({"app": "web", "env": "prod", "level": "debug", "message": "noise", "bytes": 1, "items": 1}),
        json!({"app": "web", "env": "prod", "message": "plain text", "bytes": 10, "items": 0, "secret": "kept"}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&input, text).unwrap();
    let program = dir.join("shape.remap");
    std::fs::write(&program, PROGRAM).unwrap();
    let out = |name: &str| dir.join(format!("{name}.json"));
    let config = dir.join("pipeline.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[sources.logs]
type = "file"
include = ["{input}"]
glob_interval_ms = 50
decoding = "json"

[transforms.shape]
type = "remap"
inputs = ["logs"]
file = "{program}"

[sinks.shaped]
type = "file"
inputs = ["shape"]
path = "{shaped}"
encoding = "json"

[sinks.dropped]
type = "file"
inputs = ["shape.dropped"]
path = "{dropped}"
encoding = "json"

[sinks.failed]
type = "file"
inputs = ["shape.failed"]
path = "{failed}"
encoding = "json"
"#,
            input = input.display(),
            program = program.display(),
            shaped = out("shaped").display(),
            dropped = out("dropped").display(),
            failed = out("failed").display(),
        ),
    )
    .unwrap();

    let router = spawn_router(sluice_up(&config));
    wait_for("an event on each output", || {
        ["shaped", "dropped", "failed"]
            .iter()
            .all(|name| !read_lines(&out(name)).is_empty())
    });
    router.signal("-TERM");
    let (status, log) = router.finish();
    assert!(status.success(), "{log}");

    let fields = [
        "app",
        "env",
        "level",
        "message",
        "bytes",
        "items",
        "secret",
        "user",
        "latency_s",
        "service",
        "per_item",
        "remap_error",
    ];
    let shaped: Vec<Value> = json_lines(&out("shaped"))
        .iter()
        .map(|e| picked(e, &fields))
        .collect();
    assert_eq!(
        shaped,
        [
            json!({"app": "web", "env": "prod", "message": "user=ann ms=250", "bytes": 10, "items": 4,
                "user": "ann", "latency_s": 0.25, "service": "WEB/prod", "per_item": 2.5})
        ]
    );
    let dropped: Vec<Value> = json_lines(&out("dropped"))
        .iter()
        .map(|e| picked(e, &fields))
        .collect();
    assert_eq!(dropped, [picked(&lines[1], &fields)]);
    // Division by zero on line 9: the event is as it came in (its `.service` and
    // `.user` undone, `.secret` still there) plus the reason.
    let failed: Vec<Value> = json_lines(&out("failed"))
        .iter()
        .map(|e| picked(e, &fields))
        .collect();
    let mut expected = picked(&lines[2], &fields);
    expected["remap_error"] = json!("at line 9, column 20: division by zero");
    assert_eq!(failed, [expected]);
}

#[test]
fn a_program_that_does_not_compile_fails_validation_with_its_line_and_column() {
    let dir = tempdir();
    let config = dir.path().join("pipeline.toml");
    std::fs::write(
        &config,
        r#"
[sources.in]
type = "stdin"

[transforms.shape]
type = "remap"
inputs = ["in"]
source = '''
.a = 1
.b = parse_json(.message)
'''

[sinks.out]
type = "console"
inputs = ["shape"]
"#,
    )
    .unwrap();
    let output = std::process::Command::new(crate::util::sluice_bin())
        .arg("validate")
        .arg(&config)
        .output()
        .expect("sluice validate runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "{}: transform `shape`: field `source`: line 10, column 6: unhandled error: `parse_json` can fail",
            config.display()
        )),
        "{stderr}"
    );
}
