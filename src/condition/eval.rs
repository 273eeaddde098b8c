//! The compiled form of a condition and its evaluation.
//!
//! A condition compiles to a tree of [`Node`]s whose literals carry every view of
//! themselves a comparison may need (number, severity rank, timestamp, boolean), worked out
//! once at load. Evaluation only borrows from the event: it never allocates and never looks
//! at condition text, except to format a number or timestamp for `matches`, where numbers
//! are written into a stack buffer.

use std::cmp::Ordering;

use memchr::memmem;

use super::lexer::CmpOp;
use super::path::FieldPath;
use crate::event::{fields, Map, Value};

#[derive(Debug, Clone)]
pub(super) enum Node {
    Const(bool),
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Not(Box<Node>),
    Compare {
        op: CmpOp,
        left: Operand,
        right: Operand,
        /// One side is the `level` field: compare severity names by rank.
        severity: bool,
    },
    In {
        left: Operand,
        list: Box<[Literal]>,
        severity: bool,
    },
    Contains {
        haystack: Operand,
        needle: Operand,
        /// Precompiled searcher when the needle is a string literal (boxed: it is large).
        finder: Option<Box<memmem::Finder<'static>>>,
    },
    Matches {
        subject: Operand,
        regex: regex::bytes::Regex,
    },
    Exists(FieldPath),
}

#[derive(Debug, Clone)]
pub(super) enum Operand {
    Field(FieldPath),
    Lit(Literal),
}

impl Operand {
    /// Whether this operand is the `level` field, whose comparisons use severity order.
    pub(super) fn is_level_field(&self) -> bool {
        matches!(self, Operand::Field(p) if p.segments().len() == 1 && p.segments()[0] == fields::LEVEL)
    }
}

/// A literal and the views of it that comparisons use.
#[derive(Debug, Clone)]
pub(super) struct Literal {
    pub(super) value: Value,
    num: Option<Num>,
    rank: Option<u8>,
    nanos: Option<i64>,
    boolean: Option<bool>,
}

impl Literal {
    /// The literal's severity rank, if it is a severity name.
    pub(super) fn rank(&self) -> Option<u8> {
        self.rank
    }

    pub(super) fn new(value: Value) -> Self {
        let (num, rank, nanos, boolean) = match &value {
            Value::Integer(i) => (Some(Num::Int(*i)), None, None, None),
            Value::Float(f) => (Some(Num::Float(*f)), None, None, None),
            Value::Bytes(b) => (
                parse_num(b),
                severity_rank(b),
                std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                    .and_then(|dt| dt.timestamp_nanos_opt()),
                parse_bool(b),
            ),
            _ => (None, None, None, None),
        };
        Self {
            value,
            num,
            rank,
            nanos,
            boolean,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Num {
    Int(i64),
    Float(f64),
}

/// How two present values relate. Ordering only exists between numbers, between strings,
/// between timestamps and between severities; other pairs are only equal or not.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Relation {
    Ordered(Ordering),
    Unordered { equal: bool },
}

/// One side of a comparison: a value borrowed from the event or the condition, plus the
/// literal's precomputed views when it is a literal.
#[derive(Clone, Copy)]
struct Side<'a> {
    value: &'a Value,
    lit: Option<&'a Literal>,
}

impl<'a> Side<'a> {
    fn of_value(value: &'a Value) -> Self {
        Side { value, lit: None }
    }

    fn num(self) -> Option<Num> {
        if let Some(lit) = self.lit {
            return lit.num;
        }
        match self.value {
            Value::Integer(i) => Some(Num::Int(*i)),
            Value::Float(f) => Some(Num::Float(*f)),
            Value::Bytes(b) => parse_num(b),
            _ => None,
        }
    }

    fn rank(self) -> Option<u8> {
        if let Some(lit) = self.lit {
            return lit.rank;
        }
        match self.value {
            Value::Bytes(b) => severity_rank(b),
            _ => None,
        }
    }

