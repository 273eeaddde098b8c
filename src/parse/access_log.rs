//! HTTP access logs in the Common and Combined Log Formats (Apache, nginx, most proxies).
//!
//! ```text
//! common    127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326
//! combined  … 200 2326 "http://example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"
//! ```
//!
//! Fields: `client`, `ident`, `user`, `timestamp`, `method`, `path`, `protocol` (or `request`
//! when the request line does not split into three), `status`, `size`, `referrer`, `agent`.
//! `-` means absent. The remote address is `client`, not `host`: `host` is the machine that
//! emitted the log, which enrichment sets. The raw line stays the event's message, so no
//! `message` field is produced. Anything after the combined fields (nginx users often append
//! `$request_time` or `$http_x_forwarded_for`) is ignored rather than rejected.

use bytes::Bytes;

use super::timestamp::parse_timestamp;
use super::{trim_line_end_bytes, ParseError};
use crate::event::{fields, Map, Value};

/// Parses one Common or Combined Log Format line.
pub fn access_log(input: &[u8]) -> Result<Map, ParseError> {
    parse(&Bytes::copy_from_slice(input))
}

pub(super) fn parse(input: &Bytes) -> Result<Map, ParseError> {
    let line = trim_line_end_bytes(input);
    let mut cur = Reader {
        line: &line,
        pos: 0,
    };
    let mut map = Map::with_capacity(12);

    let client = cur
        .word()
        .ok_or_else(|| expected("the client address", 0))?;
    cur.push_unless_dash(&mut map, "client", client);
    let ident = cur
        .word()
        .ok_or_else(|| expected("the ident field", cur.pos))?;
    cur.push_unless_dash(&mut map, "ident", ident);
    let user = cur
        .word()
        .ok_or_else(|| expected("the user field", cur.pos))?;
    cur.push_unless_dash(&mut map, "user", user);

    let (ts_start, ts_end) = cur
        .delimited(b'[', b']')
        .ok_or_else(|| expected("`[time]`", cur.pos))?;
    let ts = &line[ts_start..ts_end];
    // A time we cannot read is kept as text rather than failing the line: normalisation
    // may still make sense of it, and the rest of the line is valuable anyway.
    let ts_value = match parse_timestamp(ts, 0) {
        Some(nanos) => Value::Timestamp(nanos),
        None => Value::Bytes(line.slice(ts_start..ts_end)),
    };
    map.push_unchecked(fields::TIMESTAMP.into(), ts_value);

    let (req_start, req_end) = cur
        .quoted()
        .ok_or_else(|| expected("`\"request\"`", cur.pos))?;
    request_line(&line, req_start, req_end, &mut map);

    let status = cur
        .word()
        .ok_or_else(|| expected("the status code", cur.pos))?;
    let status = number(&line[status.0..status.1])
        .filter(|s| (100..=999).contains(s))
        .ok_or_else(|| expected("a three-digit status code", status.0))?;
    map.push_unchecked("status".into(), Value::Integer(status));

    let size = cur
        .word()
        .ok_or_else(|| expected("the response size", cur.pos))?;
    match &line[size.0..size.1] {
        b"-" => {}
        digits => {
            let size = number(digits).ok_or_else(|| expected("a response size", size.0))?;
            map.push_unchecked("size".into(), Value::Integer(size));
        }
    }

    // Combined format: two more quoted fields. Common format simply ends here.
    if let Some(referrer) = cur.quoted() {
        cur.push_unless_dash(&mut map, "referrer", referrer);
        if let Some(agent) = cur.quoted() {
            cur.push_unless_dash(&mut map, "agent", agent);
        }
    }
    Ok(map)
}

/// `GET /path HTTP/1.1` → method, path, protocol; anything else is kept whole as `request`.
fn request_line(line: &Bytes, start: usize, end: usize, map: &mut Map) {
    let request = &line[start..end];
    let mut parts = request.splitn(3, |b| *b == b' ');
    if let (Some(method), Some(path), Some(protocol)) = (parts.next(), parts.next(), parts.next()) {
        let well_formed = !method.is_empty()
            && method.iter().all(u8::is_ascii_uppercase)
            && !path.is_empty()
            && protocol.starts_with(b"HTTP/");
        if well_formed {
            let path_start = start + method.len() + 1;
            let protocol_start = path_start + path.len() + 1;
            map.push_unchecked(
                "method".into(),
                Value::Bytes(line.slice(start..path_start - 1)),
            );
            map.push_unchecked(
                "path".into(),
                Value::Bytes(line.slice(path_start..protocol_start - 1)),
            );
            map.push_unchecked(
                "protocol".into(),
                Value::Bytes(line.slice(protocol_start..end)),
            );
            return;
        }
    }
    if request != b"-" && !request.is_empty() {
        map.push_unchecked("request".into(), Value::Bytes(line.slice(start..end)));
    }
}

fn number(digits: &[u8]) -> Option<i64> {
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0i64, |acc, b| acc * 10 + i64::from(b - b'0')),
    )
}

