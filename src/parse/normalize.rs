//! Normalisation: one spelling for the timestamp, the level and the message of every event.
//!
//! After parsing, events from different formats name the same facts differently (`ts` or
//! `@timestamp`, `lvl` or `severity`, `msg`). Normalising once here lets every later stage
//! (routing conditions, the store, alerting) read `timestamp`, `level` and `message` only.
//!
//! Source fields are left in place (`severity` stays beside `level`): they may carry detail
//! the vocabulary drops, and removing user data is not ours to decide. The one rename is
//! `msg` → `message`, because two message fields would be ambiguous downstream.
//!
//! The hot path is one pass over the field names (events rarely have more than 20 fields),
//! then at most one parse per candidate field, in priority order.

use compact_str::CompactString;

use super::layout::{self, Source};
use super::level::Level;
use super::timestamp::timestamp_from_value_in;
use super::timestamp_search::Search;
use super::zone::{LocalZone, UTC};
use crate::event::{fields, Event, Map, Value};

/// Fields that may hold the event time, most specific first.
const TIMESTAMP_FIELDS: [&str; 12] = [
    "timestamp",
    "@timestamp",
    "time",
    "ts",
    "datetime",
    "date",
    "_time",
    "eventTime",
    "event_time",
    "time_local",
    "timeMillis",
    "asctime",
];

/// When a shipper read the line: the event's time when the line carries none of its own.
pub const READ_AT: &str = "read_at";

/// Fields that may hold the severity, most specific first.
const LEVEL_FIELDS: [&str; 10] = [
    "level",
    "lvl",
    "severity",
    "loglevel",
    "log_level",
    "levelname",
    "level_name",
    "severity_text",
    "priority",
    "syslog.severity",
];

/// Where the normalised timestamp came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampSource {
    /// A timestamp field of the event (as parsed, or one of its aliases).
    Field,
    /// The start of the message text.
    Message,
    /// None in the line itself: when its shipper read it (`read_at`, which `sluice ship`
    /// and `sluice run` add), so lines spooled through an outage keep their own time.
    ReadAt,
    /// None in the event: the time the router received it.
    ReceivedAt,
    /// None at all; `timestamp` is left absent.
    Missing,
}

/// What [`normalize`] found, for tests and telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Normalized {
    pub timestamp: TimestampSource,
    pub level: Option<Level>,
    /// The text held a timestamp too implausible to believe (before 1990, or more than a
    /// day after arrival); the event kept its arrival time. For counting.
    pub rejected_timestamp: bool,
    /// The plain-text layout the message was read as, when its text was read and one was
    /// recognised: `glog`, `logcat`, `ruby_logger`, `redis`, `postgresql`, `mongodb`,
    /// `bracketed_level` (`[error]`: nginx, Apache, Elixir, MySQL…), `timestamp_level` (a
    /// level word after the time: log4j, Python, supervisord…), `level_first`,
    /// `level_key` (`level=…`), or `timestamp` (a time, no level).
    pub layout: Option<&'static str>,
}

/// Which well-known fields one pass over the keys found.
#[derive(Default)]
struct Present {
    /// Bit `i` set: `TIMESTAMP_FIELDS[i]` is present.
    timestamps: u32,
    /// Bit `i` set: `LEVEL_FIELDS[i]` is present.
    levels: u32,
    message: bool,
    msg: bool,
    /// The event describes an HTTP request (`method`, `request` or `path` present).
    http: bool,
    /// An ECS-style `log` object, which may hold `log.level`.
    log_object: bool,
    /// A field other than the message and shipper labels: the event came structured, so
    /// its message is prose, not a whole log line.
    structured: bool,
}

impl Present {
    fn scan(map: &Map) -> Self {
        let mut p = Present::default();
        for (key, value) in map.iter() {
            let key = key.as_str();
            match key {
                "message" => p.message = true,
                "msg" => p.msg = true,
                "method" | "request" | "path" => {
                    p.http = true;
                    p.structured = true;
                }
                "log" => {
                    p.log_object = matches!(value, Value::Object(_));
                    p.structured = true;
                }
                READ_AT | fields::APP | fields::INSTANCE | fields::HOST | fields::STREAM => {}
                _ => {
                    p.structured = true;
                    if let Some(i) = TIMESTAMP_FIELDS.iter().position(|f| *f == key) {
                        p.timestamps |= 1 << i;
                    } else if let Some(i) = LEVEL_FIELDS.iter().position(|f| *f == key) {
                        p.levels |= 1 << i;
                    }
                }
            }
        }
        p
    }
}

/// Normalises `event` in place: `msg` → `message`, `timestamp` as a [`Value::Timestamp`]
/// (from a field, the start of the message, or the receive time), and `level` in our
/// vocabulary (left absent when nothing says). A time without an offset is read as UTC.
pub fn normalize(event: &mut Event) -> Normalized {
    normalize_in(event, &UTC)
}

