//! The `dedupe` transform: drops an event equal to one seen recently.
//!
//! ```toml
//! [transforms.once]
//! type = "dedupe"
//! inputs = ["parsed"]
//! fields = ["app", "message"]        # compare these; default: every field but `ignore`
//! ignore = ["timestamp"]             # the default when `fields` is not given
//! cache_size = 5000                  # how many distinct events are remembered
//! window_secs = 60                   # a repeat older than this passes again (0: no limit)
//! ```
//!
//! As in Vector's `dedupe`, "recently" is the last `cache_size` distinct events (least
//! recently seen forgotten first), so memory is bounded whatever the senders choose; with
//! `window_secs` a repeat is also forgotten once that long has passed since it was last
//! seen. An event is remembered by a 128-bit digest of the compared fields (names and
//! values), computed with two hashers seeded at random per process, so the cache holds 16
//! bytes per event whatever its size, and a sender cannot craft a line that collides with
//! another's. A missing field and an explicit `null` compare as different.
//!
//! Dropped repeats are counted as `component_discarded_events_total{reason="duplicate"}`.

use std::hash::{BuildHasher, Hasher};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use foldhash::quality::RandomState;
use lru::LruCache;
use serde::Deserialize;

use super::{FunctionTransform, Outputs, TransformContext};
use crate::condition::FieldPath;
use crate::event::{fields, Event, Value};
use crate::field_error::FieldError;
use crate::telemetry::{self, Counter};

/// Configuration of the `dedupe` transform.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    /// The fields whose values make two events equal. Without it, every field except
    /// `ignore` is compared.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    /// Top-level fields left out of the comparison when `fields` is not given.
    #[serde(default = "default_ignore")]
    pub ignore: Vec<String>,
    /// How many distinct events are remembered.
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
    /// A repeat last seen longer ago than this passes again; 0 means no time limit.
    #[serde(default)]
    pub window_secs: u64,
}

fn default_ignore() -> Vec<String> {
    vec![fields::TIMESTAMP.to_string()]
}

fn default_cache_size() -> usize {
    5000
}

/// The upper bound on `cache_size`: 16 bytes of digest and about 40 of bookkeeping per
/// entry make ten million about half a gigabyte.
const MAX_CACHE_SIZE: usize = 10_000_000;

impl DedupeConfig {
    /// Checks the settings and parses the field paths. Does no IO.
    pub fn build(&self, ctx: &TransformContext) -> Result<Dedupe, FieldError> {
        if self.fields.is_some() && self.ignore != default_ignore() {
            return Err(FieldError::new(
                "ignore",
                "give either `fields` (compare these) or `ignore` (compare all but these)",
            ));
        }
        let cache_size = NonZeroUsize::new(self.cache_size)
            .filter(|n| n.get() <= MAX_CACHE_SIZE)
            .ok_or_else(|| {
                FieldError::new(
                    "cache_size",
                    format!("must be between 1 and {MAX_CACHE_SIZE}"),
                )
            })?;
        let compare = match &self.fields {
            Some(list) if list.is_empty() => {
                return Err(FieldError::new(
                    "fields",
                    "must name at least one field (leave it out to compare every field)",
                ))
            }
            Some(list) => Compare::Fields(
                list.iter()
                    .map(|f| FieldPath::parse(f))
                    .collect::<Result<_, _>>()
                    .map_err(|m| FieldError::new("fields", m))?,
            ),
            None => Compare::AllBut(self.ignore.clone()),
        };
        Ok(Dedupe {
            compare,
            window: (self.window_secs > 0).then(|| Duration::from_secs(self.window_secs)),
            seen: LruCache::new(cache_size),
            hashers: (RandomState::default(), RandomState::default()),
            discarded: telemetry::counter(
                "component_discarded_events_total",
                &[("component_id", &ctx.id), ("reason", "duplicate")],
            ),
        })
    }
}

#[derive(Debug)]
enum Compare {
    Fields(Vec<FieldPath>),
    AllBut(Vec<String>),
}

/// The running `dedupe` transform.
pub struct Dedupe {
    compare: Compare,
    window: Option<Duration>,
    /// Digest of each remembered event → when it was last seen.
    seen: LruCache<u128, Instant>,
    hashers: (RandomState, RandomState),
    discarded: Counter,
}