    fn boolean(self) -> Option<bool> {
        if let Some(lit) = self.lit {
            return lit.boolean;
        }
        match self.value {
            Value::Bytes(b) => parse_bool(b),
            _ => None,
        }
    }
}

fn resolve<'a>(operand: &'a Operand, map: &'a Map) -> Option<Side<'a>> {
    match operand {
        Operand::Field(path) => path.get(map).map(Side::of_value),
        Operand::Lit(lit) => Some(Side {
            value: &lit.value,
            lit: Some(lit),
        }),
    }
}

// === impl Node ===

impl Node {
    pub(super) fn eval(&self, map: &Map) -> bool {
        match self {
            Node::Const(b) => *b,
            Node::And(items) => items.iter().all(|n| n.eval(map)),
            Node::Or(items) => items.iter().any(|n| n.eval(map)),
            Node::Not(inner) => !inner.eval(map),
            Node::Compare {
                op,
                left,
                right,
                severity,
            } => match (resolve(left, map), resolve(right, map)) {
                (Some(a), Some(b)) => apply(*op, relation(a, b, *severity)),
                // A missing field makes every comparison false, `!=` included.
                _ => false,
            },
            Node::In {
                left,
                list,
                severity,
            } => match resolve(left, map) {
                Some(a) => list.iter().any(|lit| {
                    let b = Side {
                        value: &lit.value,
                        lit: Some(lit),
                    };
                    apply(CmpOp::Eq, relation(a, b, *severity))
                }),
                None => false,
            },
            Node::Contains {
                haystack,
                needle,
                finder,
            } => {
                let (Some(h), Some(n)) = (resolve(haystack, map), resolve(needle, map)) else {
                    return false;
                };
                match (h.value, n.value) {
                    (Value::Bytes(h), Value::Bytes(n)) => match finder {
                        Some(f) => f.find(h).is_some(),
                        None => memmem::find(h, n).is_some(),
                    },
                    (Value::Array(items), _) => items
                        .iter()
                        .any(|item| apply(CmpOp::Eq, relation(Side::of_value(item), n, false))),
                    _ => false,
                }
            }
            Node::Matches { subject, regex } => match resolve(subject, map) {
                Some(s) => with_scalar_bytes(s.value, |b| regex.is_match(b)).unwrap_or(false),
                None => false,
            },
            Node::Exists(path) => path.get(map).is_some(),
        }
    }
}

/// `value op lit`, exactly as a [`Node::Compare`] of a field holding `value` against `lit`
/// evaluates it. [`super::set::ConditionSet`] uses it where its fast path does not apply.
pub(super) fn compare_with_literal(
    op: CmpOp,
    value: &Value,
    lit: &Literal,
    severity: bool,
) -> bool {
    let b = Side {
        value: &lit.value,
        lit: Some(lit),
    };
    apply(op, relation(Side::of_value(value), b, severity))
}

/// `a op b` for two present values, by the condition language's rules (numbers against
/// numeric strings, severity order when `severity`, ...). The remap language compares
/// with this, so both languages agree on what `==` and `<` mean.
pub(crate) fn compare_values(op: CmpOp, a: &Value, b: &Value, severity: bool) -> bool {
    apply(op, relation(Side::of_value(a), Side::of_value(b), severity))
}

fn apply(op: CmpOp, rel: Relation) -> bool {
    use Ordering::{Equal, Greater, Less};
    match (op, rel) {
        (CmpOp::Eq, Relation::Ordered(o)) => o == Equal,
        (CmpOp::Eq, Relation::Unordered { equal }) => equal,
        (CmpOp::Ne, rel) => !apply(CmpOp::Eq, rel),
        (CmpOp::Lt, Relation::Ordered(o)) => o == Less,
        (CmpOp::Le, Relation::Ordered(o)) => o != Greater,
        (CmpOp::Gt, Relation::Ordered(o)) => o == Greater,
        (CmpOp::Ge, Relation::Ordered(o)) => o != Less,
        (_, Relation::Unordered { .. }) => false,
    }
}

fn relation(a: Side<'_>, b: Side<'_>, severity: bool) -> Relation {
    use Value::{Array, Bool, Bytes, Float, Integer, Null, Object, Timestamp};
    const UNEQUAL: Relation = Relation::Unordered { equal: false };
    if severity {
        match (a.rank(), b.rank()) {
            (Some(x), Some(y)) => return Relation::Ordered(x.cmp(&y)),
            // A severity name against something that is not one: no order, not equal.
            (Some(_), None) | (None, Some(_)) => return UNEQUAL,
            (None, None) => {}
        }
    }
    match (a.value, b.value) {
        (Integer(x), Integer(y)) => Relation::Ordered(x.cmp(y)),
        // A number on either side makes the comparison numeric, so that logfmt's string
        // values (`status="503"`) compare with `status >= 500`. Two strings stay strings.
        (Integer(_) | Float(_), Integer(_) | Float(_) | Bytes(_))
        | (Bytes(_), Integer(_) | Float(_)) => match (a.num(), b.num()) {
            (Some(x), Some(y)) => compare_nums(x, y),
            _ => UNEQUAL,
        },
        // Byte order is code point order for UTF-8.
        (Bytes(x), Bytes(y)) => Relation::Ordered(x.as_ref().cmp(y.as_ref())),
        (Timestamp(x), Timestamp(y)) => Relation::Ordered(x.cmp(y)),
        // Only literals are parsed as RFC 3339 (once, at load).
        (Timestamp(x), Bytes(_)) => match b.lit.and_then(|l| l.nanos) {
            Some(y) => Relation::Ordered(x.cmp(&y)),
            None => UNEQUAL,
        },
        (Bytes(_), Timestamp(y)) => match a.lit.and_then(|l| l.nanos) {
            Some(x) => Relation::Ordered(x.cmp(y)),
            None => UNEQUAL,
        },
        (Bool(x), Bool(y)) => Relation::Unordered { equal: x == y },
        (Bool(x), Bytes(_)) => Relation::Unordered {
            equal: b.boolean() == Some(*x),
        },
        (Bytes(_), Bool(y)) => Relation::Unordered {
            equal: a.boolean() == Some(*y),
        },
        (Null, Null) => Relation::Unordered { equal: true },
        (Array(x), Array(y)) => Relation::Unordered { equal: x == y },
        (Object(x), Object(y)) => Relation::Unordered { equal: x == y },
        _ => UNEQUAL,
    }
}

fn compare_nums(a: Num, b: Num) -> Relation {
    let as_f64 = |n: Num| match n {
        Num::Int(i) => i as f64,
        Num::Float(f) => f,
    };
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Relation::Ordered(x.cmp(&y)),
        _ => match as_f64(a).partial_cmp(&as_f64(b)) {
            Some(o) => Relation::Ordered(o),
            None => Relation::Unordered { equal: false },
        },
    }
}