/// [`normalize`] with a time without an offset (in a field or the text) read in `zone`.
pub fn normalize_in(event: &mut Event, zone: &LocalZone) -> Normalized {
    let received_at = event.meta.received_at;
    let map = &mut event.fields;
    let present = Present::scan(map);

    if present.msg && !present.message {
        if let Some(msg) = map.remove("msg") {
            map.insert(fields::MESSAGE, msg);
        }
    }
    let has_message = present.message || present.msg;

    // A line whose event holds nothing but its text (and shipper labels) is read as a
    // whole text layout: timestamp anywhere in its first bytes, source fields. A message of
    // a structured event is only read at its start.
    let own_level = present.levels & 1 != 0;
    let field_time = timestamp_from_fields(map, present.timestamps, received_at, zone);
    let field_level = level_from_fields(map, &present);
    let wants_text = field_time.is_none() || (field_level.is_none() && !own_level);
    let scan = if wants_text {
        message_bytes(map, has_message)
            .map(|m| layout::scan(m, received_at, !present.structured, zone))
    } else {
        None
    };

    if let Some(scan) = scan.as_ref().filter(|_| !present.structured) {
        // A text line's event is usually just its message: room for the time, the level
        // and the source fields at once, instead of growing the map twice on the way.
        map.reserve(2 + scan.source.count());
    }
    let mut rejected_timestamp = false;
    let timestamp = match field_time {
        Some(nanos) => {
            set_timestamp(map, nanos);
            TimestampSource::Field
        }
        None => match scan.as_ref().map(|s| s.time) {
            Some(Search::Found(found)) => {
                set_timestamp(map, found.nanos);
                TimestampSource::Message
            }
            other => {
                rejected_timestamp = matches!(other, Some(Search::Implausible(_)));
                match map
                    .get(READ_AT)
                    .and_then(|v| timestamp_from_value_in(v, received_at, &UTC))
                {
                    Some(nanos) => {
                        set_timestamp(map, nanos);
                        TimestampSource::ReadAt
                    }
                    None if received_at > 0 => {
                        set_timestamp(map, received_at);
                        TimestampSource::ReceivedAt
                    }
                    None => TimestampSource::Missing,
                }
            }
        },
    };

    // A `level` we do not recognise is the user's own vocabulary: leave it alone rather
    // than overwrite it with a guess from the text.
    let level = match field_level {
        Some(level) => Some(level),
        None if own_level => None,
        None => scan.as_ref().and_then(|s| s.level),
    };
    if let Some(level) = level {
        set_level(map, level);
    }
    let layout = scan.as_ref().and_then(|s| s.layout);
    if let Some(scan) = scan.filter(|_| !present.structured) {
        add_source_fields(map, &scan.source);
    }
    Normalized {
        timestamp,
        level,
        rejected_timestamp,
        layout,
    }
}

/// Source fields a text layout carries (logcat's pid, tid and tag, glog's file and line,
/// Java's logger and thread), as slices of the message. Only called for an event that is
/// nothing but its text and shipper labels, so none of these keys is set yet.
fn add_source_fields(map: &mut Map, source: &Source) {
    let slots = [
        ("pid", &source.pid),
        ("tid", &source.tid),
        ("component", &source.component),
        ("file", &source.file),
        ("line", &source.line),
        ("logger", &source.logger),
        ("thread", &source.thread),
    ];
    // The message is taken out while its slices are pushed, then put back: no reference
    // count taken on it, and no array of pending fields copied through the stack.
    let message = match map.get_mut(fields::MESSAGE) {
        Some(Value::Bytes(message)) => std::mem::take(message),
        _ => return,
    };
    for (key, range) in slots {
        let Some(range) = range else { continue };
        if range.is_empty() || range.end > message.len() {
            continue;
        }
        map.push_unchecked(
            CompactString::const_new(key),
            Value::Bytes(message.slice(range.clone())),
        );
    }
    if let Some(Value::Bytes(slot)) = map.get_mut(fields::MESSAGE) {
        *slot = message;
    }
}

fn timestamp_from_fields(map: &Map, mut present: u32, now: i64, zone: &LocalZone) -> Option<i64> {
    while present != 0 {
        let i = present.trailing_zeros() as usize;
        present &= present - 1;
        if let Some(nanos) = map
            .get(TIMESTAMP_FIELDS[i])
            .and_then(|v| timestamp_from_value_in(v, now, zone))
        {
            return Some(nanos);
        }
    }
    None
}

fn set_timestamp(map: &mut Map, nanos: i64) {
    match map.get_mut(fields::TIMESTAMP) {
        Some(slot) => *slot = Value::Timestamp(nanos),
        None => map.push_unchecked(fields::TIMESTAMP.into(), Value::Timestamp(nanos)),
    }
}

/// The level from a dedicated field, an ECS `log.level`, or an HTTP status.
fn level_from_fields(map: &Map, present: &Present) -> Option<Level> {
    let mut bits = present.levels;
    while bits != 0 {
        let i = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        if let Some(level) = map.get(LEVEL_FIELDS[i]).and_then(Level::from_value) {
            return Some(level);
        }
    }
    if present.log_object {
        if let Some(level) = map.get_path("log.level").and_then(Level::from_value) {
            return Some(level);
        }
    }
    if present.http {
        let status = match map.get("status")? {
            Value::Integer(n) => *n,
            Value::Bytes(b) if b.len() == 3 => std::str::from_utf8(b).ok()?.parse().ok()?,
            _ => return None,
        };
        return Level::from_http_status(status);
    }
    None
}

fn set_level(map: &mut Map, level: Level) {
    match map.get_mut(fields::LEVEL) {
        // Already canonical (the common case for JSON loggers): keep the existing bytes.
        Some(Value::Bytes(b)) if b.as_ref() == level.as_str().as_bytes() => {}
        Some(slot) => *slot = level.to_value(),
        None => map.push_unchecked(fields::LEVEL.into(), level.to_value()),
    }
}

fn message_bytes(map: &Map, has_message: bool) -> Option<&[u8]> {
    if !has_message {
        return None;
    }
    map.get(fields::MESSAGE)?.as_bytes().map(|b| &b[..])
}

#[cfg(test)]
#[path = "normalize_tests.rs"]
mod tests;
