//! logfmt: `key=value key="quoted \" value" bare_key`.
//!
//! There is no formal grammar; this follows go-logfmt, the de facto reference: a key is a run
//! of bytes above space other than `=` and `"`; a value is either bare (up to the next blank)
//! or double-quoted with backslash escapes; a key without `=` is a flag and becomes `true`.
//! Values stay strings: logfmt has no types, and turning `0012` into 12 would lose data
//! (consumers that compare numbers coerce, see `Value::as_f64`).

use bytes::{Bytes, BytesMut};
use compact_str::CompactString;

use super::json_keys::KeyPrints;
use super::{trim_line_end_bytes, ParseError};
use crate::event::{Map, Value};

/// Parses one logfmt line. Repeated keys keep the last value.
pub fn logfmt(input: &[u8]) -> Result<Map, ParseError> {
    parse(&Bytes::copy_from_slice(input)).map(|(map, _)| map)
}

/// How much of a line was `key=value` pairs; `auto` uses it to tell logfmt from prose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Coverage {
    /// Pairs written with `=`.
    pub(super) pairs: usize,
    /// Bytes spanned by those pairs.
    pub(super) pair_bytes: usize,
    /// Bytes of every token, pairs and flags alike (blanks excluded).
    pub(super) token_bytes: usize,
}

/// Parses a line held in `Bytes`, slicing values out of it without copying where no
/// escape needs rewriting.
pub(super) fn parse(input: &Bytes) -> Result<(Map, Coverage), ParseError> {
    let line = trim_line_end_bytes(input);
    let s = &line[..];
    let mut map = Map::with_capacity(8);
    let mut coverage = Coverage::default();
    let mut keys = KeyPrints::default();
    let mut pos = 0;
    loop {
        while pos < s.len() && s[pos] <= b' ' {
            pos += 1;
        }
        if pos >= s.len() {
            break;
        }
        let start = pos;
        while pos < s.len() && s[pos] > b' ' && s[pos] != b'=' && s[pos] != b'"' {
            pos += 1;
        }
        if pos == start {
            return Err(match s[pos] {
                b'=' => ParseError::new(format!("missing key before `=` at column {}", pos + 1)),
                _ => ParseError::new(format!("unexpected `\"` at column {}", pos + 1)),
            });
        }
        let key = key_text(&s[start..pos], &mut keys);
        if s.get(pos) != Some(&b'=') {
            // A flag: `debug` alone means `debug=true`.
            if s.get(pos) == Some(&b'"') {
                return Err(ParseError::new(format!(
                    "unexpected `\"` at column {}",
                    pos + 1
                )));
            }
            map.push_unchecked(key, Value::Bool(true));
            coverage.token_bytes += pos - start;
            continue;
        }
        pos += 1;
        let value = if s.get(pos) == Some(&b'"') {
            let (value, end) = quoted(&line, pos)?;
            pos = end;
            value
        } else {
            let value_start = pos;
            while pos < s.len() && s[pos] > b' ' {
                pos += 1;
            }
            line.slice(value_start..pos)
        };
        map.push_unchecked(key, Value::Bytes(value));
        coverage.pairs += 1;
        coverage.pair_bytes += pos - start;
        coverage.token_bytes += pos - start;
    }
    if map.is_empty() {
        return Err(ParseError::new("no key=value pairs"));
    }
    if keys.maybe_repeated {
        map.dedup_keep_last();
    }
    Ok((map, coverage))
}

/// Reads the quoted value whose opening quote is at `open`; returns it and the position
/// after the closing quote.
fn quoted(line: &Bytes, open: usize) -> Result<(Bytes, usize), ParseError> {
    let s = &line[..];
    let body = open + 1;
    // Fast path: no backslash before the closing quote, so the value is a plain slice.
    let Some(rel) = memchr::memchr2(b'"', b'\\', &s[body..]) else {
        return Err(unterminated(open));
    };
    if s[body + rel] == b'"' {
        return Ok((line.slice(body..body + rel), body + rel + 1));
    }
    let mut out = BytesMut::with_capacity(s.len() - body);
    let mut pos = body;
    while pos < s.len() {
        match s[pos] {
            b'"' => return Ok((out.freeze(), pos + 1)),
            b'\\' if pos + 1 < s.len() => {
                match s[pos + 1] {
                    b'"' => out.extend_from_slice(b"\""),
                    b'\\' => out.extend_from_slice(b"\\"),
                    b'n' => out.extend_from_slice(b"\n"),
                    b't' => out.extend_from_slice(b"\t"),
                    b'r' => out.extend_from_slice(b"\r"),
                    // Unknown escapes are kept as written rather than rejected: a Windows
                    // path in a quoted value should survive intact.
                    other => out.extend_from_slice(&[b'\\', other]),
                }
                pos += 2;
            }
            b => {
                out.extend_from_slice(&[b]);
                pos += 1;
            }
        }
    }
    Err(unterminated(open))
}

