//! Events into ClickHouse rows: one JSON object per line, the `JSONEachRow` input format,
//! which every ClickHouse release reads (18.16 included).
//!
//! Without `columns`, each top-level field is a column of the same name (the server skips
//! fields the table lacks when `skip_unknown_fields` is on). With `columns`, a row holds
//! exactly the mapped columns, each from its field path (select and rename), and
//! `other_fields_column` collects every top-level field no column took as a map of strings
//! (for a `Map(String, String)` column). A missing field is left out of the row, so the
//! column takes its default.
//!
//! A timestamp value in a column is written as `timestamp_format` says, because servers
//! differ in what they parse: `DateTime` on old releases reads only `YYYY-MM-DD hh:mm:ss` or
//! epoch seconds, `DateTime64(3)` reads a fraction too, RFC 3339 needs
//! `date_time_input_format = 'best_effort'`.

use std::io::Write;

use chrono::{DateTime, Datelike, Timelike};
use compact_str::CompactString;
use serde::Deserialize;

use crate::condition::FieldPath;
use crate::event::{format_timestamp, Event, Value};

/// `timestamp_format = "..."`: how timestamps are written into their column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampFormat {
    /// `2026-12-06T10:00:00.123456Z` (a `DateTime64` with `best_effort` parsing, a String).
    Rfc3339,
    /// `2026-12-06 10:00:00` (UTC): a `DateTime`, on any release.
    Datetime,
    /// `2026-12-06 10:00:00.123`: a `DateTime64(3)`, the recommended schema's.
    #[default]
    DatetimeMillis,
    /// `2026-12-06 10:00:00.123456`: a `DateTime64(6)`.
    DatetimeMicros,
    /// `2026-12-06 10:00:00.123456789`: a `DateTime64(9)`.
    DatetimeNanos,
    /// Whole seconds since the epoch, a number (a `DateTime` or a `UInt32`).
    UnixSeconds,
    /// Milliseconds since the epoch, a number (a `UInt64`, or `DateTime64(3)` on releases
    /// that read numbers into it).
    UnixMillis,
}

/// Writes rows for one table, built once from the sink's options.
#[derive(Debug, Clone)]
pub(super) struct RowEncoder {
    /// `"column":` (JSON-escaped) and the path it is read from; empty: every top-level field.
    columns: Vec<(Vec<u8>, FieldPath)>,
    /// Top-level field names that a column takes, left out of `other`.
    taken: Vec<CompactString>,
    /// `"column":` of the map of the other fields.
    other: Option<Vec<u8>>,
    format: TimestampFormat,
}

impl RowEncoder {
    pub(super) fn new(
        columns: Vec<(String, FieldPath)>,
        other: Option<&str>,
        format: TimestampFormat,
    ) -> Self {
        let key = |name: &str| {
            let mut out = serde_json::to_vec(name).unwrap_or_default();
            out.push(b':');
            out
        };
        let taken = columns
            .iter()
            .filter_map(|(_, path)| path.segments().first().cloned())
            .collect();
        Self {
            columns: columns
                .into_iter()
                .map(|(name, path)| (key(&name), path))
                .collect(),
            taken,
            other: other.map(key),
            format,
        }
    }

    /// Appends `event` as one row and a newline.
    pub(super) fn encode(&self, event: &Event, out: &mut Vec<u8>) {
        out.push(b'{');
        let mut first = true;
        let mut comma = |out: &mut Vec<u8>| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
        };
        if self.columns.is_empty() {
            for (name, value) in event.fields.iter() {
                comma(out);
                let _ = serde_json::to_writer(&mut *out, name.as_str());
                out.push(b':');
                self.value(value, out);
            }
        } else {
            for (key, path) in &self.columns {
                let Some(value) = path.get(&event.fields) else {
                    continue;
                };
                comma(out);
                out.extend_from_slice(key);
                self.value(value, out);
            }
        }
        if let Some(key) = &self.other {
            comma(out);
            out.extend_from_slice(key);
            out.push(b'{');
            let mut text = String::new();
            let mut first_entry = true;
            for (name, value) in event.fields.iter() {
                if matches!(value, Value::Null) || self.taken.iter().any(|t| t == name) {
                    continue;
                }
                if !std::mem::take(&mut first_entry) {
                    out.push(b',');
                }
                let _ = serde_json::to_writer(&mut *out, name.as_str());
                out.push(b':');
                text.clear();
                value.write_text(&mut text);
                let _ = serde_json::to_writer(&mut *out, text.as_str());
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"}\n");
    }

    fn value(&self, value: &Value, out: &mut Vec<u8>) {
        match value {
            Value::Timestamp(nanos) => write_timestamp(*nanos, self.format, out),
            // Serialising our own value type cannot fail (see `Encoding::encode`).
            other => {
                let _ = serde_json::to_writer(&mut *out, other);
            }
        }
    }
}

