//! Timestamp recognition: the formats real logs use, parsed by hand into UTC nanoseconds.
//!
//! Hand-written rather than chrono's `parse_from_str` because the hot path tries several
//! formats per event, and dispatching on the first bytes then reading fixed-width digits
//! costs a few nanoseconds where a format-string parser costs hundreds. Times without a zone
//! are taken as UTC (the router cannot know the sender's zone) unless a zone is configured
//! (the `_in` variants, see `zone.rs`), and formats without a year
//! (syslog, glog) get the latest year that does not put them in the future.
//!
//! Every function returns `None` rather than guessing: a value that is out of range (month
//! 13, hour 24) or overflows the `i64` nanosecond range (after 2262) is not a timestamp.

use super::civil::{Civil, Cursor, NANOS_PER_SEC};
use super::zone::{LocalZone, UTC};
use crate::event::Value;

/// Parses a whole field value as a timestamp (surrounding blanks allowed). `now` is the
/// reference for year-less formats, in nanoseconds; 0 means the current time.
pub fn parse_timestamp(text: &[u8], now: i64) -> Option<i64> {
    parse_timestamp_in(text, now, &UTC)
}

/// [`parse_timestamp`] with a time without an offset read in `zone`.
pub(crate) fn parse_timestamp_in(text: &[u8], now: i64, zone: &LocalZone) -> Option<i64> {
    let text = trim_blanks(text);
    if text.is_empty() {
        return None;
    }
    if text.iter().all(|b| b.is_ascii_digit() || *b == b'.') {
        return epoch_text(text);
    }
    let (nanos, used) = prefix(text, now, true, zone)?;
    (used == text.len()).then_some(nanos)
}

/// Finds a timestamp at the very start of a plain-text line and returns it with the number
/// of bytes it spans. The timestamp must end at a delimiter, so `2024-05-01abc` is not one.
/// Bare epoch numbers are not recognised here: a line starting with a number is far more
/// often a count or an id than a time.
pub fn leading_timestamp(text: &[u8], now: i64) -> Option<(i64, usize)> {
    leading_timestamp_in(text, now, &UTC)
}

/// [`leading_timestamp`] with a time without an offset read in `zone`.
pub(crate) fn leading_timestamp_in(
    text: &[u8],
    now: i64,
    zone: &LocalZone,
) -> Option<(i64, usize)> {
    let first = *text.first()?;
    // glog/klog: `E1126 10:00:00.123456 …`, a level letter glued to month and day.
    if matches!(first, b'I' | b'W' | b'E' | b'F') {
        if let Some(found) = glog(text, now, zone) {
            return Some(found);
        }
    }
    let (nanos, used) = prefix(text, now, false, zone)?;
    match text.get(used) {
        None => Some((nanos, used)),
        Some(b) if !b.is_ascii_alphanumeric() => Some((nanos, used)),
        Some(_) => None,
    }
}

/// Interprets a field value as a timestamp: an existing timestamp, an epoch number (unit by
/// magnitude), or text in one of the known formats.
pub fn timestamp_from_value(value: &Value, now: i64) -> Option<i64> {
    timestamp_from_value_in(value, now, &UTC)
}

/// [`timestamp_from_value`] with a text time without an offset read in `zone`.
pub(crate) fn timestamp_from_value_in(value: &Value, now: i64, zone: &LocalZone) -> Option<i64> {
    match value {
        Value::Timestamp(t) => Some(*t),
        Value::Integer(i) => epoch_int(*i),
        Value::Float(f) => epoch_float(*f),
        Value::Bytes(b) => parse_timestamp_in(b, now, zone),
        _ => None,
    }
}

// === epoch numbers ===
//
// The unit is decided by magnitude: seconds since 1973 are ≥ 1e8 and stay below 1e11 until
// the year 5138, so each unit has its own three-decade band. Numbers below 1e8 are refused
// because a `time` field that small is a duration, not a date.

