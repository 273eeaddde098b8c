//! The `throttle` transform: lets at most `threshold` events per `window_secs` through per
//! key, and drops the excess.
//!
//! ```toml
//! [transforms.fair]
//! type = "throttle"
//! inputs = ["ingest"]
//! threshold = 1000
//! window_secs = 60
//! key_field = "app"      # one budget per app; events without `app` share one budget
//! max_keys = 10000       # the default
//! ```
//!
//! The limiter is a token bucket, implemented as GCRA (the "generic cell rate algorithm":
//! one "theoretical arrival time" per key instead of a token count and a timestamp). A token
//! bucket rather than a fixed window because a fixed window lets `2 × threshold` through
//! around each window boundary and then shuts a key out until the next boundary; the bucket
//! allows a burst of `threshold`, then refills steadily at `threshold / window_secs`, so a
//! noisy key is smoothed rather than switched on and off. GCRA also makes idle keys
//! recognisable: a key whose arrival time has passed is indistinguishable from an unseen
//! key, so it can be forgotten without changing any decision.
//!
//! Memory is bounded by `max_keys`. When the table is full, idle keys are swept out (at most
//! once per second, so a flood of new keys cannot make every event scan the table); if it is
//! still full, new keys share one overflow budget, counted in
//! `component_throttle_overflow_events_total`. Dropped events are counted as
//! `component_discarded_events_total{reason="throttled"}` and logged at a limited rate.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{FunctionTransform, Outputs, TransformContext};
use crate::condition::{with_scalar_bytes, FieldPath};
use crate::event::Event;
use crate::field_error::{at_least_one, FieldError};
use crate::telemetry::{self, Counter, LogLimiter};

/// Shortest time between sweeps of idle keys when the key table is full.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Longest window accepted. The bound keeps the scaled clock (nanoseconds × threshold)
/// far inside `u128` for any `threshold`.
const MAX_WINDOW_SECS: u64 = 365 * 24 * 3600;

/// Configuration of the `throttle` transform.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Events allowed per window, per key (at least 1). Up to this many may pass in a burst.
    pub threshold: u64,
    /// Length of the window in seconds (1 to one year).
    pub window_secs: u64,
    /// Give each value of this field its own budget. Without it, or for events that lack
    /// the field, all events share one budget.
    #[serde(default)]
    pub key_field: Option<String>,
    /// Most keys tracked at once (at least 1); bounds memory. Default 10,000.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

fn default_max_keys() -> usize {
    10_000
}

impl ThrottleConfig {
    /// Checks the numbers and parses the key path. Does no IO.
    pub fn build(&self, ctx: &TransformContext) -> Result<Throttle, FieldError> {
        at_least_one(&[("threshold", self.threshold)])?;
        if !(1..=MAX_WINDOW_SECS).contains(&self.window_secs) {
            return Err(FieldError::new(
                "window_secs",
                format!("must be between 1 and {MAX_WINDOW_SECS} (one year)"),
            ));
        }
        at_least_one(&[("max_keys", self.max_keys as u64)])?;
        let key_field = self
            .key_field
            .as_deref()
            .map(FieldPath::parse)
            .transpose()
            .map_err(|m| FieldError::new("key_field", m))?;
        // Time is kept in "scaled nanoseconds" (nanoseconds × threshold) so that the spacing
        // between events, window / threshold, is a whole number and no rounding can let an
        // extra event through.
        let window = u128::from(self.window_secs) * 1_000_000_000;
        let threshold = u128::from(self.threshold);
        let id = ctx.id.as_str();
        Ok(Throttle {
            key_field,
            rate: Gcra {
                threshold,
                interval: window,
                tolerance: window * threshold - window,
            },
            buckets: Buckets {
                keys: HashMap::new(),
                max_keys: self.max_keys,
                shared: 0,
                overflow: 0,
                last_sweep: None,
            },
            base: Instant::now(),
            threshold: self.threshold,
            window_secs: self.window_secs,
            discarded: telemetry::counter(
                "component_discarded_events_total",
                &[("component_id", id), ("reason", "throttled")],
            ),
            overflowed: telemetry::counter(
                "component_throttle_overflow_events_total",
                &[("component_id", id)],
            ),
            drop_log: LogLimiter::default(),
            overflow_log: LogLimiter::default(),
        })
    }
}

