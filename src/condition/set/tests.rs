//! A [`ConditionSet`] must answer exactly as each condition's own [`Condition::check_fields`]:
//! a proptest over random conditions and events, and table tests for the edge cases.

use proptest::prelude::*;

use super::*;
use crate::condition::Condition;
use crate::event::{Map, Value};

fn compile_all(sources: &[&str]) -> Vec<Condition> {
    sources
        .iter()
        .map(|s| Condition::compile(s).unwrap_or_else(|e| panic!("`{s}`: {e}")))
        .collect()
}

fn map(json: &str) -> Map {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(m)) => m,
        other => panic!("test event must be a JSON object: {json} ({other:?})"),
    }
}

/// Asserts the set agrees with every condition on `fields`, and returns its results.
#[track_caller]
fn assert_same(
    conditions: &[Condition],
    set: &ConditionSet,
    results: &mut SetResults,
    fields: &Map,
) {
    set.eval(fields, results);
    assert_eq!(results.as_slice().len(), conditions.len());
    for (i, c) in conditions.iter().enumerate() {
        assert_eq!(
            results.get(i),
            c.check_fields(fields),
            "condition #{i} `{c}` on {fields:?}"
        );
    }
}

/// Each row: conditions, an event, and what the set must say for each condition (which is
/// also checked against the conditions themselves).
#[test]
fn edge_cases() {
    let cases: &[(&[&str], &str, &[bool])] = &[
        // A non-severity literal in a `level` comparison: a severity name is unequal to it.
        (
            &[
                r#"level != "debug3""#,
                r#"level == "debug3""#,
                r#"level < "debug3""#,
            ],
            r#"{"level":"info"}"#,
            &[true, false, false],
        ),
        (
            &[
                r#"level != "debug3""#,
                r#"level == "debug3""#,
                r#"level < "debug4""#,
            ],
            r#"{"level":"debug3"}"#,
            &[false, true, true],
        ),
        (&[r#"level != "debug3""#], "{}", &[false]),
        // Severity literals compare by rank, case-insensitively; other values are unequal.
        (
            &[
                r#"level >= "error""#,
                r#"level == "err""#,
                r#"level != "warn""#,
                r#""info" < .level"#,
            ],
            r#"{"level":"ERROR"}"#,
            &[true, true, true, true],
        ),
        (
            &[
                r#"level >= "error""#,
                r#"level != "warn""#,
                "level == 5",
                "level != 5",
            ],
            r#"{"level":5}"#,
            &[false, true, true, false],
        ),
        // Numeric literals against numeric strings compare numerically; other strings are
        // unequal to every number.
        (
            &[
                "status >= 500",
                "status >= 504",
                "status == 503",
                "status != 503",
                "500 <= .status",
            ],
            r#"{"status":"503"}"#,
            &[true, false, true, false, true],
        ),
        (
            &[
                "status >= 500",
                "status < 500",
                "status == 503",
                "status != 503",
            ],
            r#"{"status":"abc"}"#,
            &[false, false, false, true],
        ),
        // A string literal "500" compares as a string with a string, as a number with a number.
        (
            &[r#"status >= "500""#, r#"status == "503""#],
            r#"{"status":"60"}"#,
            &[true, false],
        ),
        (
            &[
                r#"status >= "500""#,
                r#"status == "503""#,
                r#"status == "abc""#,
                r#"status != "abc""#,
            ],
            r#"{"status":503}"#,
            &[true, true, false, true],
        ),
        // Integers compare exactly, integers against floats as f64.
        (
            &[
                "id > 9007199254740992",
                "id > 9007199254740992.0",
                "id == 9007199254740993",
            ],
            r#"{"id":9007199254740993}"#,
            &[true, false, true],
        ),
        (
            &["x == 0.5", "x > 0", "x < 1", "x != 0.5", "x >= 1.5"],
            r#"{"x":"0.5"}"#,
            &[true, true, true, false, false],
        ),
        // Booleans and null.
        (
            &[
                "ok == true",
                r#"ok == "true""#,
                "ok != false",
                "ok == 1",
                "ok != 1",
                "ok > false",
            ],
            r#"{"ok":true}"#,
            &[true, true, true, false, true, false],
        ),
        (
            &["x == null", "x != null", "x == 0", "x != 0", r#"x != """#],
            r#"{"x":null}"#,
            &[true, false, false, true, true],
        ),
    ];
    for (sources, json, expected) in cases {
        let conditions = compile_all(sources);
        let set = ConditionSet::new(&conditions);
        let mut results = SetResults::default();
        let fields = map(json);
        assert_same(&conditions, &set, &mut results, &fields);
        assert_eq!(results.as_slice(), *expected, "{sources:?} on {json}");
    }
}

#[test]
fn timestamps_and_nan_fall_back_exactly() {
    let conditions = compile_all(&[
        r#"ts > "2023-11-14T00:00:00Z""#,
        r#"ts == "2023-11-14T23:13:20+01:00""#,
        r#"ts != "yesterday""#,
        r#"ts < "yesterday""#,
        "ts > 5",
        "ts != 5",
        "x > 1",
        "x != 1",
        "x == .x",
    ]);
    let set = ConditionSet::new(&conditions);
    let mut results = SetResults::default();
    let mut fields = Map::new();
    fields.insert("ts", Value::Timestamp(1_700_000_000_000_000_000));
    fields.insert("x", Value::Float(f64::NAN));
    assert_same(&conditions, &set, &mut results, &fields);
    assert_eq!(
        results.as_slice(),
        &[true, true, true, false, false, true, false, true, false]
    );
}

#[test]
fn sets_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_send_sync::<ConditionSet>();
    assert_send_sync::<SetResults>();
}

#[test]
fn empty_and_trivial_sets() {
    let set = ConditionSet::new(&[]);
    assert!(set.is_empty());
    let mut results = SetResults::default();
    set.eval(&Map::new(), &mut results);
    assert!(results.as_slice().is_empty());
    assert!(!results.get(0));

    let conditions = compile_all(&["true", "false", "not true", "true and false or true"]);
    let set = ConditionSet::new(&conditions);
    assert_eq!(set.len(), 4);
    assert_same(&conditions, &set, &mut results, &Map::new());
}

#[test]
fn results_are_reused_across_events_and_sets() {
    let a = compile_all(&["status >= 500", "status >= 400", r#"level == "info""#]);
    let b = compile_all(&["duration_ms > 10"]);
    let (sa, sb) = (ConditionSet::new(&a), ConditionSet::new(&b));
    let mut results = SetResults::default();
    for json in [
        r#"{"status":503}"#,
        r#"{"status":404,"level":"info"}"#,
        "{}",
    ] {
        let fields = map(json);
        assert_same(&a, &sa, &mut results, &fields);
        assert_same(&b, &sb, &mut results, &fields);
    }
}

// === proptest ===

const FIELDS: &[&str] = &["level", "status", "duration_ms", "app", "a.b", "ts", "ok"];

const TIMESTAMPS: &[&str] = &[
    "2026-11-23T10:00:01Z",
    "2026-11-23T10:00:01.001Z",
    "2026-11-23T11:00:01+01:00",
    "2020-01-01T00:00:00Z",
];

fn nanos(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .and_then(|d| d.timestamp_nanos_opt())
        .unwrap_or(0)
}

fn field() -> impl Strategy<Value = String> {
    prop::sample::select(FIELDS).prop_map(str::to_string)
}

/// A literal as condition text. Small domains so that equal literals and values are common.
fn literal() -> impl Strategy<Value = String> {
    let quoted =
        |items: &'static [&'static str]| prop::sample::select(items).prop_map(|s| format!("{s:?}"));
    prop_oneof![
        3 => prop::sample::select(&["-1", "0", "1", "5", "200", "404", "500", "503", "1000", "9007199254740993"][..])
            .prop_map(str::to_string),
        2 => (-5i64..1010).prop_map(|i| i.to_string()),
        2 => prop::sample::select(&["0.5", "404.0", "500.5", "-1.5", "1e3", "0.0", "9007199254740992.0"][..])
            .prop_map(str::to_string),
        2 => quoted(&["503", "404", "5e2", " 500 ", "1000.0", "-0", "0.5"]),
        2 => quoted(&["abc", "app-7", "", "b", "web", "true", "false", "debug3", "zzz"]),
        3 => quoted(&["info", "ERROR", "warn", "debug", "emerg", "trace", "Warning", "critical"]),
        1 => prop::sample::select(&["true", "false", "null"][..]).prop_map(str::to_string),
        1 => quoted(TIMESTAMPS),
    ]
}

fn cmp_op() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&["==", "!=", "<", "<=", ">", ">="][..])
}

fn atom() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (field(), cmp_op(), literal()).prop_map(|(f, op, l)| format!("{f} {op} {l}")),
        4 => (literal(), cmp_op(), field()).prop_map(|(l, op, f)| format!("{l} {op} .{f}")),
        1 => (field(), cmp_op(), field()).prop_map(|(a, op, b)| format!("{a} {op} .{b}")),
        1 => (literal(), cmp_op(), literal()).prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        1 => (field(), prop::sample::select(&["\"a\"", "\"5\"", "\"info\"", "5"][..]))
            .prop_map(|(f, n)| format!("{f} contains {n}")),
        1 => (field(), prop::sample::select(&["/^5/", "/info|err/", "/-7$/", "/true/"][..]))
            .prop_map(|(f, r)| format!("{f} matches {r}")),
        1 => (field(), prop::collection::vec(literal(), 1..4))
            .prop_map(|(f, ls)| format!("{f} in [{}]", ls.join(", "))),
        1 => field().prop_map(|f| format!("{f} exists")),
        1 => prop::sample::select(&["true", "false"][..]).prop_map(str::to_string),
    ]
}

