//! The operators' value rules: `+ - * / %` on numbers and strings, and how a timestamp
//! compares with text. They read their operands where they lie (fields are not copied to
//! be added or compared); `+` on strings is joined by the caller, a chain at a time.

use crate::event::Value;
use crate::remap::functions::type_name;
use crate::remap::tree::ArithmeticOp;

/// Whether [`timestamps_compared_with_text`] would change anything.
pub(super) fn timestamp_and_text(l: &Value, r: &Value) -> bool {
    matches!(
        (l, r),
        (Value::Timestamp(_), Value::Bytes(_)) | (Value::Bytes(_), Value::Timestamp(_))
    )
}

/// A timestamp compared with text reads the text as a time, as a condition reads an
/// RFC 3339 literal (`.timestamp >= "2024-05-01T00:00:00Z"`); text that is no time stays
/// text, unequal to the timestamp.
pub(super) fn timestamps_compared_with_text(l: Value, r: Value) -> (Value, Value) {
    let as_time = |v: Value| match &v {
        Value::Bytes(b) => crate::parse::parse_timestamp(b, 0).map_or(v, Value::Timestamp),
        _ => v,
    };
    match (&l, &r) {
        (Value::Timestamp(_), Value::Bytes(_)) => (l, as_time(r)),
        (Value::Bytes(_), Value::Timestamp(_)) => (as_time(l), r),
        _ => (l, r),
    }
}

/// `l op r`. Integers stay integers (overflow fails) except in `/`, which always gives a
/// float as in VRL; a float on either side makes a float; `+` joins two strings.
pub(super) fn arithmetic(op: ArithmeticOp, l: &Value, r: &Value) -> Result<Value, String> {
    use ArithmeticOp as Op;
    let overflow = || "integer overflow".to_string();
    match (op, l, r) {
        (Op::Add, Value::Bytes(a), Value::Bytes(b)) => {
            if a.is_empty() {
                return Ok(Value::Bytes(b.clone()));
            }
            let mut joined = Vec::with_capacity(a.len() + b.len());
            joined.extend_from_slice(a);
            joined.extend_from_slice(b);
            Ok(Value::Bytes(joined.into()))
        }
        (_, Value::Integer(_) | Value::Float(_), Value::Integer(0))
            if matches!(op, Op::Divide | Op::Remainder) =>
        {
            Err("division by zero".into())
        }
        (_, Value::Integer(_) | Value::Float(_), Value::Float(f))
            if *f == 0.0 && matches!(op, Op::Divide | Op::Remainder) =>
        {
            Err("division by zero".into())
        }
        (op, Value::Integer(a), Value::Integer(b)) => match op {
            Op::Add => a.checked_add(*b).map(Value::Integer).ok_or_else(overflow),
            Op::Subtract => a.checked_sub(*b).map(Value::Integer).ok_or_else(overflow),
            Op::Multiply => a.checked_mul(*b).map(Value::Integer).ok_or_else(overflow),
            Op::Divide => Ok(Value::Float(*a as f64 / *b as f64)),
            Op::Remainder => a.checked_rem(*b).map(Value::Integer).ok_or_else(overflow),
        },
        (op, Value::Integer(_) | Value::Float(_), Value::Integer(_) | Value::Float(_)) => {
            let (a, b) = (as_float(l), as_float(r));
            let result = match op {
                Op::Add => a + b,
                Op::Subtract => a - b,
                Op::Multiply => a * b,
                Op::Divide => a / b,
                Op::Remainder => a % b,
            };
            if result.is_finite() {
                Ok(Value::Float(result))
            } else {
                Err("the result is too large for a float".into())
            }
        }
        (op, l, r) => Err(format!(
            "cannot apply `{}` to {} and {}",
            op.symbol(),
            type_name(l),
            type_name(r)
        )),
    }
}

fn as_float(v: &Value) -> f64 {
    match v {
        Value::Integer(i) => *i as f64,
        Value::Float(f) => *f,
        _ => 0.0,
    }
}
