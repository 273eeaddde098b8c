//! The zone a time without an offset is read in (the `parse` transform's `timezone`).
//!
//! Most text layouts write local wall-clock time with no offset (log4j, Python, nginx,
//! syslog). By default such a time is taken as UTC; a configured IANA zone or fixed offset
//! places it instead. A wall-clock time a DST change skips (02:30 on a spring-forward day)
//! is moved forward by the gap, and one it repeats (02:30 on a fall-back day) is the first
//! of the two, as `java.time` and Temporal's "compatible" rule do: the time a clock that
//! kept running would have shown.
//!
//! The zone rules come from jiff's copy of the IANA database bundled in the binary, never
//! the host's tzdata: loading a pipeline does no IO, a container without tzdata reads
//! zones too, and every host places a time the same way.

use jiff::tz::{Offset, TimeZone};
use jiff::Timestamp;

use super::civil::NANOS_PER_SEC;

/// Where wall-clock times are placed.
#[derive(Debug, Clone, Default)]
pub enum LocalZone {
    /// Read as UTC, the default: the router cannot know the sender's zone.
    #[default]
    Utc,
    /// A fixed offset east of UTC, in seconds.
    Fixed(i64),
    /// An IANA zone with its DST rules.
    Named(TimeZone),
}

/// The default zone, for callers without a configured one.
pub(crate) static UTC: LocalZone = LocalZone::Utc;

impl LocalZone {
    /// Reads `UTC`, `Z`, a fixed offset (`+02:00`, `-0530`, `+02`) or an IANA name
    /// (`Europe/Berlin`). The error says what was expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("utc") || text == "Z" {
            return Ok(Self::Utc);
        }
        if let Some(sign) = text.chars().next().filter(|c| matches!(c, '+' | '-')) {
            return fixed_offset(&text[1..])
                .map(|secs| {
                    let secs = if sign == '-' { -secs } else { secs };
                    if secs == 0 {
                        Self::Utc
                    } else {
                        Self::Fixed(secs)
                    }
                })
                .ok_or_else(|| {
                    format!("invalid offset {text:?}: expected ±HH:MM, ±HHMM or ±HH, at most 23:59")
                });
        }
        TimeZone::get(text).map(Self::Named).map_err(|_| {
            format!(
                "unknown time zone {text:?}: expected an IANA name such as \"Europe/Berlin\", an offset such as \"+02:00\", or \"UTC\""
            )
        })
    }

    pub(crate) fn is_utc(&self) -> bool {
        matches!(self, Self::Utc)
    }

    /// The UTC time of a wall-clock time in this zone, given as nanoseconds since the epoch
    /// of that wall-clock time read as if it were UTC.
    pub(crate) fn place(&self, wall_nanos: i64) -> Option<i64> {
        match self {
            Self::Utc => Some(wall_nanos),
            Self::Fixed(secs) => wall_nanos.checked_sub(secs.checked_mul(NANOS_PER_SEC)?),
            Self::Named(tz) => {
                let wall = Offset::UTC
                    .to_datetime(Timestamp::from_nanosecond(i128::from(wall_nanos)).ok()?);
                let utc = tz.to_ambiguous_timestamp(wall).compatible().ok()?;
                i64::try_from(utc.as_nanosecond()).ok()
            }
        }
    }

    /// The wall-clock time in this zone at `utc_nanos`, read as if it were UTC (the
    /// inverse of [`place`](Self::place) away from DST changes).
    pub(crate) fn wall_clock(&self, utc_nanos: i64) -> i64 {
        let offset_secs = match self {
            Self::Utc => return utc_nanos,
            Self::Fixed(secs) => *secs,
            Self::Named(tz) => match Timestamp::from_nanosecond(i128::from(utc_nanos)) {
                Ok(at) => i64::from(tz.to_offset(at).seconds()),
                Err(_) => 0,
            },
        };
        utc_nanos.saturating_add(offset_secs * NANOS_PER_SEC)
    }
}

