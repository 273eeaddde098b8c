//! Per-line format detection.
//!
//! `auto` runs on every line of a stream whose format nobody declared, so it decides from the
//! first bytes which single parser is worth trying, instead of trying each in turn: a line
//! costs one full parse at most, and a plain-text line costs a few byte comparisons. Order of
//! preference, each with its gate:
//!
//! | format     | gate (first bytes)                            | then                          |
//! |------------|-----------------------------------------------|-------------------------------|
//! | JSON       | `{` after blanks                              | must parse as an object       |
//! | syslog     | `<digit`, or `Mmm dd ` (RFC 3164 without PRI) | must parse                    |
//! | access log | three words, then ` [`                        | must parse                    |
//! | logfmt     | the first word is `key=`                      | ≥ 2 pairs, ≥ 75% of the bytes |
//! | text       | anything else                                 | `{message: line}`             |
//!
//! A line that passes a gate but fails its parser is plain text: `auto` never fails.

use bytes::Bytes;

use super::zone::{LocalZone, UTC};
use super::{access_log, json, leading_blanks, logfmt, syslog, trim_line_end_bytes};
use crate::event::{fields, Map, Value};

/// The format `auto` recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Json,
    Syslog,
    AccessLog,
    Logfmt,
    Text,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Syslog => "syslog",
            Format::AccessLog => "access_log",
            Format::Logfmt => "logfmt",
            Format::Text => "text",
        }
    }
}

/// Parses one line in whatever format it is in; plain text becomes `{message: line}`.
pub fn auto(input: Bytes) -> Map {
    detect(input).1
}

/// Like [`auto`], and also says which format was recognised.
pub fn detect(input: Bytes) -> (Format, Map) {
    detect_in(input, &UTC)
}

/// [`detect`] with a syslog time (RFC 3164 has no zone) read in `zone`.
pub fn detect_in(input: Bytes, zone: &LocalZone) -> (Format, Map) {
    let line = trim_line_end_bytes(&input);
    let s = &line[..];
    let first = s.get(leading_blanks(s)).copied();
    let parsed = match first {
        Some(b'{') => json::json(s).ok().map(|m| (Format::Json, m)),
        Some(b'<') if s.get(1).is_some_and(u8::is_ascii_digit) => syslog::parse_in(&line, zone)
            .ok()
            .map(|m| (Format::Syslog, m)),
        Some(b) if b.is_ascii_alphanumeric() || b == b':' => {
            if starts_with_syslog_date(s) {
                syslog::parse_in(&line, zone)
                    .ok()
                    .map(|m| (Format::Syslog, m))
            } else if looks_like_access_log(s) {
                access_log::parse(&line)
                    .ok()
                    .map(|m| (Format::AccessLog, m))
            } else if starts_with_logfmt_pair(s) {
                logfmt_if_mostly_pairs(&line).map(|m| (Format::Logfmt, m))
            } else {
                None
            }
        }
        _ => None,
    };
    parsed.unwrap_or_else(|| (Format::Text, text(line)))
}

fn text(line: Bytes) -> Map {
    let mut map = Map::with_capacity(1);
    map.push_unchecked(fields::MESSAGE.into(), Value::Bytes(line));
    map
}

/// `Mmm dd hh:` or `Mmm  d hh:`: the BSD syslog date daemons write to files.
fn starts_with_syslog_date(s: &[u8]) -> bool {
    const MONTHS: &[u8] = b"JanFebMarAprMayJunJulAugSepOctNovDec";
    let Some(head) = s.get(..10) else {
        return false;
    };
    let is_month = MONTHS.chunks(3).any(|m| m == &head[..3]);
    is_month
        && head[3] == b' '
        && (head[4].is_ascii_digit() || head[4] == b' ')
        && head[5].is_ascii_digit()
        && ((head[6] == b' ' && head[9] == b':') || (head[6].is_ascii_digit() && head[7] == b' '))
}

/// Three space-separated words, then `[`: `client ident user [time]`.
fn looks_like_access_log(s: &[u8]) -> bool {
    // Within the first 300 bytes: an address, ident and user name are short.
    let head = &s[..s.len().min(300)];
    let mut pos = 0;
    for _ in 0..3 {
        match memchr::memchr(b' ', &head[pos..]) {
            Some(0) | None => return false,
            Some(n) => pos += n + 1,
        }
    }
    head.get(pos) == Some(&b'[')
}

