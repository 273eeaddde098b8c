//! The `sample` transform: keeps one event in `rate`.
//!
//! ```toml
//! [transforms.sampled]
//! type = "sample"
//! inputs = ["access_logs"]
//! rate = 10                          # keep 1 in 10
//! key_field = "trace_id"             # keep or drop whole traces
//! exclude = 'level >= "warn"'        # never sample away warnings and errors
//! ```
//!
//! Without `key_field` the transform keeps the 1st, (rate+1)th, (2·rate+1)th... event it
//! sees: exact, and even over any stretch of the stream. With `key_field` the decision is a
//! hash of the key's value, so all events with one key share a fate; the hash (FNV-1a with
//! a fixed mixer) is stable across processes and versions, so several routers sampling the
//! same traces agree. Events without the key fall back to the counter.
//!
//! Dropped events are counted as `component_discarded_events_total{reason="sampled"}`.

use serde::Deserialize;

use super::{FunctionTransform, Outputs, TransformContext};
use crate::condition::{with_scalar_bytes, Condition, FieldPath};
use crate::event::Event;
use crate::field_error::FieldError;
use crate::telemetry::{self, Counter};

/// Configuration of the `sample` transform.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    /// Keep one event in `rate` (at least 1; 1 keeps everything).
    pub rate: u64,
    /// Decide per value of this field instead of per event, so that all events with the
    /// same value (a trace, a request) are kept or dropped together.
    #[serde(default)]
    pub key_field: Option<String>,
    /// Events that satisfy this condition are always kept.
    #[serde(default)]
    pub exclude: Option<String>,
}

impl SampleConfig {
    /// Checks the rate, parses the key path and compiles `exclude`. Does no IO.
    pub fn build(&self, ctx: &TransformContext) -> Result<Sample, FieldError> {
        if self.rate == 0 {
            return Err(FieldError::new(
                "rate",
                "must be at least 1 (1 keeps every event)",
            ));
        }
        let key_field = self
            .key_field
            .as_deref()
            .map(FieldPath::parse)
            .transpose()
            .map_err(|m| FieldError::new("key_field", m))?;
        let exclude = self
            .exclude
            .as_deref()
            .map(Condition::compile)
            .transpose()
            .map_err(|e| FieldError::new("exclude", e.to_string()))?;
        Ok(Sample {
            rate: self.rate,
            key_field,
            exclude,
            seen: 0,
            discarded: telemetry::counter(
                "component_discarded_events_total",
                &[("component_id", &ctx.id), ("reason", "sampled")],
            ),
        })
    }
}

/// The running `sample` transform.
#[derive(Debug)]
pub struct Sample {
    rate: u64,
    key_field: Option<FieldPath>,
    exclude: Option<Condition>,
    /// Events decided by the counter so far.
    seen: u64,
    discarded: Counter,
}

impl Sample {
    fn keep(&mut self, event: &Event) -> bool {
        if self.rate == 1 || self.exclude.as_ref().is_some_and(|c| c.check(event)) {
            return true;
        }
        let keyed = self
            .key_field
            .as_ref()
            .and_then(|path| path.get(&event.fields))
            .and_then(|value| with_scalar_bytes(value, key_hash));
        match keyed {
            Some(hash) => hash % self.rate == 0,
            None => {
                let keep = self.seen % self.rate == 0;
                self.seen = self.seen.wrapping_add(1);
                keep
            }
        }
    }
}

impl FunctionTransform for Sample {
    fn transform(&mut self, event: Event, out: &mut Outputs) {
        if self.keep(&event) {
            out.push(event);
        } else {
            self.discarded.inc(1);
        }
    }
}

