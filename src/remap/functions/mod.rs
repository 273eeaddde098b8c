//! The remap language's functions: their signatures (checked at compile time) and their
//! implementations, one file per family.
//!
//! A function is **fallible** when its failure depends on the data (parsing text, turning
//! text into a number): a call to one must be handled where it is written, with
//! `x, err = f(...)` or `f(...) ?? default`, or the program does not compile. Other
//! functions fail only when given the wrong type of value (`downcase(42)`), which fails
//! the event at run time (it goes to the transform's `failed` output) unless handled the
//! same way.
//!
//! Arguments are positional. A function gets them as [`Arg`]s: a field or a literal passed
//! as it is lies where it is (borrowed: reading `.status` in `to_int(.status)` copies
//! nothing), a computed value is owned. The few functions that keep an argument in their
//! result take it with [`take`], which copies only a borrowed one.

mod codec;
mod collection;
mod convert;
pub(super) mod enrichment;
mod hash;
mod string;
mod time;
mod url;
mod user_agent;

#[cfg(test)]
mod functions_tests;

use std::borrow::Cow;

use bytes::Bytes;
use regex::bytes::Regex;

use crate::event::Value;

/// The most arguments any function takes.
pub(super) const MAX_ARGS: usize = 4;

macro_rules! functions {
    ($($variant:ident $name:literal $min:literal ..= $max:literal $fallible:literal regex $regex:expr;)*) => {
        /// A function the language knows.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(super) enum Function {
            $($variant,)*
        }

        impl Function {
            pub(super) fn by_name(name: &str) -> Option<Function> {
                match name {
                    $($name => Some(Function::$variant),)*
                    _ => None,
                }
            }

            pub(super) fn name(self) -> &'static str {
                match self {
                    $(Function::$variant => $name,)*
                }
            }

            /// How many arguments it takes, at least and at most.
            pub(super) fn arity(self) -> (usize, usize) {
                match self {
                    $(Function::$variant => ($min, $max),)*
                }
            }

            /// Whether a call must be handled (`??` or `x, err =`).
            pub(super) fn is_fallible(self) -> bool {
                match self {
                    $(Function::$variant => $fallible,)*
                }
            }

            /// The argument position that may (or, for `parse_regex`, must) be a `r'...'`
            /// regex literal.
            pub(super) fn regex_argument(self) -> Option<usize> {
                match self {
                    $(Function::$variant => $regex,)*
                }
            }
        }

        /// Every function's name, for "unknown function" messages and the docs test.
        pub(super) const NAMES: &[&str] = &[$($name,)*];
    };
}

functions! {
    Downcase "downcase" 1..=1 false regex None;
    Upcase "upcase" 1..=1 false regex None;
    Trim "trim" 1..=1 false regex None;
    Replace "replace" 3..=4 false regex Some(1);
    Split "split" 2..=3 false regex Some(1);
    Join "join" 1..=2 false regex None;
    Contains "contains" 2..=3 false regex None;
    StartsWith "starts_with" 2..=3 false regex None;
    EndsWith "ends_with" 2..=3 false regex None;
    Slice "slice" 2..=3 false regex None;
    ToInt "to_int" 1..=1 true regex None;
    ToFloat "to_float" 1..=1 true regex None;
    ToString "to_string" 1..=1 false regex None;
    ToBool "to_bool" 1..=1 true regex None;
    ParseJson "parse_json" 1..=1 true regex None;
    ParseLogfmt "parse_logfmt" 1..=1 true regex None;
    ParseKeyValue "parse_key_value" 1..=3 true regex None;
    ParseRegex "parse_regex" 2..=2 true regex Some(1);
    ParseTimestamp "parse_timestamp" 1..=2 true regex None;
    FormatTimestamp "format_timestamp" 2..=2 false regex None;
    Now "now" 0..=0 false regex None;
    ParseUrl "parse_url" 1..=1 true regex None;
    ParseUserAgent "parse_user_agent" 1..=1 false regex None;
    Sha256 "sha256" 1..=1 false regex None;
    Md5 "md5" 1..=1 false regex None;
    UuidV4 "uuid_v4" 0..=0 false regex None;
    Merge "merge" 2..=3 false regex None;
    Compact "compact" 1..=1 false regex None;
    Length "length" 1..=1 false regex None;
}

