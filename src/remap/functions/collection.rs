//! Arrays, objects and sizes: `join`, `slice`, `merge`, `compact`, `length`.

use bytes::BytesMut;

use super::{bool_arg, int_arg, optional_string_arg, take, type_name, wrong_type, Arg, CallResult};
use crate::event::{Map, Value};

/// `join(array, separator = "")`: the strings of `array` joined; fails on other elements.
pub(super) fn join(args: &mut [Arg<'_>]) -> CallResult {
    let Value::Array(items) = &*args[0] else {
        return Err(wrong_type(0, "an array", &args[0]));
    };
    let separator = optional_string_arg(args, 1)?.map_or(&b""[..], |b| &b[..]);
    let mut out = BytesMut::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Bytes(b) = item else {
            return Err(format!(
                "element {} of the array is {}, not a string",
                i + 1,
                type_name(item)
            ));
        };
        if i > 0 {
            out.extend_from_slice(separator);
        }
        out.extend_from_slice(b);
    }
    Ok(Value::Bytes(out.freeze()))
}

/// `slice(value, start, end)`: characters of a string or elements of an array from
/// `start` up to (not including) `end`; negative positions count from the end, positions
/// past either end are clamped.
pub(super) fn slice(args: &mut [Arg<'_>]) -> CallResult {
    let start = int_arg(args, 1)?.unwrap_or(0);
    let end = int_arg(args, 2)?;
    match take(&mut args[0]) {
        Value::Bytes(b) => {
            let valid = std::str::from_utf8(&b).is_ok();
            let s = String::from_utf8_lossy(&b);
            let count = s.chars().count();
            let (from, to) = bounds(start, end, count);
            let byte_at = |n: usize| s.char_indices().nth(n).map_or(s.len(), |(i, _)| i);
            if valid {
                // The text is the input's bytes: the result shares them.
                Ok(Value::Bytes(b.slice(byte_at(from)..byte_at(to))))
            } else {
                Ok(Value::from(&s[byte_at(from)..byte_at(to)]))
            }
        }
        Value::Array(mut items) => {
            let (from, to) = bounds(start, end, items.len());
            items.truncate(to);
            items.drain(..from);
            Ok(Value::Array(items))
        }
        other => Err(wrong_type(0, "a string or an array", &other)),
    }
}

fn bounds(start: i64, end: Option<i64>, len: usize) -> (usize, usize) {
    let clamp = |n: i64| -> usize {
        let len_i = i64::try_from(len).unwrap_or(i64::MAX);
        let n = if n < 0 { len_i.saturating_add(n) } else { n };
        usize::try_from(n.clamp(0, len_i)).unwrap_or(len)
    };
    let from = clamp(start);
    let to = end.map_or(len, clamp);
    (from, to.max(from))
}

/// `merge(to, from, deep = false)`: `to` with the fields of `from` set over it; with
/// `deep`, objects present in both are merged in turn rather than replaced.
pub(super) fn merge(args: &mut [Arg<'_>]) -> CallResult {
    let deep = bool_arg(args, 2, false)?;
    let from = match take(&mut args[1]) {
        Value::Object(m) => m,
        other => return Err(wrong_type(1, "an object", &other)),
    };
    let mut to = match take(&mut args[0]) {
        Value::Object(m) => m,
        other => return Err(wrong_type(0, "an object", &other)),
    };
    merge_into(&mut to, from, deep);
    Ok(Value::Object(to))
}

fn merge_into(to: &mut Map, from: Map, deep: bool) {
    for (key, value) in from {
        match (to.get_mut(&key), value) {
            (Some(Value::Object(existing)), Value::Object(incoming)) if deep => {
                merge_into(existing, incoming, true);
            }
            (_, value) => {
                to.insert(key, value);
            }
        }
    }
}

/// `compact(value)`: an object or array without its `null`s, empty strings, empty arrays
/// and empty objects, recursively.
pub(super) fn compact(args: &mut [Arg<'_>]) -> CallResult {
    match take(&mut args[0]) {
        value @ (Value::Object(_) | Value::Array(_)) => Ok(compacted(value)),
        other => Err(wrong_type(0, "an object or an array", &other)),
    }
}

fn compacted(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, compacted(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(compacted)
                .filter(|v| !is_empty(v))
                .collect(),
        ),
        other => other,
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bytes(b) => b.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// `length(value)`: characters of a string, elements of an array, fields of an object.
pub(super) fn length(args: &mut [Arg<'_>]) -> CallResult {
    let n = match &*args[0] {
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => s.chars().count(),
            Err(_) => String::from_utf8_lossy(b).chars().count(),
        },
        Value::Array(a) => a.len(),
        Value::Object(m) => m.len(),
        other => return Err(wrong_type(0, "a string, an array or an object", other)),
    };
    Ok(Value::Integer(i64::try_from(n).unwrap_or(i64::MAX)))
}
