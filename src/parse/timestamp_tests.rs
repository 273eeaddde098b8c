//! Table tests for timestamp recognition.

use super::*;
use crate::parse::civil::{days_from_civil, year_of, SECS_PER_DAY};

/// 2026-11-26T00:00:00Z, the reference for year-less formats in these tests.
const NOW: i64 = 1_795_651_200 * NANOS_PER_SEC;

fn rfc3339(nanos: i64) -> String {
    crate::event::format_timestamp(nanos)
}

fn check(input: &str, expected: Option<&str>) {
    let got = parse_timestamp(input.as_bytes(), NOW).map(rfc3339);
    assert_eq!(got.as_deref(), expected, "input: {input:?}");
}

#[test]
fn reference_time_is_what_the_tests_assume() {
    assert_eq!(rfc3339(NOW), "2026-11-26T00:00:00.000000Z");
    assert_eq!(year_of(NOW), 2026);
    let new_year_2026 = days_from_civil(2026, 1, 1) * SECS_PER_DAY * NANOS_PER_SEC;
    assert_eq!(year_of(new_year_2026), 2026);
    assert_eq!(year_of(new_year_2026 - 1), 2025);
}

#[test]
fn field_formats() {
    let table: &[(&str, Option<&str>)] = &[
        // RFC 3339 and relatives.
        ("2026-11-23T10:00:00Z", Some("2026-11-23T10:00:00.000000Z")),
        (
            "2026-11-23T10:00:00.123+00:00",
            Some("2026-11-23T10:00:00.123000Z"),
        ),
        (
            "2026-11-23T10:00:00.123456789-05:30",
            Some("2026-11-23T15:30:00.123456Z"),
        ),
        (
            "2026-11-23T10:00:00+0100",
            Some("2026-11-23T09:00:00.000000Z"),
        ),
        ("2026-11-23 10:00:00", Some("2026-11-23T10:00:00.000000Z")),
        (
            "2026-11-23 10:00:00 UTC",
            Some("2026-11-23T10:00:00.000000Z"),
        ),
        ("2026-11-23T10:00Z", Some("2026-11-23T10:00:00.000000Z")),
        (
            "2015-07-29 17:41:44,747",
            Some("2015-07-29T17:41:44.747000Z"),
        ),
        ("2026/11/23 10:00:00", Some("2026-11-23T10:00:00.000000Z")),
        ("2026-11-23", Some("2026-11-23T00:00:00.000000Z")),
        ("2024-02-29T00:00:00Z", Some("2024-02-29T00:00:00.000000Z")),
        // Syslog without a year: this year unless that is in the future.
        ("Nov 25 06:55:46", Some("2026-11-25T06:55:46.000000Z")),
        ("Dec 10 06:55:46", Some("2025-12-10T06:55:46.000000Z")),
        ("Dec  4 06:55:46", Some("2025-12-04T06:55:46.000000Z")),
        ("Nov 26 12:00:00", Some("2026-11-26T12:00:00.000000Z")),
        ("Feb 29 00:00:00", Some("2024-02-29T00:00:00.000000Z")),
        ("Dec 10 2024 06:55:46", Some("2024-12-10T06:55:46.000000Z")),
        // Apache error log, nginx access log, RFC 2822.
        (
            "[Sun Dec 04 04:47:44 2005]",
            Some("2005-12-04T04:47:44.000000Z"),
        ),
        (
            "Sun Dec  4 04:47:44.5 2005",
            Some("2005-12-04T04:47:44.500000Z"),
        ),
        (
            "23/Nov/2026:10:00:00 +0000",
            Some("2026-11-23T10:00:00.000000Z"),
        ),
        (
            "[23/Nov/2026:10:00:00 -0200]",
            Some("2026-11-23T12:00:00.000000Z"),
        ),
        (
            "Sun, 04 Dec 2005 04:47:44 GMT",
            Some("2005-12-04T04:47:44.000000Z"),
        ),
        // HDFS and Spark.
        ("081109 203615", Some("2008-11-09T20:36:15.000000Z")),
        ("17/06/09 20:10:40", Some("2017-06-09T20:10:40.000000Z")),
        // Epoch numbers as text, unit by magnitude.
        ("1714521600", Some("2024-05-01T00:00:00.000000Z")),
        ("1714521600.25", Some("2024-05-01T00:00:00.250000Z")),
        ("1714521600123", Some("2024-05-01T00:00:00.123000Z")),
        ("1714521600123456", Some("2024-05-01T00:00:00.123456Z")),
        ("1714521600123456789", Some("2024-05-01T00:00:00.123456Z")),
        // Not timestamps.
        ("", None),
        ("35", None),
        ("2026-13-01T00:00:00Z", None),
        ("2026-02-30T00:00:00Z", None),
        ("2025-02-29T00:00:00Z", None),
        ("2026-11-23T24:00:00Z", None),
        ("2026-11-23T10:00:00Zjunk", None),
        ("9999-12-31T23:59:59Z", None),
        ("Foo 10 06:55:46", None),
        ("yesterday", None),
        ("99999999999999999999999", None),
        ("1.2.3", None),
    ];
    for (input, expected) in table {
        check(input, *expected);
    }
}

