//! The usual shape of a JSON log line, read without serde_json: one object whose values are
//! strings without escapes, integers, plain decimals, booleans or null.
//!
//! serde_json reads such a line in about twice the time a direct scan takes (its generic
//! visitor calls, and a UTF-8 check per string where one check of the whole line does).
//! This reader only ever accepts a line serde_json reads to the same fields: anything it
//! does not handle (an escape, a nested object or array, an exponent, a long number, a
//! control byte, invalid UTF-8, a syntax error) makes it answer `None`, and the caller
//! hands the line to serde_json, whose result or error is then the answer.

use bytes::Bytes;

use super::json_keys::KeyPrints;
use crate::event::{Map, Value};

/// Digits of a decimal read here: below 2^53, so the digits are an exact `f64`.
const MAX_DECIMAL_DIGITS: usize = 15;

/// Digits of an integer read here: every such number fits an `i64`.
const MAX_INTEGER_DIGITS: usize = 18;

/// Exact powers of ten, as serde_json divides by them.
const POW10: [f64; MAX_DECIMAL_DIGITS + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// The fields of `line` (without its terminator) when it is a flat object this reader
/// handles; `None` leaves the line to serde_json.
pub(super) fn flat_object(line: &Bytes) -> Option<Map> {
    let text = std::str::from_utf8(line).ok()?;
    let s = text.as_bytes();
    if has_control_byte(s) {
        return None;
    }
    let mut pos = skip_spaces(s, 0);
    if s.get(pos) != Some(&b'{') {
        return None;
    }
    pos = skip_spaces(s, pos + 1);
    // The capacity serde_json's path gives an object of unknown size.
    let mut map = Map::with_capacity(8);
    let mut keys = KeyPrints::default();
    if s.get(pos) == Some(&b'}') {
        pos += 1;
    } else {
        loop {
            let key = string_at(s, pos)?;
            let key_text = &text[key.clone()];
            pos = skip_spaces(s, key.end + 1);
            if s.get(pos) != Some(&b':') {
                return None;
            }
            pos = skip_spaces(s, pos + 1);
            let (value, end) = value_at(line, s, pos)?;
            map.push_unchecked(keys.key(key_text), value);
            pos = skip_spaces(s, end);
            match s.get(pos) {
                Some(b',') => pos = skip_spaces(s, pos + 1),
                Some(b'}') => {
                    pos += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    if skip_spaces(s, pos) != s.len() {
        return None;
    }
    if keys.maybe_repeated {
        map.dedup_keep_last();
    }
    Some(map)
}

/// Bytes below 0x20: JSON allows only some of them, between tokens; they are left to
/// serde_json. Written as a fold over chunks so that it compiles to vector compares.
fn has_control_byte(s: &[u8]) -> bool {
    s.chunks(32)
        .any(|chunk| chunk.iter().fold(false, |found, b| found | (*b < 0x20)))
}

/// The blanks JSON allows between tokens, once control bytes are ruled out.
fn skip_spaces(s: &[u8], mut pos: usize) -> usize {
    while s.get(pos) == Some(&b' ') {
        pos += 1;
    }
    pos
}

/// The contents of the string whose opening quote is at `pos`, when it has no escape.
fn string_at(s: &[u8], pos: usize) -> Option<std::ops::Range<usize>> {
    if s.get(pos) != Some(&b'"') {
        return None;
    }
    let start = pos + 1;
    let len = memchr::memchr2(b'"', b'\\', &s[start..])?;
    (s[start + len] == b'"').then_some(start..start + len)
}

/// The value starting at `pos` and the position after it.
fn value_at(line: &Bytes, s: &[u8], pos: usize) -> Option<(Value, usize)> {
    let literal = |word: &[u8], value: Value| {
        s[pos..]
            .starts_with(word)
            .then_some((value, pos + word.len()))
    };
    match *s.get(pos)? {
        b'"' => {
            let range = string_at(s, pos)?;
            let end = range.end + 1;
            Some((Value::Bytes(line.slice(range)), end))
        }
        b't' => literal(b"true", Value::Bool(true)),
        b'f' => literal(b"false", Value::Bool(false)),
        b'n' => literal(b"null", Value::Null),
        b'-' | b'0'..=b'9' => number_at(s, pos),
        _ => None,
    }
}

/// An integer of up to 18 digits, or a decimal `int.frac` of up to 15 digits without an
/// exponent. serde_json reads the decimal as its digits as an integer divided by a power
/// of ten, both exact here, so the quotient is the same correctly rounded `f64`. A
/// negative number starting with `0` (`-0` is a float to serde_json) is left to it.
fn number_at(s: &[u8], pos: usize) -> Option<(Value, usize)> {
    let negative = s[pos] == b'-';
    let int_start = pos + usize::from(negative);
    let int_len = digits_at(s, int_start);
    if int_len == 0 || (s[int_start] == b'0' && (int_len > 1 || negative)) {
        return None;
    }
    let int_end = int_start + int_len;
    match s.get(int_end) {
        Some(b'.') => {
            let frac_len = digits_at(s, int_end + 1);
            let end = int_end + 1 + frac_len;
            if frac_len == 0
                || int_len + frac_len > MAX_DECIMAL_DIGITS
                || matches!(s.get(end), Some(b'e' | b'E'))
            {
                return None;
            }
            let digits = decimal(&s[int_start..int_end]) * POW10[frac_len] as u64
                + decimal(&s[int_end + 1..end]);
            let f = digits as f64 / POW10[frac_len];
            Some((Value::Float(if negative { -f } else { f }), end))
        }
        Some(b'e' | b'E') => None,
        _ if int_len > MAX_INTEGER_DIGITS => None,
        _ => {
            let n = decimal(&s[int_start..int_end]) as i64;
            Some((Value::Integer(if negative { -n } else { n }), int_end))
        }
    }
}

fn digits_at(s: &[u8], pos: usize) -> usize {
    s.get(pos..).map_or(0, |rest| {
        rest.iter().take_while(|b| b.is_ascii_digit()).count()
    })
}

/// The value of at most 18 ASCII digits.
fn decimal(digits: &[u8]) -> u64 {
    digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0'))
}