impl std::fmt::Debug for Dedupe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dedupe")
            .field("compare", &self.compare)
            .field("window", &self.window)
            .field("remembered", &self.seen.len())
            .finish()
    }
}

impl Dedupe {
    fn digest(&self, event: &Event) -> u128 {
        let states = &self.hashers;
        match &self.compare {
            Compare::Fields(paths) => digest_of(states, |h| {
                for path in paths {
                    match path.get(&event.fields) {
                        Some(value) => {
                            h.write_u8(1);
                            hash_value(states, value, h);
                        }
                        None => h.write_u8(0),
                    }
                }
            }),
            Compare::AllBut(ignore) => map_digest(
                states,
                event
                    .fields
                    .iter()
                    .filter(|(key, _)| !ignore.iter().any(|i| i == key.as_str())),
            ),
        }
    }

    /// Whether `event` repeats one remembered, remembering it either way.
    fn is_repeat(&mut self, event: &Event, now: Instant) -> bool {
        let digest = self.digest(event);
        let previous = self.seen.put(digest, now);
        match (previous, self.window) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(last), Some(window)) => now.duration_since(last) <= window,
        }
    }
}

impl FunctionTransform for Dedupe {
    fn transform(&mut self, event: Event, out: &mut Outputs) {
        if self.is_repeat(&event, Instant::now()) {
            self.discarded.inc(1);
        } else {
            out.push(event);
        }
    }
}

type States = (RandomState, RandomState);

/// A 128-bit digest of what `feed` writes.
fn digest_of(states: &States, feed: impl FnOnce(&mut Both)) -> u128 {
    let mut both = Both(states.0.build_hasher(), states.1.build_hasher());
    feed(&mut both);
    (u128::from(both.1.finish()) << 64) | u128::from(both.0.finish())
}

/// A map's digest, the same whatever order its fields come in (senders order JSON keys
/// as they like): the wrapping sum of each field's own digest.
fn map_digest<'a>(
    states: &States,
    entries: impl Iterator<Item = (&'a compact_str::CompactString, &'a Value)>,
) -> u128 {
    entries.fold(0u128, |sum, (key, value)| {
        sum.wrapping_add(digest_of(states, |h| {
            hash_bytes(key.as_bytes(), h);
            hash_value(states, value, h);
        }))
    })
}

/// Two hashers fed the same bytes.
struct Both(
    <RandomState as BuildHasher>::Hasher,
    <RandomState as BuildHasher>::Hasher,
);

impl Both {
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
        self.1.write(bytes);
    }

    fn write_u8(&mut self, n: u8) {
        self.write(&[n]);
    }

    fn write_u64(&mut self, n: u64) {
        self.write(&n.to_le_bytes());
    }
}

/// Bytes with their length first, so that `["ab", "c"]` and `["a", "bc"]` differ.
fn hash_bytes(bytes: &[u8], h: &mut Both) {
    h.write_u64(bytes.len() as u64);
    h.write(bytes);
}

