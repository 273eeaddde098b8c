//! Severity levels: one vocabulary for the dozens of ways logs spell them.
//!
//! Two kinds of input need different care. A dedicated field (`level`, `severity`, …) is
//! trusted: any spelling we know, single letters and numbers included, is a level. Free text
//! is not: "0 errors" or "error_count" must not turn a line into an error, so a word in text
//! counts only when it stands out the way loggers print levels — upper case (`WARN`),
//! bracketed (`[error]`), as `level=error`, or as the first word followed by a colon
//! (`error: no such file`) — and only near the start of the line.

use bytes::Bytes;

use crate::event::Value;

/// How far into a line a level word is looked for. Loggers print the level within the
/// first few tokens; beyond that a capitalised word is much more likely to be content.
const TEXT_SCAN_BYTES: usize = 128;

/// Our severity vocabulary, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Notice,
    Warn,
    Error,
    Critical,
    Alert,
    Emergency,
}

impl Level {
    pub const ALL: [Level; 9] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Notice,
        Level::Warn,
        Level::Error,
        Level::Critical,
        Level::Alert,
        Level::Emergency,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Notice => "notice",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Critical => "critical",
            Level::Alert => "alert",
            Level::Emergency => "emergency",
        }
    }

    /// The level as a field value; a static string, so setting it never allocates.
    pub fn to_value(self) -> Value {
        Value::Bytes(Bytes::from_static(self.as_str().as_bytes()))
    }

    /// A level word, abbreviation, single letter or number, in any case, as found in a
    /// dedicated field.
    pub fn from_word(word: &[u8]) -> Option<Level> {
        let word = word.trim_ascii();
        if word.first().is_some_and(u8::is_ascii_digit) {
            let n: i64 = std::str::from_utf8(word).ok()?.parse().ok()?;
            return Level::from_number(n);
        }
        // Every spelling we know fits in 13 bytes; longer words need no lowercasing.
        let mut buf = [0u8; 13];
        let lower = buf.get_mut(..word.len())?;
        lower.copy_from_slice(word);
        lower.make_ascii_lowercase();
        Some(match &*lower {
            b"trace" | b"trc" | b"finer" | b"finest" | b"verbose" | b"v" => Level::Trace,
            b"debug" | b"dbg" | b"d" | b"fine" | b"config" => Level::Debug,
            b"info" | b"inf" | b"i" | b"information" | b"informational" => Level::Info,
            b"notice" | b"n" => Level::Notice,
            b"warn" | b"warning" | b"wrn" | b"w" => Level::Warn,
            b"error" | b"err" | b"e" | b"severe" => Level::Error,
            b"critical" | b"crit" | b"crt" | b"fatal" | b"ftl" | b"f" => Level::Critical,
            b"alert" => Level::Alert,
            b"emergency" | b"emerg" | b"panic" => Level::Emergency,
            _ => return None,
        })
    }

    /// Syslog severities 0–7, and the numeric levels of bunyan and pino (10 trace … 60
    /// fatal), the two numeric schemes common enough in JSON logs to be worth knowing.
    pub fn from_number(n: i64) -> Option<Level> {
        Some(match n {
            0 => Level::Emergency,
            1 => Level::Alert,
            2 => Level::Critical,
            3 => Level::Error,
            4 => Level::Warn,
            5 => Level::Notice,
            6 => Level::Info,
            7 => Level::Debug,
            10 => Level::Trace,
            20 => Level::Debug,
            30 => Level::Info,
            40 => Level::Warn,
            50 => Level::Error,
            60 => Level::Critical,
            _ => return None,
        })
    }

    /// The level held by a dedicated field, if it is one we recognise.
    pub fn from_value(value: &Value) -> Option<Level> {
        match value {
            Value::Bytes(b) => Level::from_word(b),
            Value::Integer(n) => Level::from_number(*n),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 100.0 => Level::from_number(*f as i64),
            _ => None,
        }
    }

    /// Words trusted in free text (see the module docs): no single letters, and none that
    /// are common English in upper case headings (`CONFIG`, `FINE`, `VERBOSE`).
    fn from_text_word(word: &[u8]) -> Option<Level> {
        if word.len() < 3 || word.first().is_some_and(u8::is_ascii_digit) {
            return None;
        }
        if word.eq_ignore_ascii_case(b"config")
            || word.eq_ignore_ascii_case(b"fine")
            || word.eq_ignore_ascii_case(b"verbose")
        {
            return None;
        }
        Level::from_word(word)
    }

    /// The level of an HTTP response: 5xx error, 4xx warn, anything else info.
    pub fn from_http_status(status: i64) -> Option<Level> {
        match status {
            500..=599 => Some(Level::Error),
            400..=499 => Some(Level::Warn),
            100..=399 => Some(Level::Info),
            _ => None,
        }
    }
}

