//! Format parsers and normalisation: turn one log line into typed fields.
//!
//! Every parser here is a pure function over bytes and is **total**: any input, including
//! invalid UTF-8, hostile nesting and multi-megabyte lines, yields either fields or a
//! [`ParseError`], in time linear in the input. Nothing here panics on input, allocates in
//! proportion to anything but the input, or does IO; the codecs call these on the hot path.
//!
//! - [`json`], [`logfmt`], [`syslog`], [`access_log`] and [`RegexParser`] parse one format.
//! - [`auto`] detects the format of each line from its first bytes and never fails: a line
//!   nothing recognises becomes `{message: line}`.
//! - [`normalize`] maps the many spellings of a timestamp and a severity onto the fields
//!   `timestamp` ([`Value::Timestamp`](crate::event::Value::Timestamp)) and `level` (one vocabulary, see [`Level`]).
//!
//! Parsers that can borrow take `&Bytes` internally so that string fields are slices of the
//! input line rather than copies; the public `&[u8]` entry points copy the line once.
//!
//! Architecture invariant: this module knows nothing about codecs, transforms or the
//! topology; it maps bytes to a [`Map`] and an event to a normalised event.

mod access_log;
mod auto;
mod civil;
mod json;
mod json_flat;
mod json_keys;
mod layout;
mod level;
mod logfmt;
mod normalize;
mod regex;
mod syslog;
mod timestamp;
mod timestamp_search;
mod zone;

use std::borrow::Cow;

use bytes::Bytes;

use crate::event::Map;

pub use self::access_log::access_log;
pub use self::auto::{
    auto, detect, detect_in, detect_structured_in, text_fields, trim_text_line, Format,
};
pub use self::json::{json, json_bytes};
pub use self::level::{level_in_text, Level};
pub use self::logfmt::logfmt;
pub use self::normalize::{normalize, normalize_in, Normalized, TimestampSource, READ_AT};
pub use self::regex::RegexParser;
pub use self::syslog::syslog;
pub use self::timestamp::{leading_timestamp, parse_timestamp, timestamp_from_value};
pub use self::zone::LocalZone;

/// [`logfmt`] for a line already held in `Bytes`: string fields are slices of it, no copy.
pub fn logfmt_bytes(input: &Bytes) -> Result<Map, ParseError> {
    logfmt::parse(input).map(|(map, _)| map)
}

/// [`syslog`] for a line already held in `Bytes`: string fields are slices of it, no copy.
pub fn syslog_bytes(input: &Bytes) -> Result<Map, ParseError> {
    syslog::parse(input)
}

/// [`syslog_bytes`] with an RFC 3164 time (which has no zone) read in `zone`.
pub fn syslog_bytes_in(input: &Bytes, zone: &LocalZone) -> Result<Map, ParseError> {
    syslog::parse_in(input, zone)
}

/// [`access_log`] for a line already held in `Bytes`: string fields are slices of it.
pub fn access_log_bytes(input: &Bytes) -> Result<Map, ParseError> {
    access_log::parse(input)
}

/// Why a line could not be parsed. The text is lowercase and says where when it can
/// (`invalid json at column 17: expected `:``).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason}")]
pub struct ParseError {
    pub reason: String,
}

