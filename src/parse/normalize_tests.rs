//! Table tests for normalisation: an event in (as JSON), the normalised event out.

use super::*;
use crate::event::format_timestamp;
use crate::parse::{auto, json};
use bytes::Bytes;

/// 2026-11-26T00:00:00Z.
const RECEIVED_AT: i64 = 1_795_651_200_000_000_000;

/// Normalises the JSON object `input` (received at `received_at`) and compares the result,
/// rendered as JSON with timestamps in RFC 3339, with `expected`.
fn check(input: &str, received_at: i64, expected: &str, source: TimestampSource) {
    let mut event = Event::new(json(input.as_bytes()).unwrap());
    event.meta.received_at = received_at;
    let got = normalize(&mut event);
    let rendered = serde_json::to_string(&event.fields).unwrap();
    assert_eq!(rendered, expected, "input: {input}");
    assert_eq!(got.timestamp, source, "input: {input}");
}

#[test]
fn timestamp_fields_and_aliases() {
    use TimestampSource::*;
    let table: &[(&str, &str, TimestampSource)] = &[
        (
            r#"{"timestamp":"2026-11-23T10:00:00Z"}"#,
            r#"{"timestamp":"2026-11-23T10:00:00.000000Z"}"#,
            Field,
        ),
        (
            r#"{"ts":"2024-05-01T00:00:00.123Z","msg":"hi"}"#,
            r#"{"ts":"2024-05-01T00:00:00.123Z","message":"hi","timestamp":"2024-05-01T00:00:00.123000Z"}"#,
            Field,
        ),
        (
            r#"{"@timestamp":"2026-11-23T10:00:00Z","time":"garbage"}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","time":"garbage","timestamp":"2026-11-23T10:00:00.000000Z"}"#,
            Field,
        ),
        (
            r#"{"time":1714521600123}"#,
            r#"{"time":1714521600123,"timestamp":"2024-05-01T00:00:00.123000Z"}"#,
            Field,
        ),
        (
            r#"{"timestamp":"not a time","date":"2024-05-01"}"#,
            r#"{"timestamp":"2024-05-01T00:00:00.000000Z","date":"2024-05-01"}"#,
            Field,
        ),
        (
            r#"{"message":"2015-07-29 17:41:44,747 - INFO  [x] - y"}"#,
            r#"{"message":"2015-07-29 17:41:44,747 - INFO  [x] - y","timestamp":"2015-07-29T17:41:44.747000Z","level":"info"}"#,
            Message,
        ),
        (
            r#"{"message":"no time here"}"#,
            r#"{"message":"no time here","timestamp":"2026-11-26T00:00:00.000000Z"}"#,
            ReceivedAt,
        ),
        // A shipped line without a time of its own keeps the time its shipper read it...
        (
            r#"{"message":"no time here","read_at":"2026-11-25T23:59:00.000001Z"}"#,
            r#"{"message":"no time here","read_at":"2026-11-25T23:59:00.000001Z","timestamp":"2026-11-25T23:59:00.000001Z"}"#,
            ReadAt,
        ),
        // ...but a time the line carries wins, in a field or at the start of the text.
        (
            r#"{"ts":"2024-05-01T00:00:00Z","read_at":"2026-11-25T23:59:00Z"}"#,
            r#"{"ts":"2024-05-01T00:00:00Z","read_at":"2026-11-25T23:59:00Z","timestamp":"2024-05-01T00:00:00.000000Z"}"#,
            Field,
        ),
        (
            r#"{"message":"2015-07-29 17:41:44,747 - y","read_at":"2026-11-25T23:59:00Z"}"#,
            r#"{"message":"2015-07-29 17:41:44,747 - y","read_at":"2026-11-25T23:59:00Z","timestamp":"2015-07-29T17:41:44.747000Z"}"#,
            Message,
        ),
    ];
    for (input, expected, source) in table {
        check(input, RECEIVED_AT, expected, *source);
    }
    check(
        r#"{"message":"no time here"}"#,
        0,
        r#"{"message":"no time here"}"#,
        Missing,
    );
}

