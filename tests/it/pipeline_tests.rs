//! `sluice test`: the shipped pipelines' own tests pass, and for each transform type a
//! passing and a failing `[[tests]]`, run by the real binary, with the report's lines and
//! exit codes checked; configuration mistakes exit 2 naming file, test and field; the
//! router and `sluice validate` accept a pipeline holding tests.

use std::path::Path;
use std::process::Command;

use crate::util::{repo_root, sluice_bin, tempdir};

/// Every transform type, on two branches from one source; the sink does not run in tests.
const PIPELINE: &str = r#"
[sources.in]
type = "stdin"

[transforms.parse]
type = "parse"
inputs = ["in"]
format = "json"
reroute_failed = true

[transforms.enrich]
type = "enrich"
inputs = ["parse"]
set = { env = "prod" }
rename = { usr = "user" }
remove = ["password"]

[transforms.filter]
type = "filter"
inputs = ["enrich"]
condition = 'app != "healthcheck"'

[transforms.route]
type = "route"
inputs = ["filter"]
routes = { errors = 'level >= "error"' }

[transforms.sample]
type = "sample"
inputs = ["route._unmatched"]
rate = 2

[transforms.throttle]
type = "throttle"
inputs = ["route.errors"]
threshold = 2
window_secs = 3600
key_field = "app"

[transforms.dedupe]
type = "dedupe"
inputs = ["throttle"]
fields = ["app", "message"]

[transforms.redact]
type = "redact"
inputs = ["dedupe"]
detectors = ["email"]

[transforms.multiline]
type = "multiline"
inputs = ["in"]
preset = "java"
group_by = ["app"]