/// The first word is `key=`, with a key as loggers write them (`ts`, `http.status`, `@t`).
fn starts_with_logfmt_pair(s: &[u8]) -> bool {
    let key = s
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'@' | b'/'))
        .count();
    key > 0 && s.get(key) == Some(&b'=')
}

/// Parses logfmt and keeps the result only when pairs make up the line: at least two of
/// them, covering three quarters of its non-blank bytes. Prose with an `a=b` in it stays
/// text, where its words are more use as a message than as a pile of `true` flags.
fn logfmt_if_mostly_pairs(line: &Bytes) -> Option<Map> {
    let (map, coverage) = logfmt::parse(line).ok()?;
    let mostly = coverage.pairs >= 2 && coverage.pair_bytes * 4 >= coverage.token_bytes * 3;
    mostly.then_some(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, format: Format, expected: &str) {
        let (got_format, map) = detect(Bytes::copy_from_slice(input.as_bytes()));
        let json = serde_json::to_string(&map).unwrap();
        assert_eq!(
            (got_format, json.as_str()),
            (format, expected),
            "input: {input:?}"
        );
    }

    #[test]
    fn detects_each_format() {
        check(
            r#"{"level":"info","msg":"hi"}"#,
            Format::Json,
            r#"{"level":"info","msg":"hi"}"#,
        );
        check(r#"  {"a":1}"#, Format::Json, r#"{"a":1}"#);
        check(
            "<190>1 2026-11-23T10:00:00.123+00:00 host app web.1 - started",
            Format::Syslog,
            r#"{"facility":"local7","severity":"info","timestamp":"2026-11-23T10:00:00.123000Z","host":"host","app":"app","proc_id":"web.1","instance":"web.1","message":"started"}"#,
        );
        check(
            r#"10.0.0.1 - u1 [23/Nov/2026:10:00:00 +0000] "GET /x HTTP/1.1" 404 12 "-" "curl/8.5.0""#,
            Format::AccessLog,
            r#"{"client":"10.0.0.1","user":"u1","timestamp":"2026-11-23T10:00:00.000000Z","method":"GET","path":"/x","protocol":"HTTP/1.1","status":404,"size":12,"agent":"curl/8.5.0"}"#,
        );
        check(
            r#"ts=2024-05-01T00:00:00.123Z level=warn msg="cache miss" status=200"#,
            Format::Logfmt,
            r#"{"ts":"2024-05-01T00:00:00.123Z","level":"warn","msg":"cache miss","status":"200"}"#,
        );
        check(
            "hello world\n",
            Format::Text,
            r#"{"message":"hello world"}"#,
        );
    }

    #[test]
    fn near_misses_are_text() {
        let table = [
            // Broken JSON, a JSON array, a bad priority, a truncated access log line.
            r#"{"a":"#,
            "[1,2,3]",
            "<999>1 - - - - - -",
            "<3 is love",
            r#"1.2.3.4 - - [23/Nov/2026:10:00:00 +0000] "GET /"#,
            // logfmt-looking prose: one pair, or pairs lost in words, or a bare first word.
            "user=bob logged in from the office after lunch today",
            "x=1 and then a lot of other words that are not pairs at all",
            "connection pool stats: active=3 idle=4 waiting=1 max=64",
            // Plain lines in the shapes of the loghub corpus.
            "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1",
            "2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181] - x",
            "[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok",
            "17/06/09 20:10:40 INFO spark.SecurityManager: Changing view acls to: yarn,curi",
            "",
            "\u{0}\u{1}binary",
        ];
        for line in table {
            let (format, map) = detect(Bytes::copy_from_slice(line.as_bytes()));
            assert_eq!(format, Format::Text, "input: {line:?}");
            let expected = (!line.is_empty()).then(|| Value::from(line));
            assert_eq!(
                map.get("message").cloned(),
                expected.or(Some(Value::from("")))
            );
        }
    }

    #[test]
    fn syslog_files_without_priority_are_syslog() {
        let (format, map) = detect(Bytes::from_static(
            b"Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
        ));
        assert_eq!(format, Format::Syslog);
        assert_eq!(map.get("app"), Some(&Value::from("sshd")));
        assert_eq!(
            map.get("message"),
            Some(&Value::from("Invalid user webmaster from 173.234.31.186"))
        );
    }

    #[test]
    fn invalid_utf8_is_text() {
        let map = auto(Bytes::from_static(b"\xff\xfe oops"));
        assert_eq!(
            map.get("message"),
            Some(&Value::Bytes(Bytes::from_static(b"\xff\xfe oops")))
        );
    }
}