/// Parses a string as a number: an integer when it is one (so large ids compare exactly),
/// else a finite float. Surrounding whitespace is ignored, as [`Value::as_f64`] does.
pub(super) fn parse_num(b: &[u8]) -> Option<Num> {
    let s = std::str::from_utf8(b).ok()?.trim();
    if let Ok(i) = s.parse::<i64>() {
        return Some(Num::Int(i));
    }
    // Rust also parses "inf" and "NaN"; a log value spelled that way is text, not a number.
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() => Some(Num::Float(f)),
        _ => None,
    }
}

fn parse_bool(b: &[u8]) -> Option<bool> {
    match b {
        b"true" => Some(true),
        b"false" => Some(false),
        _ => None,
    }
}

/// The rank of a severity name, case-insensitively: `trace` 0, `debug` 1, `info` 2,
/// `notice` 3, `warn` 4, `error` 5, `critical` 6, `alert` 7, `emergency` 8 (aliases such as
/// `warning`, `err`, `fatal` and `emerg` included). `None` for other text.
///
/// Called for the `level` of nearly every event a condition looks at, so names of up to
/// 8 bytes are lowercased into one integer and matched against integer constants (a
/// comparison each, where matching byte strings is a `memcmp` call each).
/// Every level name [`severity_rank`] knows (its match below, spelled out), for whoever must
/// list the names of a severity range, as the store's `level:>=warn` does.
pub const SEVERITY_NAMES: [&str; 17] = [
    "trace",
    "debug",
    "info",
    "information",
    "informational",
    "notice",
    "warn",
    "warning",
    "error",
    "err",
    "critical",
    "crit",
    "fatal",
    "alert",
    "emerg",
    "emergency",
    "panic",
];