[sinks.out]
type = "blackhole"
inputs = ["redact", "sample", "multiline", "parse.failed"]
"#;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn sluice_test(files: &[&Path]) -> Run {
    let output = Command::new(sluice_bin())
        .arg("test")
        .args(files)
        .current_dir(repo_root())
        // The shipped stdin pipeline's `set` reads these; their defaults are what its
        // tests expect.
        .env_remove("APP")
        .env_remove("ENVIRONMENT")
        .output()
        .expect("run sluice test");
    Run {
        code: output.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `tests` written inline in the pipeline above.
fn run_inline(tests: &str) -> Run {
    let dir = tempdir();
    let file = dir.path().join("pipeline.toml");
    std::fs::write(&file, format!("{PIPELINE}\n{tests}")).unwrap();
    sluice_test(&[&file])
}

/// Asserts each of `lines` is a whole line of `run`'s stdout.
fn assert_lines(run: &Run, lines: &[&str]) {
    for line in lines {
        assert!(
            run.stdout.lines().any(|l| l == *line),
            "missing line {line:?} in:\n{}\nstderr:\n{}",
            run.stdout,
            run.stderr
        );
    }
}

fn assert_passed(tests: &str, name: &str) {
    let run = run_inline(tests);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_lines(
        &run,
        &[
            &format!("test {name} ... passed"),
            "1 test: 1 passed, 0 failed",
        ],
    );
}

fn assert_failed(tests: &str, name: &str, diff: &[&str]) {
    let run = run_inline(tests);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let mut lines = vec![
        format!("test {name} ... failed"),
        "1 test: 0 passed, 1 failed".to_string(),
    ];
    lines.extend(diff.iter().map(|s| s.to_string()));
    assert_lines(&run, &lines.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn shipped_pipelines_pass_their_tests() {
    let root = repo_root();
    let mut pipelines: Vec<String> = std::fs::read_dir(root.join("pipelines"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    pipelines.sort();
    assert!(pipelines.len() >= 8, "found {pipelines:?}");
    let mut test_files = Vec::new();
    for name in &pipelines {
        let tests = Path::new("pipelines/tests").join(name);
        assert!(
            root.join(&tests).exists(),
            "pipelines/{name} has no tests: add {}",
            tests.display()
        );
        test_files.push(tests);
    }
    let run = sluice_test(&test_files.iter().map(|p| p.as_path()).collect::<Vec<_>>());
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let passed = run
        .stdout
        .lines()
        .filter(|l| l.ends_with(" ... passed"))
        .count();
    assert!(
        passed >= pipelines.len(),
        "expected at least one test per pipeline:\n{}",
        run.stdout
    );
    assert_lines(
        &run,
        &[&format!("{passed} tests: {passed} passed, 0 failed")],
    );
}

#[test]
fn parse() {
    let test = |level: &str| {
        format!(
            r#"
[[tests]]
name = "parse json"
[[tests.inputs]]
insert_at = "parse"
value = '{{"level":"error","app":"api","msg":"db down","time":"2026-12-06T01:00:00Z"}}'
[[tests.outputs]]
extract_from = "parse"
conditions = ['level == "{level}"', 'message == "db down"']
"#
        )
    };
    assert_passed(&test("error"), "parse json");
    assert_failed(
        &test("warn"),
        "parse json",
        &[
            r#"  condition failed on `parse`: level == "warn" (held for 0 of 1 event)"#,
            "  1 event came out of `parse`:",
            r#"    {"level":"error","app":"api","time":"2026-12-06T01:00:00Z","message":"db down","timestamp":"2026-12-06T01:00:00.000000Z"}"#,
        ],
    );
    // Not JSON: it goes to `parse.failed`, and the report says where it went.
    let not_json = r#"
[[tests]]
name = "not json"
[[tests.inputs]]
insert_at = "parse"
value = "plain words"
[[tests.outputs]]
extract_from = "parse"
"#;
    assert_failed(
        not_json,
        "not json",
        &[
            "  no events came out of `parse`",
            "  outputs that sent events: parse.failed (1)",
        ],
    );
}

#[test]
fn enrich() {
    let test = |env: &str| {
        format!(
            r#"
[[tests]]
name = "enrich"
[[tests.inputs]]
insert_at = "enrich"
log_fields = {{ app = "api", usr = "ann", password = "hunter2" }}
[[tests.outputs]]
extract_from = "enrich"
conditions = ['env == "{env}"', 'user == "ann"', 'not password exists']
"#
        )
    };
    assert_passed(&test("prod"), "enrich");
    assert_failed(
        &test("staging"),
        "enrich",
        &[
            r#"  condition failed on `enrich`: env == "staging" (held for 0 of 1 event)"#,
            r#"    {"app":"api","env":"prod","user":"ann"}"#,
        ],
    );
}

#[test]
fn filter() {
    let test = |app: &str| {
        format!(
            r#"
[[tests]]
name = "filter"
no_outputs_from = ["filter"]
[[tests.inputs]]
insert_at = "filter"
log_fields = {{ app = "{app}", message = "GET /health" }}
"#
        )
    };
    assert_passed(&test("healthcheck"), "filter");
    assert_failed(
        &test("web"),
        "filter",
        &[
            "  expected no events from `filter`, but 1 came out:",
            r#"    {"app":"web","message":"GET /health"}"#,
        ],
    );
}

#[test]
fn route() {
    let test = |output: &str| {
        format!(
            r#"
[[tests]]
name = "route"
[[tests.inputs]]
insert_at = "route"
log_fields = {{ app = "api", level = "fatal", message = "out of memory" }}
[[tests.outputs]]
extract_from = "{output}"
conditions = ['level == "fatal"']
"#
        )
    };
    assert_passed(&test("route.errors"), "route");
    assert_failed(
        &test("route._unmatched"),
        "route",
        &[
            "  no events came out of `route._unmatched`",
            "  outputs that sent events: route.errors (1), throttle (1), dedupe (1), redact (1)",
        ],
    );
}

#[test]
fn sample() {
    // One in two is kept: the first and the third.
    let test = |kept: &str| {
        format!(
            r#"
[[tests]]
name = "sample"
[[tests.inputs]]
insert_at = "sample"
log_fields = {{ message = "one" }}
[[tests.inputs]]
insert_at = "sample"
log_fields = {{ message = "two" }}
[[tests.inputs]]
insert_at = "sample"
log_fields = {{ message = "three" }}
[[tests.outputs]]
extract_from = "sample"
conditions = ['message == "{kept}"']
"#
        )
    };
    assert_passed(&test("three"), "sample");
    assert_failed(
        &test("two"),
        "sample",
        &[
            r#"  condition failed on `sample`: message == "two" (held for 0 of 2 events)"#,
            "  2 events came out of `sample`:",
            r#"    {"message":"one"}"#,
            r#"    {"message":"three"}"#,
        ],
    );
}

#[test]
fn throttle() {
    // A budget of two per app: the third event of `api` is dropped, `web` has its own.
    let test = |expected: &str| {
        format!(
            r#"
[[tests]]
name = "throttle"
[[tests.inputs]]
insert_at = "throttle"
log_fields = {{ app = "api", message = "1" }}
[[tests.inputs]]
insert_at = "throttle"
log_fields = {{ app = "api", message = "2" }}
[[tests.inputs]]
insert_at = "throttle"
log_fields = {{ app = "api", message = "3" }}
[[tests.inputs]]
insert_at = "throttle"
log_fields = {{ app = "web", message = "4" }}
[[tests.outputs]]
extract_from = "throttle"
conditions = ['{expected}']
"#
        )
    };
    assert_passed(&test(r#"app == "web""#), "throttle");
    assert_failed(
        &test(r#"message == "3""#),
        "throttle",
        &[
            r#"  condition failed on `throttle`: message == "3" (held for 0 of 3 events)"#,
            r#"    {"app":"api","message":"2"}"#,
            r#"    {"app":"web","message":"4"}"#,
        ],
    );
}

#[test]
fn dedupe() {
    let test = |second: &str| {
        format!(
            r#"
[[tests]]
name = "dedupe"
[[tests.inputs]]
insert_at = "dedupe"
log_fields = {{ app = "api", message = "db down", n = 1 }}
[[tests.inputs]]
insert_at = "dedupe"
log_fields = {{ app = "api", message = "{second}", n = 2 }}
[[tests.outputs]]
extract_from = "dedupe"
conditions = ['n == 2']
"#
        )
    };
    assert_passed(&test("db up"), "dedupe");
    assert_failed(
        &test("db down"),
        "dedupe",
        &[
            "  condition failed on `dedupe`: n == 2 (held for 0 of 1 event)",
            r#"    {"app":"api","message":"db down","n":1}"#,
        ],
    );
}

#[test]
fn redact() {
    let test = |condition: &str| {
        format!(
            r#"
[[tests]]
name = "redact"
[[tests.inputs]]
insert_at = "redact"
log_fields = {{ message = "mail ann@example.com failed" }}
[[tests.outputs]]
extract_from = "redact"
conditions = ['{condition}']
"#
        )
    };
    assert_passed(
        &test(r#"message == "mail [REDACTED:email] failed""#),
        "redact",
    );
    assert_failed(
        &test(r#"message contains "ann@""#),
        "redact",
        &[
            r#"  condition failed on `redact`: message contains "ann@" (held for 0 of 1 event)"#,
            r#"    {"message":"mail [REDACTED:email] failed"}"#,
        ],
    );
}

#[test]
fn multiline() {
    // The group is still pending when the inputs end: finishing the transform sends it.
    let test = |condition: &str| {
        format!(
            r#"
[[tests]]
name = "multiline"
[[tests.inputs]]
insert_at = "multiline"
log_fields = {{ app = "api", message = "java.lang.IllegalStateException: boom" }}
[[tests.inputs]]
insert_at = "multiline"
log_fields = {{ app = "api", message = "\tat com.example.Db.open(Db.java:42)" }}
[[tests.outputs]]
extract_from = "multiline"
conditions = ['{condition}']
"#
        )
    };
    assert_passed(
        &test(
            r#"message == "java.lang.IllegalStateException: boom\n\tat com.example.Db.open(Db.java:42)""#,
        ),
        "multiline",
    );
    assert_failed(
        &test(r#"message == "java.lang.IllegalStateException: boom""#),
        "multiline",
        &[
            r#"    {"app":"api","message":"java.lang.IllegalStateException: boom\n\tat com.example.Db.open(Db.java:42)"}"#,
        ],
    );
}

#[test]
fn conditions_that_each_hold_but_never_together_fail() {
    let tests = r#"
[[tests]]
name = "together"
[[tests.inputs]]
insert_at = "enrich"
log_fields = { app = "api", level = "info" }
[[tests.inputs]]
insert_at = "enrich"
log_fields = { app = "web", level = "error" }
[[tests.outputs]]
extract_from = "enrich"
conditions = ['app == "api"', 'level == "error"']
"#;
    assert_failed(
        tests,
        "together",
        &[
            r#"  conditions failed on `enrich`: no one event satisfied all of them: app == "api" (held for 1 of 2), level == "error" (held for 1 of 2)"#,
        ],
    );
}

#[test]
fn tests_beside_the_pipeline_run_against_it() {
    let dir = tempdir();
    let pipeline = dir.path().join("p.toml");
    std::fs::write(&pipeline, PIPELINE).unwrap();
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    let tests = r#"
[[tests]]
name = "beside"
[[tests.inputs]]
insert_at = "enrich"
log_fields = { app = "api" }
[[tests.outputs]]
extract_from = "enrich"
conditions = ['env == "prod"']
"#;
    // Named by `pipeline`, relative to the tests file.
    let named = dir.path().join("tests/named.toml");
    std::fs::write(&named, format!("pipeline = \"../p.toml\"\n{tests}")).unwrap();
    // Without `pipeline`: the pipeline before it on the command line.
    let following = dir.path().join("tests/following.toml");
    std::fs::write(&following, tests).unwrap();
    let run = sluice_test(&[&named, &pipeline, &following]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_lines(
        &run,
        &[
            // `tests/../p.toml` is named as the file it is.
            &format!("{}: 1 test of {}", named.display(), pipeline.display()),
            &format!("{}: 1 test of {}", following.display(), pipeline.display()),
            "2 tests: 2 passed, 0 failed",
        ],
    );
    // Alone, it has no pipeline to run against: a configuration error.
    let run = sluice_test(&[&following]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("following.toml: field `pipeline`: a file of tests alone needs"),
        "{}",
        run.stderr
    );
}

#[test]
fn configuration_mistakes_exit_2_naming_file_test_and_field() {
    let tests = r#"
[[tests]]
name = "broken"
no_outputs_from = ["out"]
[[tests.inputs]]
insert_at = "nowhere"
value = "x"
[[tests.outputs]]
extract_from = "route.warnings"
conditions = ['level >= ']
"#;
    let run = run_inline(tests);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        !run.stdout.contains("... passed"),
        "no test runs: {}",
        run.stdout
    );
    for expected in [
        "pipeline.toml: test `broken`: field `inputs[0].insert_at`: no transform or source `nowhere` in the pipeline",
        "pipeline.toml: test `broken`: field `outputs[0].extract_from`: `route` has no output `warnings` (it offers: errors, _unmatched)",
        "pipeline.toml: test `broken`: field `outputs[0].conditions[0]`: at column 10:",
        "pipeline.toml: test `broken`: field `no_outputs_from[0]`: `out` is a sink; tests do not run sinks",
    ] {
        assert!(run.stderr.contains(expected), "missing {expected:?} in:\n{}", run.stderr);
    }
    let unknown_key = r#"
[[tests]]
name = "typo"
[[tests.inputs]]
insert_at = "enrich"
value = "x"
[[tests.output]]
extract_from = "enrich"
"#;
    let run = run_inline(unknown_key);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("test `typo`: field `output`: unknown field `output`"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_router_and_validate_accept_a_pipeline_with_tests() {
    let dir = tempdir();
    let file = dir.path().join("with-tests.toml");
    let tests = r#"
[[tests]]
name = "ignored by the router"
[[tests.inputs]]
insert_at = "enrich"
log_fields = { app = "api" }
[[tests.outputs]]
extract_from = "enrich"
"#;
    std::fs::write(&file, format!("{PIPELINE}\n{tests}")).unwrap();
    let validate = Command::new(sluice_bin())
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        validate.status.success(),
        "{}",
        String::from_utf8_lossy(&validate.stderr)
    );
    // Its only source is stdin, empty here: the router starts, drains and exits 0.
    let up = Command::new(sluice_bin())
        .args(["up", "--config"])
        .arg(&file)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
}

#[test]
fn a_line_put_in_at_a_source_is_decoded_as_the_source_decodes() {
    let dir = tempdir();
    let file = dir.path().join("json-source.toml");
    let pipeline = r#"
[sources.json_in]
type = "udp"
address = "127.0.0.1:0"
decoding = "json"

[transforms.tag]
type = "enrich"
inputs = ["json_in"]
set = { seen = "yes" }

[sinks.out]
type = "blackhole"
inputs = ["tag"]

[[tests]]
name = "decoded"
[[tests.inputs]]
insert_at = "json_in"
value = '{"app":"api","n":7}'
[[tests.outputs]]
extract_from = "tag"
conditions = ['app == "api"', 'n == 7', 'seen == "yes"']

[[tests]]
name = "not decodable"
[[tests.inputs]]
insert_at = "json_in"
value = "plain words"
[[tests.outputs]]
extract_from = "tag"
"#;
    std::fs::write(&file, pipeline).unwrap();
    let run = sluice_test(&[&file]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_lines(
        &run,
        &[
            "test decoded ... passed",
            "test not decodable ... failed",
            "  no events came out of `tag`",
            "  inputs[0]: source `json_in` cannot decode the line as json (invalid json at column 1: expected value); it would go to `json_in.dead_letter`",
            "  no event came out of any transform",
            "2 tests: 1 passed, 1 failed",
        ],
    );
}
