//! The harness's wiring, checked without the binary: what a finished transform sends goes
//! downstream, a fan-out reaches every reader once, and `run` gives each test fresh state.

use super::harness::{self, Failure};
use super::spec::read_tests;
use crate::pipeline::Pipeline;

/// Runs every test of the pipeline `text` (tests inline); each test gets its own build.
fn outcomes(text: &str) -> Vec<(String, harness::Outcome)> {
    let env = |_: &str| None;
    let pipeline = Pipeline::from_str("p.toml", text, env).expect("valid pipeline");
    let mut table: toml::Table = toml::from_str(text).expect("toml");
    let tests = table.remove("tests").expect("tests");
    let tests = read_tests("p.toml", tests, &pipeline).expect("valid tests");
    tests
        .iter()
        .map(|test| {
            let fresh = Pipeline::from_str("p.toml", text, env).expect("valid pipeline");
            (test.name.clone(), harness::run(fresh, test))
        })
        .collect()
}

const HEAD: &str = r#"
[sources.in]
type = "stdin"

[sinks.out]
type = "blackhole"
inputs = ["in"]
"#;

#[test]
fn what_a_transform_sends_when_finished_goes_through_the_transforms_after_it() {
    let text = format!(
        r#"{HEAD}
[transforms.join]
type = "multiline"
inputs = ["in"]
preset = "java"
group_by = ["app"]

[transforms.traces]
type = "filter"
inputs = ["join"]
condition = 'message contains "\n"'

[[tests]]
name = "joined"
[[tests.inputs]]
insert_at = "in"
log_fields = {{ app = "a", message = "java.lang.Error: x" }}
[[tests.inputs]]
insert_at = "in"
log_fields = {{ app = "a", message = "    at A.b(A.java:1)" }}
[[tests.outputs]]
extract_from = "traces"
conditions = ['message == "java.lang.Error: x\n    at A.b(A.java:1)"']
"#
    );
    let results = outcomes(&text);
    assert!(results[0].1.passed(), "{:?}", results[0].1);
}

#[test]
fn an_output_reaches_each_reader_once() {
    let text = format!(
        r#"{HEAD}
[transforms.a]
type = "enrich"
inputs = ["in"]
set = {{ by = "a" }}

[transforms.b]
type = "enrich"
inputs = ["in", "in"]
set = {{ by = "b" }}

[transforms.both]
type = "filter"
inputs = ["a", "b"]
condition = 'by exists'

[[tests]]
name = "fan-out"
[[tests.inputs]]
insert_at = "in"
value = "x"
[[tests.outputs]]
extract_from = "both"
conditions = ['by == "nobody"']
"#
    );
    let results = outcomes(&text);
    match &results[0].1.failures[..] {
        [Failure::Conditions { events, .. }] => {
            let by: Vec<_> = events
                .iter()
                .map(|e| {
                    e.get("by")
                        .and_then(|v| v.as_str())
                        .unwrap_or("")
                        .to_string()
                })
                .collect();
            assert_eq!(by, ["a", "b"]);
        }
        other => panic!("expected one condition failure, got {other:?}"),
    }
}

#[test]
fn each_test_starts_with_fresh_transform_state() {
    let test = |name: &str| {
        format!(
            r#"
[[tests]]
name = "{name}"
[[tests.inputs]]
insert_at = "once"
log_fields = {{ message = "same" }}
[[tests.outputs]]
extract_from = "once"
"#
        )
    };
    let text = format!(
        r#"{HEAD}
[transforms.once]
type = "dedupe"
inputs = ["in"]
{}{}"#,
        test("first"),
        test("second")
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("p.toml");
    std::fs::write(&file, text).expect("write");
    let mut report = Vec::new();
    let summary = super::run(&[file], &|_: &str| None, &mut report).expect("valid");
    let report = String::from_utf8_lossy(&report);
    assert_eq!(
        summary,
        super::Summary {
            passed: 2,
            failed: 0
        },
        "{report}"
    );
}