/// The running `throttle` transform.
#[derive(Debug)]
pub struct Throttle {
    key_field: Option<FieldPath>,
    rate: Gcra,
    buckets: Buckets,
    /// Origin of the scaled clock.
    base: Instant,
    threshold: u64,
    window_secs: u64,
    discarded: Counter,
    overflowed: Counter,
    drop_log: LogLimiter,
    overflow_log: LogLimiter,
}

/// The rate, in scaled nanoseconds (see `build`).
#[derive(Debug, Clone, Copy)]
struct Gcra {
    threshold: u128,
    /// Spacing between events at the sustained rate.
    interval: u128,
    /// How far ahead of now a key's arrival time may run: the burst allowance.
    tolerance: u128,
}

impl Gcra {
    /// Decides one event against the arrival time `tat` and advances it when allowed.
    fn admit(&self, tat: &mut u128, now: u128) -> bool {
        let t = (*tat).max(now);
        if t - now > self.tolerance {
            return false;
        }
        *tat = t.saturating_add(self.interval);
        true
    }
}

#[derive(Debug)]
struct Buckets {
    /// Key bytes → theoretical arrival time.
    keys: HashMap<Box<[u8]>, u128>,
    max_keys: usize,
    /// The budget of events without a key.
    shared: u128,
    /// The budget of new keys that arrive while the table is full.
    overflow: u128,
    last_sweep: Option<Instant>,
}

/// Which budget decided an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Budget {
    Key,
    Shared,
    Overflow,
}

impl Buckets {
    fn admit_key(
        &mut self,
        rate: &Gcra,
        key: &[u8],
        now: u128,
        instant: Instant,
    ) -> (bool, Budget) {
        if let Some(tat) = self.keys.get_mut(key) {
            return (rate.admit(tat, now), Budget::Key);
        }
        if self.keys.len() >= self.max_keys {
            let due = self
                .last_sweep
                .is_none_or(|last| instant.saturating_duration_since(last) >= SWEEP_INTERVAL);
            if due {
                self.last_sweep = Some(instant);
                // An arrival time in the past means a full bucket: forgetting the key
                // changes no decision.
                self.keys.retain(|_, tat| *tat > now);
            }
            if self.keys.len() >= self.max_keys {
                return (rate.admit(&mut self.overflow, now), Budget::Overflow);
            }
        }
        let mut tat = 0;
        let allowed = rate.admit(&mut tat, now);
        self.keys.insert(key.into(), tat);
        (allowed, Budget::Key)
    }
}

impl Throttle {
    /// Decides `event` at time `now`; tests pass their own clock.
    fn transform_at(&mut self, event: Event, out: &mut Outputs, now: Instant) {
        let scaled = now
            .saturating_duration_since(self.base)
            .as_nanos()
            .saturating_mul(self.rate.threshold);
        let key = self.key_field.as_ref().and_then(|p| p.get(&event.fields));
        let (rate, buckets) = (&self.rate, &mut self.buckets);
        let (allowed, budget) = key
            .and_then(|value| {
                with_scalar_bytes(value, |bytes| buckets.admit_key(rate, bytes, scaled, now))
            })
            .unwrap_or_else(|| (rate.admit(&mut buckets.shared, scaled), Budget::Shared));
        if budget == Budget::Overflow {
            self.overflowed.inc(1);
            if let Some(suppressed) = self.overflow_log.check() {
                tracing::warn!(
                    max_keys = self.buckets.max_keys,
                    suppressed,
                    "throttle key table is full; new keys share one overflow budget"
                );
            }
        }
        if allowed {
            out.push(event);
            return;
        }
        self.discarded.inc(1);
        if let Some(suppressed) = self.drop_log.check() {
            let key = key.map(|v| v.to_text()).unwrap_or_default();
            tracing::warn!(
                key = %key,
                threshold = self.threshold,
                window_secs = self.window_secs,
                suppressed,
                "events dropped by throttle"
            );
        }
    }
}

