//! Severity levels: one vocabulary for the dozens of ways logs spell them.
//!
//! Two kinds of input need different care. A dedicated field (`level`, `severity`, …) is
//! trusted: any spelling we know, single letters and numbers included, is a level. Free text
//! is not: "0 errors" or "an ERROR from upstream" must not turn a line into an error, so
//! text is read only at the position its layout prints the level (see `layout.rs`).

use bytes::Bytes;

use crate::event::Value;

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
            b"trace" | b"trc" | b"trac" | b"blat" | b"finer" | b"finest" | b"verbose" | b"vrb"
            | b"v" => Level::Trace,
            b"debug" | b"dbg" | b"debg" | b"d" | b"fine" | b"config" => Level::Debug,
            b"info" | b"inf" | b"i" | b"information" | b"informational" => Level::Info,
            b"notice" | b"n" => Level::Notice,
            b"warn" | b"warning" | b"wrn" | b"w" => Level::Warn,
            b"error" | b"err" | b"erro" | b"e" | b"severe" => Level::Error,
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

/// Finds the level a plain-text line announces from the level's own position in its layout
/// (glog's letter, the word after the timestamp, `[error]`, `WARNING:root:`…; see
/// [`layout`](super::layout)), never from a level-like word elsewhere in the message.
pub fn level_in_text(text: &[u8]) -> Option<Level> {
    super::layout::level_of(text)
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
