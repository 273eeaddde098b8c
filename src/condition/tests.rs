//! The condition language as a specification: each row is a condition, an event, and
//! whether the event matches.

use super::*;
use crate::event::{Event, Value};

use crate::event::test_event as event;

#[track_caller]
fn check(condition: &str, event_json: &str, expected: bool) {
    let compiled = Condition::compile(condition)
        .unwrap_or_else(|e| panic!("`{condition}` failed to compile: {e}"));
    assert_eq!(
        compiled.check(&event(event_json)),
        expected,
        "`{condition}` on {event_json}"
    );
}

fn check_table(cases: &[(&str, &str, bool)]) {
    for (condition, event_json, expected) in cases {
        check(condition, event_json, *expected);
    }
}

#[test]
fn equality_and_inequality() {
    check_table(&[
        (r#"app == "web""#, r#"{"app":"web"}"#, true),
        (r#"app == 'web'"#, r#"{"app":"web"}"#, true),
        (r#".app == "web""#, r#"{"app":"web"}"#, true),
        (r#"app == "api""#, r#"{"app":"web"}"#, false),
        (r#"app != "api""#, r#"{"app":"web"}"#, true),
        (r#"app != "web""#, r#"{"app":"web"}"#, false),
        ("status == 200", r#"{"status":200}"#, true),
        ("status == 200.0", r#"{"status":200}"#, true),
        ("ratio == 0.5", r#"{"ratio":0.5}"#, true),
        ("ok == true", r#"{"ok":true}"#, true),
        ("ok == false", r#"{"ok":true}"#, false),
        ("ok != false", r#"{"ok":true}"#, true),
        ("x == null", r#"{"x":null}"#, true),
        ("x != null", r#"{"x":1}"#, true),
        // Literal on the left, field on the right, field against field: a field on the
        // right is written with its dot.
        ("200 == .status", r#"{"status":200}"#, true),
        (
            "bytes_out > .bytes_in",
            r#"{"bytes_in":10,"bytes_out":20}"#,
            true,
        ),
        ("a == .b", r#"{"a":"x","b":"x"}"#, true),
        ("a == .b", r#"{"a":"x","b":"y"}"#, false),
        (".a == .b", r#"{"a":"x","b":"x"}"#, true),
        (r#"a == ."b c""#, r#"{"a":1,"b c":1}"#, true),
        // Structured values compare by equality only.
        ("tags == .tags", r#"{"tags":["a","b"]}"#, true),
    ]);
}

#[test]
fn ordering() {
    check_table(&[
        ("status < 500", r#"{"status":404}"#, true),
        ("status <= 404", r#"{"status":404}"#, true),
        ("status > 404", r#"{"status":404}"#, false),
        ("status >= 404", r#"{"status":404}"#, true),
        ("latency > 0.25", r#"{"latency":0.3}"#, true),
        ("latency > 1e-1", r#"{"latency":0.3}"#, true),
        ("delta < -5", r#"{"delta":-10}"#, true),
        // Strings order by code point.
        (r#"name < "b""#, r#"{"name":"alice"}"#, true),
        (r#"name >= "b""#, r#"{"name":"alice"}"#, false),
        // Large integers compare exactly, not through f64.
        ("id > 9007199254740992", r#"{"id":9007199254740993}"#, true),
        // Booleans, nulls and containers have no order.
        ("ok > false", r#"{"ok":true}"#, false),
        ("x >= null", r#"{"x":null}"#, false),
    ]);
}

#[test]
fn numeric_strings_compare_numerically_against_numbers() {
    check_table(&[
        ("status >= 500", r#"{"status":"503"}"#, true),
        ("status >= 500", r#"{"status":"404"}"#, false),
        ("status == 503", r#"{"status":"503"}"#, true),
        ("status == 503", r#"{"status":" 503 "}"#, true),
        ("latency > 0.5", r#"{"latency":"1.25"}"#, true),
        // A numeric string literal against a number field is numeric too.
        (r#"status == "503""#, r#"{"status":503}"#, true),
        (r#"status > "50""#, r#"{"status":503}"#, true),
        // Two strings compare as strings, even when both look numeric.
        (r#"status == "503""#, r#"{"status":"503.0"}"#, false),
        (r#"v > "10""#, r#"{"v":"9"}"#, true),
        // Not a number: unequal to every number, and unordered.
        ("status == 503", r#"{"status":"oops"}"#, false),
        ("status != 503", r#"{"status":"oops"}"#, true),
        ("status < 503", r#"{"status":"oops"}"#, false),
        ("status > 503", r#"{"status":"oops"}"#, false),
        ("status > 1", r#"{"status":"NaN"}"#, false),
        ("status > 1", r#"{"status":"inf"}"#, false),
    ]);
}

#[test]
fn type_mixing() {
    check_table(&[
        // logfmt booleans are strings too.
        ("debug == true", r#"{"debug":"true"}"#, true),
        ("debug == true", r#"{"debug":"yes"}"#, false),
        ("ok == \"true\"", r#"{"ok":true}"#, true),
        ("ok == 1", r#"{"ok":true}"#, false),
        ("ok != 1", r#"{"ok":true}"#, true),
        ("x == null", r#"{"x":0}"#, false),
        ("x == null", r#"{"x":""}"#, false),
        (r#"tags == "a""#, r#"{"tags":["a"]}"#, false),
        ("obj == 1", r#"{"obj":{"a":1}}"#, false),
    ]);
}

#[test]
fn timestamps_compare_with_rfc3339_literals() {
    let mut e = event(r#"{"message":"x"}"#);
    e.insert("timestamp", Value::Timestamp(1_700_000_000_000_000_000)); // 2023-11-14T22:13:20Z
    let cases = [
        (r#"timestamp > "2023-11-14T00:00:00Z""#, true),
        (r#"timestamp < "2023-11-14T00:00:00Z""#, false),
        (r#"timestamp == "2023-11-14T22:13:20Z""#, true),
        (r#"timestamp == "2023-11-14T23:13:20+01:00""#, true),
        (r#"timestamp > "yesterday""#, false),
    ];
    for (src, expected) in cases {
        let c = Condition::compile(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(c.check(&e), expected, "{src}");
    }
}

#[test]
fn missing_fields_make_every_comparison_false() {
    check_table(&[
        ("x == 1", "{}", false),
        ("x != 1", "{}", false),
        ("x < 1", "{}", false),
        ("x >= 1", "{}", false),
        ("x == null", "{}", false),
        ("x == .y", "{}", false),
        (r#"x contains "a""#, "{}", false),
        (r#"message contains .x"#, r#"{"message":"abc"}"#, false),
        ("x matches /.*/", "{}", false),
        ("x in [1, 2]", "{}", false),
        // `not` is how to include missing fields.
        ("not x == 1", "{}", true),
        ("not x != 1", "{}", true),
        ("not x == 1", r#"{"x":1}"#, false),
        // A path through a non-object is missing.
        ("http.status == 1", r#"{"http":"flat"}"#, false),
    ]);
}

#[test]
fn field_paths() {
    check_table(&[
        ("http.status == 500", r#"{"http":{"status":500}}"#, true),
        (".http.status == 500", r#"{"http":{"status":500}}"#, true),
        // A flat dotted key wins over the nested path, as in `Map::get_path`.
        (
            "http.status == 200",
            r#"{"http.status":200,"http":{"status":500}}"#,
            true,
        ),
        (
            r#"kubernetes.pod_name == "web-1""#,
            r#"{"kubernetes":{"pod_name":"web-1"}}"#,
            true,
        ),
        (r#"."weird key" == 1"#, r#"{"weird key":1}"#, true),
        (
            r#"labels."app.kubernetes.io/name" == "web""#,
            r#"{"labels":{"app.kubernetes.io/name":"web"}}"#,
            true,
        ),
        (r#"x-request-id exists"#, r#"{"x-request-id":"abc"}"#, true),
        (r#"@timestamp exists"#, r#"{"@timestamp":"abc"}"#, true),
        // Keywords are reserved, but a path that starts with one is still a path.
        (r#"in.bytes > 1"#, r#"{"in":{"bytes":2}}"#, true),
        (r#"."in" == 1"#, r#"{"in":1}"#, true),
        ("not_found exists", r#"{"not_found":1}"#, true),
    ]);
}

#[test]
fn level_uses_severity_order() {
    check_table(&[
        (r#"level >= "warn""#, r#"{"level":"error"}"#, true),
        (r#"level >= "warn""#, r#"{"level":"warn"}"#, true),
        (r#"level >= "warn""#, r#"{"level":"info"}"#, false),
        (r#"level > "info""#, r#"{"level":"notice"}"#, true),
        (r#"level < "debug""#, r#"{"level":"trace"}"#, true),
        (r#"level >= "critical""#, r#"{"level":"emergency"}"#, true),
        (r#"level > "alert""#, r#"{"level":"critical"}"#, false),
        // Case and common aliases are understood.
        (r#"level >= "warn""#, r#"{"level":"WARNING"}"#, true),
        (r#"level == "warn""#, r#"{"level":"Warning"}"#, true),
        (r#"level >= "error""#, r#"{"level":"FATAL"}"#, true),
        (
            r#"level in ["error", "critical"]"#,
            r#"{"level":"ERR"}"#,
            true,
        ),
        ("\"warn\" <= .level", r#"{"level":"error"}"#, true),
        // Field against field: severity order when either is `level`.
        (
            "level >= .threshold",
            r#"{"level":"error","threshold":"WARN"}"#,
            true,
        ),
        // Unknown level names have no rank: unordered and unequal to known ones.
        (r#"level >= "warn""#, r#"{"level":"verbose"}"#, false),
        (r#"level != "warn""#, r#"{"level":"verbose"}"#, true),
        (r#"level == "custom""#, r#"{"level":"custom"}"#, true),
        // Only the `level` field uses severity order; other fields compare as strings.
        (r#"severity >= "warn""#, r#"{"severity":"error"}"#, false),
        (r#"level >= "warn""#, "{}", false),
    ]);
}

#[test]
fn contains_matches_exists_in() {
    check_table(&[
        (
            r#"message contains "timeout""#,
            r#"{"message":"read timeout after 5s"}"#,
            true,
        ),
        (
            r#"message contains "Timeout""#,
            r#"{"message":"read timeout after 5s"}"#,
            false,
        ),
        (r#"message contains """#, r#"{"message":"x"}"#, true),
        (
            r#"message contains .needle"#,
            r#"{"message":"abc","needle":"b"}"#,
            true,
        ),
        (
            r#"tags contains "prod""#,
            r#"{"tags":["dev","prod"]}"#,
            true,
        ),
        (r#"tags contains "qa""#, r#"{"tags":["dev","prod"]}"#, false),
        (r#"status contains "5""#, r#"{"status":500}"#, false),
        (
            r#"message matches /time(out)?/"#,
            r#"{"message":"read timeout"}"#,
            true,
        ),
        (
            r#"message matches /^time/"#,
            r#"{"message":"read timeout"}"#,
            false,
        ),
        (
            r#"message matches /(?i)ERROR/"#,
            r#"{"message":"an error"}"#,
            true,
        ),
        (
            r#"path matches /^\/api\//"#,
            r#"{"path":"/api/users"}"#,
            true,
        ),
        (
            r#"path matches /^\/api\//"#,
            r#"{"path":"/web/api/"}"#,
            false,
        ),
        (r#"ip matches /^10\.\d+/"#, r#"{"ip":"10.1.2.3"}"#, true),
        (r#"status matches /^5\d\d$/"#, r#"{"status":503}"#, true),
        (r#"ok matches /^true$/"#, r#"{"ok":true}"#, true),
        (r#"obj matches /.*/"#, r#"{"obj":{}}"#, false),
        ("trace_id exists", r#"{"trace_id":"abc"}"#, true),
        ("trace_id exists", r#"{"trace_id":null}"#, true),
        ("trace_id exists", "{}", false),
        ("not trace_id exists", "{}", true),
        ("http.status exists", r#"{"http":{"status":1}}"#, true),
        ("status in [200, 204]", r#"{"status":204}"#, true),
        ("status in [200, 204]", r#"{"status":"204"}"#, true),
        ("status in [200, 204,]", r#"{"status":500}"#, false),
        (r#"app in ["web", 'api']"#, r#"{"app":"api"}"#, true),
        ("x in []", r#"{"x":1}"#, false),
        ("x in [null, true]", r#"{"x":null}"#, true),
        ("not status in [200, 204]", r#"{"status":500}"#, true),
    ]);
}

#[test]
fn boolean_operators_and_precedence() {
    let e = r#"{"a":1,"b":2,"c":3}"#;
    check_table(&[
        ("a == 1 and b == 2", e, true),
        ("a == 1 and b == 3", e, false),
        ("a == 0 or b == 2", e, true),
        ("a == 0 or b == 0", e, false),
        ("not a == 0", e, true),
        ("not not a == 1", e, true),
        // and binds tighter than or.
        ("a == 1 or b == 0 and c == 0", e, true),
        ("(a == 1 or b == 0) and c == 0", e, false),
        ("a == 0 and b == 0 or c == 3", e, true),
        // not binds tighter than and/or, looser than comparisons.
        ("not a == 0 and b == 2", e, true),
        ("not a == 1 or b == 2", e, true),
        ("not (a == 1 or b == 2)", e, false),
        ("not a == 1 and b == 2", e, false),
        // Long chains and nesting.
        ("a == 1 and b == 2 and c == 3 and not a == 2", e, true),
        ("((((a == 1))))", e, true),
        // Symbol aliases.
        ("a == 1 && b == 2", e, true),
        ("a == 0 || b == 2", e, true),
        ("!a == 0", e, true),
        ("!(a == 1)", e, false),
        // Constant conditions.
        ("true", e, true),
        ("false", e, false),
        ("false or a == 1", e, true),
        // Whitespace is free.
        ("a==1&&(b>=2)", e, true),
        ("\n a == 1\tand\n b == 2 ", e, true),
    ]);
}

#[test]
fn string_escapes() {
    check_table(&[
        (r#"m == "a\"b""#, r#"{"m":"a\"b"}"#, true),
        (r#"m == 'it\'s'"#, r#"{"m":"it's"}"#, true),
        (r#"m == "tab\there""#, r#"{"m":"tab\there"}"#, true),
        (r#"m == "back\\slash""#, r#"{"m":"back\\slash"}"#, true),
        (r#"m == "\u{e9}""#, r#"{"m":"é"}"#, true),
        (r#"m == "é""#, r#"{"m":"é"}"#, true),
    ]);
}

#[track_caller]
fn check_error(condition: &str, expected: &str) {
    match Condition::compile(condition) {
        Ok(_) => panic!("`{condition}` compiled, expected error: {expected}"),
        Err(e) => assert_eq!(e.to_string(), expected, "`{condition}`"),
    }
}

#[test]
fn errors_say_where_and_what() {
    let cases = [
        ("", "at column 1: the condition is empty"),
        ("   ", "at column 1: the condition is empty"),
        ("level ==", "at column 9: expected a value after `==`"),
        (
            "level == and",
            "at column 10: expected a value after `==`, found `and`",
        ),
        (r#"app == "web"#, "at column 8: unterminated string"),
        (r#"app == 'web"#, "at column 8: unterminated string"),
        (
            r#"app == "a\qb""#,
            "at column 10: unknown escape `\\q` in string",
        ),
        (
            r#"app = "web""#,
            "at column 5: unknown operator `=` (did you mean `==`?)",
        ),
        (
            r#"app =~ "web""#,
            "at column 5: unknown operator `=~` (write `matches /regex/`)",
        ),
        (r#"app ~ "web""#, "at column 5: unknown operator `~`"),
        (
            r#"app === "web""#,
            "at column 7: unknown operator `=` (did you mean `==`?)",
        ),
        (
            r#"app like "web""#,
            "at column 5: expected an operator after `app`, found `like`",
        ),
        (
            "message matches /(unclosed/",
            "at column 17: invalid regex: unclosed group",
        ),
        (
            "message matches /x",
            "at column 17: unterminated regex (expected a closing `/`)",
        ),
        (
            r#"message matches "x""#,
            "at column 17: expected a `/regex/` after `matches`, found `\"x\"`",
        ),
        (
            "a == 1 b == 2",
            "at column 8: unexpected `b` after a complete condition (missing `and` or `or`?)",
        ),
        ("a == 1)", "at column 7: unmatched `)`"),
        (
            "(a == 1",
            "at column 8: expected `)` to close the `(` at column 1",
        ),
        ("a == 1 and", "at column 11: expected a condition"),
        (
            "and a == 1",
            "at column 1: expected a condition, found `and`",
        ),
        (
            "trace_id",
            "at column 9: expected an operator after `trace_id` (did you mean `trace_id exists`?)",
        ),
        (
            "1 exists",
            "at column 3: `exists` needs a field, not the literal `1`",
        ),
        ("\"x\"", "at column 4: expected an operator after `\"x\"`"),
        (
            "x not in [1]",
            "at column 3: write `not x in [...]` rather than `x not in [...]`",
        ),
        ("x in 1", "at column 6: expected `[` after `in`, found `1`"),
        (
            "x in [1 2]",
            "at column 9: expected `,` or `]` in the list, found `2`",
        ),
        (
            "x in [y]",
            "at column 7: expected a literal in the list (fields are not allowed), found `y`",
        ),
        ("x in [1", "at column 8: expected `,` or `]` in the list"),
        (
            "status == 5xx",
            "at column 11: invalid number `5xx` (quote it if it is a string)",
        ),
        ("a. == 1", "at column 3: expected a field name after `.`"),
        ("é == 1", "at column 1: unexpected character `é`"),
        ("x == 1 # comment", "at column 8: unknown operator `#`"),
        ("x == 1e999", "at column 6: number `1e999` is out of range"),
        ("- 1 == x", "at column 1: unknown operator `-`"),
        // A bare word on the right is text that lost its quotes, or a field missing its dot.
        (
            "level >= error",
            "at column 10: bare word `error` after `>=`: did you mean \"error\"? (a field on the right is written `.error`)",
        ),
        (
            "app == web or true",
            "at column 8: bare word `web` after `==`: did you mean \"web\"? (a field on the right is written `.web`)",
        ),
        (
            "message contains timeout",
            "at column 18: bare word `timeout` after `contains`: did you mean \"timeout\"? (a field on the right is written `.timeout`)",
        ),
        (
            "500 <= http.status",
            "at column 8: bare word `http.status` after `<=`: did you mean \"http.status\"? (a field on the right is written `.http.status`)",
        ),
        (
            r#"a == labels."x.y""#,
            r#"at column 6: bare word `labels."x.y"` after `==`: did you mean 'labels."x.y"'? (a field on the right is written `.labels."x.y"`)"#,
        ),
        ("é == \"x", "at column 1: unexpected character `é`"),
        ("\"é\" == \"x", "at column 8: unterminated string"),
    ];
    for (condition, expected) in cases {
        check_error(condition, expected);
    }
}

#[test]
fn nesting_is_bounded() {
    let deep = format!("{}a == 1{}", "(".repeat(10_000), ")".repeat(10_000));
    let err = Condition::compile(&deep).expect_err("too deep");
    assert!(err.message.contains("nests too deeply"), "{err}");
    let nots = format!("{}a == 1", "not ".repeat(10_000));
    assert!(Condition::compile(&nots).is_err());
    let ok = format!("{}a == 1{}", "(".repeat(60), ")".repeat(60));
    assert!(Condition::compile(&ok).is_ok());
    // Long flat chains are fine: they do not nest.
    let chain = vec!["a == 1"; 5_000].join(" and ");
    check(&chain, r#"{"a":1}"#, true);
}

#[test]
fn debug_and_display_show_the_source() {
    let c = Condition::compile("a == 1").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.to_string(), "a == 1");
    assert_eq!(format!("{c:?}"), r#"Condition("a == 1")"#);
    assert_eq!(c.source(), "a == 1");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn sample_event() -> Event {
        event(
            r#"{"a":1,"b":"x","level":"warn","status":"503","tags":["x"],"http":{"status":500},"n":null}"#,
        )
    }

    proptest! {
        /// Any text either compiles or fails with a column inside the text (or just after).
        #[test]
        fn compile_never_panics(src in "\\PC{0,64}") {
            if let Err(e) = Condition::compile(&src) {
                prop_assert!(e.column >= 1 && e.column <= src.chars().count() + 1, "{e}");
                prop_assert!(!e.message.is_empty());
            }
        }

        /// Over text made of the language's own pieces, whatever compiles evaluates, and
        /// wrapping it in `not (...)` negates it.
        #[test]
        fn not_negates_whatever_compiles(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("a"), Just("b"), Just("level"), Just("status"), Just("tags"),
                    Just("http.status"), Just("missing"), Just("=="), Just("!="), Just("<"),
                    Just(">="), Just("and"), Just("or"), Just("not"), Just("("), Just(")"),
                    Just("contains"), Just("matches"), Just("/x/"), Just("exists"), Just("in"),
                    Just("[1, \"x\"]"), Just("1"), Just("\"x\""), Just("\"warn\""), Just("500"),
                    Just("true"), Just("null"), Just(".b"), Just(".level"), Just("error"),
                ],
                1..12,
            )
        ) {
            let src = parts.join(" ");
            if let Ok(c) = Condition::compile(&src) {
                let negated = Condition::compile(&format!("not ({src})"));
                prop_assert!(negated.is_ok(), "{src}");
                if let Ok(negated) = negated {
                    let e = sample_event();
                    prop_assert_eq!(negated.check(&e), !c.check(&e), "{}", src);
                }
            }
        }
    }
}

#[test]
fn documented_examples_compile() {
    let doc = include_str!("../../docs/conditions.md");
    let examples = doc
        .split("## Examples")
        .nth(1)
        .and_then(|s| s.split("```text").nth(1))
        .and_then(|s| s.split("```").next())
        .unwrap_or_else(|| panic!("docs/conditions.md has no examples block"));
    let mut n = 0;
    for line in examples.lines().map(str::trim).filter(|l| !l.is_empty()) {
        Condition::compile(line).unwrap_or_else(|e| panic!("documented `{line}`: {e}"));
        n += 1;
    }
    assert!(n >= 5, "{n} examples");
    // The documented error messages are the real ones.
    let errors = doc
        .split("## Errors")
        .nth(1)
        .and_then(|s| s.split("```text").nth(1))
        .and_then(|s| s.split("```").next())
        .unwrap_or_else(|| panic!("docs/conditions.md has no errors block"));
    for line in errors.lines().filter(|l| !l.trim().is_empty()) {
        let (src, expected) = line.split_at(25);
        let src = if src.trim() == "(empty)" {
            ""
        } else {
            src.trim_end()
        };
        check_error(src, expected.trim());
    }
}

#[test]
fn severity_names_and_aliases_rank_case_insensitively() {
    let table: &[(&str, Option<u8>)] = &[
        ("trace", Some(0)),
        ("DEBUG", Some(1)),
        ("info", Some(2)),
        ("Information", Some(2)),
        ("informational", Some(2)),
        ("notice", Some(3)),
        ("warn", Some(4)),
        ("WARNING", Some(4)),
        ("error", Some(5)),
        ("err", Some(5)),
        ("critical", Some(6)),
        ("crit", Some(6)),
        ("Fatal", Some(6)),
        ("alert", Some(7)),
        ("emergency", Some(8)),
        ("emerg", Some(8)),
        ("panic", Some(8)),
        ("", None),
        ("debug3", None),
        ("informationalx", None),
        ("errors", None),
        ("ınfo", None),
        ("info\0", None),
        ("\0info", None),
        ("EMERGENCY", Some(8)),
        ("emergencyy", None),
    ];
    for (name, rank) in table {
        assert_eq!(severity_rank(name.as_bytes()), *rank, "{name}");
    }
}