/// Finds the level a plain-text line announces: a glog/klog header (`E1126 10:00:00…`), or
/// the first level word near the start that stands out as one (see the module docs).
pub fn level_in_text(text: &[u8]) -> Option<Level> {
    if let Some(level) = glog_level(text) {
        return Some(level);
    }
    let window = &text[..text.len().min(TEXT_SCAN_BYTES)];
    let mut pos = 0;
    let mut first_word = true;
    while pos < window.len() {
        if !is_word_byte(window[pos]) {
            pos += 1;
            continue;
        }
        let start = pos;
        while pos < text.len() && is_word_byte(text[pos]) {
            pos += 1;
        }
        let word = &text[start..pos];
        let before = start.checked_sub(1).map(|i| text[i]);
        let after = text.get(pos).copied();
        if let Some(level) = classify(word, before, after, text.get(pos + 1..), first_word) {
            return Some(level);
        }
        // Timestamps and numbers before the message do not make a later word "first".
        if word.first().is_some_and(u8::is_ascii_alphabetic) {
            first_word = false;
        }
    }
    None
}

/// Decides whether one word of text is a level, given the bytes around it.
fn classify(
    word: &[u8],
    before: Option<u8>,
    after: Option<u8>,
    rest: Option<&[u8]>,
    first_word: bool,
) -> Option<Level> {
    if after == Some(b'=') && is_level_key(word) {
        let value = rest?;
        let value = value.strip_prefix(b"\"").unwrap_or(value);
        let end = value
            .iter()
            .position(|b| !is_word_byte(*b))
            .unwrap_or(value.len());
        return Level::from_word(&value[..end]);
    }
    if !is_delimiter(before) || !is_delimiter(after) {
        return None;
    }
    // `[error]`, `<error>`, and Apache 2.4's `[module:error]`.
    let bracketed = matches!(
        (before, after),
        (Some(b'[' | b':'), Some(b']')) | (Some(b'<'), Some(b'>'))
    );
    let upper = word.iter().all(u8::is_ascii_uppercase);
    let leading_colon = first_word && after == Some(b':');
    if bracketed || upper || leading_colon {
        Level::from_text_word(word)
    } else {
        None
    }
}

