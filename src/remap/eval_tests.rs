//! Statements and operators, table-driven: each case runs a program over an input event
//! and compares the resulting fields (as JSON) or the run-time error.

use super::{Outcome, Program, Scratch};
use crate::event::{Map, Value};

fn fields(json: &str) -> Map {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(map)) => map,
        other => panic!("test input {json} is not an object: {other:?}"),
    }
}

fn json(map: &Map) -> String {
    serde_json::to_string(&Value::Object(map.clone())).unwrap_or_default()
}

/// Runs `program` over `input`; the fields as JSON after a finished run, `abort`, or
/// `error: <message>`.
pub(super) fn outcome(program: &str, input: &str) -> String {
    let program = Program::compile(program).unwrap_or_else(|e| panic!("{program}: {e}"));
    let mut map = fields(input);
    let before = json(&map);
    let result = program.run(&mut map, &mut Scratch::default());
    match result {
        Ok(Outcome::Done) => json(&map),
        Ok(Outcome::Aborted) => {
            assert_eq!(
                json(&map),
                before,
                "an aborted run leaves the fields as they were"
            );
            "abort".into()
        }
        Err(e) => {
            assert_eq!(
                json(&map),
                before,
                "a failed run leaves the fields as they were"
            );
            format!("error: {e}")
        }
    }
}