fn epoch_int(n: i64) -> Option<i64> {
    let a = n.unsigned_abs();
    if a < 100_000_000 {
        None
    } else if a < 100_000_000_000 {
        n.checked_mul(NANOS_PER_SEC)
    } else if a < 100_000_000_000_000 {
        n.checked_mul(1_000_000)
    } else if a < 100_000_000_000_000_000 {
        n.checked_mul(1_000)
    } else {
        Some(n)
    }
}

fn epoch_float(f: f64) -> Option<i64> {
    if !f.is_finite() {
        return None;
    }
    let a = f.abs();
    let scale = if a < 1e8 {
        return None;
    } else if a < 1e11 {
        1e9
    } else if a < 1e14 {
        1e6
    } else if a < 1e17 {
        1e3
    } else {
        1.0
    };
    // Whole and fractional parts are scaled apart: `1714521600.25 * 1e9` in one step
    // rounds to …249999 ns, since the product needs more than f64's 53 bits.
    let whole = f.trunc() * scale;
    // The bounds are exact in f64, so the cast below cannot saturate silently.
    if !(whole >= i64::MIN as f64 && whole < i64::MAX as f64) {
        return None;
    }
    (whole as i64).checked_add((f.fract() * scale).round() as i64)
}

/// `1714521600` or `1714521600.123456`, read with integer arithmetic so no digit is lost.
pub(super) fn epoch_text(text: &[u8]) -> Option<i64> {
    let (whole, frac) = match memchr::memchr(b'.', text) {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &b""[..]),
    };
    if whole.is_empty() || frac.contains(&b'.') {
        return None;
    }
    let n: i64 = std::str::from_utf8(whole).ok()?.parse().ok()?;
    let base = epoch_int(n)?;
    // The nanoseconds one unit of `n` is worth, to scale the fraction by.
    let unit = if n == 0 { 0 } else { base / n };
    let mut frac_nanos = 0i64;
    let mut scale = unit;
    for &d in frac.iter().take(18) {
        if !d.is_ascii_digit() {
            return None;
        }
        scale /= 10;
        frac_nanos += i64::from(d - b'0') * scale;
    }
    base.checked_add(frac_nanos)
}

// === formats ===

/// Whether [`prefix`] may read a time at the start of `s`, by the test it starts with: a
/// word of letters must be a month or weekday name, three letters then ` ` or `,`; a word
/// of digits must open with two (every numeric layout [`prefix`] reads does: a year, a
/// two-digit day or month, a packed date). The search asks this at every word of a line
/// before calling `prefix`, most often in vain.
#[inline]
pub(super) fn may_start(s: &[u8]) -> bool {
    match s.first() {
        Some(b) if b.is_ascii_alphabetic() => matches!(s.get(3), Some(b' ' | b',')),
        Some(b) if b.is_ascii_digit() => s.get(1).is_some_and(u8::is_ascii_digit),
        Some(_) => true,
        None => false,
    }
}

