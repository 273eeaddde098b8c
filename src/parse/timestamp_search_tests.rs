//! The timestamp search: its catalogue, its two tiers, plausibility, and the 128-byte bound.

use super::*;
use crate::event::format_timestamp;
use crate::parse::zone::{LocalZone, UTC};
use proptest::prelude::*;

/// 2026-12-06T12:00:00Z.
const NOW: i64 = 1_796_558_400_000_000_000;

fn found(line: &str) -> Option<(String, usize)> {
    match find_timestamp(line.as_bytes(), NOW, true, &UTC) {
        Search::Found(f) => Some((format_timestamp(f.nanos), f.start)),
        _ => None,
    }
}

#[test]
fn catalogue() {
    let table: &[(&str, &str, usize)] = &[
        (
            "2026-12-06T01:29:59.123456789+02:00 x",
            "2026-12-05T23:29:59.123456Z",
            0,
        ),
        ("2026-12-06 01:29:59 x", "2026-12-06T01:29:59.000000Z", 0),
        ("2026/12/06 01:29:59 x", "2026-12-06T01:29:59.000000Z", 0),
        ("2026.12.06 01:29:59 x", "2026-12-06T01:29:59.000000Z", 0),
        (
            "2026-12-06-01.29.59.626547 x",
            "2026-12-06T01:29:59.626547Z",
            0,
        ),
        ("20261206-01:29:59:626 x", "2026-12-06T01:29:59.626000Z", 0),
        ("20261206 01:29:59 x", "2026-12-06T01:29:59.000000Z", 0),
        (
            "06/Dec/2026:01:29:59 +0100 x",
            "2026-12-06T00:29:59.000000Z",
            0,
        ),
        (
            "06 Dec 2026 01:29:59.626 x",
            "2026-12-06T01:29:59.626000Z",
            0,
        ),
        ("Dec  6 01:29:59 host x", "2026-12-06T01:29:59.000000Z", 0),
        (
            "Dec 06, 2026 1:29:59 PM x",
            "2026-12-06T13:29:59.000000Z",
            0,
        ),
        (
            "Sun Dec 06 01:29:59 2026 x",
            "2026-12-06T01:29:59.000000Z",
            0,
        ),
        (
            "Sun, 06 Dec 2026 01:29:59 GMT x",
            "2026-12-06T01:29:59.000000Z",
            0,
        ),
        (
            "2026-12-06  1:29:59 0 [Note] x",
            "2026-12-06T01:29:59.000000Z",
            0,
        ),
        // Year-less: this year, or last year when this year's date is ahead of arrival.
        ("12-06 01:29:59.626 x", "2026-12-06T01:29:59.626000Z", 0),
        ("12-31 23:59:59.000 x", "2025-12-31T23:59:59.000000Z", 0),
        ("[12.06 01:29:59] x", "2026-12-06T01:29:59.000000Z", 1),
        ("26-12-06 01:29:59 x", "2026-12-06T01:29:59.000000Z", 0),
        // Clock only: the arrival's day; a time far ahead of arrival is yesterday's.
        ("01:29:59.626 x", "2026-12-06T01:29:59.626000Z", 0),
        ("23:59:59 x", "2026-12-06T23:59:59.000000Z", 0),
        ("[11:00:00 INF] x", "2026-12-06T11:00:00.000000Z", 1),
        // Epoch numbers.
        ("1796558399 x", "2026-12-06T11:59:59.000000Z", 0),
        ("1796558399.5 x", "2026-12-06T11:59:59.500000Z", 0),
        ("1796558399123 x", "2026-12-06T11:59:59.123000Z", 0),
        ("1796558399123456 x", "2026-12-06T11:59:59.123456Z", 0),
        ("1796558399123456789 x", "2026-12-06T11:59:59.123456Z", 0),
        // Past a prefix.
        (
            "1234:M 06 Dec 2026 01:29:59.626 * x",
            "2026-12-06T01:29:59.626000Z",
            7,
        ),
        (
            "E, [2026-12-06T01:29:59.626547 #1] x",
            "2026-12-06T01:29:59.626547Z",
            4,
        ),
        (
            "web-1 | 2026-12-06T01:29:59Z x",
            "2026-12-06T01:29:59.000000Z",
            8,
        ),
    ];
    for (line, want, start) in table {
        assert_eq!(
            found(line),
            Some((want.to_string(), *start)),
            "line: {line:?}"
        );
    }
}

