//! JSON objects, one per line, parsed straight into [`Value`].
//!
//! Strings without escapes (nearly all of them in logs) become slices of the input line
//! rather than copies: one JSON line then costs two allocations (the line and the field
//! vector) instead of one per string, which is most of the parse time for typical events.
//! This uses its own visitor instead of `Value`'s `Deserialize` impl, which must copy
//! because it cannot know the input's `Bytes`. A flat object of plain values, the usual
//! log line, is read without serde_json first (see `json_flat.rs`).

use std::fmt;

use bytes::Bytes;
use compact_str::CompactString;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::json_flat::flat_object;
use super::json_keys::KeyPrints;
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
    match flat_object(&line) {
        Some(map) => Ok(map),
        None => with_serde(&line),
    }
}

/// Any JSON object, through serde_json: the reference the flat reader agrees with.
fn with_serde(line: &Bytes) -> Result<Map, ParseError> {
    let first = line.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let mut de = serde_json::Deserializer::from_slice(line);
    let parsed = SliceSeed { src: line }
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

    /// The flat reader's answer, when it gives one, is serde_json's, to the bit.
    fn same_as_serde(line: &[u8]) -> bool {
        let line = Bytes::copy_from_slice(line);
        let Some(flat) = flat_object(&line) else {
            return false;
        };
        let reference = with_serde(&line).map(|m| format!("{m:?}"));
        assert_eq!(
            Ok(format!("{flat:?}")),
            reference.map_err(|e| e.reason),
            "line: {:?}",
            String::from_utf8_lossy(&line)
        );
        true
    }

    #[test]
    fn the_flat_reader_takes_plain_objects_and_leaves_the_rest() {
        let taken: [&[u8]; 9] = [
            br#"{"ts":"2024-05-01T00:00:00.123Z","level":"info","status":200,"dur_ms":0}"#,
            br#"  { "a" : "x" , "b":-12 ,"c":true,"d":false,"e":null }  "#,
            br#"{"f":0.5,"g":-1.25,"h":123456789.012345,"i":1.10,"j":999999999999999999}"#,
            b"{\"k\":-999999999999999999,\"l\":\"\",\"m\":\"caf\xc3\xa9\"}",
            br#"{"a":1,"b":2,"a":3}"#,
            br#"{"abxcdeyz":1,"abqcdrsz":2}"#,
            b"{}",
            b"{ }",
            br#"{"":"empty key"}"#,
        ];
        for line in taken {
            assert!(same_as_serde(line), "{:?}", String::from_utf8_lossy(line));
        }
        let left: [&[u8]; 24] = [
            br#"{"a":"esc\"aped"}"#,
            br#"{"\u006b":1}"#,
            br#"{"a":{"b":1}}"#,
            br#"{"a":[1,2]}"#,
            br#"{"a":1e3}"#,
            br#"{"a":1.5E-3}"#,
            br#"{"a":-0}"#,
            br#"{"a":-0.5}"#,
            br#"{"a":01}"#,
            br#"{"a":1.}"#,
            br#"{"a":1234567890123456789}"#,
            br#"{"a":1234567.123456789}"#,
            b"{\"a\":\t1}",
            b"{\"a\":\"tab\there\"}",
            b"{\"a\":\"\xff\"}",
            br#"{"a":tru}"#,
            br#"{"a":truex}"#,
            br#"{"a":1"#,
            br#"{"a" 1}"#,
            br#"{"a":1,}"#,
            br#"{"a":1} x"#,
            br#"[1,2]"#,
            br#"{"a":+1}"#,
            b"",
        ];
        for line in left {
            assert!(!same_as_serde(line), "{:?}", String::from_utf8_lossy(line));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3_000))]

        #[test]
        fn the_flat_reader_agrees_with_serde(
            line in r#" ?\{( ?"[ab\\"é]{0,3}" ?: ?(-?[0-9]{1,20}(\.[0-9]{0,17})?([eE]-?[0-9])?|"[a-z\\ \t]{0,4}"|true|false|null|nul|\{\}|\[\]) ?,?){0,4}\} ?"#,
        ) {
            same_as_serde(line.as_bytes());
        }
    }
}