/// `HH:MM`, `HHMM` or `HH` after the sign, as seconds.
fn fixed_offset(text: &str) -> Option<i64> {
    let digits: String = text.chars().filter(|c| *c != ':').collect();
    let colons = text.len() - digits.len();
    let well_formed = match (digits.len(), colons) {
        (2 | 4, 0) => true,
        (4, 1) => text.as_bytes().get(2) == Some(&b':'),
        _ => false,
    };
    if !well_formed || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i64 = digits[..2].parse().ok()?;
    let minutes: i64 = digits
        .get(2..)
        .filter(|m| !m.is_empty())
        .map_or(Some(0), |m| m.parse().ok())?;
    (hours <= 23 && minutes <= 59).then_some(hours * 3600 + minutes * 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::format_timestamp;
    use crate::parse::parse_timestamp;

    fn nanos(rfc3339: &str) -> i64 {
        parse_timestamp(rfc3339.as_bytes(), 0).unwrap()
    }

    fn place(zone: &str, wall: &str) -> String {
        let zone = LocalZone::parse(zone).unwrap();
        format_timestamp(zone.place(nanos(wall)).unwrap())
    }

    #[test]
    fn names_and_offsets_are_read_and_bad_ones_refused() {
        assert!(LocalZone::parse("UTC").unwrap().is_utc());
        assert!(LocalZone::parse("+00:00").unwrap().is_utc());
        for (text, secs) in [("+02:00", 7200), ("-0530", -19_800), ("+02", 7200)] {
            assert!(
                matches!(LocalZone::parse(text), Ok(LocalZone::Fixed(s)) if s == secs),
                "{text}"
            );
        }
        assert!(matches!(
            LocalZone::parse("Europe/Berlin"),
            Ok(LocalZone::Named(_))
        ));
        for bad in [
            "+24:00",
            "+2:00",
            "+02:0",
            "+02::00",
            "Mars/Olympus",
            "",
            "CEST+",
        ] {
            assert!(LocalZone::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            LocalZone::parse("Mars/Olympus").unwrap_err(),
            "unknown time zone \"Mars/Olympus\": expected an IANA name such as \"Europe/Berlin\", an offset such as \"+02:00\", or \"UTC\""
        );
    }

    #[test]
    fn wall_clock_times_are_placed_across_dst_changes() {
        let table = [
            ("UTC", "2026-07-01T12:00:00Z", "2026-07-01T12:00:00.000000Z"),
            (
                "+02:00",
                "2026-07-01T12:00:00Z",
                "2026-07-01T10:00:00.000000Z",
            ),
            (
                "-05:30",
                "2026-07-01T12:00:00Z",
                "2026-07-01T17:30:00.000000Z",
            ),
            // Berlin: CET (+1) in winter, CEST (+2) in summer.
            (
                "Europe/Berlin",
                "2026-12-06T12:00:00Z",
                "2026-12-06T11:00:00.000000Z",
            ),
            (
                "Europe/Berlin",
                "2026-07-01T12:00:00Z",
                "2026-07-01T10:00:00.000000Z",
            ),
            // 29 March 2026: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist and is
            // read as 03:30 CEST.
            (
                "Europe/Berlin",
                "2026-03-29T01:59:59Z",
                "2026-03-29T00:59:59.000000Z",
            ),
            (
                "Europe/Berlin",
                "2026-03-29T02:30:00Z",
                "2026-03-29T01:30:00.000000Z",
            ),
            (
                "Europe/Berlin",
                "2026-03-29T03:00:00Z",
                "2026-03-29T01:00:00.000000Z",
            ),
            // 25 October 2026: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice,
            // the first (CEST) is taken.
            (
                "Europe/Berlin",
                "2026-10-25T02:30:00Z",
                "2026-10-25T00:30:00.000000Z",
            ),
            (
                "Europe/Berlin",
                "2026-10-25T03:30:00Z",
                "2026-10-25T02:30:00.000000Z",
            ),
            // New York, 8 March 2026: 02:00 EST jumps to 03:00 EDT.
            (
                "America/New_York",
                "2026-03-08T01:30:00Z",
                "2026-03-08T06:30:00.000000Z",
            ),
            (
                "America/New_York",
                "2026-03-08T03:30:00Z",
                "2026-03-08T07:30:00.000000Z",
            ),
        ];
        for (zone, wall, want) in table {
            assert_eq!(place(zone, wall), want, "{wall} in {zone}");
        }
    }

    #[test]
    fn wall_clock_inverts_place() {
        let berlin = LocalZone::parse("Europe/Berlin").unwrap();
        let utc = nanos("2026-07-01T10:00:00Z");
        assert_eq!(berlin.wall_clock(utc), nanos("2026-07-01T12:00:00Z"));
        assert_eq!(berlin.place(berlin.wall_clock(utc)), Some(utc));
        assert_eq!(
            LocalZone::Fixed(-3600).wall_clock(utc),
            nanos("2026-07-01T09:00:00Z")
        );
    }
}