fn condition() -> impl Strategy<Value = String> {
    atom().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(|v| v.join(" and ")),
            prop::collection::vec(inner.clone(), 2..4).prop_map(|v| v.join(" or ")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) or not ({b})")),
            inner.clone().prop_map(|a| format!("not {a}")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

fn scalar(s: &str) -> Value {
    Value::from(s)
}

fn value() -> impl Strategy<Value = Value> {
    let strings = |items: &'static [&'static str]| prop::sample::select(items).prop_map(scalar);
    prop_oneof![
        3 => prop::sample::select(&[-1i64, 0, 1, 5, 200, 404, 437, 500, 503, 1000,
            9_007_199_254_740_992, 9_007_199_254_740_993, i64::MAX, i64::MIN][..])
            .prop_map(Value::Integer),
        2 => (-5i64..1010).prop_map(Value::Integer),
        2 => prop::sample::select(&[0.5, 404.0, 500.5, f64::NAN, f64::INFINITY, -0.0, 0.0,
            1e3, 9_007_199_254_740_992.0, -1.5][..])
            .prop_map(Value::Float),
        2 => strings(&["503", "404", " 500 ", "5e2", "1000.0", "NaN", "inf", "-0", "0.5", "60"]),
        3 => strings(&["info", "ERROR", "warn", "debug", "emerg", "Info", "trace", "err"]),
        2 => strings(&["abc", "app-7", "", "debug3", "web", "b", "true", "false",
            "2026-11-23T10:00:01Z"]),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
        2 => (prop::sample::select(TIMESTAMPS), -1i64..=1)
            .prop_map(|(t, d)| Value::Timestamp(nanos(t) + d)),
        1 => Just(Value::Array(vec![Value::Integer(5), scalar("a"), scalar("info")])),
        1 => Just(Value::Object({
            let mut m = Map::new();
            m.insert("b", Value::Integer(5));
            m
        })),
    ]
}

/// An event: each field missing or holding a random value; `a.b` nested, flat, or under a
/// non-object `a`.
fn event() -> impl Strategy<Value = Map> {
    (
        prop::collection::vec(prop::option::weighted(0.8, value()), FIELDS.len()),
        0..4u8,
    )
        .prop_map(|(values, a_shape)| {
            let mut m = Map::new();
            for (name, v) in FIELDS.iter().zip(values) {
                let Some(v) = v else { continue };
                if *name == "a.b" {
                    match a_shape {
                        0 => {
                            let mut inner = Map::new();
                            inner.insert("b", v);
                            m.insert("a", Value::Object(inner));
                        }
                        1 => {
                            m.insert("a.b", v);
                        }
                        2 => {
                            m.insert("a", v);
                        }
                        _ => {
                            // Both spellings: the flat key wins.
                            let mut inner = Map::new();
                            inner.insert("b", Value::Integer(404));
                            m.insert("a", Value::Object(inner));
                            m.insert("a.b", v);
                        }
                    }
                } else {
                    m.insert(*name, v);
                }
            }
            m
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn set_matches_each_condition(
        sources in prop::collection::vec(condition(), 1..=40),
        events in prop::collection::vec(event(), 1..8),
    ) {
        let conditions: Vec<Condition> = sources
            .iter()
            .map(|s| Condition::compile(s).unwrap_or_else(|e| panic!("`{s}`: {e}")))
            .collect();
        // Budget 0: every group sets its atoms' bits one by one instead of by prefixes.
        for set in [ConditionSet::new(&conditions), ConditionSet::with_prefix_budget(&conditions, 0)] {
            prop_assert_eq!(set.len(), conditions.len());
            let mut results = SetResults::default();
            for fields in &events {
                set.eval(fields, &mut results);
                for (i, c) in conditions.iter().enumerate() {
                    prop_assert_eq!(
                        results.get(i),
                        c.check_fields(fields),
                        "condition #{} `{}` on {:?}", i, c, fields
                    );
                }
            }
        }
    }
}
