//! Time functions: `parse_timestamp`, `format_timestamp`, `now`.

use std::fmt::Write;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::{optional_string_arg, string_arg, text, type_name, Arg, CallResult};
use crate::event::Value;
use crate::parse;

/// `parse_timestamp(s)`: the formats the router recognises everywhere (RFC 3339, syslog,
/// Apache, epoch numbers...; docs/parsing.md), by the router's own parser.
/// `parse_timestamp(s, format)`: a strftime `format` (`%d/%m/%Y %H:%M`); a time without a
/// zone (`%z`) is UTC, a date alone is midnight UTC.
pub(super) fn parse_timestamp(args: &mut [Arg<'_>]) -> CallResult {
    let format = optional_string_arg(args, 1)?;
    let Some(format) = format else {
        return match &*args[0] {
            Value::Bytes(_) | Value::Timestamp(_) | Value::Integer(_) | Value::Float(_) => {
                parse::timestamp_from_value(&args[0], 0)
                    .map(Value::Timestamp)
                    .ok_or_else(|| format!("{} is not a known timestamp format", shown(&args[0])))
            }
            other => Err(format!("cannot read a timestamp from {}", type_name(other))),
        };
    };
    let format = String::from_utf8_lossy(format);
    let s = String::from_utf8_lossy(string_arg(args, 0)?);
    let s = s.trim();
    let nanos = DateTime::parse_from_str(s, &format)
        .map(|dt| dt.timestamp_nanos_opt())
        .or_else(|_| {
            NaiveDateTime::parse_from_str(s, &format).map(|dt| dt.and_utc().timestamp_nanos_opt())
        })
        .or_else(|_| {
            NaiveDate::parse_from_str(s, &format).map(|d| {
                d.and_hms_opt(0, 0, 0)
                    .and_then(|dt| dt.and_utc().timestamp_nanos_opt())
            })
        })
        .map_err(|e| format!("{s:?} does not match {format:?}: {e}"))?;
    nanos
        .map(Value::Timestamp)
        .ok_or_else(|| format!("{s:?} is out of the timestamp range"))
}

fn shown(value: &Value) -> String {
    match value {
        Value::Bytes(b) => format!("{:?}", String::from_utf8_lossy(b)),
        other => other.to_text(),
    }
}

/// `format_timestamp(t, format)`: the timestamp in UTC by a strftime `format`.
pub(super) fn format_timestamp(args: &mut [Arg<'_>]) -> CallResult {
    let Value::Timestamp(nanos) = *args[0] else {
        return Err(format!(
            "argument 1 must be a timestamp, not {}",
            type_name(&args[0])
        ));
    };
    let format = String::from_utf8_lossy(string_arg(args, 1)?);
    let items: Vec<Item<'_>> = StrftimeItems::new(&format).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return Err(format!("invalid format {format:?}"));
    }
    let time = DateTime::<Utc>::from_timestamp_nanos(nanos);
    let mut out = String::new();
    // A specifier the value cannot fill makes `write!` fail; `to_string` would panic.
    write!(out, "{}", time.format_with_items(items.into_iter()))
        .map_err(|_| format!("cannot format a timestamp with {format:?}"))?;
    Ok(text(out))
}

/// The current time.
pub(super) fn now() -> Value {
    Value::Timestamp(Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX))
}
