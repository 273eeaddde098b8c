//! Finding the timestamp of a plain-text line anywhere in its first bytes, as Splunk's
//! automatic timestamp recognition does: many layouts put something before the time
//! (Redis `1234:M `, Ruby `I, [`, Serilog `[`), and a time that is not the first token is
//! still the line's own time.
//!
//! Two tiers keep a number in the message from passing for a time:
//!
//! - **strong** layouts, with a four-digit year or a month name and a clock (everything
//!   [`prefix`](super::timestamp) reads), are taken at any word start in the first
//!   [`SEARCH_BYTES`] bytes;
//! - **weak** layouts, which a count or a duration could imitate (`HH:mm:ss` alone,
//!   `MM-dd HH:mm:ss`, `[MM.dd HH:mm:ss]`, `yy-MM-dd`, glog's `I1206`, bare epoch numbers),
//!   only at the very start of the line or just inside a leading `[`.
//!
//! A time before 1990, or more than a day after the reference (arrival) time, is not
//! believed: the line keeps its arrival time and the caller is told, to count it. Events
//! always have an arrival time in the router; without one only the 1990 bound applies.

use super::civil::{Civil, Cursor, NANOS_PER_SEC, SECS_PER_DAY};
use super::timestamp::{epoch_text, glog, may_start, prefix, two_digit_year};
use super::zone::LocalZone;
use crate::event::now_nanos;

/// How far into a line a timestamp may lie; it must end within these bytes.
pub(crate) const SEARCH_BYTES: usize = 128;

/// 1990-01-01T00:00:00Z: older text times are typos, uptimes or zeroed clocks.
const EARLIEST_NANOS: i64 = 631_152_000 * NANOS_PER_SEC;

/// How far past the reference time a line's own time may be (clock skew, a local time
/// read as UTC east of Greenwich).
const FUTURE_SLACK_NANOS: i64 = SECS_PER_DAY * NANOS_PER_SEC;

/// A `HH:mm:ss` with no date may be at most this far after arrival before it is taken as
/// yesterday's: the largest zone offset, so a local clock east of UTC stays today.
const CLOCK_ONLY_AHEAD_NANOS: i64 = 14 * 3600 * NANOS_PER_SEC;

/// A timestamp found in a line: its time and the bytes it spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) nanos: i64,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// What the search found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Search {
    Found(Found),
    /// A timestamp was there but implausible (before 1990, or far in the future).
    Implausible(Found),
    None,
}

/// Searches the first [`SEARCH_BYTES`] of `line` for a timestamp. `now` is the reference
/// for year-less and date-less layouts (0: the current time). With `anywhere` false only
/// the start of the line is tried (a message from a structured format, whose time is not
/// ours to guess from its prose). A time without an offset is read in `zone`.
pub(crate) fn find_timestamp(line: &[u8], now: i64, anywhere: bool, zone: &LocalZone) -> Search {
    let window = &line[..line.len().min(SEARCH_BYTES)];
    let Some(&first) = window.first() else {
        return Search::None;
    };
    // Weak layouts at the start (or just inside a leading bracket).
    let weak_at = if first == b'[' { 1 } else { 0 };
    if let Some((nanos, used)) = weak(&window[weak_at..], now, anywhere, zone) {
        if let Some(found) = accept(line, nanos, weak_at, weak_at + used) {
            return judge(found, now);
        }
    }
    let try_at = |start: usize| {
        let (nanos, used) = prefix(&window[start..], now, false, zone)?;
        accept(line, nanos, start, start + used)
    };
    if first.is_ascii_alphanumeric() || first == b'[' {
        if let Some(found) = try_at(0) {
            return judge(found, now);
        }
    }
    if !anywhere {
        return Search::None;
    }
    // Word starts, a block of bytes at a time: most lines without a time are scanned to
    // the window's end, and a time found early ends the search at its block.
    let padded = Padded::new(window);
    for block in 0..window.len().div_ceil(BLOCK) {
        let starts = padded.word_starts(block);
        for (chunk_index, chunk) in starts.chunks_exact(8).enumerate() {
            let Ok(chunk) = <[u8; 8]>::try_from(chunk) else {
                continue;
            };
            let mut chunk = u64::from_le_bytes(chunk);
            while chunk != 0 {
                let start = block * BLOCK + chunk_index * 8 + (chunk.trailing_zeros() / 8) as usize;
                // Each flag is 1: clearing the lowest bit clears its byte.
                chunk &= chunk - 1;
                if may_start(&window[start..]) {
                    if let Some(found) = try_at(start) {
                        return judge(found, now);
                    }
                }
            }
        }
    }
    Search::None
}

/// Bytes flagged by [`Padded::word_starts`] at once.
const BLOCK: usize = 32;

/// The search window behind one byte that is no boundary (so its first byte is never a
/// word start: it was tried first) and zeros after its end (no alphanumeric byte, so no
/// start past it).
struct Padded([u8; SEARCH_BYTES + 1]);

impl Padded {
    fn new(window: &[u8]) -> Self {
        let mut padded = [0u8; SEARCH_BYTES + 1];
        padded[0] = b'a';
        let len = window.len().min(SEARCH_BYTES);
        padded[1..=len].copy_from_slice(&window[..len]);
        Padded(padded)
    }