fn unterminated(open: usize) -> ParseError {
    ParseError::new(format!("unterminated quoted value at column {}", open + 1))
}

/// Field names must be text; a key with invalid UTF-8 keeps its valid parts.
/// The key is noted in `keys`.
fn key_text(raw: &[u8], keys: &mut KeyPrints) -> CompactString {
    match std::str::from_utf8(raw) {
        Ok(s) => keys.key(s),
        Err(_) => {
            let key = CompactString::from(String::from_utf8_lossy(raw));
            keys.add(&key);
            key
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &[u8], expected: Result<&[(&str, Value)], &str>) {
        let got = logfmt(input);
        match expected {
            Ok(fields) => {
                let want: Map = fields
                    .iter()
                    .map(|(k, v)| ((*k).into(), v.clone()))
                    .collect();
                assert_eq!(got, Ok(want), "input: {:?}", String::from_utf8_lossy(input));
            }
            Err(reason) => assert_eq!(
                got.map_err(|e| e.reason),
                Err(reason.to_string()),
                "input: {:?}",
                String::from_utf8_lossy(input)
            ),
        }
    }

    fn s(v: &str) -> Value {
        Value::from(v)
    }

    #[test]
    fn table() {
        check(b"a=1 b=two", Ok(&[("a", s("1")), ("b", s("two"))]));
        check(b"  a=1\t b=2 \r\n", Ok(&[("a", s("1")), ("b", s("2"))]));
        check(
            br#"msg="hello world" level=info"#,
            Ok(&[("msg", s("hello world")), ("level", s("info"))]),
        );
        check(
            br#"msg="say \"hi\"\n\\ \q""#,
            Ok(&[("msg", s("say \"hi\"\n\\ \\q"))]),
        );
        check(b"a= b=", Ok(&[("a", s("")), ("b", s(""))]));
        check(br#"a="""#, Ok(&[("a", s(""))]));
        check(
            b"debug a=1",
            Ok(&[("debug", Value::Bool(true)), ("a", s("1"))]),
        );
        check(b"a=1 a=2", Ok(&[("a", s("2"))]));
        check(
            b"url=http://x/?a=b&c=d",
            Ok(&[("url", s("http://x/?a=b&c=d"))]),
        );
        check(
            b"k=\xff\xfe",
            Ok(&[("k", Value::Bytes(Bytes::from_static(b"\xff\xfe")))]),
        );
        check(b"k\xff=v", Ok(&[("k\u{fffd}", s("v"))]));
        check(
            br#"a="unterminated"#,
            Err("unterminated quoted value at column 3"),
        );
        check(br#"a="x\"#, Err("unterminated quoted value at column 3"));
        check(b"=v", Err("missing key before `=` at column 1"));
        check(br#"a=1 "b"=2"#, Err("unexpected `\"` at column 5"));
        check(br#"a"b"#, Err("unexpected `\"` at column 2"));
        check(b"", Err("no key=value pairs"));
        check(b" \r\n", Err("no key=value pairs"));
    }

    #[test]
    fn coverage_counts_pairs_and_flags() {
        let (_, c) = parse(&Bytes::from_static(b"a=1 bb=22 flag")).unwrap();
        assert_eq!(
            c,
            Coverage {
                pairs: 2,
                pair_bytes: 8,
                token_bytes: 12
            }
        );
    }

    #[test]
    fn many_quotes_stay_linear() {
        let line = "k=\"\\\"\" ".repeat(50_000);
        let map = logfmt(line.as_bytes()).unwrap();
        assert_eq!(map.get("k"), Some(&s("\"")));
    }
}
