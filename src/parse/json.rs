//! JSON objects, one per line, parsed straight into [`Value`].
//!
//! Strings without escapes (nearly all of them in logs) become slices of the input line
//! rather than copies: one JSON line then costs two allocations (the line and the field
//! vector) instead of one per string, which is most of the parse time for typical events.
//! This uses its own visitor instead of `Value`'s `Deserialize` impl, which must copy
//! because it cannot know the input's `Bytes`.

use std::fmt;

use bytes::Bytes;
use compact_str::CompactString;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::{trim_line_end_bytes, ParseError};
use crate::event::{Map, Value};

/// Parses one JSON object. Anything else (an array, a number, invalid JSON, nesting deeper
/// than serde_json's recursion limit of 128) is an error, never a panic or a stack overflow.
pub fn json(input: &[u8]) -> Result<Map, ParseError> {
    json_bytes(&Bytes::copy_from_slice(input))
}

/// [`json`] for a line already held in `Bytes`: string fields are slices of it.
pub fn json_bytes(input: &Bytes) -> Result<Map, ParseError> {
    let line = trim_line_end_bytes(input);
    let first = line.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let mut de = serde_json::Deserializer::from_slice(&line);
    let parsed = SliceSeed { src: &line }
        .deserialize(&mut de)
        .and_then(|value| de.end().map(|()| value));
    match parsed {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ParseError::new(format!(
            "expected a json object, found {}",
            kind(&other)
        ))),
        // An empty line is a common, harmless case; say so plainly.
        Err(_) if first.is_none() => Err(ParseError::new(
            "expected a json object, found an empty line",
        )),
        Err(err) => Err(describe(&err)),
    }
}

/// `invalid json at column 17: expected `:``. serde_json appends ` at line L column C` to
/// its messages; we move the position to the front and drop the line, which is always 1
/// for a single line. Its one capitalised message (`EOF while …`) is lowercased.
fn describe(err: &serde_json::Error) -> ParseError {
    let text = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    let what = text.strip_suffix(&suffix).unwrap_or(&text);
    let what = what.replace("EOF", "end of input");
    ParseError::new(format!("invalid json at column {}: {what}", err.column()))
}

/// Deserialises a [`Value`] whose borrowed strings are sliced out of `src`.
#[derive(Clone, Copy)]
struct SliceSeed<'a> {
    src: &'a Bytes,
}

impl SliceSeed<'_> {
    /// `s` as a slice of `src` when it points into it (an unescaped string), else a copy.
    fn bytes_of(self, s: &str) -> Bytes {
        let base = self.src.as_ptr() as usize;
        let start = s.as_ptr() as usize;
        if start >= base && start + s.len() <= base + self.src.len() {
            self.src.slice(start - base..start - base + s.len())
        } else {
            Bytes::copy_from_slice(s.as_bytes())
        }
    }
}