#[test]
fn clock_only_just_after_midnight_is_yesterday() {
    // Arrival 00:00:30, line 23:59:50: ten seconds before arrival, not 24 hours after.
    let now = NOW - 12 * 3600 * NANOS_PER_SEC + 30 * NANOS_PER_SEC;
    let Search::Found(f) = find_timestamp(b"23:59:50 x", now, true, &UTC) else {
        panic!("not found");
    };
    assert_eq!(format_timestamp(f.nanos), "2026-12-05T23:59:50.000000Z");
}

#[test]
fn layouts_without_a_date_or_year_take_them_from_arrival_in_the_zone() {
    let berlin = LocalZone::parse("Europe/Berlin").unwrap();
    let at = |line: &[u8], now: i64| match find_timestamp(line, now, true, &berlin) {
        Search::Found(f) => format_timestamp(f.nanos),
        other => format!("{other:?}"),
    };
    // Arrival 23:30 UTC is 00:30 on 7 December in Berlin: `00:20:00` is ten minutes ago,
    // on Berlin's date, not 7 December 00:20 UTC.
    let late = NOW + 11 * 3600 * NANOS_PER_SEC + 1800 * NANOS_PER_SEC;
    assert_eq!(at(b"00:20:00 x", late), "2026-12-06T23:20:00.000000Z");
    assert_eq!(at(b"13:30:00 x", NOW), "2026-12-06T12:30:00.000000Z");
    // Year-less layouts (logcat, glog) are placed in the zone too, DST included.
    assert_eq!(
        at(b"07-01 12:00:00.000  1  2 I Tag: x", NOW),
        "2026-07-01T10:00:00.000000Z"
    );
    assert_eq!(
        at(b"I1206 13:00:00.000000    1 main.go:1] x", NOW),
        "2026-12-06T12:00:00.000000Z"
    );
}

#[test]
fn weak_layouts_only_at_the_start() {
    let table = [
        "took 00:01:23 to build",
        "copied 12-06 01:29:59 rows",
        "request id 1796558399 done",
        "x 1796558399123 y",
    ];
    for line in table {
        assert_eq!(found(line), None, "line: {line:?}");
    }
}

#[test]
fn implausible_times_are_rejected() {
    let table = [
        "1985-01-01 00:00:00 before 1990",
        "2031-01-01 00:00:00 far future",
        "4102444800 epoch in 2100",
        "0000000001 tiny epoch",
    ];
    for line in table {
        let got = find_timestamp(line.as_bytes(), NOW, true, &UTC);
        assert!(
            matches!(got, Search::Implausible(_) | Search::None),
            "line: {line:?}: {got:?}"
        );
    }
    assert!(matches!(
        find_timestamp(b"2031-01-01 00:00:00 far future", NOW, true, &UTC),
        Search::Implausible(_)
    ));
}

#[test]
fn not_a_timestamp() {
    let table = [
        "2026-12-06abc",
        "v1.2026-12-06 01:29:59",
        "1.5 2026",
        "12:34",
        "99:99:99 x",
        "2026-13-06 01:29:59",
        "20261306-01:29:59",
        "",
    ];
    for line in table {
        assert_eq!(found(line), None, "line: {line:?}");
    }
}

#[test]
fn only_the_start_when_not_anywhere() {
    let line = b"web-1 | 2026-12-06T01:29:59Z x";
    assert_eq!(find_timestamp(line, NOW, false, &UTC), Search::None);
    assert!(matches!(
        find_timestamp(b"2026-12-06T01:29:59Z x", NOW, false, &UTC),
        Search::Found(_)
    ));
    // A structured event's message starting with a number is not an epoch time.
    assert_eq!(
        find_timestamp(b"1796558399 rows copied", NOW, false, &UTC),
        Search::None
    );
    assert!(matches!(
        find_timestamp(b"1796558399 rows copied", NOW, true, &UTC),
        Search::Found(_)
    ));
}

