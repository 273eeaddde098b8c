//! Syslog: RFC 5424, RFC 3164 (with or without `<PRI>`), and Heroku logplex lines.
//!
//! ```text
//! RFC 5424  <165>1 2026-11-23T10:00:00.003Z host app 8710 ID47 [id k="v"] message
//! logplex   <190>1 2026-11-23T10:00:00.123+00:00 host app web.1 - message
//! RFC 3164  <34>Oct 11 22:14:15 mymachine su[123]: message
//! ```
//!
//! Logplex is RFC 5424 with the structured-data element left out altogether (not even `-`),
//! so after MSGID a token that is neither `-` nor `[…]` starts the message; its PROCID is the
//! dyno, which we also report as `instance`. RFC 3164 is a convention more than a format, so
//! its parser is lenient: a missing hostname or tag leaves the field out instead of failing.

use bytes::{Bytes, BytesMut};
use compact_str::CompactString;

use super::timestamp::{leading_timestamp_in, parse_timestamp};
use super::zone::{LocalZone, UTC};
use super::{excerpt, trim_line_end_bytes, ParseError};
use crate::event::{fields, now_nanos, Map, Value};

const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];
const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];
/// SD-IDs registered with IANA (RFC 5424 section 7), the only ones allowed without `@`.
const REGISTERED_SD_IDS: [&[u8]; 3] = [b"timeQuality", b"origin", b"meta"];
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Parses one syslog line in any of the supported dialects.
pub fn syslog(input: &[u8]) -> Result<Map, ParseError> {
    parse(&Bytes::copy_from_slice(input))
}

pub(super) fn parse(input: &Bytes) -> Result<Map, ParseError> {
    parse_in(input, &UTC)
}

/// [`parse`] with an RFC 3164 time (which has no zone) read in `zone`.
pub(super) fn parse_in(input: &Bytes, zone: &LocalZone) -> Result<Map, ParseError> {
    let line = trim_line_end_bytes(input);
    let mut map = Map::with_capacity(10);
    let mut pos = 0;
    if let Some((pri, end)) = pri(&line) {
        map.push_unchecked("facility".into(), Value::from(FACILITIES[pri / 8]));
        map.push_unchecked("severity".into(), Value::from(SEVERITIES[pri % 8]));
        pos = end;
    } else if line.first() == Some(&b'<') {
        return Err(ParseError::new(
            "invalid syslog priority: expected `<0>` to `<191>`",
        ));
    }
    // RFC 5424 puts a version number right after the priority; RFC 3164 a timestamp.
    let is_5424 = pos > 0
        && line.get(pos).is_some_and(u8::is_ascii_digit)
        && (matches!(line.get(pos + 1), None | Some(b' '))
            || (line.get(pos + 1).is_some_and(u8::is_ascii_digit)
                && matches!(line.get(pos + 2), None | Some(b' '))));
    if is_5424 {
        rfc5424(&line, pos, &mut map)?;
    } else {
        rfc3164(&line, pos, &mut map, zone)?;
    }
    Ok(map)
}

/// `<PRI>`: one to three digits, at most 191 (facility 23, severity 7).
fn pri(s: &[u8]) -> Option<(usize, usize)> {
    if s.first() != Some(&b'<') {
        return None;
    }
    let digits = s[1..]
        .iter()
        .take(4)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if !(1..=3).contains(&digits) || s.get(1 + digits) != Some(&b'>') {
        return None;
    }
    let value = s[1..1 + digits]
        .iter()
        .fold(0usize, |acc, b| acc * 10 + usize::from(b - b'0'));
    (value <= 191).then_some((value, digits + 2))
}

// === RFC 5424 ===

