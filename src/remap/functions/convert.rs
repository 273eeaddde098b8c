//! Conversions: `to_int`, `to_float`, `to_string`, `to_bool`.

use super::{take, type_name, Arg, CallResult};
use crate::event::Value;

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Integers as they are; floats truncated toward zero; strings read as an integer
/// (surrounding blanks allowed); booleans 1 and 0; timestamps as Unix seconds; `null` 0.
pub(super) fn to_int(args: &mut [Arg<'_>]) -> CallResult {
    match &*args[0] {
        Value::Integer(i) => Ok(Value::Integer(*i)),
        // `as` saturates; the range check makes out-of-range values an error instead.
        Value::Float(f) if f.is_finite() && f.abs() < 9.2e18 => Ok(Value::Integer(*f as i64)),
        Value::Float(f) => Err(format!("{f} is out of the integer range")),
        Value::Bytes(b) => {
            let s = String::from_utf8_lossy(b);
            s.trim()
                .parse::<i64>()
                .map(Value::Integer)
                .map_err(|_| format!("{s:?} is not an integer"))
        }
        Value::Bool(b) => Ok(Value::Integer(i64::from(*b))),
        Value::Timestamp(t) => Ok(Value::Integer(t.div_euclid(NANOS_PER_SEC))),
        Value::Null => Ok(Value::Integer(0)),
        other => Err(format!("cannot turn {} into an integer", type_name(other))),
    }
}

/// Floats as they are; integers widened; strings read as a finite number; booleans 1.0
/// and 0.0; timestamps as Unix seconds with a fraction; `null` 0.0.
pub(super) fn to_float(args: &mut [Arg<'_>]) -> CallResult {
    match &*args[0] {
        Value::Float(f) => Ok(Value::Float(*f)),
        Value::Integer(i) => Ok(Value::Float(*i as f64)),
        Value::Bytes(b) => {
            let s = String::from_utf8_lossy(b);
            match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Value::Float(f)),
                _ => Err(format!("{s:?} is not a number")),
            }
        }
        Value::Bool(b) => Ok(Value::Float(if *b { 1.0 } else { 0.0 })),
        Value::Timestamp(t) => Ok(Value::Float(*t as f64 / NANOS_PER_SEC as f64)),
        Value::Null => Ok(Value::Float(0.0)),
        other => Err(format!("cannot turn {} into a float", type_name(other))),
    }
}

/// Text as a template shows it: strings as they are, timestamps in RFC 3339, `null` as
/// the empty string, arrays and objects as JSON.
pub(super) fn to_string(args: &mut [Arg<'_>]) -> CallResult {
    match take(&mut args[0]) {
        Value::Bytes(b) => Ok(Value::Bytes(b)),
        other => Ok(Value::from(other.to_text())),
    }
}

/// Booleans as they are; the strings `true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`
/// (any case); numbers: zero is false; `null` false.
pub(super) fn to_bool(args: &mut [Arg<'_>]) -> CallResult {
    match &*args[0] {
        Value::Bool(b) => Ok(Value::Bool(*b)),
        Value::Integer(i) => Ok(Value::Bool(*i != 0)),
        Value::Float(f) => Ok(Value::Bool(*f != 0.0)),
        Value::Null => Ok(Value::Bool(false)),
        Value::Bytes(b) => {
            let s = String::from_utf8_lossy(b);
            match s.trim().to_ascii_lowercase().as_str() {
                "true" | "t" | "yes" | "y" | "on" | "1" => Ok(Value::Bool(true)),
                "false" | "f" | "no" | "n" | "off" | "0" => Ok(Value::Bool(false)),
                _ => Err(format!("{s:?} is not a boolean")),
            }
        }
        other => Err(format!("cannot turn {} into a boolean", type_name(other))),
    }
}