/// Tries every format that can start with the first byte of `s`; returns the time and the
/// number of bytes read. `whole` allows forms only safe for a dedicated field (a bare date).
pub(super) fn prefix(s: &[u8], now: i64, whole: bool, zone: &LocalZone) -> Option<(i64, usize)> {
    let first = *s.first()?;
    if first == b'[' {
        // Apache `[Sun Dec 04 04:47:44 2005]`, nginx `[23/Nov/2026:10:00:00 +0000]`. One
        // level only: recursing on `[[[[…` would let a hostile line exhaust the stack.
        if s.get(1) == Some(&b'[') {
            return None;
        }
        let (nanos, used) = prefix(&s[1..], now, false, zone)?;
        return (s.get(1 + used) == Some(&b']')).then_some((nanos, used + 2));
    }
    let mut cur = Cursor::new(s);
    let civil = if first.is_ascii_digit() {
        match (s.get(2), s.get(4), s.get(6)) {
            (_, Some(b'-' | b'/' | b'.'), _) => iso(&mut cur, whole)?,
            (Some(b'/'), _, _) if s.get(3).is_some_and(u8::is_ascii_alphabetic) => nginx(&mut cur)?,
            (Some(b'/'), _, _) => return two_digit_year(&mut cur, b'/', zone),
            (Some(b' '), _, _) if s.get(3).is_some_and(u8::is_ascii_alphabetic) => {
                day_month_year(&mut cur)?
            }
            (_, _, Some(b' ')) => return hdfs(&mut cur, zone),
            _ if s.get(8).is_some_and(|b| matches!(b, b'-' | b' ')) => compact(&mut cur)?,
            _ => return None,
        }
    } else if first.is_ascii_alphabetic() {
        match s.get(3) {
            Some(b' ') if cur.month().is_some() => {
                cur.pos = 0;
                return syslog_style(&mut cur, now, zone);
            }
            Some(b' ') if cur.weekday() => {
                cur.pos = 0;
                ctime(&mut cur)?
            }
            Some(b',') => rfc2822(&mut cur)?,
            _ => return None,
        }
    } else {
        return None;
    };
    Some((civil.to_utc(zone)?, cur.pos))
}

/// RFC 3339 and its relatives: `2026-11-23T10:00:00.123+01:00`, `2026-11-23 10:00:00`,
/// `2015-07-29 17:41:44,747`, `2026/11/23 10:00:00` (nginx error log).
fn iso(cur: &mut Cursor<'_>, whole: bool) -> Option<Civil> {
    let mut c = Civil {
        year: i64::from(cur.digits(4)?),
        ..Civil::default()
    };
    let sep = cur.peek()?;
    cur.pos += 1;
    c.month = cur.digits(2)?;
    cur.eat(sep).then_some(())?;
    c.day = cur.digits(2)?;
    // MariaDB pads the hour with a space: `2026-12-06  1:29:59`.
    if cur.peek() == Some(b' ')
        && cur.peek_at(1) == Some(b' ')
        && cur.peek_at(2).is_some_and(|b| b.is_ascii_digit())
        && cur.peek_at(3) == Some(b':')
    {
        cur.pos += 2;
        c.hour = cur.digits(1)?;
        cur.eat(b':').then_some(())?;
        c.minute = cur.digits(2)?;
        cur.eat(b':').then_some(())?;
        c.second = cur.digits(2)?;
        cur.fraction(&mut c);
        cur.zone(&mut c);
        return Some(c);
    }
    // DB2 and Java's `yyyy-MM-dd-HH.mm.ss.ffffff`: a dash before the time, dots in it.
    if sep == b'-'
        && cur.peek() == Some(b'-')
        && cur.peek_at(3) == Some(b'.')
        && cur.peek_at(6) == Some(b'.')
    {
        cur.pos += 1;
        c.hour = cur.digits(2)?;
        cur.eat(b'.').then_some(())?;
        c.minute = cur.digits(2)?;
        cur.eat(b'.').then_some(())?;
        c.second = cur.digits(2)?;
        cur.fraction(&mut c);
        return Some(c);
    }
    let time_follows = matches!(cur.peek(), Some(b'T' | b't' | b' ' | b'_'))
        && cur.peek_at(1).is_some_and(|b| b.is_ascii_digit());
    if !time_follows {
        return whole.then_some(c);
    }
    cur.pos += 1;
    c.hour = cur.digits(2)?;
    cur.eat(b':').then_some(())?;
    c.minute = cur.digits(2)?;
    // Seconds are optional in RFC 3339's relatives (`2026-11-23T10:00Z`).
    if cur.peek() == Some(b':') {
        cur.pos += 1;
        c.second = cur.digits(2)?;
        cur.fraction(&mut c);
    }
    cur.zone(&mut c);
    Some(c)
}