impl FunctionTransform for Throttle {
    fn transform(&mut self, event: Event, out: &mut Outputs) {
        self.transform_at(event, out, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::event::test_event as event;

    fn build(id: &str, toml_src: &str) -> Result<Throttle, FieldError> {
        let config: ThrottleConfig =
            toml::from_str(toml_src).unwrap_or_else(|e| panic!("bad test config: {e}"));
        config.build(&TransformContext { id: id.into() })
    }

    struct Case {
        config: &'static str,
        /// (milliseconds after start, event)
        events: &'static [(u64, &'static str)],
        kept: &'static [usize],
        overflowed: u64,
    }

    #[test]
    fn throttles_per_key() {
        let cases = [
            // A burst of `threshold` passes, the rest of the burst is dropped.
            Case {
                config: "threshold = 3\nwindow_secs = 10",
                events: &[(0, "{}"), (0, "{}"), (0, "{}"), (0, "{}"), (1, "{}")],
                kept: &[0, 1, 2],
                overflowed: 0,
            },
            // The budget refills steadily: one event per window / threshold.
            Case {
                config: "threshold = 2\nwindow_secs = 10",
                events: &[
                    (0, "{}"),
                    (0, "{}"),
                    (0, "{}"),
                    (4_999, "{}"),
                    (5_000, "{}"),
                    (5_001, "{}"),
                    (20_000, "{}"),
                    (20_000, "{}"),
                    (20_000, "{}"),
                ],
                kept: &[0, 1, 4, 6, 7],
                overflowed: 0,
            },
            // Keys have separate budgets; events without the key (or with a non-scalar
            // value) share one.
            Case {
                config: "threshold = 1\nwindow_secs = 60\nkey_field = 'app'",
                events: &[
                    (0, r#"{"app":"web"}"#),
                    (0, r#"{"app":"web"}"#),
                    (0, r#"{"app":"api"}"#),
                    (0, r#"{"app":7}"#),
                    (0, r#"{"app":"7"}"#),
                    (0, "{}"),
                    (0, r#"{"app":null}"#),
                    (0, r#"{"app":["x"]}"#),
                ],
                kept: &[0, 2, 3, 5],
                overflowed: 0,
            },
            // A full table sends new keys to one shared overflow budget...
            Case {
                config: "threshold = 1\nwindow_secs = 10\nkey_field = 'k'\nmax_keys = 2",
                events: &[
                    (0, r#"{"k":"a"}"#),
                    (0, r#"{"k":"b"}"#),
                    (0, r#"{"k":"c"}"#),
                    (0, r#"{"k":"d"}"#),
                    (0, r#"{"k":"a"}"#),
                ],
                kept: &[0, 1, 2],
                overflowed: 2,
            },
            // ...until idle keys are swept out, which frees their slots.
            Case {
                config: "threshold = 1\nwindow_secs = 1\nkey_field = 'k'\nmax_keys = 2",
                events: &[
                    (0, r#"{"k":"a"}"#),
                    (0, r#"{"k":"b"}"#),
                    (0, r#"{"k":"c"}"#),
                    (500, r#"{"k":"d"}"#),
                    (2_000, r#"{"k":"e"}"#),
                    (2_000, r#"{"k":"f"}"#),
                    (2_000, r#"{"k":"e"}"#),
                ],
                kept: &[0, 1, 2, 4, 5],
                overflowed: 2,
            },
        ];
        for (n, case) in cases.iter().enumerate() {
            let id = format!("throttle_test_{n}");
            let mut throttle = build(&id, case.config).unwrap_or_else(|e| panic!("{e}"));
            let start = throttle.base;
            let mut out = Outputs::new(0);
            let mut kept = Vec::new();
            for (i, (ms, json)) in case.events.iter().enumerate() {
                let before = out.default_output().len();
                throttle.transform_at(event(json), &mut out, start + Duration::from_millis(*ms));
                if out.default_output().len() > before {
                    kept.push(i);
                }
            }
            assert_eq!(kept, case.kept, "{}", case.config);
            assert!(throttle.buckets.keys.len() <= throttle.buckets.max_keys);
            let count = |name, labels: &[(&str, &str)]| telemetry::counter_value(name, labels);
            assert_eq!(
                count(
                    "component_discarded_events_total",
                    &[("component_id", &id), ("reason", "throttled")]
                ),
                (case.events.len() - case.kept.len()) as u64,
                "{}",
                case.config
            );
            assert_eq!(
                count(
                    "component_throttle_overflow_events_total",
                    &[("component_id", &id)]
                ),
                case.overflowed,
                "{}",
                case.config
            );
        }
    }

    #[test]
    fn sustained_rate_is_exact_for_uneven_divisions() {
        // 7 per 3 seconds does not divide into whole nanoseconds; over a long run exactly the
        // burst plus the sustained rate passes.
        let mut throttle = build("throttle_exact", "threshold = 7\nwindow_secs = 3")
            .unwrap_or_else(|e| panic!("{e}"));
        let start = throttle.base;
        let mut out = Outputs::new(0);
        for ms in 0..30_000u64 {
            throttle.transform_at(event("{}"), &mut out, start + Duration::from_millis(ms));
        }
        // Burst of 7 at t=0, then one every 3/7 s for the remaining 29.999 s.
        assert_eq!(out.default_output().len(), 7 + 69);
    }

    #[test]
    fn config_errors_name_the_field() {
        let cases = [
            (
                "threshold = 0\nwindow_secs = 1",
                FieldError::new("threshold", "must be at least 1"),
            ),
            (
                "threshold = 1\nwindow_secs = 0",
                FieldError::new("window_secs", "must be between 1 and 31536000 (one year)"),
            ),
            (
                "threshold = 9223372036854775807\nwindow_secs = 31536001",
                FieldError::new("window_secs", "must be between 1 and 31536000 (one year)"),
            ),
            (
                "threshold = 1\nwindow_secs = 1\nmax_keys = 0",
                FieldError::new("max_keys", "must be at least 1"),
            ),
            (
                "threshold = 1\nwindow_secs = 1\nkey_field = ''",
                FieldError::new("key_field", "invalid field path ``: expected a field name"),
            ),
            (
                "threshold = 1\nwindow_secs = 1\nkey_field = '{{ app }}'",
                FieldError::new(
                    "key_field",
                    "invalid field path `{{ app }}`: this option takes a field, not a template: write `app`",
                ),
            ),
        ];
        for (config, expected) in cases {
            assert_eq!(
                build("throttle_err", config).err(),
                Some(expected),
                "{config}"
            );
        }
        for bad in [
            "threshold = 1",
            "window_secs = 1",
            "threshold = 1\nwindow_secs = 1\nburst = 2",
        ] {
            assert!(toml::from_str::<ThrottleConfig>(bad).is_err(), "{bad:?}");
        }
        // The largest accepted numbers do not overflow the scaled clock.
        let mut huge = build(
            "throttle_err",
            "threshold = 9223372036854775807\nwindow_secs = 31536000",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut out = Outputs::new(0);
        let far = huge.base + Duration::from_secs(100 * 365 * 24 * 3600);
        huge.transform_at(event("{}"), &mut out, far);
        assert_eq!(out.default_output().len(), 1);
        let defaults: ThrottleConfig =
            toml::from_str("threshold = 1\nwindow_secs = 1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(defaults.max_keys, 10_000);
    }
}