    /// Flags the word starts in block `block` of the window: an alphanumeric byte after a
    /// boundary. Written without branches or tables over fixed lengths, which the
    /// compiler turns into comparisons of 16 bytes at a time.
    fn word_starts(&self, block: usize) -> [u8; BLOCK] {
        let base = block * BLOCK;
        let mut starts = [0u8; BLOCK];
        let block_of = |from: usize| {
            self.0
                .get(from..from + BLOCK)
                .and_then(|bytes| <&[u8; BLOCK]>::try_from(bytes).ok())
        };
        let (Some(before), Some(bytes)) = (block_of(base), block_of(base + 1)) else {
            return starts;
        };
        for ((start, before), byte) in starts.iter_mut().zip(before).zip(bytes) {
            *start = u8::from(is_alphanumeric(*byte) & is_boundary(*before));
        }
        starts
    }
}

const fn is_alphanumeric(b: u8) -> bool {
    ((b | 0x20).wrapping_sub(b'a') < 26) | (b.wrapping_sub(b'0') < 10)
}

/// A candidate counts only when it ends at a delimiter of the whole line (so `…:59abc` or
/// a time cut by the window's edge is not one).
fn accept(line: &[u8], nanos: i64, start: usize, end: usize) -> Option<Found> {
    match line.get(end) {
        Some(b) if b.is_ascii_alphanumeric() => None,
        _ => Some(Found { nanos, start, end }),
    }
}

/// Without a reference time (`now` 0: no arrival time known) only the 1990 bound applies:
/// reading the clock here would cost more than most lines' whole search.
fn judge(found: Found, now: i64) -> Search {
    let too_late = now != 0 && found.nanos > now.saturating_add(FUTURE_SLACK_NANOS);
    if found.nanos < EARLIEST_NANOS || too_late {
        Search::Implausible(found)
    } else {
        Search::Found(found)
    }
}

/// A timestamp may start after a blank or punctuation that is not part of a number or a
/// time (`1.2026-…`, `10:00:00` read from its minutes).
const fn is_boundary(b: u8) -> bool {
    !is_alphanumeric(b) & !matches!(b, b'.' | b':' | b'/' | b'-' | b'+' | b',' | b'_')
}

/// The layouts only believed at the start of a line. A bare number is believed to be an
/// epoch time only when the text is a whole log line, not a structured event's message.
fn weak(s: &[u8], now: i64, whole_line: bool, zone: &LocalZone) -> Option<(i64, usize)> {
    let first = *s.first()?;
    if matches!(first, b'I' | b'W' | b'E' | b'F') {
        return glog(s, now, zone);
    }
    if !first.is_ascii_digit() {
        return None;
    }
    match (s.get(2), s.get(5)) {
        (Some(b':'), Some(b':')) => clock_only(s, now, zone),
        (Some(b'-'), Some(b' ')) => month_day(s, b'-', now, zone),
        (Some(b'.'), Some(b' ')) => month_day(s, b'.', now, zone),
        (Some(b'-'), Some(b'-')) => two_digit_year(&mut Cursor::new(s), b'-', zone),
        _ if whole_line => epoch(s),
        _ => None,
    }
}

/// `HH:mm:ss[.SSS]` alone (log4j `%d{HH:mm:ss.SSS}`, Serilog, Elixir): the date is the
/// arrival's (in `zone`), or the day before or after when that puts the time nearer to
/// arrival and not too far ahead.
fn clock_only(s: &[u8], now: i64, zone: &LocalZone) -> Option<(i64, usize)> {
    let now = if now == 0 { now_nanos() } else { now };
    let mut cur = Cursor::new(s);
    let mut c = Civil::default();
    cur.clock(&mut c)?;
    if c.hour > 23 || c.minute > 59 || c.second > 60 {
        return None;
    }
    let day = NANOS_PER_SEC * SECS_PER_DAY;
    let of_day = (i64::from(c.hour) * 3600 + i64::from(c.minute) * 60 + i64::from(c.second))
        * NANOS_PER_SEC
        + i64::from(c.nanos);
    let today = zone.wall_clock(now).div_euclid(day) * day + of_day;
    let nanos = [today - day, today, today + day]
        .into_iter()
        .filter_map(|wall| zone.place(wall))
        .filter(|t| *t <= now.saturating_add(CLOCK_ONLY_AHEAD_NANOS))
        .min_by_key(|t| (t - now).abs())?;
    Some((nanos, cur.pos))
}

/// logcat's `MM-dd HH:mm:ss.SSS` and `[MM.dd HH:mm:ss]`: the year is inferred.
fn month_day(s: &[u8], sep: u8, now: i64, zone: &LocalZone) -> Option<(i64, usize)> {
    let mut cur = Cursor::new(s);
    let mut c = Civil {
        month: cur.digits(2)?,
        ..Civil::default()
    };
    cur.eat(sep).then_some(())?;
    c.day = cur.digits(2)?;
    cur.eat(b' ').then_some(())?;
    cur.clock(&mut c)?;
    Some((c.with_inferred_year(now, zone)?, cur.pos))
}

/// Epoch numbers of 10 (seconds, with an optional fraction), 13 (ms), 16 (µs) or 19 (ns)
/// digits; the plausibility window then rejects ids that happen to be that long.
fn epoch(s: &[u8]) -> Option<(i64, usize)> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    let mut end = digits;
    match digits {
        10 => {
            if s.get(10) == Some(&b'.') {
                let frac = s[11..].iter().take_while(|b| b.is_ascii_digit()).count();
                if frac > 0 {
                    end = 11 + frac;
                }
            }
        }
        13 | 16 | 19 => {}
        _ => return None,
    }
    Some((epoch_text(&s[..end])?, end))
}

#[cfg(test)]
#[path = "timestamp_search_tests.rs"]
mod tests;
