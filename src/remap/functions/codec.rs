//! Parsing text into values: `parse_json`, `parse_logfmt`, `parse_key_value`,
//! `parse_regex`. JSON and logfmt are the router's own parsers (`crate::parse`), so a
//! line parses the same in a `parse` transform and in a remap program.

use bytes::{Bytes, BytesMut};
use compact_str::CompactString;
use regex::bytes::Regex;

use super::{optional_string_arg, string_arg, Arg, CallResult};
use crate::event::{Map, Value};
use crate::parse;

/// Any JSON value: an object through the router's JSON parser (string fields share the
/// input), other values (`[1,2]`, `"x"`, `3`) through serde_json.
pub(super) fn parse_json(args: &mut [Arg<'_>]) -> CallResult {
    let s = string_arg(args, 0)?;
    let first = s.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') {
        return parse::json_bytes(s)
            .map(Value::Object)
            .map_err(|e| e.reason);
    }
    serde_json::from_slice::<Value>(s).map_err(|e| format!("invalid json: {e}"))
}

pub(super) fn parse_logfmt(args: &mut [Arg<'_>]) -> CallResult {
    let s = string_arg(args, 0)?;
    parse::logfmt_bytes(s)
        .map(Value::Object)
        .map_err(|e| e.reason)
}

/// `parse_key_value(s, key_value_delimiter = "=", field_delimiter = " ")`: fields split on
/// the field delimiter (outside double quotes), each split at its first key-value
/// delimiter; quoted values lose their quotes and `\"` escapes; a field without the
/// delimiter is a key set to `true`. Fails when no field has the delimiter.
pub(super) fn parse_key_value(args: &mut [Arg<'_>]) -> CallResult {
    let s = string_arg(args, 0)?;
    let pair = optional_string_arg(args, 1)?.map_or(&b"="[..], |b| &b[..]);
    let field = optional_string_arg(args, 2)?.map_or(&b" "[..], |b| &b[..]);
    if pair.is_empty() || field.is_empty() {
        return Err("delimiters must not be empty".into());
    }
    let mut map = Map::new();
    let mut pairs = 0;
    let mut pos = 0;
    while pos < s.len() {
        if s[pos..].starts_with(field) {
            pos += field.len();
            continue;
        }
        let key_end = find_either(&s[pos..], pair, field).map_or(s.len(), |i| pos + i);
        let key = String::from_utf8_lossy(s[pos..key_end].trim_ascii());
        if !s[key_end..].starts_with(pair) || key_end == s.len() {
            if !key.is_empty() {
                map.insert(CompactString::from(key.as_ref()), Value::Bool(true));
            }
            pos = key_end;
            continue;
        }
        let value_start = key_end + pair.len();
        let (value, end) = if s.get(value_start) == Some(&b'"') {
            unquote(s, value_start)
        } else {
            let end =
                memchr::memmem::find(&s[value_start..], field).map_or(s.len(), |i| value_start + i);
            (s.slice(value_start..end), end)
        };
        if !key.is_empty() {
            pairs += 1;
            map.insert(CompactString::from(key.as_ref()), Value::Bytes(value));
        }
        pos = end;
    }
    if pairs == 0 {
        return Err("no key-value pair found".into());
    }
    Ok(Value::Object(map))
}

fn find_either(s: &[u8], a: &[u8], b: &[u8]) -> Option<usize> {
    match (memchr::memmem::find(s, a), memchr::memmem::find(s, b)) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// A double-quoted value starting at `start`: its text with `\"` and `\\` unescaped, and
/// where it ends (after the closing quote, or the end of the input if it has none).
fn unquote(s: &Bytes, start: usize) -> (Bytes, usize) {
    let mut out = BytesMut::new();
    let mut i = start + 1;
    while i < s.len() {
        match s[i] {
            b'"' => return (out.freeze(), i + 1),
            b'\\' if matches!(s.get(i + 1), Some(b'"' | b'\\')) => {
                out.extend_from_slice(&s[i + 1..i + 2]);
                i += 2;
            }
            b => {
                out.extend_from_slice(&[b]);
                i += 1;
            }
        }
    }
    (out.freeze(), s.len())
}

/// `parse_regex(s, r'...')`: the named captures as an object of strings (groups that took
/// no part in the match left out). Fails when the regex does not match.
pub(super) fn parse_regex(args: &mut [Arg<'_>], regex: Option<&Regex>) -> CallResult {
    let s = string_arg(args, 0)?;
    let Some(regex) = regex else {
        return Err("argument 2 must be a regex literal".into());
    };
    let captures = regex
        .captures(s)
        .ok_or_else(|| "the regex does not match".to_string())?;
    let mut map = Map::new();
    for (index, name) in regex.capture_names().enumerate() {
        if let (Some(name), Some(m)) = (name, captures.get(index)) {
            map.insert(name, Value::Bytes(s.slice(m.range())));
        }
    }
    Ok(Value::Object(map))
}