/// nginx / Apache access log: `23/Nov/2026:10:00:00 +0000`.
fn nginx(cur: &mut Cursor<'_>) -> Option<Civil> {
    let mut c = Civil {
        day: cur.digits(2)?,
        ..Civil::default()
    };
    cur.eat(b'/').then_some(())?;
    c.month = cur.month()?;
    cur.eat(b'/').then_some(())?;
    c.year = i64::from(cur.digits(4)?);
    cur.eat(b':').then_some(())?;
    cur.clock(&mut c)?;
    cur.zone(&mut c);
    Some(c)
}

/// Spark / log4j `yy/MM/dd HH:mm:ss`: `17/06/09 20:10:40`; with `sep` `-`, `yy-MM-dd
/// HH:mm:ss`. Years 2000–2099.
pub(super) fn two_digit_year(
    cur: &mut Cursor<'_>,
    sep: u8,
    zone: &LocalZone,
) -> Option<(i64, usize)> {
    let mut c = Civil {
        year: 2000 + i64::from(cur.digits(2)?),
        ..Civil::default()
    };
    cur.eat(sep).then_some(())?;
    c.month = cur.digits(2)?;
    cur.eat(sep).then_some(())?;
    c.day = cur.digits(2)?;
    cur.eat(b' ').then_some(())?;
    cur.clock(&mut c)?;
    Some((c.to_utc(zone)?, cur.pos))
}

/// Redis `06 Dec 2026 01:29:59.626` (`dd Mmm yyyy HH:mm:ss`).
fn day_month_year(cur: &mut Cursor<'_>) -> Option<Civil> {
    let mut c = Civil {
        day: cur.digits(2)?,
        ..Civil::default()
    };
    cur.eat(b' ').then_some(())?;
    c.month = cur.month()?;
    cur.eat(b' ').then_some(())?;
    c.year = i64::from(cur.digits(4)?);
    cur.eat(b' ').then_some(())?;
    cur.clock(&mut c)?;
    cur.zone(&mut c);
    Some(c)
}

/// `yyyyMMdd-HH:mm:ss:SSS` (FIX engines, some C++ loggers) and `yyyyMMdd HH:mm:ss`; the
/// milliseconds may follow a colon as well as a dot.
fn compact(cur: &mut Cursor<'_>) -> Option<Civil> {
    let date = cur.digits(8)?;
    cur.pos += 1;
    let mut c = Civil {
        year: i64::from(date / 10_000),
        month: date / 100 % 100,
        day: date % 100,
        ..Civil::default()
    };
    cur.clock(&mut c)?;
    if cur.peek() == Some(b':') && cur.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
        cur.pos += 1;
        let start = cur.pos;
        let mut nanos = 0u32;
        let mut scale = 100_000_000u32;
        while let Some(b) = cur.peek().filter(u8::is_ascii_digit) {
            nanos += u32::from(b - b'0') * scale;
            scale /= 10;
            cur.pos += 1;
            if cur.pos - start == 9 {
                break;
            }
        }
        c.nanos = nanos;
    }
    Some(c)
}

/// HDFS `yyMMdd HHmmss`: `081109 203615`.
fn hdfs(cur: &mut Cursor<'_>, zone: &LocalZone) -> Option<(i64, usize)> {
    let date = cur.digits(6)?;
    cur.eat(b' ').then_some(())?;
    let time = cur.digits(6)?;
    let c = Civil {
        year: 2000 + i64::from(date / 10_000),
        month: date / 100 % 100,
        day: date % 100,
        hour: time / 10_000,
        minute: time / 100 % 100,
        second: time % 100,
        ..Civil::default()
    };
    Some((c.to_utc(zone)?, cur.pos))
}