impl ParseError {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// Strips the line terminator(s) every parser ignores.
fn trim_line_end(input: &[u8]) -> &[u8] {
    let mut end = input.len();
    while end > 0 && matches!(input[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &input[..end]
}

/// Like [`trim_line_end`], but keeps the result a zero-copy slice of `input`. A line with
/// no terminator (the usual case: framing strips it) is borrowed, not cloned: a clone is an
/// atomic reference count up and down, a measurable share of parsing a short line.
fn trim_line_end_bytes(input: &Bytes) -> Cow<'_, Bytes> {
    let len = trim_line_end(input).len();
    if len == input.len() {
        Cow::Borrowed(input)
    } else {
        Cow::Owned(input.slice(..len))
    }
}

/// Length of the run of ASCII spaces and tabs at the start of `s`.
fn leading_blanks(s: &[u8]) -> usize {
    s.iter().take_while(|b| matches!(b, b' ' | b'\t')).count()
}

/// A short, printable excerpt of `s` for error messages, so that a huge or binary line
/// never ends up verbatim in an error (and from there in logs and metrics).
fn excerpt(s: &[u8]) -> String {
    const MAX: usize = 24;
    let cut = &s[..s.len().min(MAX)];
    let mut out: String = String::from_utf8_lossy(cut)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.len() > MAX {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    //! Totality: every parser, on any bytes, returns instead of panicking, in linear time.

    use super::*;
    use crate::event::Event;
    use proptest::prelude::*;

    /// Runs `line` through every entry point; the test fails if any of them panics.
    fn run_all(line: &[u8]) {
        let bytes = Bytes::copy_from_slice(line);
        let _ = json(line);
        let _ = logfmt(line);
        let _ = syslog(line);
        let _ = access_log(line);
        let _ = leading_timestamp(line, 0);
        let _ = parse_timestamp(line, 0);
        let _ = level_in_text(line);
        let _ = Level::from_word(line);
        let mut event = Event::new(auto(bytes));
        event.meta.received_at = 1;
        normalize(&mut event);
    }

    const SAMPLES: &[&str] = &[
        r#"{"ts":"2024-05-01T00:00:00.123Z","level":"info","msg":"a \"b\"","n":[1,{"x":null}]}"#,
        r#"ts=2024-05-01T00:00:00.123Z level=warn msg="cache \"miss\"" flag"#,
        r#"<165>1 2003-10-11T22:14:15.003Z host app 1 ID47 [a@1 k="v\]" j="\\"][b@2] msg"#,
        "<190>1 2026-11-23T10:00:00.123+00:00 host app web.1 - message",
        "<34>Oct 11 22:14:15 mymachine su[12]: 'su root' failed",
        "Dec  4 06:55:46 LabSZ sshd[24200]: error: x",
        r#"10.0.0.1 - u1 [23/Nov/2026:10:00:00 +0000] "GET /x HTTP/1.1" 404 12 "-" "say \"hi\"""#,
        "[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6",
        "2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181] - x",
        "081109 203615 148 INFO dfs.DataNode$PacketResponder: x",
        "E1126 10:00:00.123456   12 main.go:1] boom",
        "Sun, 04 Dec 2005 04:47:44 +0000 x",
    ];

    #[test]
    fn every_prefix_of_every_sample_is_handled() {
        for sample in SAMPLES {
            let bytes = sample.as_bytes();
            for end in 0..=bytes.len() {
                run_all(&bytes[..end]);
                run_all(&bytes[end..]);
            }
        }
    }

    #[test]
    fn hostile_inputs_finish() {
        let big = 1 << 20;
        let inputs: Vec<Vec<u8>> = vec![
            format!("{}{}", "{\"a\":".repeat(10_000), "}".repeat(10_000)).into_bytes(),
            "[".repeat(big).into_bytes(),
            "\"".repeat(big).into_bytes(),
            format!("a=\"{}", "\\".repeat(big)).into_bytes(),
            "a=b ".repeat(big / 4).into_bytes(),
            format!("<13>1 - - - - - {}", "[x@1 k=\"v\"]".repeat(big / 12)).into_bytes(),
            format!("<13>1 - - - - - [x@1{}", " k=\"v\"".repeat(big / 6)).into_bytes(),
            format!("1.2.3.4 - - [x] \"{}", "\\\"".repeat(big / 2)).into_bytes(),
            format!("Dec 10 06:55:46 {}", "x".repeat(big)).into_bytes(),
            "ERROR ".repeat(big / 6).into_bytes(),
            vec![0xff; big],
            vec![b'9'; big],
        ];
        for input in &inputs {
            let started = std::time::Instant::now();
            run_all(input);
            // Generous even for a debug build; a quadratic parser takes minutes here.
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "slow on {}",
                excerpt(input)
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn arbitrary_bytes_never_panic(line in proptest::collection::vec(any::<u8>(), 0..300)) {
            run_all(&line);
        }

        #[test]
        fn mutated_samples_never_panic(
            index in 0..SAMPLES.len(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        ) {
            let mut line = SAMPLES[index].as_bytes().to_vec();
            for (at, byte) in edits {
                let at = at % line.len();
                line[at] = byte;
            }
            run_all(&line);
        }
    }
}
