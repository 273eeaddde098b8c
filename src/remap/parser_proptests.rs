//! Random programs: any token soup compiles or fails with a position inside the text, and
//! any program that compiles runs without panicking over events of every value type,
//! leaving an event as it came when it aborts or fails.

use proptest::prelude::*;

use super::{Outcome, Program, Scratch};
use crate::event::{Map, Value};

const TOKENS: &[&str] = &[
    ".a",
    ".b.c",
    ".message",
    ".n",
    ".http.status",
    ".\"k k\"",
    "x",
    "err",
    "_",
    "1",
    "0",
    "-1",
    "2.5",
    "\"s\"",
    "'t'",
    "true",
    "null",
    "+",
    "-",
    "*",
    "/",
    "%",
    "==",
    "!=",
    "<",
    ">=",
    "&&",
    "||",
    "!",
    "??",
    "=",
    ",",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ":",
    "\n",
    ";",
    "if",
    "else",
    "abort",
    "to_int(",
    "parse_json(",
    "del(",
    "exists(",
    "downcase(",
    "merge(",
    "split(",
    "r'\\d'",
    "#",
    "é",
];

fn expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(".a".to_string()),
        Just(".b.c".to_string()),
        Just(".message".to_string()),
        Just(".n".to_string()),
        Just(".missing.deep".to_string()),
        Just("1".to_string()),
        Just("0".to_string()),
        Just("2.5".to_string()),
        Just("\"s\"".to_string()),
        Just("true".to_string()),
        Just("null".to_string()),
        Just("[1, \"a\"]".to_string()),
        Just("{\"k\": 1}".to_string()),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(&["+", "-", "*", "/", "%", "==", "<", "&&", "||"][..]),
                inner.clone()
            )
                .prop_map(|(l, op, r)| format!("({l} {op} {r})")),
            inner.clone().prop_map(|e| format!("!{e}")),
            inner.clone().prop_map(|e| format!("-{e}")),
            (
                prop::sample::select(
                    &[
                        "to_int",
                        "to_float",
                        "to_bool",
                        "parse_json",
                        "parse_logfmt",
                        "parse_url",
                        "parse_timestamp"
                    ][..]
                ),
                inner.clone()
            )
                .prop_map(|(f, e)| format!("({f}({e}) ?? null)")),
            (
                prop::sample::select(
                    &[
                        "downcase",
                        "upcase",
                        "trim",
                        "to_string",
                        "length",
                        "compact",
                        "sha256",
                        "parse_user_agent"
                    ][..]
                ),
                inner.clone()
            )
                .prop_map(|(f, e)| format!("{f}({e})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("merge({a}, {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("split({a}, {b})")),
            (inner.clone(), inner.clone(), inner)
                .prop_map(|(a, b, c)| format!("slice({a}, {b}, {c})")),
        ]
    })
}

fn statement() -> impl Strategy<Value = String> {
    let target = prop::sample::select(&[".a", ".b.c", ".new", ".b", ".n.m", "x"][..]);
    prop_oneof![
        (target.clone(), expr()).prop_map(|(t, e)| format!("{t} = {e}")),
        (target.clone(), expr()).prop_map(|(t, e)| format!("{t}, err = {e}")),
        (expr(), target.clone(), expr())
            .prop_map(|(c, t, e)| format!("if {c} {{ {t} = {e} }} else {{ abort }}")),
        prop::sample::select(&["del(.a)", "del(.b.c)", "abort", ".e = exists(.b)", "x = 1"][..])
            .prop_map(str::to_string),
    ]
}

fn events() -> Vec<Map> {
    let json = [
        r#"{}"#,
        r#"{"a":1,"b":{"c":"x"},"message":"{\"k\":2}","n":-3}"#,
        r#"{"a":"A b","b":"flat","message":"k=v https://h/p","n":2.5,"http.status":200}"#,
        r#"{"a":[1,null],"b":{"c":{"d":true}},"message":null,"n":9223372036854775807}"#,
    ];
    json.iter()
        .map(|j| match serde_json::from_str::<Value>(j) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        })
        .collect()
}

fn canonical(map: &Map) -> serde_json::Value {
    serde_json::to_value(Value::Object(map.clone())).unwrap_or_default()
}

fn run_everywhere(program: &Program) {
    let mut scratch = Scratch::default();
    for fields in events() {
        let mut changed = fields.clone();
        match program.run(&mut changed, &mut scratch) {
            Ok(Outcome::Done) => {}
            Ok(Outcome::Aborted) => assert_eq!(canonical(&changed), canonical(&fields)),
            Err(e) => {
                assert!(e.line >= 1 && e.column >= 1 && !e.message.is_empty());
                assert_eq!(canonical(&changed), canonical(&fields), "{e}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn token_soup_compiles_or_points_inside_the_text(
        tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..40),
    ) {
        let src = tokens.join(" ");
        match Program::compile(&src) {
            Ok(program) => run_everywhere(&program),
            Err(e) => {
                let lines: Vec<&str> = src.split('\n').collect();
                prop_assert!((1..=lines.len()).contains(&e.line), "{e}");
                prop_assert!(e.column <= lines[e.line - 1].chars().count() + 1, "{e}");
            }
        }
    }

    #[test]
    fn generated_programs_run_and_roll_back(
        statements in prop::collection::vec(statement(), 1..8),
    ) {
        let src = statements.join("\n");
        let program = Program::compile(&src).map_err(|e| TestCaseError::fail(format!("{src}: {e}")))?;
        run_everywhere(&program);
    }
}