impl<'de> DeserializeSeed<'de> for SliceSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SliceSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Integer(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Integer))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Value, E> {
        Ok(Value::Bytes(self.bytes_of(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Bytes(Bytes::copy_from_slice(v.as_bytes())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Bytes(Bytes::from(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::with_capacity(access.size_hint().unwrap_or(0).clamp(8, 64));
        let mut keys = KeyPrints::default();
        while let Some(key) = access.next_key::<CompactString>()? {
            keys.add(&key);
            let value = access.next_value_seed(self)?;
            map.push_unchecked(key, value);
        }
        if keys.maybe_repeated {
            map.dedup_keep_last();
        }
        Ok(Value::Object(map))
    }
}

/// Says cheaply whether an object's keys may repeat, so that the map's own duplicate check
/// (string comparisons of every pair of keys) runs only when one may: a key is printed as
/// its length and four of its bytes (first, second, middle, last) in one `u64`, and equal
/// keys have equal prints. Distinct prints prove distinct keys; equal ones (or more keys
/// than are printed) leave the exact check to `dedup_keep_last`. JSON logs almost never
/// repeat a key, and the pairwise check was a twentieth of `auto` on the mixed bench lines.
#[derive(Default)]
struct KeyPrints {
    prints: [u64; PRINTED_KEYS],
    len: usize,
    maybe_repeated: bool,
}

/// Keys printed per object: most log objects have fewer; past this, the exact check runs.
const PRINTED_KEYS: usize = 16;

impl KeyPrints {
    fn add(&mut self, key: &str) {
        if self.len == PRINTED_KEYS {
            self.maybe_repeated = true;
            return;
        }
        let b = key.as_bytes();
        let byte = |i: usize| u64::from(b.get(i).copied().unwrap_or(0));
        let n = b.len();
        let print = (n as u64) << 32
            | byte(0) << 24
            | byte(1) << 16
            | byte(n / 2) << 8
            | byte(n.wrapping_sub(1));
        self.maybe_repeated |= self.prints[..self.len].contains(&print);
        self.prints[self.len] = print;
        self.len += 1;
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Integer(_) | Value::Float(_) => "a number",
        Value::Bytes(_) | Value::Timestamp(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &[u8], expected: Result<&str, &str>) {
        let got = json(input)
            .map(|m| serde_json::to_string(&m).unwrap())
            .map_err(|e| e.reason);
        let expected = expected.map(str::to_string).map_err(str::to_string);
        assert_eq!(got, expected, "input: {:?}", String::from_utf8_lossy(input));
    }

    #[test]
    fn objects_and_types() {
        check(br#"{"a":1}"#, Ok(r#"{"a":1}"#));
        check(
            br#"{"s":"x","i":-2,"f":1.5,"b":true,"n":null,"a":[1,"y"],"o":{"k":"v"}}"#,
            Ok(r#"{"s":"x","i":-2,"f":1.5,"b":true,"n":null,"a":[1,"y"],"o":{"k":"v"}}"#),
        );
        check(b"  {\"a\":1}  \r\n", Ok(r#"{"a":1}"#));
        check(br#"{"a":1,"b":2,"a":3}"#, Ok(r#"{"a":3,"b":2}"#));
        check(
            br#"{"u":"caf\u00e9 \ud83d\ude00"}"#,
            Ok(r#"{"u":"café 😀"}"#),
        );
        check(
            br#"{"big":18446744073709551615}"#,
            Ok(r#"{"big":1.8446744073709552e+19}"#),
        );
        check(b"{}", Ok("{}"));
    }

    #[test]
    fn errors() {
        check(b"[1,2]", Err("expected a json object, found an array"));
        check(b"\"text\"", Err("expected a json object, found a string"));
        check(b"42", Err("expected a json object, found a number"));
        check(b"null", Err("expected a json object, found null"));
        check(b"", Err("expected a json object, found an empty line"));
        check(b"\r\n", Err("expected a json object, found an empty line"));
        check(br#"{"a" 1}"#, Err("invalid json at column 6: expected `:`"));
        check(
            br#"{"a":1"#,
            Err("invalid json at column 6: end of input while parsing an object"),
        );
        check(
            br#"{"a":1} x"#,
            Err("invalid json at column 9: trailing characters"),
        );
        check(
            b"{\"a\":\"\xff\"}",
            Err("invalid json at column 7: invalid unicode code point"),
        );
        check(b"hello", Err("invalid json at column 1: expected value"));
    }

    #[test]
    fn repeated_keys_are_found_past_what_the_prints_tell_apart() {
        // Same length, first, second, middle and last bytes: equal prints, distinct keys,
        // both kept.
        check(
            br#"{"abxcdeyz":1,"abqcdrsz":2}"#,
            Ok(r#"{"abxcdeyz":1,"abqcdrsz":2}"#),
        );
        // A long key repeated, and one repeated after more keys than are printed.
        check(
            br#"{"a_rather_long_key_name":1,"b":2,"a_rather_long_key_name":3}"#,
            Ok(r#"{"a_rather_long_key_name":3,"b":2}"#),
        );
        let many: Vec<String> = (0..20).map(|i| format!("\"k{i}\":{i}")).collect();
        let line = format!("{{{},\"k3\":\"last\"}}", many.join(","));
        let map = json(line.as_bytes()).unwrap();
        assert_eq!(map.len(), 20);
        assert_eq!(map.get("k3"), Some(&Value::from("last")));
        // Escaped spellings of one key are one key.
        check(br#"{"k":1,"\u006b":2}"#, Ok(r#"{"k":2}"#));
    }

    #[test]
    fn unescaped_strings_are_slices_of_the_line() {
        let line = Bytes::from_static(br#"{"a":"plain","b":"esc\"aped"}"#);
        let map = json_bytes(&line).unwrap();
        let plain = map.get("a").and_then(Value::as_bytes).unwrap();
        let range = line.as_ptr() as usize..line.as_ptr() as usize + line.len();
        assert!(range.contains(&(plain.as_ptr() as usize)));
        assert_eq!(map.get("b"), Some(&Value::from("esc\"aped")));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
        let err = json(deep.as_bytes()).unwrap_err();
        assert!(err.reason.contains("recursion limit exceeded"), "{err}");
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(json(deep.as_bytes()).is_err());
    }
}