/// Writes `nanos` since the epoch as `format` says (UTC).
pub(super) fn write_timestamp(nanos: i64, format: TimestampFormat, out: &mut Vec<u8>) {
    let secs = nanos.div_euclid(1_000_000_000);
    let sub = nanos.rem_euclid(1_000_000_000);
    let digits = match format {
        TimestampFormat::Rfc3339 => {
            let _ = write!(out, "\"{}\"", format_timestamp(nanos));
            return;
        }
        TimestampFormat::UnixSeconds => {
            let _ = write!(out, "{secs}");
            return;
        }
        TimestampFormat::UnixMillis => {
            let _ = write!(out, "{}", nanos.div_euclid(1_000_000));
            return;
        }
        TimestampFormat::Datetime => 0,
        TimestampFormat::DatetimeMillis => 3,
        TimestampFormat::DatetimeMicros => 6,
        TimestampFormat::DatetimeNanos => 9,
    };
    // Times chrono cannot place (beyond year 262143) are written as epoch seconds, which
    // the server then refuses or clamps: the row is not lost silently either way.
    let Some(t) = DateTime::from_timestamp(secs, 0) else {
        let _ = write!(out, "{secs}");
        return;
    };
    let _ = write!(
        out,
        "\"{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if digits > 0 {
        let fraction = sub / 10i64.pow(9 - digits);
        let _ = write!(out, ".{fraction:0width$}", width = digits as usize);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Map;

    use crate::event::test_event as event;

    fn row(encoder: &RowEncoder, event: &Event) -> String {
        let mut out = Vec::new();
        encoder.encode(event, &mut out);
        String::from_utf8(out).unwrap()
    }

    // 2026-12-06 10:11:12.123456789 UTC
    const NANOS: i64 = 1_796_551_872_123_456_789;

    #[test]
    fn timestamps_in_every_format() {
        for (format, expected) in [
            (TimestampFormat::Rfc3339, "\"2026-12-06T10:11:12.123456Z\""),
            (TimestampFormat::Datetime, "\"2026-12-06 10:11:12\""),
            (
                TimestampFormat::DatetimeMillis,
                "\"2026-12-06 10:11:12.123\"",
            ),
            (
                TimestampFormat::DatetimeMicros,
                "\"2026-12-06 10:11:12.123456\"",
            ),
            (
                TimestampFormat::DatetimeNanos,
                "\"2026-12-06 10:11:12.123456789\"",
            ),
            (TimestampFormat::UnixSeconds, "1796551872"),
            (TimestampFormat::UnixMillis, "1796551872123"),
        ] {
            let mut out = Vec::new();
            write_timestamp(NANOS, format, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), expected, "{format:?}");
        }
        // Before the epoch, the fraction still counts forward from the second before.
        let mut out = Vec::new();
        write_timestamp(-1_500_000_000, TimestampFormat::DatetimeMillis, &mut out);
        assert_eq!(out, b"\"1969-12-31 23:59:58.500\"");
    }

    #[test]
    fn every_field_without_columns() {
        let mut e = event(r#"{"message":"hi \"there\"","n":3,"tags":["a"],"x":{"y":null}}"#);
        e.fields.insert("timestamp", Value::Timestamp(NANOS));
        let encoder = RowEncoder::new(Vec::new(), None, TimestampFormat::Datetime);
        assert_eq!(
            row(&encoder, &e),
            "{\"message\":\"hi \\\"there\\\"\",\"n\":3,\"tags\":[\"a\"],\"x\":{\"y\":null},\"timestamp\":\"2026-12-06 10:11:12\"}\n"
        );
    }

    #[test]
    fn columns_select_and_rename_and_the_rest_goes_to_a_map() {
        let mut e = event(
            r#"{"message":"m","app":"shop","http":{"status":500},"user":"ada","gone":null,"n":1.5}"#,
        );
        e.fields.insert("timestamp", Value::Timestamp(NANOS));
        let path = |p: &str| FieldPath::parse(p).unwrap();
        let columns = vec![
            ("ts".to_string(), path("timestamp")),
            ("service".to_string(), path("app")),
            ("body".to_string(), path("message")),
            ("status".to_string(), path("http.status")),
            ("missing".to_string(), path("nope")),
        ];
        let encoder = RowEncoder::new(columns, Some("attrs"), TimestampFormat::UnixSeconds);
        assert_eq!(
            row(&encoder, &e),
            "{\"ts\":1796551872,\"service\":\"shop\",\"body\":\"m\",\"status\":500,\"attrs\":{\"user\":\"ada\",\"n\":\"1.5\"}}\n"
        );
        // An event with nothing mapped is still a row (every column its default).
        let empty = Event::new(Map::new());
        assert_eq!(row(&encoder, &empty), "{\"attrs\":{}}\n");
    }
}