/// FNV-1a followed by the SplitMix64 finaliser. FNV alone is stable and fast on short keys
/// but its low bits are weak, and `% rate` looks only at the low bits.
fn key_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::event::test_event as event;

    fn build(id: &str, toml_src: &str) -> Result<Sample, FieldError> {
        let config: SampleConfig =
            toml::from_str(toml_src).unwrap_or_else(|e| panic!("bad test config: {e}"));
        config.build(&TransformContext { id: id.into() })
    }

    /// Runs `events` through a sampler and returns the indices kept.
    fn run(sample: &mut Sample, events: &[Event]) -> Vec<usize> {
        let mut out = Outputs::new(0);
        let mut kept = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let before = out.default_output().len();
            sample.transform(e.clone(), &mut out);
            if out.default_output().len() > before {
                kept.push(i);
            }
        }
        kept
    }

    #[test]
    fn counter_keeps_one_in_rate() {
        let events: Vec<Event> = (0..10).map(|i| event(&format!(r#"{{"n":{i}}}"#))).collect();
        let cases: &[(&str, &[usize])] = &[
            ("rate = 1", &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
            ("rate = 3", &[0, 3, 6, 9]),
            ("rate = 10", &[0]),
            ("rate = 3\nexclude = 'n >= 8'", &[0, 3, 6, 8, 9]),
            // Events without the key fall back to the counter.
            ("rate = 5\nkey_field = 'trace_id'", &[0, 5]),
        ];
        for (n, (config, expected)) in cases.iter().enumerate() {
            let id = format!("sample_counter_{n}");
            let mut sample = build(&id, config).unwrap_or_else(|e| panic!("{config}: {e}"));
            assert_eq!(run(&mut sample, &events), *expected, "{config}");
            assert_eq!(
                telemetry::counter_value(
                    "component_discarded_events_total",
                    &[("component_id", &id), ("reason", "sampled")]
                ),
                (events.len() - expected.len()) as u64,
                "{config}"
            );
        }
    }

    #[test]
    fn key_field_keeps_or_drops_whole_keys() {
        let mut sample = build("sample_keyed", "rate = 4\nkey_field = 'trace_id'")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut kept_keys = 0;
        for key in 0..1000 {
            // Several events per key, interleaved with other keys' events in a real stream;
            // the decision must not depend on order or on the counter.
            let events: Vec<Event> = (0..5)
                .map(|i| event(&format!(r#"{{"trace_id":"t-{key}","i":{i}}}"#)))
                .collect();
            let kept = run(&mut sample, &events);
            assert!(kept.is_empty() || kept.len() == 5, "key {key}: {kept:?}");
            kept_keys += usize::from(!kept.is_empty());
        }
        // 1 in 4 of 1000 keys, give or take.
        assert!((200..300).contains(&kept_keys), "{kept_keys}");
        // Numeric keys hash as their text, so 42 and "42" share a fate.
        let a = run(&mut sample, &[event(r#"{"trace_id":42}"#)]);
        let b = run(&mut sample, &[event(r#"{"trace_id":"42"}"#)]);
        assert_eq!(a, b);
    }

    #[test]
    fn key_hash_is_stable() {
        // A fixed value (checked against an independent implementation): routers of
        // different versions must agree on which keys to keep.
        assert_eq!(key_hash(b""), key_hash(b""));
        assert_ne!(key_hash(b"a"), key_hash(b"b"));
        assert_eq!(key_hash(b"trace-1"), 0x6cfd_8f76_9041_b72b);
    }

    #[test]
    fn config_errors_name_the_field() {
        let cases = [
            (
                "rate = 0",
                FieldError::new("rate", "must be at least 1 (1 keeps every event)"),
            ),
            (
                "rate = 2\nkey_field = 'a b'",
                FieldError::new("key_field", "invalid field path `a b`: unexpected ` `"),
            ),
            (
                "rate = 2\nexclude = 'level >'",
                FieldError::new("exclude", "at column 8: expected a value after `>`"),
            ),
        ];
        for (config, expected) in cases {
            assert_eq!(
                build("sample_err", config).err(),
                Some(expected),
                "{config}"
            );
        }
        for bad in ["", "rate = -1", "rate = 2\nkeep = 1"] {
            assert!(toml::from_str::<SampleConfig>(bad).is_err(), "{bad:?}");
        }
    }
}
