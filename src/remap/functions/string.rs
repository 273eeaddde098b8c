//! String functions: `downcase`, `upcase`, `trim`, `replace`, `split`, `contains`,
//! `starts_with`, `ends_with`.

use bytes::Bytes;
use regex::bytes::Regex;

use super::{bool_arg, int_arg, string_arg, text, Arg, CallResult};
use crate::event::Value;

pub(super) fn downcase(args: &mut [Arg<'_>]) -> CallResult {
    let s = string_arg(args, 0)?;
    if s.is_ascii() {
        if !s.iter().any(u8::is_ascii_uppercase) {
            return Ok(Value::Bytes(s.clone()));
        }
        return Ok(Value::Bytes(Bytes::from(s.to_ascii_lowercase())));
    }
    Ok(text(String::from_utf8_lossy(s).to_lowercase()))
}

pub(super) fn upcase(args: &mut [Arg<'_>]) -> CallResult {
    let s = string_arg(args, 0)?;
    if s.is_ascii() {
        if !s.iter().any(u8::is_ascii_lowercase) {
            return Ok(Value::Bytes(s.clone()));
        }
        return Ok(Value::Bytes(Bytes::from(s.to_ascii_uppercase())));
    }
    Ok(text(String::from_utf8_lossy(s).to_uppercase()))
}

/// Leading and trailing whitespace removed; the result shares the input's bytes.
pub(super) fn trim(args: &mut [Arg<'_>]) -> CallResult {
    let s = string_arg(args, 0)?;
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    Ok(Value::Bytes(s.slice(start..end.max(start))))
}

/// `replace(s, pattern, with, count)`: `pattern` is a string or a `r'...'` regex (whose
/// `with` may name groups: `$1`, `$name`); `count` limits the replacements (default all).
pub(super) fn replace(args: &mut [Arg<'_>], regex: Option<&Regex>) -> CallResult {
    let s = string_arg(args, 0)?;
    let with = string_arg(args, 2)?;
    let limit = match int_arg(args, 3)? {
        Some(n) if n < 0 => return Err("argument 4 (count) must not be negative".into()),
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => 0,
    };
    let replaced: Vec<u8> = match regex {
        Some(re) => re.replacen(s, limit, with.as_ref()).into_owned(),
        None => {
            let pattern = string_arg(args, 1)?;
            if pattern.is_empty() {
                return Err("argument 2 (pattern) must not be empty".into());
            }
            let mut out = Vec::with_capacity(s.len());
            let mut rest = &s[..];
            let mut done = 0;
            while limit == 0 || done < limit {
                let Some(at) = memchr::memmem::find(rest, pattern) else {
                    break;
                };
                out.extend_from_slice(&rest[..at]);
                out.extend_from_slice(with);
                rest = &rest[at + pattern.len()..];
                done += 1;
            }
            if done == 0 {
                return Ok(Value::Bytes(s.clone()));
            }
            out.extend_from_slice(rest);
            out
        }
    };
    Ok(Value::Bytes(Bytes::from(replaced)))
}

/// `split(s, separator, limit)`: the parts between separators (a string or a `r'...'`
/// regex), at most `limit` of them (the last holding the rest). Parts share the input.
pub(super) fn split(args: &mut [Arg<'_>], regex: Option<&Regex>) -> CallResult {
    let s = string_arg(args, 0)?.clone();
    let limit = match int_arg(args, 2)? {
        Some(n) if n < 1 => return Err("argument 3 (limit) must be at least 1".into()),
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => usize::MAX,
    };
    let mut parts = Vec::new();
    let mut start = 0;
    match regex {
        Some(re) => {
            for m in re.find_iter(&s) {
                if parts.len() + 1 >= limit {
                    break;
                }
                // An empty match (`r'x*'` between letters) separates nothing.
                if m.start() == m.end() {
                    continue;
                }
                parts.push(Value::Bytes(s.slice(start..m.start())));
                start = m.end();
            }
        }
        None => {
            let separator = string_arg(args, 1)?;
            if separator.is_empty() {
                return Err("argument 2 (separator) must not be empty".into());
            }
            for at in memchr::memmem::find_iter(&s, separator.as_ref()) {
                if parts.len() + 1 >= limit {
                    break;
                }
                if at < start {
                    continue;
                }
                parts.push(Value::Bytes(s.slice(start..at)));
                start = at + separator.len();
            }
        }
    }
    parts.push(Value::Bytes(s.slice(start..)));
    Ok(Value::Array(parts))
}

/// Compares `s` and `needle` (argument 2) with `test`, case-insensitively when argument 3
/// is `false`.
fn test_with(args: &[Arg<'_>], test: fn(&[u8], &[u8]) -> bool) -> CallResult {
    let s = string_arg(args, 0)?;
    let needle = string_arg(args, 1)?;
    if bool_arg(args, 2, true)? {
        Ok(Value::Bool(test(s, needle)))
    } else {
        let s = String::from_utf8_lossy(s).to_lowercase();
        let needle = String::from_utf8_lossy(needle).to_lowercase();
        Ok(Value::Bool(test(s.as_bytes(), needle.as_bytes())))
    }
}

pub(super) fn contains(args: &mut [Arg<'_>]) -> CallResult {
    test_with(args, |s, n| memchr::memmem::find(s, n).is_some())
}

pub(super) fn starts_with(args: &mut [Arg<'_>]) -> CallResult {
    test_with(args, |s, n| s.starts_with(n))
}

pub(super) fn ends_with(args: &mut [Arg<'_>]) -> CallResult {
    test_with(args, |s, n| s.ends_with(n))
}
