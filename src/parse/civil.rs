//! Calendar arithmetic and a byte cursor for reading timestamps, shared by the formats in
//! `timestamp.rs`. Kept apart so that file reads as the list of formats it accepts.

use super::zone::LocalZone;
use crate::event::now_nanos;

pub(super) const NANOS_PER_SEC: i64 = 1_000_000_000;
pub(super) const SECS_PER_DAY: i64 = 86_400;

/// A clock skew we accept from senders before deciding a year-less time is last year's.
const FUTURE_SLACK_NANOS: i64 = SECS_PER_DAY * NANOS_PER_SEC;

const MONTHS: [&[u8; 3]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];
const WEEKDAYS: [&[u8; 3]; 7] = [b"mon", b"tue", b"wed", b"thu", b"fri", b"sat", b"sun"];

// === civil time ===

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(super) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The calendar year that contains `nanos`.
pub(super) fn year_of(nanos: i64) -> i64 {
    let days = nanos.div_euclid(NANOS_PER_SEC * SECS_PER_DAY);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let year = yoe + era * 400;
    if mp >= 10 {
        year + 1
    } else {
        year
    }
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A broken-down time as read from text, before validation.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Civil {
    pub(super) year: i64,
    pub(super) month: u32,
    pub(super) day: u32,
    pub(super) hour: u32,
    pub(super) minute: u32,
    pub(super) second: u32,
    pub(super) nanos: u32,
    pub(super) offset_secs: i64,
    /// The text named its zone (`Z`, an offset, `UTC`); otherwise the time is wall-clock
    /// time, placed by the configured zone.
    pub(super) zoned: bool,
}

impl Civil {
    /// The UTC time: the text's own offset when it named one, else the wall-clock time
    /// placed in `zone`.
    pub(super) fn to_utc(self, zone: &LocalZone) -> Option<i64> {
        let nanos = self.to_nanos()?;
        if self.zoned || zone.is_utc() {
            Some(nanos)
        } else {
            zone.place(nanos)
        }
    }

    /// The time with the text's offset applied, or as if UTC when it named none.
    pub(super) fn to_nanos(self) -> Option<i64> {
        if !(1..=12).contains(&self.month)
            || self.day == 0
            || self.day > days_in_month(self.year, self.month)
            || self.hour > 23
            || self.minute > 59
            // 60 is a leap second; it lands on the next second, as in most libraries.
            || self.second > 60
        {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = days * SECS_PER_DAY
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - self.offset_secs;
        secs.checked_mul(NANOS_PER_SEC)?
            .checked_add(i64::from(self.nanos))
    }

    /// Fills in the year for formats that omit it: the latest year (going back from the
    /// reference time's) that gives a valid date not more than a day in the future. Going
    /// back up to eight years finds the previous 29 February.
    pub(super) fn with_inferred_year(mut self, now: i64, zone: &LocalZone) -> Option<i64> {
        let now = if now == 0 { now_nanos() } else { now };
        let this_year = year_of(zone.wall_clock(now));
        for year in (this_year - 8..=this_year).rev() {
            self.year = year;
            if let Some(t) = self.to_utc(zone) {
                if t <= now.saturating_add(FUTURE_SLACK_NANOS) {
                    return Some(t);
                }
            }
        }
        None
    }
}

// === cursor ===

/// A forward-only reader over the bytes of a candidate timestamp.
pub(super) struct Cursor<'a> {
    pub(super) s: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(s: &'a [u8]) -> Self {
        Self { s, pos: 0 }
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    pub(super) fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.s.get(self.pos + ahead).copied()
    }

    pub(super) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Exactly `n` ASCII digits.
    pub(super) fn digits(&mut self, n: usize) -> Option<u32> {
        let end = self.pos.checked_add(n)?;
        let run = self.s.get(self.pos..end)?;
        let mut v = 0u32;
        for &b in run {
            if !b.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(b - b'0');
        }
        self.pos = end;
        Some(v)
    }

    /// One or two digits (a space-padded or unpadded day, as in `Dec  4` or `Dec 4`).
    pub(super) fn digits_1_2(&mut self) -> Option<u32> {
        let first = self.peek().filter(u8::is_ascii_digit)?;
        self.pos += 1;
        match self.peek().filter(u8::is_ascii_digit) {
            Some(second) => {
                self.pos += 1;
                Some(u32::from(first - b'0') * 10 + u32::from(second - b'0'))
            }
            None => Some(u32::from(first - b'0')),
        }
    }

    /// A three-letter month name in any case.
    pub(super) fn month(&mut self) -> Option<u32> {
        let word = self.s.get(self.pos..self.pos + 3)?;
        let idx = MONTHS.iter().position(|m| word.eq_ignore_ascii_case(*m))?;
        self.pos += 3;
        Some(idx as u32 + 1)
    }

    pub(super) fn weekday(&mut self) -> bool {
        match self.s.get(self.pos..self.pos + 3) {
            Some(word) if WEEKDAYS.iter().any(|d| word.eq_ignore_ascii_case(*d)) => {
                self.pos += 3;
                true
            }
            _ => false,
        }
    }

    pub(super) fn spaces(&mut self) -> bool {
        let start = self.pos;
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
        self.pos > start
    }

    /// `HH:MM:SS` with an optional `.fraction` or `,fraction` (Java's millisecond comma).
    pub(super) fn clock(&mut self, c: &mut Civil) -> Option<()> {
        c.hour = self.digits(2)?;
        self.eat(b':').then_some(())?;
        c.minute = self.digits(2)?;
        self.eat(b':').then_some(())?;
        c.second = self.digits(2)?;
        self.fraction(c);
        Some(())
    }

    /// An optional fraction of a second; digits beyond nanoseconds are read and dropped.
    pub(super) fn fraction(&mut self, c: &mut Civil) {
        if !matches!(self.peek(), Some(b'.' | b','))
            || !self.peek_at(1).is_some_and(|b| b.is_ascii_digit())
        {
            return;
        }
        self.pos += 1;
        let mut nanos = 0u32;
        let mut scale = 100_000_000u32;
        while let Some(b) = self.peek().filter(u8::is_ascii_digit) {
            nanos += u32::from(b - b'0') * scale;
            scale /= 10;
            self.pos += 1;
        }
        c.nanos = nanos;
    }

    /// An optional zone: `Z`, `±HH:MM`, `±HHMM` or `±HH`, optionally after one space, or the
    /// words `UTC`/`GMT`. Nothing is consumed unless a whole zone is there, so the ` - ` in
    /// `2015-07-29 17:41:44,747 - INFO` is left alone.
    pub(super) fn zone(&mut self, c: &mut Civil) {
        if self.eat(b'Z') || self.eat(b'z') {
            c.zoned = true;
            return;
        }
        let save = self.pos;
        self.eat(b' ');
        match self.peek() {
            Some(sign @ (b'+' | b'-')) => {
                self.pos += 1;
                if let Some(h) = self.digits(2) {
                    let colon = self.eat(b':');
                    let m = match self.digits(2) {
                        Some(m) => m,
                        None if colon => {
                            self.pos = save;
                            return;
                        }
                        None => 0,
                    };
                    if h <= 23 && m <= 59 {
                        let secs = i64::from(h * 3600 + m * 60);
                        c.offset_secs = if sign == b'-' { -secs } else { secs };
                        c.zoned = true;
                        return;
                    }
                }
            }
            Some(b'U' | b'G') => {
                let word = self.s.get(self.pos..self.pos + 3);
                if word == Some(b"UTC") || word == Some(b"GMT") {
                    self.pos += 3;
                    c.zoned = true;
                    return;
                }
            }
            _ => {}
        }
        self.pos = save;
    }
}
