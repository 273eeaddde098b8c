//! `get_enrichment_table_record`: tables resolved at compile time, lookups by the key
//! column and by others, misses handled with `??` and `x, err =`, and a reloaded table
//! seen by the next run.

use std::path::Path;

use super::{CompileError, Outcome, Program, Scratch};
use crate::enrichment::csv::CsvTableConfig;
use crate::enrichment::{TableHandle, Tables};
use crate::event::{Map, Value};

const OWNERS: &str = "app,owner,team,tier\nweb,ann,front,1\napi,bob,back,2\njobs,bob,back,2\n";

fn csv(file: &Path) -> CsvTableConfig {
    CsvTableConfig {
        file: file.to_path_buf(),
        key: "app".into(),
        delimiter: ',',
        reload_interval_secs: 0,
        max_bytes: 1 << 20,
    }
}

/// A table `owners` holding `text`, and the directory its file is in.
fn owners(text: &str) -> (tempfile::TempDir, TableHandle, Tables) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("owners.csv");
    std::fs::write(&file, text).unwrap();
    let handle = TableHandle::new("owners");
    handle.open(&csv(&file)).unwrap();
    let mut tables = Tables::default();
    tables.insert(handle.clone());
    (dir, handle, tables)
}

fn fields(json: &str) -> Map {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(map)) => map,
        other => panic!("test input {json} is not an object: {other:?}"),
    }
}

fn json(map: &Map) -> String {
    serde_json::to_string(&Value::Object(map.clone())).unwrap_or_default()
}

/// The fields after a run of `program` over `input`, or `error: <message>` (the fields
/// then checked to be as they came).
fn run(program: &Program, input: &str) -> String {
    let mut map = fields(input);
    match program.run(&mut map, &mut Scratch::default()) {
        Ok(Outcome::Done) => json(&map),
        Ok(Outcome::Aborted) => "abort".into(),
        Err(e) => {
            assert_eq!(
                map,
                fields(input),
                "a failed run leaves the event as it was"
            );
            format!("error: {e}")
        }
    }
}

fn compile(tables: &Tables, src: &str) -> Program {
    Program::compile_with_tables(src, tables).unwrap_or_else(|e| panic!("{src}: {e}"))
}

#[test]
fn records_are_found_by_the_key_column_and_by_others() {
    let (_dir, _handle, tables) = owners(OWNERS);
    let cases: &[(&str, &str, &str)] = &[
        (
            r#".owner = get_enrichment_table_record("owners", {"app": .app}) ?? null"#,
            r#"{"app":"web"}"#,
            r#"{"app":"web","owner":{"app":"web","owner":"ann","team":"front","tier":"1"}}"#,
        ),
        // A miss takes the default.
        (
            r#".owner = get_enrichment_table_record("owners", {"app": .app}) ?? "unknown""#,
            r#"{"app":"nope"}"#,
            r#"{"app":"nope","owner":"unknown"}"#,
        ),
        // Several conditions, none of them the key column: the rows are searched.
        (
            r#"row, err = get_enrichment_table_record("owners", {"owner": .who, "team": "back", "tier": 2})
.found = row.app
.err = err"#,
            r#"{"who":"bob"}"#,
            r#"{"who":"bob","found":null,"err":"`get_enrichment_table_record` failed: more than one record matches"}"#,
        ),
        (
            r#"row, err = get_enrichment_table_record("owners", {"owner": .who, "app": "jobs"})
.found = row.team
.err = err"#,
            r#"{"who":"bob"}"#,
            r#"{"who":"bob","found":"back","err":null}"#,
        ),
        // Numbers and booleans compare as text, as the table holds them.
        (
            r#"row = get_enrichment_table_record("owners", {"tier": .tier, "team": "front"}) ?? {}
.app = row.app"#,
            r#"{"tier":1}"#,
            r#"{"tier":1,"app":"web"}"#,
        ),
        (
            r#".r = get_enrichment_table_record("owners", {"colour": "red"}) ?? "none""#,
            r#"{}"#,
            r#"{"r":"none"}"#,
        ),
    ];
    for (src, input, expected) in cases {
        assert_eq!(run(&compile(&tables, src), input), *expected, "{src}");
    }
}