pub fn severity_rank(b: &[u8]) -> Option<u8> {
    if b.len() > 8 {
        let is = |name: &[u8]| b.eq_ignore_ascii_case(name);
        return if is(b"information") || is(b"informational") {
            Some(2)
        } else if is(b"emergency") {
            Some(8)
        } else {
            None
        };
    }
    const fn word(name: &[u8]) -> u64 {
        let mut w = 0u64;
        let mut i = 0;
        while i < name.len() {
            w |= (name[i] as u64) << (8 * i);
            i += 1;
        }
        w
    }
    let mut w = 0u64;
    for (i, byte) in b.iter().enumerate() {
        w |= u64::from(byte.to_ascii_lowercase()) << (8 * i);
    }
    const TRACE: u64 = word(b"trace");
    const DEBUG: u64 = word(b"debug");
    const INFO: u64 = word(b"info");
    const NOTICE: u64 = word(b"notice");
    const WARN: u64 = word(b"warn");
    const WARNING: u64 = word(b"warning");
    const ERROR: u64 = word(b"error");
    const ERR: u64 = word(b"err");
    const CRITICAL: u64 = word(b"critical");
    const CRIT: u64 = word(b"crit");
    const FATAL: u64 = word(b"fatal");
    const ALERT: u64 = word(b"alert");
    const EMERG: u64 = word(b"emerg");
    const PANIC: u64 = word(b"panic");
    // No name contains a zero byte, so a shorter input never equals a longer name.
    match w {
        _ if b.contains(&0) => None,
        TRACE => Some(0),
        DEBUG => Some(1),
        INFO => Some(2),
        NOTICE => Some(3),
        WARN | WARNING => Some(4),
        ERROR | ERR => Some(5),
        CRITICAL | CRIT | FATAL => Some(6),
        ALERT => Some(7),
        EMERG | PANIC => Some(8),
        _ => None,
    }
}

/// Calls `f` with the text of a scalar value as bytes: strings as they are, numbers and
/// booleans as they print. Numbers are formatted into a stack buffer so that matching a
/// regex against `status` or hashing a numeric key does not allocate. Returns `None` for
/// null, arrays and objects, which have no scalar text.
pub(crate) fn with_scalar_bytes<R>(value: &Value, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    use std::io::Write;
    let mut buf = [0u8; 64];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let formatted = match value {
        Value::Bytes(b) => return Some(f(b)),
        Value::Bool(b) => return Some(f(if *b { b"true" } else { b"false" })),
        Value::Integer(i) => write!(cursor, "{i}"),
        Value::Float(x) => write!(cursor, "{x}"),
        // Timestamps (and floats too long for the buffer) take the allocating path; both
        // are rare as regex subjects or keys.
        Value::Timestamp(_) => Err(std::io::ErrorKind::WriteZero.into()),
        Value::Null | Value::Array(_) | Value::Object(_) => return None,
    };
    match formatted {
        Ok(()) => {
            let len = cursor.position() as usize;
            Some(f(&buf[..len]))
        }
        Err(_) => Some(f(value.to_text().as_bytes())),
    }
}

#[cfg(test)]
mod severity_names_tests {
    use super::*;

    /// The list and the match say the same: every listed name has a rank, every rank has a
    /// name, and each name's upper-case spelling ranks the same.
    #[test]
    fn every_listed_name_has_a_rank_and_every_rank_a_name() {
        let mut ranks = std::collections::BTreeSet::new();
        for name in SEVERITY_NAMES {
            let rank = severity_rank(name.as_bytes()).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(
                severity_rank(name.to_uppercase().as_bytes()),
                Some(rank),
                "{name}"
            );
            ranks.insert(rank);
        }
        assert_eq!(
            ranks.into_iter().collect::<Vec<_>>(),
            (0..=8).collect::<Vec<u8>>()
        );
    }
}
