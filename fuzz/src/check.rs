//! Invariants shared by several targets.

use sluice::event::{Map, Value};
use sluice::parse::ParseError;

/// A map never holds a key twice, at any depth: `Map::get` returns the first match, so a
/// duplicate would silently hide a value. Parsers must `dedup_keep_last` after pushing.
pub fn assert_unique_keys(map: &Map) {
    let keys: Vec<&str> = map.keys().collect();
    for (i, key) in keys.iter().enumerate() {
        assert!(
            !keys[..i].contains(key),
            "duplicate key {key:?} in {keys:?}"
        );
    }
    for (_, value) in map.iter() {
        assert_unique_keys_in(value);
    }
}

fn assert_unique_keys_in(value: &Value) {
    match value {
        Value::Object(map) => assert_unique_keys(map),
        Value::Array(items) => items.iter().for_each(assert_unique_keys_in),
        _ => {}
    }
}

/// Error text is short, starts lowercase and has no control characters, so a huge or
/// binary line never ends up verbatim in a log line or a dead letter (`parse::excerpt`).
pub fn assert_error_text(text: &str) {
    assert!(!text.is_empty(), "empty error text");
    assert!(
        !text.starts_with(|c: char| c.is_ascii_uppercase()),
        "error text not lowercase: {text:?}"
    );
    assert!(
        !text.chars().any(char::is_control),
        "control character in error text: {text:?}"
    );
    assert!(text.len() <= 300, "error text of {} bytes", text.len());
}

pub fn assert_parse_error(error: &ParseError) {
    assert_error_text(&error.reason);
}

/// `haystack` contains `needle` as a contiguous run of bytes.
pub fn contains_slice(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// A small deterministic generator for choices derived from fuzz input (chunk sizes).
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..=max`.
    pub fn below_or_eq(&mut self, max: usize) -> usize {
        (self.next_u64() % (max as u64 + 1)) as usize
    }
}
