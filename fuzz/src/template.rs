//! The template target: `Template::parse` and both renderings.
//!
//! Input: the template text up to the first NUL byte; the bytes after it, split at NULs,
//! are the values of the fields `a`, `b`, `app` and `o.a` (any bytes, invalid UTF-8
//! included), beside fixed fields of every other type.
//!
//! Invariants:
//! - parsing never panics; an error's column lies within the text;
//! - a template keeps its source; a static one renders as its source with either rendering;
//! - field values cannot steer a file path: rendered with the fuzzed values and with all
//!   fields missing, `render_path` gives the same number of `/`, `\`, NUL and control
//!   characters, so the same path components, and no component that is `..` with the
//!   fuzzed values is anything else with missing fields (a value never forms `..`).

use bytes::Bytes;
use sluice::event::{Event, Map, Value};
use sluice::template::Template;

pub fn template(data: &[u8]) {
    let (src, values) = match data.iter().position(|b| *b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(src) = std::str::from_utf8(src) else {
        return;
    };
    let template = match Template::parse(src) {
        Ok(template) => template,
        Err(e) => {
            assert!((1..=src.chars().count() + 1).contains(&e.column));
            return;
        }
    };
    assert_eq!(template.source(), src);

    let fuzzed = event(values);
    let missing = event_without_values();
    let render_path = |event: &Event| {
        let mut out = String::new();
        template.render_path(event, &mut out);
        out
    };
    let path = render_path(&fuzzed);
    let baseline = render_path(&missing);

    if template.is_static() {
        let mut plain = String::new();
        template.render(&fuzzed, &mut plain);
        assert_eq!(plain, src);
        assert_eq!(path, src);
    }

    let count = |s: &str, f: fn(char) -> bool| s.chars().filter(|c| f(*c)).count();
    for (what, f) in [
        ("`/`", (|c| c == '/') as fn(char) -> bool),
        ("`\\`", |c| c == '\\'),
        ("control", |c: char| c.is_control()),
    ] {
        assert_eq!(
            count(&path, f),
            count(&baseline, f),
            "a field value changed the number of {what} characters: {path:?}"
        );
    }
    let components: Vec<&str> = path.split('/').collect();
    let baseline_components: Vec<&str> = baseline.split('/').collect();
    for (got, base) in components.iter().zip(&baseline_components) {
        if *got == ".." {
            assert_eq!(
                *base, "..",
                "field values formed a `..` component: {path:?} (template {src:?})"
            );
        }
    }
}

const TIMESTAMP: i64 = 1_714_521_600_123_456_789;

fn fixed_fields() -> Map {
    let mut map = Map::new();
    map.insert("timestamp", Value::Timestamp(TIMESTAMP));
    map.insert("n", Value::Integer(-42));
    map.insert("f", Value::Float(0.5));
    map.insert("t", Value::Timestamp(-1));
    map.insert("yes", Value::Bool(true));
    map.insert("none", Value::Null);
    map.insert(
        "arr",
        Value::Array(vec![Value::from("../x"), Value::Integer(1)]),
    );
    map
}

fn event(values: &[u8]) -> Event {
    let mut map = fixed_fields();
    let mut parts = values.split(|b| *b == 0);
    for name in ["a", "b", "app"] {
        if let Some(part) = parts.next() {
            map.insert(name, Value::Bytes(Bytes::copy_from_slice(part)));
        }
    }
    if let Some(part) = parts.next() {
        let mut inner = Map::new();
        inner.insert("a", Value::Bytes(Bytes::copy_from_slice(part)));
        map.insert("o", Value::Object(inner));
    }
    Event::new(map)
}

/// Only the fixed fields whose renderings cannot contain a separator: the fuzzed ones are
/// missing and render `_`.
fn event_without_values() -> Event {
    Event::new(fixed_fields())
}