fn expected(what: &str, pos: usize) -> ParseError {
    ParseError::new(format!(
        "not an access log line: expected {what} at column {}",
        pos + 1
    ))
}

/// Reads the space-separated parts of an access log line as byte ranges of `line`.
struct Reader<'a> {
    line: &'a Bytes,
    pos: usize,
}

impl Reader<'_> {
    fn skip_spaces(&mut self) {
        while self.line.get(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
    }

    /// The next run of non-space bytes.
    fn word(&mut self) -> Option<(usize, usize)> {
        self.skip_spaces();
        let start = self.pos;
        let len = memchr::memchr(b' ', &self.line[start..]).unwrap_or(self.line.len() - start);
        self.pos = start + len;
        (len > 0).then_some((start, start + len))
    }

    /// `open … close` with no nesting, as the `[time]` field.
    fn delimited(&mut self, open: u8, close: u8) -> Option<(usize, usize)> {
        self.skip_spaces();
        if self.line.get(self.pos) != Some(&open) {
            return None;
        }
        let start = self.pos + 1;
        let len = memchr::memchr(close, &self.line[start..])?;
        self.pos = start + len + 1;
        Some((start, start + len))
    }

    /// A double-quoted field. Apache escapes a quote inside as `\"` (nginx as `\x22`, which
    /// needs no care), so a quote preceded by a backslash does not end the field. Escapes
    /// are kept as logged: they are part of what the client sent.
    fn quoted(&mut self) -> Option<(usize, usize)> {
        self.skip_spaces();
        if self.line.get(self.pos) != Some(&b'"') {
            return None;
        }
        let start = self.pos + 1;
        let mut at = start;
        loop {
            let rel = memchr::memchr2(b'"', b'\\', &self.line[at..])?;
            at += rel;
            if self.line[at] == b'\\' {
                at += 2;
                if at > self.line.len() {
                    return None;
                }
                continue;
            }
            self.pos = at + 1;
            return Some((start, at));
        }
    }

    fn push_unless_dash(&self, map: &mut Map, name: &str, (start, end): (usize, usize)) {
        if &self.line[start..end] != b"-" {
            map.push_unchecked(name.into(), Value::Bytes(self.line.slice(start..end)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<&str, &str>) {
        let got = access_log(input.as_bytes())
            .map(|m| serde_json::to_string(&m).unwrap())
            .map_err(|e| e.reason);
        let expected = expected.map(str::to_string).map_err(str::to_string);
        assert_eq!(got, expected, "input: {input:?}");
    }

    #[test]
    fn common_and_combined() {
        check(
            r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#,
            Ok(
                r#"{"client":"127.0.0.1","user":"frank","timestamp":"2000-10-10T20:55:36.000000Z","method":"GET","path":"/apache_pb.gif","protocol":"HTTP/1.0","status":200,"size":2326}"#,
            ),
        );
        check(
            r#"10.1.2.3 - u42 [23/Nov/2026:10:00:00 +0000] "POST /api/orders?id=1 HTTP/1.1" 503 64 "https://shop.example.com/" "Mozilla/5.0 (X11; Linux x86_64)""#,
            Ok(
                r#"{"client":"10.1.2.3","user":"u42","timestamp":"2026-11-23T10:00:00.000000Z","method":"POST","path":"/api/orders?id=1","protocol":"HTTP/1.1","status":503,"size":64,"referrer":"https://shop.example.com/","agent":"Mozilla/5.0 (X11; Linux x86_64)"}"#,
            ),
        );
        check(
            "::1 id - [23/Nov/2026:10:00:00 +0000] \"-\" 400 - \"-\" \"-\" 0.003 \"1.2.3.4\"\n",
            Ok(
                r#"{"client":"::1","ident":"id","timestamp":"2026-11-23T10:00:00.000000Z","status":400}"#,
            ),
        );
        check(
            r#"1.2.3.4 - - [bad time] "\x16\x03\x01 junk" 400 0 "-" "say \"hi\"""#,
            Ok(
                r#"{"client":"1.2.3.4","timestamp":"bad time","request":"\\x16\\x03\\x01 junk","status":400,"size":0,"agent":"say \\\"hi\\\""}"#,
            ),
        );
    }

    #[test]
    fn errors() {
        check(
            "",
            Err("not an access log line: expected the client address at column 1"),
        );
        check(
            "1.2.3.4 - -",
            Err("not an access log line: expected `[time]` at column 12"),
        );
        check(
            "081109 203615 148 INFO dfs",
            Err("not an access log line: expected `[time]` at column 19"),
        );
        check(
            r#"1.2.3.4 - - [23/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" abc 1"#,
            Err("not an access log line: expected a three-digit status code at column 59"),
        );
        check(
            r#"1.2.3.4 - - [23/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1"#,
            Err("not an access log line: expected `\"request\"` at column 42"),
        );
        check(
            r#"1.2.3.4 - - [23/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200"#,
            Err("not an access log line: expected the response size at column 62"),
        );
    }
}
