//! The config env target: `${VAR}` substitution (`config::interpolate`) on arbitrary
//! pipeline text with an arbitrary value.
//!
//! Input layout: the bytes before the first NUL are the value every variable holds
//! (variables whose name starts with `U` are unset, so that defaults and the missing-variable
//! error are reached), the rest is the pipeline text.
//!
//! Invariants:
//! - substitution never panics; text without `$` comes back unchanged;
//! - a value with a line break is refused wherever it lands;
//! - a value never changes the TOML structure: when the text with every variable set to the
//!   value and the text with every variable set to `1` both parse as TOML, they have the same
//!   shape (the same nesting of tables and arrays, the same number of keys in each table and
//!   of elements in each array; key names and leaf values may differ, since a value may be a
//!   key, as in `[sinks.${NAME}]`).

use sluice::config::interpolate;

pub fn config_env(data: &[u8]) {
    let split = data.iter().position(|&b| b == 0).unwrap_or(0);
    let (Ok(value), Ok(text)) = (
        std::str::from_utf8(&data[..split]),
        std::str::from_utf8(data.get(split + 1..).unwrap_or_default()),
    ) else {
        return;
    };
    let lookup = |with: &str| {
        let with = with.to_string();
        move |name: &str| (!name.starts_with('U')).then(|| with.clone())
    };
    let got = interpolate(text, lookup(value));
    if !text.contains('$') {
        assert_eq!(got.as_deref(), Ok(text), "text without `$` changed");
        return;
    }
    let Ok(got) = got else {
        return;
    };
    if value.contains(['\n', '\r']) {
        // Accepted only if no variable with the value was substituted: then the text with
        // `1` for every variable is the same.
        assert_eq!(
            interpolate(text, lookup("1")).as_deref(),
            Ok(got.as_str()),
            "a value with a line break was substituted"
        );
    }
    let Ok(base) = interpolate(text, lookup("1")) else {
        return;
    };
    let (Ok(got_table), Ok(base_table)) = (got.parse::<toml::Table>(), base.parse::<toml::Table>())
    else {
        return;
    };
    assert_eq!(
        shape(&toml::Value::Table(got_table)),
        shape(&toml::Value::Table(base_table)),
        "the value changed the structure: {got:?} against {base:?}"
    );
}

/// The structure of a TOML value without names or leaf values; a table's children are
/// sorted by their own shape so that renamed keys compare equal.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Shape {
    Leaf,
    Array(Vec<Shape>),
    Table(Vec<Shape>),
}

fn shape(value: &toml::Value) -> Shape {
    match value {
        toml::Value::Table(table) => {
            let mut children: Vec<Shape> = table.values().map(shape).collect();
            children.sort();
            Shape::Table(children)
        }
        toml::Value::Array(items) => Shape::Array(items.iter().map(shape).collect()),
        _ => Shape::Leaf,
    }
}