/// BSD syslog `Dec 10 06:55:46` (year inferred), also `Dec  4 06:55:46.123` and with a
/// year before the clock as some devices send it: `Dec 10 2024 06:55:46`.
fn syslog_style(cur: &mut Cursor<'_>, now: i64, zone: &LocalZone) -> Option<(i64, usize)> {
    let mut c = Civil {
        month: cur.month()?,
        ..Civil::default()
    };
    cur.spaces().then_some(())?;
    c.day = cur.digits_1_2()?;
    if cur.eat(b',') {
        return java_util_logging(cur, c, zone);
    }
    cur.eat(b' ').then_some(())?;
    if cur.peek_at(4) == Some(b' ') {
        c.year = i64::from(cur.digits(4)?);
        cur.eat(b' ').then_some(())?;
        cur.clock(&mut c)?;
        return Some((c.to_utc(zone)?, cur.pos));
    }
    cur.clock(&mut c)?;
    Some((c.with_inferred_year(now, zone)?, cur.pos))
}

/// java.util.logging's SimpleFormatter, after `Mmm dd,`: ` 2026 1:29:59 AM`.
fn java_util_logging(cur: &mut Cursor<'_>, mut c: Civil, zone: &LocalZone) -> Option<(i64, usize)> {
    cur.eat(b' ').then_some(())?;
    c.year = i64::from(cur.digits(4)?);
    cur.eat(b' ').then_some(())?;
    let hour = cur.digits_1_2()?;
    cur.eat(b':').then_some(())?;
    c.minute = cur.digits(2)?;
    cur.eat(b':').then_some(())?;
    c.second = cur.digits(2)?;
    cur.eat(b' ').then_some(())?;
    let pm = match cur.s.get(cur.pos..cur.pos + 2) {
        Some(b"AM") => false,
        Some(b"PM") => true,
        _ => return None,
    };
    cur.pos += 2;
    if !(1..=12).contains(&hour) {
        return None;
    }
    c.hour = hour % 12 + if pm { 12 } else { 0 };
    Some((c.to_utc(zone)?, cur.pos))
}

/// ctime / Apache error log: `Sun Dec 04 04:47:44 2005`, `Sun Dec  4 04:47:44.123456 2005`.
fn ctime(cur: &mut Cursor<'_>) -> Option<Civil> {
    cur.weekday().then_some(())?;
    cur.eat(b' ').then_some(())?;
    let mut c = Civil {
        month: cur.month()?,
        ..Civil::default()
    };
    cur.spaces().then_some(())?;
    c.day = cur.digits_1_2()?;
    cur.eat(b' ').then_some(())?;
    cur.clock(&mut c)?;
    cur.eat(b' ').then_some(())?;
    c.year = i64::from(cur.digits(4)?);
    Some(c)
}

/// RFC 2822 / HTTP dates: `Sun, 04 Dec 2005 04:47:44 +0000` or `… GMT`.
fn rfc2822(cur: &mut Cursor<'_>) -> Option<Civil> {
    cur.weekday().then_some(())?;
    cur.eat(b',').then_some(())?;
    cur.spaces().then_some(())?;
    let mut c = Civil {
        day: cur.digits_1_2()?,
        ..Civil::default()
    };
    cur.eat(b' ').then_some(())?;
    c.month = cur.month()?;
    cur.eat(b' ').then_some(())?;
    c.year = i64::from(cur.digits(4)?);
    cur.eat(b' ').then_some(())?;
    cur.clock(&mut c)?;
    cur.zone(&mut c);
    Some(c)
}

/// glog/klog header: `E1126 10:00:00.123456`, level letter then MMDD (year inferred).
pub(super) fn glog(s: &[u8], now: i64, zone: &LocalZone) -> Option<(i64, usize)> {
    let mut cur = Cursor::new(s);
    cur.pos = 1;
    let mmdd = cur.digits(4)?;
    cur.eat(b' ').then_some(())?;
    let mut c = Civil {
        month: mmdd / 100,
        day: mmdd % 100,
        ..Civil::default()
    };
    cur.clock(&mut c)?;
    let nanos = c.with_inferred_year(now, zone)?;
    match cur.peek() {
        None | Some(b' ') => Some((nanos, cur.pos)),
        Some(_) => None,
    }
}

fn trim_blanks(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end]
}

#[cfg(test)]
#[path = "timestamp_tests.rs"]
mod tests;