/// A value with a tag per type, so that `1` and `"1"` differ.
fn hash_value(states: &States, value: &Value, h: &mut Both) {
    match value {
        Value::Null => h.write_u8(0),
        Value::Bool(b) => h.write(&[1, u8::from(*b)]),
        Value::Integer(n) => {
            h.write_u8(2);
            h.write_u64(*n as u64);
        }
        Value::Float(f) => {
            h.write_u8(3);
            h.write_u64(f.to_bits());
        }
        Value::Bytes(b) => {
            h.write_u8(4);
            hash_bytes(b, h);
        }
        Value::Timestamp(t) => {
            h.write_u8(5);
            h.write_u64(*t as u64);
        }
        Value::Array(items) => {
            h.write_u8(6);
            h.write_u64(items.len() as u64);
            for item in items {
                hash_value(states, item, h);
            }
        }
        Value::Object(map) => {
            h.write_u8(7);
            let digest = map_digest(states, map.iter());
            h.write(&digest.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::event::test_event as event;

    fn build(id: &str, toml_src: &str) -> Result<Dedupe, FieldError> {
        let config: DedupeConfig =
            toml::from_str(toml_src).unwrap_or_else(|e| panic!("bad test config: {e}"));
        config.build(&TransformContext { id: id.into() })
    }

    /// The indices of `events` that pass, all seen at the same instant.
    fn passed(dedupe: &mut Dedupe, events: &[&str]) -> Vec<usize> {
        let now = Instant::now();
        (0..events.len())
            .filter(|&i| !dedupe.is_repeat(&event(events[i]), now))
            .collect()
    }

    #[test]
    fn repeats_are_dropped_by_the_compared_fields() {
        let events = [
            r#"{"app":"a","message":"x","timestamp":1}"#,
            r#"{"app":"a","message":"x","timestamp":2}"#, // same but for the time
            r#"{"app":"b","message":"x","timestamp":3}"#,
            r#"{"app":"a","message":"y","timestamp":4}"#,
            r#"{"app":"a","message":"x","pid":7}"#, // one field more
            r#"{"message":"x","app":"a"}"#,         // the same, in another order
            r#"{"app":"a","message":1}"#,
            r#"{"app":"a","message":"1"}"#, // a number and its text differ
            r#"{"app":"a","message":null}"#,
            r#"{"app":"a"}"#, // missing differs from null
        ];
        let cases: &[(&str, &[usize])] = &[
            ("", &[0, 2, 3, 4, 6, 7, 8, 9]),
            ("ignore = []", &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
            ("fields = ['message']", &[0, 3, 6, 7, 8, 9]),
            ("fields = ['app', '.message']", &[0, 2, 3, 6, 7, 8, 9]),
        ];
        for (n, (config, expected)) in cases.iter().enumerate() {
            let mut dedupe = build(&format!("dedupe_fields_{n}"), config).unwrap();
            assert_eq!(passed(&mut dedupe, &events), *expected, "{config}");
        }
    }

    #[test]
    fn nested_values_compare_whole() {
        let mut dedupe = build("dedupe_nested", "fields = ['http']").unwrap();
        let events = [
            r#"{"http":{"status":200,"path":"/"}}"#,
            r#"{"http":{"path":"/","status":200}}"#,
            r#"{"http":{"status":500,"path":"/"}}"#,
            r#"{"http":["ab","c"]}"#,
            r#"{"http":["a","bc"]}"#,
        ];
        assert_eq!(passed(&mut dedupe, &events), [0, 2, 3, 4]);
    }

    #[test]
    fn the_cache_forgets_the_least_recently_seen() {
        let mut dedupe = build("dedupe_cache", "cache_size = 2").unwrap();
        let events = [
            r#"{"m":"a"}"#,
            r#"{"m":"b"}"#,
            r#"{"m":"a"}"#, // repeat; a is now the most recent
            r#"{"m":"c"}"#, // evicts b
            r#"{"m":"a"}"#, // still remembered
            r#"{"m":"b"}"#, // forgotten: passes
        ];
        assert_eq!(passed(&mut dedupe, &events), [0, 1, 3, 5]);
        assert!(dedupe.seen.len() <= 2);
    }

    #[test]
    fn a_repeat_outside_the_window_passes() {
        let mut dedupe = build("dedupe_window", "window_secs = 10").unwrap();
        let line = event(r#"{"m":"a"}"#);
        let start = Instant::now();
        assert!(!dedupe.is_repeat(&line, start));
        assert!(dedupe.is_repeat(&line, start + Duration::from_secs(10)));
        // Seen again at 10 s, so the window runs from there.
        assert!(dedupe.is_repeat(&line, start + Duration::from_secs(19)));
        assert!(!dedupe.is_repeat(&line, start + Duration::from_secs(30)));
    }

    #[test]
    fn dropped_repeats_are_counted() {
        let mut dedupe = build("dedupe_counted", "").unwrap();
        let mut out = Outputs::new(0);
        for _ in 0..5 {
            dedupe.transform(event(r#"{"m":"a"}"#), &mut out);
        }
        assert_eq!(out.default_output().len(), 1);
        assert_eq!(
            telemetry::counter_value(
                "component_discarded_events_total",
                &[("component_id", "dedupe_counted"), ("reason", "duplicate")]
            ),
            4
        );
    }

    #[test]
    fn bad_settings_name_the_field() {
        let cases = [
            ("cache_size = 0", "cache_size"),
            ("cache_size = 100000000", "cache_size"),
            ("fields = []", "fields"),
            ("fields = ['a b']", "fields"),
            ("fields = ['a']\nignore = ['b']", "ignore"),
        ];
        for (config, field) in cases {
            let error = build("dedupe_bad", config).unwrap_err();
            assert!(error.to_string().contains(field), "{config}: {error}");
        }
    }
}
