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
//! | access log | three words, then ` [`                        | `] "` follows; must parse     |
//! | logfmt     | the first word is `key=`                      | ≥ 2 pairs, ≥ 75% of the bytes |
//! | text       | anything else                                 | `{message: line}`             |
//!
//! A line that passes a gate but fails its parser is plain text: `auto` never fails.
//!
//! Lines are detected one by one, with no memory of the stream (file, connection,
//! container) they came from. Remembering a stream's layout and trying it first was
//! considered (issue 17): with the gates above it could only reorder a few byte comparisons,
//! and each would still have to run for a line to get the answer full detection gives it.
//! What a repeated layout did cost was a gate passing and its parser then failing on every
//! line; the gates check what their parsers need before calling them, so that is rare
//! (logfmt's coverage is the exception: only the parse measures it).

use bytes::Bytes;

use super::zone::{LocalZone, UTC};
use super::{access_log, json, leading_blanks, logfmt, syslog, trim_line_end, trim_line_end_bytes};
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
    // Trimmed in place: the parsers below then borrow the line and a text line moves into
    // its event, with no reference count taken and dropped on the way.
    let mut line = input;
    trim_text_line(&mut line);
    match structured(&line, zone) {
        Some(parsed) => parsed,
        None => (Format::Text, text(line)),
    }
}

/// [`detect_in`] without building the fields of a plain-text line: `None` when the line is
/// text. A caller whose event already holds the line as its message keeps it there
/// (trimmed with [`trim_text_line`]) instead of swapping in a new map with a copy of it.
pub fn detect_structured_in(input: &Bytes, zone: &LocalZone) -> Option<(Format, Map)> {
    structured(&trim_line_end_bytes(input), zone)
}

/// Strips the line terminator, as a text line's message is stored.
pub fn trim_text_line(line: &mut Bytes) {
    line.truncate(trim_line_end(line).len());
}

/// The fields [`detect`] gives a plain-text line: `{message: line}`, terminator stripped.
pub fn text_fields(mut line: Bytes) -> Map {
    trim_text_line(&mut line);
    text(line)
}

