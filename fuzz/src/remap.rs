//! The remap language: compiling any text never panics, a compile error's line and column
//! lie within the text, and running a program over events of every value type never
//! panics and, when it aborts or fails, leaves the event's fields as they were.

use bytes::Bytes;
use sluice::event::{Map, Value};
use sluice::remap::{Outcome, Program, Scratch};

pub fn remap(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let program = match Program::compile(src) {
        Ok(program) => program,
        Err(e) => {
            let lines = src.split('\n').count();
            assert!((1..=lines).contains(&e.line), "line {} of {lines}", e.line);
            let line_chars = src
                .split('\n')
                .nth(e.line - 1)
                .map_or(0, |l| l.chars().count());
            assert!(
                (1..=line_chars + 1).contains(&e.column),
                "column {} on a line of {line_chars} characters",
                e.column
            );
            assert!(!e.message.is_empty());
            return;
        }
    };
    assert_eq!(program.source(), src);
    let mut scratch = Scratch::default();
    for fields in events() {
        let mut changed = fields.clone();
        match program.run(&mut changed, &mut scratch) {
            Ok(Outcome::Done) => {}
            Ok(Outcome::Aborted) => assert_eq!(
                canonical(&changed),
                canonical(&fields),
                "an aborted run changed the event"
            ),
            Err(e) => {
                assert!(!e.message.is_empty());
                assert!(e.line >= 1 && e.column >= 1);
                assert_eq!(
                    canonical(&changed),
                    canonical(&fields),
                    "a failed run changed the event: {e}"
                );
            }
        }
    }
}

/// The fields as sorted JSON: a rolled-back run may put a deleted field back last.
fn canonical(map: &Map) -> serde_json::Value {
    serde_json::to_value(Value::Object(map.clone())).unwrap_or_default()
}

fn object(entries: Vec<(&str, Value)>) -> Map {
    let mut map = Map::new();
    for (k, v) in entries {
        map.insert(k, v);
    }
    map
}

fn events() -> Vec<Map> {
    let s = Value::from;
    vec![
        Map::new(),
        object(vec![
            ("message", s("{\"a\":1,\"b\":[true,null]}")),
            ("level", s("WARNING")),
            ("status", s("503")),
            ("duration_ms", Value::Float(1250.5)),
            ("http", Value::Object(object(vec![("status", Value::Integer(503))]))),
            ("http.status", Value::Integer(200)),
            ("timestamp", Value::Timestamp(1_714_521_600_123_000_000)),
            ("ua", s("Mozilla/5.0 (Windows NT 10.0) Chrome/120.0 Safari/537.36")),
        ]),
        object(vec![
            ("message", s("a=1 b=\"x y\" https://u:p@h:8/p?q=1#f")),
            ("n", Value::Integer(i64::MIN)),
            ("m", Value::Integer(i64::MAX)),
            ("f", Value::Float(-0.0)),
            ("tags", Value::Array(vec![s("a"), Value::Integer(1), Value::Null])),
            ("raw", Value::Bytes(Bytes::from_static(b"\xff\xfe not utf-8"))),
            ("x", Value::Null),
            ("b", Value::Bool(true)),
        ]),
    ]
}