fn rfc5424(line: &Bytes, mut pos: usize, map: &mut Map) -> Result<(), ParseError> {
    let s = &line[..];
    let (_version, next) = token(s, pos);
    pos = next;
    let (ts, next) = token(s, pos);
    pos = next;
    if ts.is_empty() {
        return Err(ParseError::new(
            "truncated rfc 5424 header: missing timestamp",
        ));
    }
    if ts != b"-" {
        let nanos = parse_timestamp(ts, 0).ok_or_else(|| {
            ParseError::new(format!("invalid rfc 5424 timestamp `{}`", excerpt(ts)))
        })?;
        map.push_unchecked(fields::TIMESTAMP.into(), Value::Timestamp(nanos));
    }
    let mut header = [
        (fields::HOST, None),
        (fields::APP, None),
        ("proc_id", None),
        ("msgid", None),
    ];
    for (name, slot) in &mut header {
        let start = skip_spaces(s, pos);
        let (tok, next) = token(s, pos);
        if tok.is_empty() {
            return Err(ParseError::new(format!(
                "truncated rfc 5424 header: missing {name}"
            )));
        }
        if tok != b"-" {
            *slot = Some(line.slice(start..start + tok.len()));
        }
        pos = next;
    }
    for (name, slot) in &header {
        if let Some(value) = slot {
            map.push_unchecked((*name).into(), Value::Bytes(value.clone()));
        }
    }
    let start = skip_spaces(s, pos);
    let rest = &s[start..];
    let message_start = if rest.first() == Some(&b'-') && matches!(rest.get(1), None | Some(b' ')) {
        Some(start + 1)
    } else if rest.first() == Some(&b'[') {
        match structured_data(line, start) {
            Some((sd, end)) => {
                map.push_unchecked("sd".into(), Value::Object(sd));
                Some(end)
            }
            // Not valid structured data: a logplex message that happens to start with `[`.
            None => logplex(start, &header, map),
        }
    } else {
        logplex(start, &header, map)
    };
    if let Some(at) = message_start {
        // Relays such as rsyslog keep the space that followed an RFC 3164 tag as part of
        // MSG, so a forwarded message would start with a stray space: skip them all.
        let at = skip_spaces(s, at);
        let message = s.get(at..).unwrap_or_default();
        let bom = if message.starts_with(UTF8_BOM) {
            UTF8_BOM.len()
        } else {
            0
        };
        if message.len() > bom {
            map.push_unchecked(fields::MESSAGE.into(), Value::Bytes(line.slice(at + bom..)));
        }
    }
    Ok(())
}

/// A line without structured data: logplex. The dyno in PROCID becomes `instance`.
fn logplex(start: usize, header: &[(&str, Option<Bytes>); 4], map: &mut Map) -> Option<usize> {
    if let Some(dyno) = &header[2].1 {
        map.push_unchecked(fields::INSTANCE.into(), Value::Bytes(dyno.clone()));
    }
    Some(start)
}

/// `[id name="value" …][id2 …]` → `{id: {name: value}, id2: {…}}`. Returns `None` when the
/// bytes are not well-formed structured data.
fn structured_data(line: &Bytes, mut pos: usize) -> Option<(Map, usize)> {
    let s = &line[..];
    let mut sd = Map::new();
    while s.get(pos) == Some(&b'[') {
        pos += 1;
        let id_len = s[pos..]
            .iter()
            .take_while(|b| **b > b' ' && !matches!(b, b'=' | b']' | b'"'))
            .count();
        if id_len == 0 {
            return None;
        }
        let id_bytes = &s[pos..pos + id_len];
        let id = text(id_bytes);
        pos += id_len;
        let mut params = Map::new();
        loop {
            match s.get(pos)? {
                b']' => {
                    pos += 1;
                    break;
                }
                b' ' => pos += 1,
                _ => {
                    let name_len = s[pos..]
                        .iter()
                        .take_while(|b| **b > b' ' && !matches!(b, b'=' | b']' | b'"'))
                        .count();
                    if name_len == 0 || s.get(pos + name_len..pos + name_len + 2) != Some(b"=\"") {
                        return None;
                    }
                    let name = text(&s[pos..pos + name_len]);
                    let (value, end) = param_value(line, pos + name_len + 2)?;
                    params.push_unchecked(name, Value::Bytes(value));
                    pos = end;
                }
            }
        }
        // `[INFO]` is a valid element in form, but an SD-ID without `@` must be one the IANA
        // registered; an unknown one with no parameters is a message that starts with a
        // bracketed word (common in logplex lines, which carry no structured data).
        if params.is_empty() && !id_bytes.contains(&b'@') && !REGISTERED_SD_IDS.contains(&id_bytes)
        {
            return None;
        }
        params.dedup_keep_last();
        sd.push_unchecked(id, Value::Object(params));
    }
    sd.dedup_keep_last();
    Some((sd, pos))
}