#[test]
fn epoch_numbers_by_magnitude() {
    let table: &[(Value, Option<&str>)] = &[
        (
            Value::Integer(1_714_521_600),
            Some("2024-05-01T00:00:00.000000Z"),
        ),
        (
            Value::Integer(1_714_521_600_123),
            Some("2024-05-01T00:00:00.123000Z"),
        ),
        (
            Value::Integer(1_714_521_600_123_456),
            Some("2024-05-01T00:00:00.123456Z"),
        ),
        (
            Value::Integer(1_714_521_600_123_456_789),
            Some("2024-05-01T00:00:00.123456Z"),
        ),
        (
            Value::Float(1_714_521_600.5),
            Some("2024-05-01T00:00:00.500000Z"),
        ),
        (Value::Integer(42), None),
        (Value::Float(0.35), None),
        (Value::Float(f64::NAN), None),
        (Value::Float(1e300), None),
        (
            Value::Integer(i64::MAX),
            Some("2262-04-11T23:47:16.854775Z"),
        ),
        (Value::Bool(true), None),
        (Value::Timestamp(7), Some("1970-01-01T00:00:00.000000Z")),
    ];
    for (value, expected) in table {
        let got = timestamp_from_value(value, NOW).map(rfc3339);
        assert_eq!(got.as_deref(), *expected, "value: {value:?}");
    }
}

#[test]
fn leading_timestamps_in_text() {
    let table: &[(&str, Option<(&str, usize)>)] = &[
        (
            "2015-07-29 17:41:44,747 - INFO  [x] - y",
            Some(("2015-07-29T17:41:44.747000Z", 23)),
        ),
        (
            "[Sun Dec 04 04:47:44 2005] [notice] ok",
            Some(("2005-12-04T04:47:44.000000Z", 26)),
        ),
        (
            "081109 203615 148 INFO dfs",
            Some(("2008-11-09T20:36:15.000000Z", 13)),
        ),
        (
            "17/06/09 20:10:40 INFO x",
            Some(("2017-06-09T20:10:40.000000Z", 17)),
        ),
        (
            "Jun 14 15:16:01 combo sshd",
            Some(("2026-06-14T15:16:01.000000Z", 15)),
        ),
        (
            "E1126 10:00:00.123456   12 main.go:1] boom",
            Some(("2026-11-26T10:00:00.123456Z", 21)),
        ),
        (
            "I1125 10:00:00.000001 1 x",
            Some(("2026-11-25T10:00:00.000001Z", 21)),
        ),
        (
            "2024-05-01T00:00:00.123Z INFO [orders]",
            Some(("2024-05-01T00:00:00.123000Z", 24)),
        ),
        // Dates inside words or followed by letters, numbers and prose are not times.
        ("2024-05-01abc", None),
        ("1714521600 lines", None),
        ("Error 10:00:00", None),
        ("Info: Jun 14", None),
        ("", None),
    ];
    for (input, expected) in table {
        let got = leading_timestamp(input.as_bytes(), NOW).map(|(t, n)| (rfc3339(t), n));
        let expected = expected.map(|(t, n)| (t.to_string(), n));
        assert_eq!(got, expected, "input: {input:?}");
    }
}

mod digit_words {
    use super::*;
    use crate::parse::zone::UTC;
    use proptest::prelude::*;

    proptest! {
        /// `may_start` turns away only what `prefix` would refuse: a digit, then a byte
        /// that is not one.
        #[test]
        fn a_single_digit_starts_no_time(
            first in b'0'..=b'9',
            second in any::<u8>().prop_filter("not a digit", |b| !b.is_ascii_digit()),
            rest in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut s = vec![first, second];
            s.extend(rest);
            prop_assert!(!may_start(&s));
            prop_assert_eq!(prefix(&s, 0, false, &UTC), None);
            prop_assert_eq!(prefix(&s, 0, true, &UTC), None);
        }
    }
}