/// An argument: borrowed when it was read in place (a field, a variable, a literal),
/// owned when it was computed.
pub(super) type Arg<'a> = Cow<'a, Value>;

/// Why a call failed; the caller adds the function's name.
pub(super) type CallResult = Result<Value, String>;

impl Function {
    /// Runs the function on its evaluated arguments (`args.len()` is within its arity;
    /// a regex argument's slot holds `null` and the regex is in `regex`).
    pub(super) fn call(self, args: &mut [Arg<'_>], regex: Option<&Regex>) -> CallResult {
        use Function as F;
        match self {
            F::Downcase => string::downcase(args),
            F::Upcase => string::upcase(args),
            F::Trim => string::trim(args),
            F::Replace => string::replace(args, regex),
            F::Split => string::split(args, regex),
            F::Join => collection::join(args),
            F::Contains => string::contains(args),
            F::StartsWith => string::starts_with(args),
            F::EndsWith => string::ends_with(args),
            F::Slice => collection::slice(args),
            F::ToInt => convert::to_int(args),
            F::ToFloat => convert::to_float(args),
            F::ToString => convert::to_string(args),
            F::ToBool => convert::to_bool(args),
            F::ParseJson => codec::parse_json(args),
            F::ParseLogfmt => codec::parse_logfmt(args),
            F::ParseKeyValue => codec::parse_key_value(args),
            F::ParseRegex => codec::parse_regex(args, regex),
            F::ParseTimestamp => time::parse_timestamp(args),
            F::FormatTimestamp => time::format_timestamp(args),
            F::Now => Ok(time::now()),
            F::ParseUrl => url::parse_url(args),
            F::ParseUserAgent => user_agent::parse_user_agent(args),
            F::Sha256 => hash::sha256(args),
            F::Md5 => hash::md5(args),
            F::UuidV4 => Ok(hash::uuid_v4()),
            F::Merge => collection::merge(args),
            F::Compact => collection::compact(args),
            F::Length => collection::length(args),
        }
    }
}

/// The name of a value's type, for messages.
pub(super) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Bytes(_) => "a string",
        Value::Timestamp(_) => "a timestamp",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Argument `index` as a string.
fn string_arg<'a>(args: &'a [Arg<'_>], index: usize) -> Result<&'a Bytes, String> {
    match args.get(index).map(|a| &**a) {
        Some(Value::Bytes(b)) => Ok(b),
        Some(other) => Err(wrong_type(index, "a string", other)),
        None => Err(format!("argument {} is missing", index + 1)),
    }
}

/// Optional argument `index` as a string (absent or `null`: `None`).
fn optional_string_arg<'a>(args: &'a [Arg<'_>], index: usize) -> Result<Option<&'a Bytes>, String> {
    match args.get(index).map(|a| &**a) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => string_arg(args, index).map(Some),
    }
}

/// Optional argument `index` as a boolean (absent or `null`: `default`).
fn bool_arg(args: &[Arg<'_>], index: usize, default: bool) -> Result<bool, String> {
    match args.get(index).map(|a| &**a) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(wrong_type(index, "a boolean", other)),
    }
}

/// Optional argument `index` as an integer (absent or `null`: `None`).
fn int_arg(args: &[Arg<'_>], index: usize) -> Result<Option<i64>, String> {
    match args.get(index).map(|a| &**a) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Integer(i)) => Ok(Some(*i)),
        Some(other) => Err(wrong_type(index, "an integer", other)),
    }
}

fn wrong_type(index: usize, expected: &str, found: &Value) -> String {
    format!(
        "argument {} must be {expected}, not {}",
        index + 1,
        type_name(found)
    )
}

/// Takes an argument to keep in a result: moved when owned, copied when borrowed.
fn take(arg: &mut Arg<'_>) -> Value {
    std::mem::take(arg).into_owned()
}

/// Text as a string value, without a copy when it is already owned.
fn text(s: String) -> Value {
    Value::Bytes(Bytes::from(s))
}