/// `E1126 10:00:00.123456 …`: the header glog and klog print before every line.
fn glog_level(text: &[u8]) -> Option<Level> {
    let head = text.get(..7)?;
    let is_header =
        head[1..5].iter().all(u8::is_ascii_digit) && head[5] == b' ' && head[6].is_ascii_digit();
    if !is_header {
        return None;
    }
    match head[0] {
        b'I' => Some(Level::Info),
        b'W' => Some(Level::Warn),
        b'E' => Some(Level::Error),
        b'F' => Some(Level::Critical),
        _ => None,
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Bytes that can surround a level word. Deliberately excludes `.`, `/`, `-`, `=` and `@`
/// so that `/api/ERROR`, `log.error` or `x-error` are not levels.
fn is_delimiter(b: Option<u8>) -> bool {
    match b {
        None => true,
        Some(b) => matches!(
            b,
            b' ' | b'\t'
                | b'['
                | b']'
                | b'('
                | b')'
                | b'<'
                | b'>'
                | b'|'
                | b':'
                | b','
                | b';'
                | b'"'
                | b'\''
                | b'!'
                | b'{'
                | b'}'
        ),
    }
}

fn is_level_key(word: &[u8]) -> bool {
    [
        &b"level"[..],
        b"lvl",
        b"severity",
        b"loglevel",
        b"log_level",
    ]
    .iter()
    .any(|k| word.eq_ignore_ascii_case(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_in_fields() {
        let table: &[(&str, Option<Level>)] = &[
            ("trace", Some(Level::Trace)),
            ("FINEST", Some(Level::Trace)),
            ("FINER", Some(Level::Trace)),
            ("FINE", Some(Level::Debug)),
            ("DEBUG", Some(Level::Debug)),
            ("D", Some(Level::Debug)),
            ("info", Some(Level::Info)),
            ("I", Some(Level::Info)),
            ("Informational", Some(Level::Info)),
            ("notice", Some(Level::Notice)),
            ("WARNING", Some(Level::Warn)),
            ("warn", Some(Level::Warn)),
            ("W", Some(Level::Warn)),
            ("ERROR", Some(Level::Error)),
            ("err", Some(Level::Error)),
            ("E", Some(Level::Error)),
            ("SEVERE", Some(Level::Error)),
            ("CRIT", Some(Level::Critical)),
            ("critical", Some(Level::Critical)),
            ("FATAL", Some(Level::Critical)),
            ("alert", Some(Level::Alert)),
            ("EMERG", Some(Level::Emergency)),
            ("PANIC", Some(Level::Emergency)),
            ("emergency", Some(Level::Emergency)),
            (" info ", Some(Level::Info)),
            ("0", Some(Level::Emergency)),
            ("3", Some(Level::Error)),
            ("7", Some(Level::Debug)),
            ("30", Some(Level::Info)),
            ("8", None),
            ("", None),
            ("combo", None),
            ("informationalxxxxxxxxxxx", None),
            ("99999999999999999999999", None),
        ];
        for (word, expected) in table {
            assert_eq!(
                Level::from_word(word.as_bytes()),
                *expected,
                "word: {word:?}"
            );
        }
    }

    #[test]
    fn values_in_fields() {
        let table: &[(Value, Option<Level>)] = &[
            (Value::Integer(3), Some(Level::Error)),
            (Value::Integer(50), Some(Level::Error)),
            (Value::Float(40.0), Some(Level::Warn)),
            (Value::Float(4.5), None),
            (Value::Integer(-1), None),
            (Value::Bool(true), None),
            (Value::from("Warning"), Some(Level::Warn)),
        ];
        for (value, expected) in table {
            assert_eq!(Level::from_value(value), *expected, "value: {value:?}");
        }
    }

    #[test]
    fn levels_in_text() {
        let table: &[(&str, Option<Level>)] = &[
            (
                "[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok",
                Some(Level::Notice),
            ),
            (
                "[Sun Dec 04 04:47:44 2005] [error] mod_jk child in error state 6",
                Some(Level::Error),
            ),
            (
                "081109 203615 148 INFO dfs.DataNode$PacketResponder: x",
                Some(Level::Info),
            ),
            (
                "2015-07-29 19:04:29,071 - WARN  [SendWorker:188978561024] - y",
                Some(Level::Warn),
            ),
            (
                "17/06/09 20:10:40 ERROR executor.Executor: z",
                Some(Level::Error),
            ),
            (
                "E1126 10:00:00.123456   12 main.go:1] boom",
                Some(Level::Error),
            ),
            (
                "W1126 10:00:00.123456   12 main.go:1] hmm",
                Some(Level::Warn),
            ),
            ("ts=x level=error msg=y", Some(Level::Error)),
            ("time=x LEVEL=\"Warning\" msg=y", Some(Level::Warn)),
            ("error: could not open file", Some(Level::Error)),
            ("Warning: disk almost full", Some(Level::Warn)),
            ("<crit> kernel panic", Some(Level::Critical)),
            (
                "[Wed Oct 11 14:32:52.123 2000] [core:warn] [pid 35708] AH00098",
                Some(Level::Warn),
            ),
            (
                "2026/11/23 10:00:00 [error] 123#0: *1 open() failed",
                Some(Level::Error),
            ),
            ("WARNING:root:disk almost full", Some(Level::Warn)),
            (
                "10:00:00.123 [main] ERROR com.example.App - boom",
                Some(Level::Error),
            ),
            ("2024-05-01T00:00:00Z CRIT something", Some(Level::Critical)),
            // Not levels: counts, identifiers, paths, prose, single letters, late words.
            ("processed with 0 errors", None),
            ("error_count=3 retries=1", None),
            ("GET /api/ERROR HTTP/1.1", None),
            ("see log.error for details", None),
            ("an error occurred", None),
            ("I think so", None),
            ("Invalid user webmaster from 173.234.31.186", None),
            ("reverse mapping failed - POSSIBLE BREAK-IN ATTEMPT!", None),
            ("a word: error: late colon", None),
            ("FINE CONFIG VERBOSE", None),
            (&format!("{} ERROR late", "x ".repeat(80)), None),
            ("", None),
        ];
        for (text, expected) in table {
            assert_eq!(level_in_text(text.as_bytes()), *expected, "text: {text:?}");
        }
    }

    #[test]
    fn http_status() {
        let table = [
            (200, Some(Level::Info)),
            (304, Some(Level::Info)),
            (404, Some(Level::Warn)),
            (503, Some(Level::Error)),
            (42, None),
        ];
        for (status, expected) in table {
            assert_eq!(
                Level::from_http_status(status),
                expected,
                "status: {status}"
            );
        }
    }

    #[test]
    fn every_level_round_trips_through_its_name() {
        for level in Level::ALL {
            assert_eq!(Level::from_word(level.as_str().as_bytes()), Some(level));
        }
    }
}