#[test]
fn bad_conditions_fail_the_run_unless_handled() {
    let (_dir, _handle, tables) = owners(OWNERS);
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"_, err = get_enrichment_table_record("owners", .app)
.err = err"#,
            r#"{"app":"web"}"#,
            r#"{"app":"web","err":"`get_enrichment_table_record` failed: argument 2 must be an object of conditions (`{\"field\": value}`), not a string"}"#,
        ),
        (
            r#"_, err = get_enrichment_table_record("owners", {"app": .tags})
.err = err"#,
            r#"{"tags":["a"]}"#,
            r#"{"tags":["a"],"err":"`get_enrichment_table_record` failed: the condition on `app` must be a string, a number or a boolean, not an array"}"#,
        ),
        (
            r#"_, err = get_enrichment_table_record("owners", {})
.err = err"#,
            r#"{}"#,
            r#"{"err":"`get_enrichment_table_record` failed: argument 2 has no conditions"}"#,
        ),
        // The conditions themselves fail (a division by zero): handled all the same.
        (
            r#".a = 1
.r = get_enrichment_table_record("owners", {"tier": 1 / .zero}) ?? "default""#,
            r#"{"zero":0}"#,
            r#"{"zero":0,"a":1,"r":"default"}"#,
        ),
        // An error target that is a field: the run goes on, the field says why.
        (
            r#".owner, .why = get_enrichment_table_record("owners", {"app": .app})
.after = true"#,
            r#"{"app":"nope"}"#,
            r#"{"app":"nope","why":"`get_enrichment_table_record` failed: no record matches","after":true}"#,
        ),
    ];
    for (src, input, expected) in cases {
        assert_eq!(run(&compile(&tables, src), input), *expected, "{src}");
    }
}

#[test]
fn tables_are_resolved_at_compile_time() {
    let (_dir, _handle, tables) = owners(OWNERS);
    let error = |tables: &Tables, src: &str| match Program::compile_with_tables(src, tables) {
        Ok(_) => panic!("{src:?} compiled"),
        Err(CompileError {
            line,
            column,
            message,
        }) => format!("{line}:{column}: {message}"),
    };
    let cases: &[(&str, &str)] = &[
        (
            ".a = 1\n.o = get_enrichment_table_record(\"ownres\", {\"app\": .app}) ?? null",
            "2:34: no enrichment table `ownres` (expected one of: owners)",
        ),
        (
            ".o = get_enrichment_table_record(\"owners\", {\"app\": .app})",
            "1:6: unhandled error: `get_enrichment_table_record` can fail; handle it with `x, err = get_enrichment_table_record(...)` or `get_enrichment_table_record(...) ?? default`",
        ),
        (
            "t = \"owners\"\n.o = get_enrichment_table_record(t, {}) ?? null",
            "2:34: expected the table's name as a string literal (`get_enrichment_table_record(\"table\", {...})`), found `t`",
        ),
        (
            ".o = get_enrichment_table_record(\"owners\") ?? null",
            "1:42: expected `,` and the conditions: `get_enrichment_table_record(\"owners\", {\"field\": value})`, found `)`",
        ),
        (
            ".o = get_enrichment_table_record(\"owners\", {}, 3) ?? null",
            "1:48: expected `)`: `get_enrichment_table_record` takes 2 arguments, found `3`",
        ),
        (
            "get_enrichment_table_record = 1",
            "1:1: `get_enrichment_table_record` is a function and cannot be assigned to",
        ),
    ];
    for (src, expected) in cases {
        assert_eq!(error(&tables, src), *expected, "{src}");
    }
    assert_eq!(
        error(
            &Tables::default(),
            ".o = get_enrichment_table_record(\"owners\", {}) ?? null"
        ),
        "1:34: no enrichment table `owners` (none is defined; add [enrichment_tables.ID])"
    );
}

#[test]
fn a_reloaded_table_is_seen_by_the_next_run() {
    let (dir, handle, tables) = owners(OWNERS);
    let program = compile(
        &tables,
        r#"row = get_enrichment_table_record("owners", {"app": .app}) ?? {"team": "none"}
.team = row.team"#,
    );
    assert_eq!(
        run(&program, r#"{"app":"web"}"#),
        r#"{"app":"web","team":"front"}"#
    );
    let file = dir.path().join("owners.csv");
    std::fs::write(&file, "app,team\nweb,platform\n").unwrap();
    assert!(handle.reload(&csv(&file)));
    assert_eq!(
        run(&program, r#"{"app":"web"}"#),
        r#"{"app":"web","team":"platform"}"#
    );
    assert_eq!(
        run(&program, r#"{"app":"api"}"#),
        r#"{"app":"api","team":"none"}"#
    );
}