#[test]
fn a_time_past_the_window_is_not_found() {
    let pad = "x".repeat(SEARCH_BYTES - 10);
    // Starts inside the window, ends past it.
    let line = format!("{pad} 2026-12-06T01:29:59Z");
    assert_eq!(found(&line), None);
    let pad = "x".repeat(SEARCH_BYTES - 30);
    let line = format!("{pad} 2026-12-06T01:29:59Z");
    assert_eq!(found(&line).map(|f| f.1), Some(SEARCH_BYTES - 29));
}

/// The word starts flagged a block at once are those a byte-by-byte reading finds: an
/// ASCII letter or digit after a byte that is neither one nor a number's or a time's
/// punctuation, never the window's first byte, never past its end.
#[test]
fn word_starts_are_those_read_byte_by_byte() {
    let boundary = |b: u8| !b.is_ascii_alphanumeric() && !b".:/-+,_".contains(&b);
    let flagged = |window: &[u8]| -> Vec<usize> {
        let padded = Padded::new(window);
        (0..SEARCH_BYTES / BLOCK)
            .flat_map(|block| {
                let starts = padded.word_starts(block);
                (0..BLOCK)
                    .filter(move |i| starts[*i] == 1)
                    .map(move |i| block * BLOCK + i)
            })
            .collect()
    };
    for before in 0..=u8::MAX {
        for byte in 0..=u8::MAX {
            let expected = byte.is_ascii_alphanumeric() && boundary(before);
            let want: Vec<usize> = if expected { vec![1] } else { vec![] };
            assert_eq!(flagged(&[before, byte]), want, "{before:#04x} {byte:#04x}");
        }
    }
    let line: Vec<u8> = (0..200)
        .map(|i| if i % 3 == 0 { b' ' } else { b'7' })
        .collect();
    let want: Vec<usize> = (0..SEARCH_BYTES).filter(|i| i % 3 == 1).collect();
    assert_eq!(flagged(&line[..SEARCH_BYTES]), want);
    assert_eq!(flagged(b"a b"), vec![2]);
    assert_eq!(flagged(b" b"), vec![1]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Never panics, and whatever it finds lies within the first SEARCH_BYTES bytes.
    #[test]
    fn never_beyond_the_window(line in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Search::Found(f) | Search::Implausible(f) = find_timestamp(&line, NOW, true, &UTC) {
            prop_assert!(f.start < f.end && f.end <= SEARCH_BYTES && f.end <= line.len());
        }
        let _ = crate::parse::layout::scan(&line, NOW, true, &UTC);
    }

    /// A timestamp placed past the window in text built from timestamp-like pieces is not
    /// found there.
    #[test]
    fn pieces_past_the_window_are_ignored(
        pieces in proptest::collection::vec(
            prop_oneof![
                Just("2026-12-06T01:29:59Z"), Just("12-06 01:29:59.626"), Just("01:29:59"),
                Just("Dec  6 01:29:59"), Just("1796558399"), Just(" "), Just("["), Just("]"),
                Just("x"), Just("06 Dec 2026 01:29:59"), Just("E1206 01:29:59.1"), Just(":"),
            ],
            0..40,
        ),
        pad in 128usize..200,
    ) {
        let tail: String = pieces.concat();
        let line = format!("{}{tail}", "a".repeat(pad));
        prop_assert_eq!(find_timestamp(line.as_bytes(), NOW, true, &UTC), Search::None);
        let line = format!("{tail}{}", "a".repeat(pad));
        if let Search::Found(f) | Search::Implausible(f) = find_timestamp(line.as_bytes(), NOW, true, &UTC) {
            prop_assert!(f.end <= SEARCH_BYTES);
        }
    }
}