/// A PARAM-VALUE body starting after its opening quote; `\"`, `\\` and `\]` are escapes.
fn param_value(line: &Bytes, start: usize) -> Option<(Bytes, usize)> {
    let s = &line[..];
    let rel = memchr::memchr2(b'"', b'\\', &s[start..])?;
    if s[start + rel] == b'"' {
        return Some((line.slice(start..start + rel), start + rel + 1));
    }
    let mut out = BytesMut::new();
    let mut pos = start;
    while pos < s.len() {
        match s[pos] {
            b'"' => return Some((out.freeze(), pos + 1)),
            b'\\' if matches!(s.get(pos + 1), Some(b'"' | b'\\' | b']')) => {
                out.extend_from_slice(&s[pos + 1..pos + 2]);
                pos += 2;
            }
            b => {
                out.extend_from_slice(&[b]);
                pos += 1;
            }
        }
    }
    None
}

// === RFC 3164 ===

fn rfc3164(line: &Bytes, pos: usize, map: &mut Map, zone: &LocalZone) -> Result<(), ParseError> {
    let s = &line[..];
    let had_pri = pos > 0;
    let mut at = pos;
    match leading_timestamp_in(&s[pos..], now_nanos(), zone) {
        Some((nanos, used)) => {
            map.push_unchecked(fields::TIMESTAMP.into(), Value::Timestamp(nanos));
            at = skip_spaces(s, pos + used);
        }
        // RFC 3164 §4.3.2: without a valid timestamp the whole rest is the message, but a
        // line with neither priority nor timestamp is not syslog at all.
        None if !had_pri => {
            return Err(ParseError::new(format!(
                "not a syslog line: expected `<priority>` or a timestamp at `{}`",
                excerpt(s)
            )))
        }
        None => {
            push_message(line, at, map);
            return Ok(());
        }
    }
    let (first, after_first) = token(s, at);
    if !first.is_empty() && !is_tag(first) {
        // The first word is the hostname unless it already looks like a tag.
        let (second, _) = token(s, after_first);
        if is_tag(second) {
            map.push_unchecked(
                fields::HOST.into(),
                Value::Bytes(line.slice(at..at + first.len())),
            );
            at = skip_spaces(s, after_first);
        }
    }
    let (tag, after_tag) = token(s, at);
    if is_tag(tag) {
        let name_end = tag
            .iter()
            .position(|b| matches!(b, b'[' | b':'))
            .unwrap_or(tag.len());
        if name_end > 0 {
            map.push_unchecked(
                fields::APP.into(),
                Value::Bytes(line.slice(at..at + name_end)),
            );
        }
        if tag.get(name_end) == Some(&b'[') {
            if let Some(close) = tag.iter().rposition(|b| *b == b']') {
                if close > name_end + 1 {
                    let pid = line.slice(at + name_end + 1..at + close);
                    map.push_unchecked("proc_id".into(), Value::Bytes(pid));
                }
            }
        }
        at = skip_spaces(s, after_tag);
    }
    push_message(line, at, map);
    Ok(())
}

/// A tag ends the way syslog daemons print it: `name:` or `name[pid]:`.
fn is_tag(tok: &[u8]) -> bool {
    if tok.len() < 2 || tok.len() > 128 || tok.first() == Some(&b'[') {
        return false;
    }
    match tok.last() {
        Some(b':') => true,
        // `name[pid]` without the colon is common enough from busybox and some routers.
        Some(b']') => tok.contains(&b'['),
        _ => false,
    }
}

fn push_message(line: &Bytes, at: usize, map: &mut Map) {
    if at < line.len() {
        map.push_unchecked(fields::MESSAGE.into(), Value::Bytes(line.slice(at..)));
    }
}

// === helpers ===

fn skip_spaces(s: &[u8], mut pos: usize) -> usize {
    while s.get(pos) == Some(&b' ') {
        pos += 1;
    }
    pos
}

/// The next space-delimited token from `pos` (after skipping spaces) and the position
/// right after it.
fn token(s: &[u8], pos: usize) -> (&[u8], usize) {
    let start = skip_spaces(s, pos).min(s.len());
    let len = memchr::memchr(b' ', &s[start..]).unwrap_or(s.len() - start);
    (&s[start..start + len], start + len)
}

fn text(raw: &[u8]) -> CompactString {
    CompactString::from(String::from_utf8_lossy(raw))
}

#[cfg(test)]
#[path = "syslog_tests.rs"]
mod tests;
