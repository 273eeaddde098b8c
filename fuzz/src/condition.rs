//! The condition target: `Condition::compile` on arbitrary text.
//!
//! Invariants:
//! - compiling never panics; an error's column lies within the text (or just after it);
//! - a compiled condition keeps its source, and `check` and `check_fields` agree on a set
//!   of fixed events covering every value type;
//! - `not (C)` and `!(C)` compile (unless the extra level exceeds the documented nesting
//!   limit of 64) and are the negation of `C` on every event; `(C) and true` and
//!   `(C) or false` are `C`; `(C) or not (C)` is always true.

use bytes::Bytes;
use sluice::condition::Condition;
use sluice::event::{Event, Map, Value};

pub fn condition(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let condition = match Condition::compile(src) {
        Ok(condition) => condition,
        Err(e) => {
            assert!(
                (1..=src.chars().count() + 1).contains(&e.column),
                "column {} in {} characters",
                e.column,
                src.chars().count()
            );
            assert!(!e.message.is_empty());
            return;
        }
    };
    assert_eq!(condition.source(), src);
    let events = events();
    let results: Vec<bool> = events.iter().map(|e| condition.check(e)).collect();
    for (event, &result) in events.iter().zip(&results) {
        assert_eq!(condition.check_fields(&event.fields), result);
    }

    let derived = [
        (format!("not ({src})"), true),
        (format!("!({src})"), true),
        (format!("({src}) and true"), false),
        (format!("({src}) or false"), false),
    ];
    for (text, negated) in derived {
        match Condition::compile(&text) {
            Ok(derived) => {
                for (event, &result) in events.iter().zip(&results) {
                    assert_eq!(
                        derived.check(event),
                        result != negated,
                        "{text:?} on {:?}",
                        event.fields
                    );
                }
            }
            Err(e) => assert!(
                e.message.contains("nests too deeply"),
                "{src:?} compiles but {text:?} does not: {e}"
            ),
        }
    }
    if let Ok(tautology) = Condition::compile(&format!("({src}) or not ({src})")) {
        assert!(events.iter().all(|e| tautology.check(e)));
    }
}

fn map(entries: Vec<(&str, Value)>) -> Map {
    let mut map = Map::new();
    for (k, v) in entries {
        map.insert(k, v);
    }
    map
}

pub(crate) fn events() -> Vec<Event> {
    let s = Value::from;
    let http = map(vec![
        ("status", Value::Integer(503)),
        ("method", s("POST")),
        ("path", s("/api/v1/orders")),
    ]);
    let labels = map(vec![("app.kubernetes.io/name", s("checkout"))]);
    vec![
        Event::new(Map::new()),
        Event::new(map(vec![
            ("level", s("WARNING")),
            ("message", s("connection refused: timeout after 30s")),
            ("status", s("503")),
            ("duration_ms", Value::Float(1250.5)),
            ("app", s("web")),
            ("http", Value::Object(http)),
            ("http.status", Value::Integer(200)),
            ("labels", Value::Object(labels)),
            ("timestamp", Value::Timestamp(1_714_521_600_123_000_000)),
        ])),
        Event::new(map(vec![
            ("level", s("custom")),
            ("x", Value::Null),
            ("n", Value::Integer(i64::MIN)),
            ("f", Value::Float(-0.0)),
            ("debug", s("true")),
            (
                "tags",
                Value::Array(vec![s("a"), Value::Integer(1), Value::Null]),
            ),
            (
                "raw",
                Value::Bytes(Bytes::from_static(b"\xff\xfe not utf-8")),
            ),
            ("in", s("reserved")),
            ("weird key", Value::Bool(false)),
            ("trace_id", s("")),
        ])),
        Event::new(map(vec![
            ("level", Value::Integer(3)),
            ("status", Value::Float(f64::NAN)),
            ("message", Value::Integer(42)),
            ("x", Value::Integer(1)),
            ("n", Value::Float(9.3e18)),
            ("f", s(" 1e-3 ")),
            (
                "obj",
                Value::Object(map(vec![("a", Value::Array(Vec::new()))])),
            ),
        ])),
    ]
}