/// The structured formats, tried on a line without its terminator.
fn structured(line: &Bytes, zone: &LocalZone) -> Option<(Format, Map)> {
    let s = &line[..];
    let first = s.get(leading_blanks(s)).copied();
    match first {
        // `json_bytes`, not `json`: its strings are slices of this line, not of a copy.
        Some(b'{') => json::json_bytes(line).ok().map(|m| (Format::Json, m)),
        Some(b'<') if s.get(1).is_some_and(u8::is_ascii_digit) => syslog::parse_in(line, zone)
            .ok()
            .map(|m| (Format::Syslog, m)),
        Some(b) if b.is_ascii_alphanumeric() || b == b':' => {
            if starts_with_syslog_date(s) {
                syslog::parse_in(line, zone)
                    .ok()
                    .map(|m| (Format::Syslog, m))
            } else if let Some(open) = three_words_then_bracket(s) {
                request_follows(s, open)
                    .then(|| access_log::parse(line).ok())
                    .flatten()
                    .map(|m| (Format::AccessLog, m))
            } else if starts_with_logfmt_pair(s) {
                logfmt_if_mostly_pairs(line).map(|m| (Format::Logfmt, m))
            } else {
                None
            }
        }
        _ => None,
    }
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

/// Three space-separated words, then `[`: `client ident user [time]`. Returns where the
/// `[` is. A line of this shape is the access-log parser's, or text: never logfmt.
fn three_words_then_bracket(s: &[u8]) -> Option<usize> {
    // Within the first 300 bytes: an address, ident and user name are short.
    let head = &s[..s.len().min(300)];
    let mut pos = 0;
    for _ in 0..3 {
        // Words are short: a plain loop finds their ends sooner than a vector search.
        match head[pos..].iter().position(|b| *b == b' ') {
            Some(0) | None => return None,
            Some(n) => pos += n + 1,
        }
    }
    (head.get(pos) == Some(&b'[')).then_some(pos)
}

/// After the `[` at `open`: the first `]`, any spaces, then the quote that opens the request,
/// as the parser reads them. Java's `date time LEVEL [thread] msg` and PostgreSQL's `date
/// time zone [pid] LOG:` have the three words and the bracket but no quote; handing them to
/// the parser to fail cost more than the rest of their detection (a partly built map and an
/// error message per line).
fn request_follows(s: &[u8], open: usize) -> bool {
    let Some(close) = memchr::memchr(b']', &s[open + 1..]) else {
        return false;
    };
    let after = open + close + 2;
    let quote = after + s[after..].iter().take_while(|b| **b == b' ').count();
    s.get(quote) == Some(&b'"')
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

    /// Detection as if every line with three words and a `[` were handed to the access-log
    /// parser, as the gate did before it checked for `]` and the request's quote.
    fn trying_the_parser(input: Bytes) -> (Format, String) {
        let mut line = input.clone();
        trim_text_line(&mut line);
        let s = &line[..];
        let three_words_then_bracket = {
            let head = &s[..s.len().min(300)];
            let mut pos = Some(0);
            for _ in 0..3 {
                pos = pos.and_then(|p| match memchr::memchr(b' ', &head[p..]) {
                    Some(0) | None => None,
                    Some(n) => Some(p + n + 1),
                });
            }
            pos.is_some_and(|p| head.get(p) == Some(&b'['))
        };
        let first = s.get(leading_blanks(s)).copied();
        let claimed = first.is_some_and(|b| b.is_ascii_alphanumeric() || b == b':')
            && !starts_with_syslog_date(s)
            && three_words_then_bracket;
        let (format, map) = if claimed {
            match access_log::parse(&line) {
                Ok(map) => (Format::AccessLog, map),
                Err(_) => (Format::Text, text(line)),
            }
        } else {
            detect(input)
        };
        (format, serde_json::to_string(&map).unwrap())
    }

    /// Checks `line` gets the same answer both ways; says whether the parser was spared.
    fn same_answer(line: &[u8]) -> bool {
        let input = Bytes::copy_from_slice(line);
        let (format, map) = detect(input.clone());
        let got = (format, serde_json::to_string(&map).unwrap());
        assert_eq!(
            got,
            trying_the_parser(input),
            "line: {:?}",
            String::from_utf8_lossy(line)
        );
        three_words_then_bracket(line).is_some_and(|open| !request_follows(line, open))
    }

    /// The gate `line` passed when its parser then failed and it became text.
    fn failed_parse(line: &[u8]) -> Option<&'static str> {
        let s = line.trim_ascii_end();
        let first = *s.get(leading_blanks(s))?;
        if detect(Bytes::copy_from_slice(line)).0 != Format::Text {
            return None;
        }
        Some(match first {
            b'{' => "json",
            b'<' if s.get(1).is_some_and(u8::is_ascii_digit) => "syslog",
            b if !(b.is_ascii_alphanumeric() || b == b':') => return None,
            _ if starts_with_syslog_date(s) => "syslog",
            _ if three_words_then_bracket(s).is_some_and(|o| request_follows(s, o)) => "access_log",
            _ if three_words_then_bracket(s).is_some() => return None,
            _ if starts_with_logfmt_pair(s) => "logfmt",
            _ => return None,
        })
    }

    /// Every line of the layout corpus and of the loghub sets gets the same answer as when
    /// the access-log parser was tried on it; the log4j and PostgreSQL lines it no longer
    /// tries are among them.
    #[test]
    fn the_access_log_gate_only_spares_failing_parses() {
        let root = env!("CARGO_MANIFEST_DIR");
        let mut files: Vec<std::path::PathBuf> =
            std::fs::read_dir(format!("{root}/tests/corpus/formats"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "tsv"))
                .collect();
        let beside = std::path::PathBuf::from(format!("{root}/../shared/corpus/loghub"));
        let loghub = if beside.is_dir() {
            beside
        } else {
            std::path::PathBuf::from("/work/shared/corpus/loghub")
        };
        for set in ["Apache", "HDFS", "Linux", "OpenSSH", "Spark", "Zookeeper"] {
            let path = loghub.join(set).join(format!("{set}_2k.log"));
            if path.is_file() {
                files.push(path);
            }
        }
        let mut spared = std::collections::BTreeMap::new();
        let mut failed = std::collections::BTreeMap::new();
        let mut lines = 0;
        for path in &files {
            let is_tsv = path.extension().is_some_and(|x| x == "tsv");
            for row in std::fs::read_to_string(path).unwrap().lines() {
                let line = if is_tsv {
                    match row.splitn(3, '\t').nth(2) {
                        Some(line) if !row.starts_with('#') => line,
                        _ => continue,
                    }
                } else {
                    row
                };
                lines += 1;
                let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                if same_answer(line.as_bytes()) {
                    *spared.entry(name.clone()).or_insert(0) += 1;
                }
                if let Some(gate) = failed_parse(line.as_bytes()) {
                    *failed.entry((name, gate)).or_insert(0) += 1;
                }
            }
        }
        // `--nocapture` shows where a parse is still tried in vain.
        eprintln!("{lines} lines; access-log parse spared: {spared:?}");
        eprintln!("a gate passed, its parser failed: {failed:?}");
        assert!(lines > 2_000, "{lines} lines read");
        assert!(spared.get("log4j").is_some_and(|n| *n > 0), "{spared:?}");
        assert!(
            spared.get("postgresql").is_some_and(|n| *n > 0),
            "{spared:?}"
        );
    }

    #[test]
    fn the_access_log_gate_at_its_edges() {
        let table = [
            r#"1.2.3.4 - - [23/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1"#,
            r#"1.2.3.4 - - [23/Nov/2026:10:00:00 +0000]   "GET / HTTP/1.1" 200 1"#,
            r#"1.2.3.4 - - [23/Nov/2026:10:00:00 +0000]"GET / HTTP/1.1" 200 1"#,
            r#"1.2.3.4 - - [x] "-" 400 -"#,
            r#"1.2.3.4 - - [] "" 200 0"#,
            r#"1.2.3.4 - - [23/Nov/2026:10:00:00 +0000] GET / HTTP/1.1" 200 1"#,
            r#"1.2.3.4 - - [23/Nov/2026:10:00:00 +0000 "GET / HTTP/1.1" 200 1"#,
            r#"1.2.3.4 - - [a] ] "GET / HTTP/1.1" 200 1"#,
            "1.2.3.4 - - [a]\t\"GET / HTTP/1.1\" 200 1",
            r#"1.2.3.4 - - [a] ""#,
            r#"1.2.3.4 - - ["#,
            r#"1.2.3.4 - - []"#,
            "a=1 b=2 c=3 [x] d=4 e=5",
            "2026-12-04 06:35:13,319 ERROR [main] Main - retrying",
            "2026-12-06 09:59:07.576 UTC [25651] LOG:  starting PostgreSQL 15.18",
        ];
        for line in table {
            same_answer(line.as_bytes());
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        #[test]
        fn lines_near_the_access_log_gate_get_the_same_answer(
            line in r#"[a-z0-9.:=-]{1,5} [a-z=-]{1,3} [a-z=-]{1,3} \[[a-z0-9 \[\]"/:+\\-]{0,40}"#,
        ) {
            same_answer(line.as_bytes());
        }
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