#[test]
fn levels_from_fields_text_and_status() {
    let table: &[(&str, Option<&str>)] = &[
        (r#"{"level":"WARNING"}"#, Some("warn")),
        (r#"{"level":"info"}"#, Some("info")),
        (r#"{"lvl":"E"}"#, Some("error")),
        (r#"{"severity":"err"}"#, Some("error")),
        (r#"{"levelname":"CRITICAL"}"#, Some("critical")),
        (r#"{"loglevel":"FINE"}"#, Some("debug")),
        (r#"{"log_level":"notice"}"#, Some("notice")),
        (r#"{"priority":"3"}"#, Some("error")),
        (r#"{"priority":"high"}"#, None),
        (r#"{"level":30}"#, Some("info")),
        (r#"{"level":50,"severity":"debug"}"#, Some("error")),
        (r#"{"log":{"level":"WARN"}}"#, Some("warn")),
        (r#"{"method":"GET","status":503}"#, Some("error")),
        (r#"{"method":"GET","status":404}"#, Some("warn")),
        (r#"{"request":"x","status":"200"}"#, Some("info")),
        (r#"{"status":503}"#, None),
        (
            r#"{"message":"[Sun Dec 04 04:47:44 2005] [error] mod_jk"}"#,
            Some("error"),
        ),
        (
            r#"{"message":"E1126 10:00:00.123456 1 main.go:1] boom"}"#,
            Some("error"),
        ),
        (r#"{"message":"processed 0 errors"}"#, None),
        // An unknown `level` is the user's own: kept, not overwritten from the text.
        (r#"{"level":"chatty","message":"ERROR x"}"#, Some("chatty")),
    ];
    for (input, expected) in table {
        let mut event = Event::new(json(input.as_bytes()).unwrap());
        normalize(&mut event);
        let got = event.fields.get("level").and_then(Value::as_str);
        assert_eq!(got, *expected, "input: {input}");
    }
}

#[test]
fn msg_becomes_message_only_when_message_is_absent() {
    let mut event = Event::new(json(br#"{"msg":"a","message":"b"}"#).unwrap());
    normalize(&mut event);
    assert_eq!(
        serde_json::to_string(&event.fields).unwrap(),
        r#"{"msg":"a","message":"b"}"#
    );
}

#[test]
fn plain_text_through_auto() {
    // The syslog parser infers the year from the current time, not the receive time.
    let syslog_ts = format_timestamp(crate::parse::parse_timestamp(b"Dec 10 06:55:46", 0).unwrap());
    let table: &[(&str, &str, Option<&str>)] = &[
        (
            "081109 203615 148 INFO dfs.DataNode: x",
            "2008-11-09T20:36:15.000000Z",
            Some("info"),
        ),
        (
            "17/06/09 20:10:40 WARN spark.X: y",
            "2017-06-09T20:10:40.000000Z",
            Some("warn"),
        ),
        (
            "Dec 10 06:55:46 LabSZ sshd[1]: error: Received disconnect",
            &syslog_ts,
            Some("error"),
        ),
        (
            "I1125 10:00:00.000001 1 x.go:1] ok",
            "2026-11-25T10:00:00.000001Z",
            Some("info"),
        ),
    ];
    for (line, ts, level) in table {
        let mut event = Event::new(auto(Bytes::copy_from_slice(line.as_bytes())));
        event.meta.received_at = RECEIVED_AT;
        normalize(&mut event);
        let got_ts = match event.fields.get("timestamp") {
            Some(Value::Timestamp(t)) => format_timestamp(*t),
            other => format!("{other:?}"),
        };
        assert_eq!(got_ts, *ts, "line: {line}");
        assert_eq!(
            event.fields.get("level").and_then(Value::as_str),
            *level,
            "line: {line}"
        );
    }
}

#[test]
fn text_layouts_get_their_own_time_and_source_fields() {
    // A shipped logcat line: labels beside the text, so the text is read as a whole line.
    let input = r#"{"message":"12-06 01:29:59.626  1234  5678 W Vold: low","app":"phone","read_at":"2026-12-06T12:00:00Z"}"#;
    check(
        input,
        RECEIVED_AT,
        r#"{"message":"12-06 01:29:59.626  1234  5678 W Vold: low","app":"phone","read_at":"2026-12-06T12:00:00Z","timestamp":"2025-12-06T01:29:59.626000Z","level":"warn","pid":"1234","tid":"5678","component":"Vold"}"#,
        TimestampSource::Message,
    );
    // A structured event's message is prose: no time from its middle, no source fields.
    check(
        r#"{"event":"backup","message":"snapshot of 2026-11-20 10:00:00 done"}"#,
        RECEIVED_AT,
        r#"{"event":"backup","message":"snapshot of 2026-11-20 10:00:00 done","timestamp":"2026-11-26T00:00:00.000000Z"}"#,
        TimestampSource::ReceivedAt,
    );
    // A bare text line: the time past a prefix is found.
    check(
        r#"{"message":"web-1 | 2026-11-20T10:00:00Z started"}"#,
        RECEIVED_AT,
        r#"{"message":"web-1 | 2026-11-20T10:00:00Z started","timestamp":"2026-11-20T10:00:00.000000Z"}"#,
        TimestampSource::Message,
    );
}

#[test]
fn implausible_text_times_keep_arrival_and_are_reported() {
    let mut event = Event::new(json(br#"{"message":"2031-01-01 00:00:00 ERROR x"}"#).unwrap());
    event.meta.received_at = RECEIVED_AT;
    let got = normalize(&mut event);
    assert_eq!(got.timestamp, TimestampSource::ReceivedAt);
    assert!(got.rejected_timestamp);
    assert_eq!(got.level, Some(Level::Error));
    let mut event = Event::new(json(br#"{"message":"2026-01-01 00:00:00 x"}"#).unwrap());
    event.meta.received_at = RECEIVED_AT;
    assert!(!normalize(&mut event).rejected_timestamp);
}

mod idempotent {
    use super::*;
    use proptest::prelude::*;

    const LINES: &[&str] = &[
        "12-06 01:29:59.626  1234  5678 W Vold: low",
        "[ERROR] 2026-12-06 01:29:59 build failed",
        "web-1 | 2026-12-06T01:29:59Z INFO started",
        "1234:M 06 Dec 2026 01:29:59.626 * Ready",
        "E, [2026-12-06T01:29:59.626547 #1234] ERROR -- : boom",
        "[01:29:59 INF] Starting",
        "2026-12-06 01:29:59.626 UTC [1234] DETAIL:  Key",
        "I1206 01:29:59.626547    123 controller.go:24] synced",
        "2026-12-06 01:29:59.626 [main] WARN  com.example.Svc - slow",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]

        /// Normalising a normalised text event changes nothing (as the fuzz target checks).
        #[test]
        fn normalising_twice_changes_nothing(
            index in 0..LINES.len(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        ) {
            let mut line = LINES[index].as_bytes().to_vec();
            for (at, byte) in edits {
                let at = at % line.len();
                line[at] = byte;
            }
            let mut event = Event::new(auto(Bytes::from(line)));
            event.meta.received_at = RECEIVED_AT;
            let first = normalize(&mut event);
            let once = event.fields.clone();
            let again = normalize(&mut event);
            prop_assert_eq!(&event.fields, &once);
            prop_assert_eq!(again.level, first.level);
        }
    }
}