fn check(cases: &[(&str, &str, &str)]) {
    let mut failures = Vec::new();
    for (program, input, expected) in cases {
        let got = outcome(program, input);
        if got != *expected {
            failures.push(format!(
                "{program:?} on {input}\n  expected {expected}\n  got      {got}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn assignments() {
    check(&[
        (".b = 2", r#"{"a":1}"#, r#"{"a":1,"b":2}"#),
        (".a = \"x\"", r#"{"a":1}"#, r#"{"a":"x"}"#),
        (".a.b.c = true", r#"{}"#, r#"{"a":{"b":{"c":true}}}"#),
        (".a.c = 1", r#"{"a":{"b":0}}"#, r#"{"a":{"b":0,"c":1}}"#),
        // A flat dotted key is set where reading finds it.
        (
            ".http.status = 500",
            r#"{"http.status":200}"#,
            r#"{"http.status":500}"#,
        ),
        // ... wherever it is, before or after an object named by the first segment.
        (
            ".http.status = 500",
            r#"{"http":{"status":1},"http.status":200}"#,
            r#"{"http":{"status":1},"http.status":500}"#,
        ),
        (".\"a b\" = 1", r#"{}"#, r#"{"a b":1}"#),
        (
            ".c = .a",
            r#"{"a":[1,{"x":null}]}"#,
            r#"{"a":[1,{"x":null}],"c":[1,{"x":null}]}"#,
        ),
        (".c = .missing", r#"{}"#, r#"{"c":null}"#),
        (
            ".o = {\"k\": .a, n: [1, 2.5, null]}",
            r#"{"a":"v"}"#,
            r#"{"a":"v","o":{"k":"v","n":[1,2.5,null]}}"#,
        ),
        (".a = 1; .b = 2", r#"{}"#, r#"{"a":1,"b":2}"#),
        ("_ = .a", r#"{"a":1}"#, r#"{"a":1}"#),
        (
            ".a.b = 1",
            r#"{"a":"text"}"#,
            "error: at line 1, column 8: cannot set `.a.b`: `a` is a string, not an object",
        ),
    ]);
}

#[test]
fn variables() {
    check(&[
        ("x = .a\n.b = x", r#"{"a":3}"#, r#"{"a":3,"b":3}"#),
        ("x = {\"s\": {\"t\": 4}}\n.b = x.s.t", r#"{}"#, r#"{"b":4}"#),
        ("x = 1\nx = x + 1\n.x = x", r#"{}"#, r#"{"x":2}"#),
        ("x = 5\n.v = x.y", r#"{}"#, r#"{"v":null}"#),
    ]);
}

#[test]
fn arithmetic_and_concatenation() {
    check(&[
        (".r = 1 + 2 * 3", "{}", r#"{"r":7}"#),
        (".r = (1 + 2) * 3", "{}", r#"{"r":9}"#),
        (".r = 7 % 3", "{}", r#"{"r":1}"#),
        (".r = 7 / 2", "{}", r#"{"r":3.5}"#),
        (".r = 1.5 + 1", "{}", r#"{"r":2.5}"#),
        (".r = .a - 1", r#"{"a":10}"#, r#"{"a":10,"r":9}"#),
        (".r = -.a", r#"{"a":2}"#, r#"{"a":2,"r":-2}"#),
        (".r = -2 * -3", "{}", r#"{"r":6}"#),
        (
            ".r = .a + \"-\" + .b",
            r#"{"a":"x","b":"y"}"#,
            r#"{"a":"x","b":"y","r":"x-y"}"#,
        ),
        (
            ".r = 1 / 0",
            "{}",
            "error: at line 1, column 8: division by zero",
        ),
        (
            ".r = 1 % 0",
            "{}",
            "error: at line 1, column 8: division by zero",
        ),
        (
            ".r = 1.0 / 0.0",
            "{}",
            "error: at line 1, column 10: division by zero",
        ),
        (
            ".r = 9223372036854775807 + 1",
            "{}",
            "error: at line 1, column 26: integer overflow",
        ),
        (
            ".r = \"a\" + 1",
            "{}",
            "error: at line 1, column 10: cannot apply `+` to a string and an integer",
        ),
        (
            ".r = -\"a\"",
            "{}",
            "error: at line 1, column 6: cannot negate a string",
        ),
    ]);
}

#[test]
fn comparisons_follow_the_condition_language() {
    check(&[
        (
            ".r = .status >= 500",
            r#"{"status":"503"}"#,
            r#"{"status":"503","r":true}"#,
        ),
        (".r = .v > \"10\"", r#"{"v":"9"}"#, r#"{"v":"9","r":true}"#),
        (
            ".r = .level >= \"warn\"",
            r#"{"level":"ERROR"}"#,
            r#"{"level":"ERROR","r":true}"#,
        ),
        (
            ".r = .a == .b",
            r#"{"a":[1],"b":[1]}"#,
            r#"{"a":[1],"b":[1],"r":true}"#,
        ),
        (".r = .missing == null", "{}", r#"{"r":true}"#),
        (".r = .x != 1", "{}", r#"{"r":true}"#),
        (
            ".r = .debug == true",
            r#"{"debug":"true"}"#,
            r#"{"debug":"true","r":true}"#,
        ),
        (".r = 1 < 2 && !(2 < 1) || false", "{}", r#"{"r":true}"#),
        (".r = false && (1 / 0 == 1)", "{}", r#"{"r":false}"#),
        (".r = true || (1 / 0 == 1)", "{}", r#"{"r":true}"#),
        (
            ".r = 1 && true",
            "{}",
            "error: at line 1, column 6: the left side of `&&` is an integer, not a boolean",
        ),
        (
            ".r = !.a",
            r#"{"a":"x"}"#,
            "error: at line 1, column 7: the operand of `!` is a string, not a boolean",
        ),
    ]);
}

#[test]
fn delete_and_exists() {
    check(&[
        ("del(.a)", r#"{"a":1,"b":2}"#, r#"{"b":2}"#),
        ("del(.a.b)", r#"{"a":{"b":1,"c":2}}"#, r#"{"a":{"c":2}}"#),
        (".old = del(.a)", r#"{"a":1}"#, r#"{"old":1}"#),
        ("del(.missing)", r#"{"a":1}"#, r#"{"a":1}"#),
        ("del(.http.status)", r#"{"http.status":1}"#, r#"{}"#),
        (
            ".e = exists(.a.b)",
            r#"{"a":{"b":null}}"#,
            r#"{"a":{"b":null},"e":true}"#,
        ),
        (
            ".e = exists(.a.c)",
            r#"{"a":{"b":null}}"#,
            r#"{"a":{"b":null},"e":false}"#,
        ),
    ]);
}

#[test]
fn if_else() {
    let program = "if .n > 10 {\n  .size = \"big\"\n} else if .n > 5 {\n  .size = \"medium\"\n}\nelse { .size = \"small\" }";
    check(&[
        (program, r#"{"n":11}"#, r#"{"n":11,"size":"big"}"#),
        (program, r#"{"n":6}"#, r#"{"n":6,"size":"medium"}"#),
        (program, r#"{"n":1}"#, r#"{"n":1,"size":"small"}"#),
        ("if .a == 1 { .b = 2 }", r#"{"a":0}"#, r#"{"a":0}"#),
        (
            "if .a { .b = 2 }",
            r#"{"a":"yes"}"#,
            "error: at line 1, column 4: the condition of `if` is a string, not a boolean",
        ),
        (
            "if exists(.a) { if .a > 1 { .deep = true } }",
            r#"{"a":2}"#,
            r#"{"a":2,"deep":true}"#,
        ),
    ]);
}

#[test]
fn abort_rolls_back() {
    check(&[
        (
            ".a = 2\ndel(.b)\n.c.d = 1\nabort",
            r#"{"a":1,"b":2}"#,
            "abort",
        ),
        (
            "if .level == \"debug\" { abort }\n.kept = true",
            r#"{"level":"debug"}"#,
            "abort",
        ),
        (
            "if .level == \"debug\" { abort }\n.kept = true",
            r#"{"level":"info"}"#,
            r#"{"level":"info","kept":true}"#,
        ),
    ]);
}

#[test]
fn errors_roll_back_and_can_be_handled() {
    check(&[
        // The run fails on line 3, after changing fields: they are put back.
        (".a = 2\n.new = 1\n.r = .a / 0", r#"{"a":1}"#, "error: at line 3, column 9: division by zero"),
        ("x, err = parse_json(.m)\n.x = x\n.err = err", r#"{"m":"{\"a\":1}"}"#, r#"{"m":"{\"a\":1}","x":{"a":1},"err":null}"#),
        ("x, err = to_int(.m)\n.x = x\n.failed = err != null", r#"{"m":"nope"}"#, r#"{"m":"nope","x":null,"failed":true}"#),
        (".n = to_int(.m) ?? -1", r#"{"m":"nope"}"#, r#"{"m":"nope","n":-1}"#),
        (".n = to_int(.m) ?? -1", r#"{"m":"42"}"#, r#"{"m":"42","n":42}"#),
        // `??` and error targets catch type errors too.
        (".n = downcase(.m) ?? \"none\"", r#"{"m":5}"#, r#"{"m":5,"n":"none"}"#),
        (".d, err = 1 / 0\n.e = err", "{}", r#"{"e":"division by zero"}"#),
        (".m = downcase(.m)", r#"{"m":5}"#, "error: at line 1, column 6: `downcase` failed: argument 1 must be a string, not an integer"),
    ]);
}

#[test]
fn comments_separators_and_continuations() {
    check(&[
        (
            "# a comment\n.a = 1 # trailing\n\n.b = 2;.c = 3",
            "{}",
            r#"{"a":1,"b":2,"c":3}"#,
        ),
        (".a = 1 +\n  2", "{}", r#"{"a":3}"#),
        (
            ".a = join([\n  \"x\",\n  \"y\",\n], \",\")",
            "{}",
            r#"{"a":"x,y"}"#,
        ),
    ]);
}

#[test]
fn the_work_budget_stops_values_from_doubling_without_bound() {
    let mut program = String::from(".a = \"0123456789abcdef0123456789abcdef\"\n");
    for _ in 0..40 {
        program.push_str(".a = .a + .a\n");
    }
    let got = outcome(&program, "{}");
    assert!(
        got.starts_with("error: at line") && got.contains("bytes of values"),
        "{got}"
    );
}

#[test]
fn a_scratch_is_reused_between_runs_without_leaking_variables() {
    let program = Program::compile("if .set == true { x = 1 }\n.x = x").expect("compiles");
    let mut scratch = Scratch::default();
    let mut first = fields(r#"{"set":true}"#);
    program.run(&mut first, &mut scratch).expect("runs");
    let mut second = fields(r#"{"set":false}"#);
    program.run(&mut second, &mut scratch).expect("runs");
    assert_eq!(json(&second), r#"{"set":false,"x":null}"#);
}

/// The 10-statement program of the `transforms/remap_10_statements` bench row.
#[test]
fn a_typical_enrich_program() {
    let program = r#"
.service = downcase(.app) + "-" + .env
.duration_s = (to_float(.duration_ms) ?? 0.0) / 1000
.slow = .duration_ms > 500
.status_class = (to_int(.status) ?? 0) / 100 >= 5
if .level == "debug" { .sampled = true } else { .sampled = false }
.http.method = "GET"
.http.path = .path
del(.trace_id)
.region = "eu-west-1"
.host_id = upcase(.host)
"#;
    check(&[(
        program,
        r#"{"level":"debug","app":"Checkout","env":"prod","host":"node-7","duration_ms":740,"status":"503","path":"/api/orders/1","trace_id":"00ab"}"#,
        r#"{"level":"debug","app":"Checkout","env":"prod","host":"node-7","duration_ms":740,"status":"503","path":"/api/orders/1","service":"checkout-prod","duration_s":0.74,"slow":true,"status_class":true,"sampled":true,"http":{"method":"GET","path":"/api/orders/1"},"region":"eu-west-1","host_id":"NODE-7"}"#,
    )]);
}

/// A chain of `+` is joined at once and its fields are read where they lie; what it
/// gives, where it fails and what it has done by then are those of adding pair by pair.
#[test]
fn a_chain_of_plus_adds_left_to_right() {
    check(&[
        (
            ".r = \"a\" + \"b\" + \"c\" + \"d\" + \"e\" + \"f\" + \"g\" + \"h\" + \"i\" + \"j\"",
            "{}",
            r#"{"r":"abcdefghij"}"#,
        ),
        (
            ".r = .a + \"\" + .b",
            r#"{"a":"","b":"y"}"#,
            r#"{"a":"","b":"y","r":"y"}"#,
        ),
        (".r = 1 + 2 + 3.5 + .n", r#"{"n":1}"#, r#"{"n":1,"r":7.5}"#),
        // The field is read before the `del` after it.
        (".r = .a + del(.a)", r#"{"a":"x"}"#, r#"{"r":"xx"}"#),
        (
            ".r = del(.a) + .a",
            r#"{"a":"x"}"#,
            "error: at line 1, column 14: cannot apply `+` to a string and null",
        ),
        (
            ".r = 1 + 2 + \"x\" + 3",
            "{}",
            "error: at line 1, column 12: cannot apply `+` to an integer and a string",
        ),
        // The failing `+` stops the chain before the operands after it.
        (
            ".r, .e = \"x\" + 1 + del(.a)",
            r#"{"a":1}"#,
            r#"{"a":1,"e":"cannot apply `+` to a string and an integer"}"#,
        ),
    ]);
}

/// Fields passed to a function are lent to it; one it keeps in its result is copied, so
/// the field itself is unchanged.
#[test]
fn fields_passed_to_functions_are_unchanged() {
    check(&[
        (
            ".r = merge(.o, .p)",
            r#"{"o":{"a":1},"p":{"b":2}}"#,
            r#"{"o":{"a":1},"p":{"b":2},"r":{"a":1,"b":2}}"#,
        ),
        (
            ".r = compact(.o)",
            r#"{"o":{"a":null,"b":1}}"#,
            r#"{"o":{"a":null,"b":1},"r":{"b":1}}"#,
        ),
        (
            ".r = slice(.s, 1)",
            r#"{"s":"abc"}"#,
            r#"{"s":"abc","r":"bc"}"#,
        ),
        (
            ".r = replace(.s, \"b\", upcase(.t))",
            r#"{"s":"abc","t":"x"}"#,
            r#"{"s":"abc","t":"x","r":"aXc"}"#,
        ),
        (
            "x = {\"a\": 1}\n.r = merge(x, {\"b\": 2})\n.x = x",
            "{}",
            r#"{"r":{"a":1,"b":2},"x":{"a":1}}"#,
        ),
    ]);
}
