//! One rule's groups and their lifecycle, on an injected clock.
//!
//! [`Rule::observe`] counts one event (O(1): a condition check, a group lookup, a bucket
//! bump); [`Rule::tick`] runs periodically, advances every group's window and moves each
//! group through its lifecycle:
//!
//! ```text
//!   inactive ──active──▶ pending ──held for_secs──▶ firing ──inactive──▶ (resolved) inactive
//!       ▲                   │                          │
//!       └─────inactive──────┘                          └─ every repeat_interval: notify again
//! ```
//!
//! Only transitions into firing, repeats and resolutions produce [`Transition`]s (alert
//! events); pending is visible in `GET /v1/alerts` only. There is one lifecycle per rule and
//! group, which is the deduplication: a group that keeps failing fires once.
//!
//! Time is nanoseconds on the wall clock (so persisted times survive restarts); the caller
//! passes it in, which is what lets the tests drive the lifecycle without sleeping.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use super::state::{PersistedAlert, StateFile, STATE_VERSION};
use super::window::{Buckets, Window};
use super::{fingerprint, AlertKind, RuleSpec};
use crate::condition::with_scalar_bytes;
use crate::event::{fields, Event, Map, Value};

/// Where a group is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Inactive,
    Pending { since: i64 },
    Firing { starts_at: i64, last_notified: i64 },
}

/// What counting an event touches, kept apart from the rest of a group so that this table
/// stays small and dense (with 100 rules × 1,000 groups, cache misses are the cost).
#[derive(Debug, Clone)]
struct Counts {
    last_seen: i64,
    last_match: i64,
    /// Matching events (threshold and ratio rules).
    matched: Window,
    /// A sample event is stored (see `Group::sample`).
    has_sample: bool,
}

/// The rest of a group: read at ticks and transitions only.
#[derive(Debug)]
struct Group {
    /// The keyed hash of the group key, its entry in the index.
    hash: u64,
    /// The `group_by` fields and their values.
    fields: Map,
    fingerprint: String,
    /// The first matching event seen while the condition held, for templates. Stored only
    /// then, so that groups that never alert hold no copy of an event.
    sample: Option<Map>,
    phase: Phase,
    value: f64,
    /// A firing alert restored from disk lost its window counts; it is not resolved before
    /// this time, by which the window has refilled.
    hold_until: i64,
    /// The labels and annotations rendered when it fired (resolutions repeat them).
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// A hasher for keys that are already hashes.
#[derive(Debug, Default)]
struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in rather than panic.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// `firing` or `resolved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// One notification-worthy change of one group: becomes one alert event.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub status: Status,
    /// A repeat of a firing alert (`repeat_interval_secs` passed).
    pub repeat: bool,
    /// A firing alert restored from disk at start: not a new notification. Notifiers that
    /// need the set of firing alerts (Alertmanager) take it; others skip it.
    pub restored: bool,
    pub group: Map,
    pub fingerprint: String,
    pub value: f64,
    pub starts_at: i64,
    pub ends_at: Option<i64>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub message: String,
}

/// A pending or firing group, for `GET /v1/alerts`.
#[derive(Debug, Clone, PartialEq)]
pub struct Active {
    pub group: Map,
    pub fingerprint: String,
    pub firing: bool,
    pub value: f64,
    pub since: i64,
}

/// A running rule.
///
/// Groups live in slots: `counts[i]`, `totals[i]` (ratio rules only) and `groups[i]` describe
/// one group, and `index` maps the keyed hash of a group key to its slot. The index holds
/// 64-bit SipHash values with a per-process random key rather than the key bytes: a lookup
/// then touches one small table entry and no key allocation, and two groups merge only if
/// their keys collide in 64 random bits (about 10⁻¹¹ for 10,000 groups), which an input
/// cannot steer.
#[derive(Debug)]
pub struct Rule {
    spec: RuleSpec,
    buckets: Buckets,
    hasher: std::collections::hash_map::RandomState,
    index: HashMap<u64, u32, std::hash::BuildHasherDefault<Prehashed>>,
    counts: Vec<Counts>,
    totals: Vec<Window>,
    groups: Vec<Group>,
    /// Scratch buffer for the group key of one event.
    key: Vec<u8>,
    /// Events not counted because `max_groups` was reached (the task counts them).
    pub overflow: u64,
    /// The persisted state changed since the last [`Rule::take_dirty`].
    dirty: bool,
}

impl Rule {
    pub fn new(spec: RuleSpec) -> Self {
        Self {
            buckets: Buckets::new(spec.window_nanos),
            spec,
            hasher: Default::default(),
            index: HashMap::default(),
            counts: Vec::new(),
            totals: Vec::new(),
            groups: Vec::new(),
            key: Vec::new(),
            overflow: 0,
            dirty: false,
        }
    }

    pub fn spec(&self) -> &RuleSpec {
        &self.spec
    }

    /// Groups tracked now.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// Counts `event`, seen at `now`.
    pub fn observe(&mut self, event: &Event, now: i64) {
        let matched = self.spec.condition.as_ref().is_none_or(|c| c.check(event));
        // A threshold rule looks only at matching events; ratio and absence rules need
        // every event of the group (the denominator; "seen recently").
        if !matched && self.spec.kind == AlertKind::Threshold {
            return;
        }
        self.key.clear();
        for path in &self.spec.group_by {
            let key = &mut self.key;
            let found = path.get(&event.fields).and_then(|value| {
                with_scalar_bytes(value, |bytes| {
                    key.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                    key.extend_from_slice(bytes);
                })
            });
            if found.is_none() {
                // Events without every group field (or with a container there) belong
                // to no group.
                return;
            }
        }
        let hash = self.hasher.hash_one(self.key.as_slice());
        let bucket = self.buckets.at(now);
        let slot = match self.index.get(&hash) {
            Some(slot) => *slot as usize,
            None => {
                if self.groups.len() >= self.spec.max_groups {
                    self.overflow += 1;
                    return;
                }
                let mut group_fields = Map::with_capacity(self.spec.group_by.len());
                for path in &self.spec.group_by {
                    if let Some(value) = path.get(&event.fields) {
                        group_fields.insert(path.as_str(), value.clone());
                    }
                }
                // A group starts its silence when first seen: an absence rule fires if it
                // never matches within the window.
                self.add_slot(hash, group_fields, bucket, now, Phase::Inactive)
            }
        };
        self.record(slot, event, matched, bucket, now);
    }

    /// Creates a group; returns its slot.
    fn add_slot(&mut self, hash: u64, fields: Map, bucket: i64, now: i64, phase: Phase) -> usize {
        let slot = self.groups.len();
        self.index.insert(hash, slot as u32);
        self.counts.push(Counts {
            last_seen: now,
            last_match: now,
            matched: Window::new(bucket),
            has_sample: false,
        });
        if self.spec.kind == AlertKind::Ratio {
            self.totals.push(Window::new(bucket));
        }
        self.groups.push(Group {
            hash,
            fingerprint: fingerprint(&self.spec.id, &fields),
            fields,
            sample: None,
            phase,
            value: 0.0,
            hold_until: i64::MIN,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        });
        slot
    }

    /// Forgets the group in `slot`; the last group moves into it.
    fn remove_slot(&mut self, slot: usize) {
        let removed = self.groups.swap_remove(slot);
        self.counts.swap_remove(slot);
        if self.spec.kind == AlertKind::Ratio {
            self.totals.swap_remove(slot);
        }
        self.index.remove(&removed.hash);
        if let Some(moved) = self.groups.get(slot) {
            self.index.insert(moved.hash, slot as u32);
        }
    }

    fn record(&mut self, slot: usize, event: &Event, matched: bool, bucket: i64, now: i64) {
        let spec = &self.spec;
        let counts = &mut self.counts[slot];
        counts.last_seen = now;
        let mut total = 0;
        if spec.kind == AlertKind::Ratio {
            let window = &mut self.totals[slot];
            window.add(bucket, 1);
            total = window.sum();
        }
        if !matched {
            return;
        }
        counts.last_match = now;
        if spec.kind == AlertKind::Absence {
            return;
        }
        counts.matched.add(bucket, 1);
        if !counts.has_sample && holds(spec, counts.matched.sum(), total) {
            counts.has_sample = true;
            self.groups[slot].sample = Some(event.fields.clone());
        }
    }

    /// Advances the windows to `now` and runs the lifecycle of every group.
    pub fn tick(&mut self, now: i64) -> Vec<Transition> {
        let bucket = self.buckets.at(now);
        let mut out = Vec::new();
        let mut changed = false;
        let mut slot = 0;
        while slot < self.groups.len() {
            let spec = &self.spec;
            let counts = &mut self.counts[slot];
            counts.matched.advance(bucket);
            let total = match self.totals.get_mut(slot) {
                Some(window) => {
                    window.advance(bucket);
                    window.sum()
                }
                None => 0,
            };
            let group = &mut self.groups[slot];
            let (condition_holds, value) = evaluate(spec, counts, total, now);
            group.value = value;
            let firing = matches!(group.phase, Phase::Firing { .. });
            let active = condition_holds || (firing && now < group.hold_until);
            let mut clear_sample = false;
            match (group.phase, active) {
                (Phase::Inactive, true) if spec.for_nanos == 0 => {
                    out.push(group.fire(spec, now));
                    changed = true;
                }
                (Phase::Inactive, true) => group.phase = Phase::Pending { since: now },
                (Phase::Pending { since }, true) if now - since >= spec.for_nanos => {
                    out.push(group.fire(spec, now));
                    changed = true;
                }
                (Phase::Pending { .. }, false) => {
                    group.phase = Phase::Inactive;
                    clear_sample = true;
                }
                (
                    Phase::Firing {
                        starts_at,
                        last_notified,
                    },
                    true,
                ) if now - last_notified >= spec.repeat_nanos => {
                    group.phase = Phase::Firing {
                        starts_at,
                        last_notified: now,
                    };
                    let mut t = group.transition(spec, Status::Firing, starts_at, None);
                    t.repeat = true;
                    out.push(t);
                    changed = true;
                }
                (Phase::Firing { starts_at, .. }, false) => {
                    out.push(group.transition(spec, Status::Resolved, starts_at, Some(now)));
                    group.phase = Phase::Inactive;
                    clear_sample = true;
                    changed = true;
                }
                _ => {}
            }
            if clear_sample {
                group.sample = None;
                counts.has_sample = false;
            }
            if keep(spec, group.phase, counts, total, now) {
                slot += 1;
            } else {
                self.remove_slot(slot);
            }
        }
        self.dirty |= changed;
        out
    }

    /// Pending and firing groups.
    pub fn active(&self) -> Vec<Active> {
        self.groups
            .iter()
            .filter_map(|g| {
                let (firing, since) = match g.phase {
                    Phase::Inactive => return None,
                    Phase::Pending { since } => (false, since),
                    Phase::Firing { starts_at, .. } => (true, starts_at),
                };
                Some(Active {
                    group: g.fields.clone(),
                    fingerprint: g.fingerprint.clone(),
                    firing,
                    value: g.value,
                    since,
                })
            })
            .collect()
    }

    /// Whether the persisted state changed since the last call.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// The firing alerts, to persist.
    pub fn snapshot(&self) -> StateFile {
        let mut alerts: Vec<PersistedAlert> = self
            .groups
            .iter()
            .filter_map(|g| match g.phase {
                Phase::Firing {
                    starts_at,
                    last_notified,
                } => Some(PersistedAlert {
                    group: Value::Object(g.fields.clone()),
                    fingerprint: g.fingerprint.clone(),
                    starts_at,
                    last_notified,
                    value: g.value,
                    labels: g.labels.clone(),
                    annotations: g.annotations.clone(),
                }),
                _ => None,
            })
            .collect();
        alerts.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
        StateFile {
            version: STATE_VERSION,
            rule: self.spec.id.clone(),
            alerts,
        }
    }

    /// Takes back the firing alerts of a previous run. They stay firing without a new
    /// notification; each is returned as a `restored` transition so that notifiers which
    /// keep a set of firing alerts (Alertmanager) can rebuild it. A threshold or ratio alert
    /// is held for one window (its counts were lost) before its condition is judged again.
    pub fn restore(&mut self, state: StateFile, now: i64) -> Vec<Transition> {
        let bucket = self.buckets.at(now);
        let mut out = Vec::new();
        for alert in state.alerts {
            let Value::Object(group_fields) = alert.group else {
                continue;
            };
            if self.groups.len() >= self.spec.max_groups {
                break;
            }
            // The key is rebuilt from the fields exactly as `observe` builds it.
            let mut key = Vec::new();
            let complete = self.spec.group_by.iter().all(|path| {
                group_fields
                    .get(path.as_str())
                    .and_then(|value| {
                        with_scalar_bytes(value, |bytes| {
                            key.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                            key.extend_from_slice(bytes);
                        })
                    })
                    .is_some()
            });
            if !complete {
                // The rule's group_by changed since: the old alert cannot be matched.
                continue;
            }
            let hash = self.hasher.hash_one(key.as_slice());
            if self.index.contains_key(&hash) {
                continue;
            }
            let phase = Phase::Firing {
                starts_at: alert.starts_at,
                last_notified: alert.last_notified,
            };
            let slot = self.add_slot(hash, group_fields, bucket, now, phase);
            // Silent for a whole window already: an absence alert stays firing until the
            // group speaks again.
            self.counts[slot].last_match = now - self.spec.window_nanos;
            let group = &mut self.groups[slot];
            group.value = alert.value;
            group.hold_until = now + self.spec.window_nanos;
            group.labels = alert.labels;
            group.annotations = alert.annotations;
            let mut t = group.transition(&self.spec, Status::Firing, alert.starts_at, None);
            t.restored = true;
            out.push(t);
        }
        out
    }
}

// === evaluation ===

/// Whether a threshold or ratio rule's condition holds for these counts.
fn holds(spec: &RuleSpec, matched: u64, total: u64) -> bool {
    match spec.kind {
        AlertKind::Threshold => matched as f64 > spec.threshold,
        AlertKind::Ratio => {
            total >= spec.min_events && total > 0 && matched as f64 / total as f64 > spec.threshold
        }
        AlertKind::Absence => false,
    }
}

/// Whether the rule's condition holds for a group now, and the value it is judged on.
fn evaluate(spec: &RuleSpec, counts: &Counts, total: u64, now: i64) -> (bool, f64) {
    let matched = counts.matched.sum();
    match spec.kind {
        AlertKind::Threshold => (holds(spec, matched, total), matched as f64),
        AlertKind::Ratio => {
            let ratio = if total == 0 {
                0.0
            } else {
                matched as f64 / total as f64
            };
            (holds(spec, matched, total), ratio)
        }
        AlertKind::Absence => {
            // Silent for the window, but seen within forget_after: a group gone for longer
            // is forgotten (and its alert resolved).
            let silent = now.saturating_sub(counts.last_match);
            let seen = now.saturating_sub(counts.last_seen) <= spec.forget_nanos;
            (
                silent >= spec.window_nanos && seen,
                (silent / 1_000_000_000) as f64,
            )
        }
    }
}

/// Whether a group is still worth its memory after a tick.
fn keep(spec: &RuleSpec, phase: Phase, counts: &Counts, total: u64, now: i64) -> bool {
    if phase != Phase::Inactive {
        return true;
    }
    match spec.kind {
        AlertKind::Threshold => counts.matched.sum() > 0,
        AlertKind::Ratio => total > 0,
        AlertKind::Absence => now.saturating_sub(counts.last_seen) <= spec.forget_nanos,
    }
}

// === impl Group ===

impl Group {
    fn fire(&mut self, spec: &RuleSpec, now: i64) -> Transition {
        self.phase = Phase::Firing {
            starts_at: now,
            last_notified: now,
        };
        let context = self.template_context(spec);
        self.labels = render(&spec.labels, &context);
        self.annotations = render(&spec.annotations, &context);
        self.transition(spec, Status::Firing, now, None)
    }

    fn transition(
        &self,
        spec: &RuleSpec,
        status: Status,
        starts_at: i64,
        ends_at: Option<i64>,
    ) -> Transition {
        Transition {
            status,
            repeat: false,
            restored: false,
            group: self.fields.clone(),
            fingerprint: self.fingerprint.clone(),
            value: self.value,
            starts_at,
            ends_at,
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            message: self.message(spec, status),
        }
    }

    /// The event templates are rendered against: the sample event's fields, then the group
    /// fields, `value`, `alert` and `severity` over them.
    fn template_context(&self, spec: &RuleSpec) -> Event {
        let mut fields = self.sample.clone().unwrap_or_default();
        for (name, value) in self.fields.iter() {
            fields.insert(name.clone(), value.clone());
        }
        fields.insert("value", Value::Float(self.value));
        fields.insert("alert", Value::from(spec.id.as_str()));
        fields.insert("severity", Value::from(spec.severity.as_str()));
        Event::new(fields)
    }

    fn message(&self, spec: &RuleSpec, status: Status) -> String {
        if status == Status::Firing {
            if let Some(summary) = self.annotations.get("summary").filter(|s| !s.is_empty()) {
                return summary.clone();
            }
        }
        let group = if self.fields.is_empty() {
            String::new()
        } else {
            let pairs: Vec<String> = self
                .fields
                .iter()
                .map(|(k, v)| format!("{k}={}", v.to_text()))
                .collect();
            format!(" for {}", pairs.join(" "))
        };
        let window = spec.window_nanos / 1_000_000_000;
        let detail = match (status, spec.kind) {
            (Status::Resolved, _) => String::new(),
            (_, AlertKind::Threshold) => format!(
                ": {} matching events in {window}s (threshold {})",
                self.value, spec.threshold
            ),
            (_, AlertKind::Ratio) => format!(
                ": ratio {:.3} in {window}s (threshold {})",
                self.value, spec.threshold
            ),
            (_, AlertKind::Absence) => {
                format!(": no matching event for {}s", self.value)
            }
        };
        format!("{} {}{group}{detail}", spec.id, status.as_str())
    }
}

fn render(
    templates: &[(String, crate::template::Template)],
    context: &Event,
) -> BTreeMap<String, String> {
    templates
        .iter()
        .map(|(name, template)| {
            let mut text = String::new();
            template.render(context, &mut text);
            (name.clone(), text)
        })
        .collect()
}

// === impl Transition ===

impl Transition {
    /// The alert event (fields documented in docs/alerts.md).
    pub fn to_event(&self, spec: &RuleSpec, now: i64) -> Event {
        let mut f = Map::with_capacity(16);
        f.insert(fields::TIMESTAMP, Value::Timestamp(now));
        f.insert("alert", Value::from(spec.id.as_str()));
        f.insert("status", Value::from(self.status.as_str()));
        f.insert("kind", Value::from(spec.kind.as_str()));
        f.insert("severity", Value::from(spec.severity.as_str()));
        f.insert("group", Value::Object(self.group.clone()));
        f.insert("labels", Value::Object(string_map(&self.labels)));
        f.insert("annotations", Value::Object(string_map(&self.annotations)));
        f.insert("value", Value::Float(self.value));
        if spec.kind != AlertKind::Absence {
            f.insert("threshold", Value::Float(spec.threshold));
        }
        f.insert(
            "window_secs",
            Value::Integer(spec.window_nanos / 1_000_000_000),
        );
        f.insert("starts_at", Value::Timestamp(self.starts_at));
        if let Some(ends_at) = self.ends_at {
            f.insert("ends_at", Value::Timestamp(ends_at));
        }
        f.insert("fingerprint", Value::from(self.fingerprint.as_str()));
        f.insert("repeat", Value::Bool(self.repeat));
        f.insert("restored", Value::Bool(self.restored));
        f.insert(fields::MESSAGE, Value::from(self.message.as_str()));
        Event::new(f)
    }
}

fn string_map(map: &BTreeMap<String, String>) -> Map {
    map.iter()
        .map(|(k, v)| (k.as_str().into(), Value::from(v.as_str())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertConfig;

    const S: i64 = 1_000_000_000;

    fn rule(extra: &str) -> Rule {
        let config: AlertConfig = toml::from_str(extra).expect("toml");
        Rule::new(config.validate_and_build("errors").expect("valid"))
    }

    fn event(app: &str, level: &str) -> Event {
        let mut f = Map::new();
        f.insert("app", Value::from(app));
        f.insert("level", Value::from(level));
        f.insert("message", Value::from(format!("{level} in {app}")));
        Event::new(f)
    }

    /// One step of a lifecycle table: at time `at` (seconds), send `errors` error events
    /// and `infos` info events for app A, then tick; expect these transitions.
    struct Step {
        at: f64,
        errors: usize,
        infos: usize,
        expect: &'static [&'static str],
    }

    fn run(rule: &mut Rule, steps: &[Step]) {
        for (i, step) in steps.iter().enumerate() {
            let now = (step.at * S as f64) as i64;
            for _ in 0..step.errors {
                rule.observe(&event("A", "error"), now);
            }
            for _ in 0..step.infos {
                rule.observe(&event("A", "info"), now);
            }
            let got: Vec<String> = rule
                .tick(now)
                .iter()
                .map(|t| {
                    let mut s = t.status.as_str().to_string();
                    if t.repeat {
                        s.push_str("+repeat");
                    }
                    s
                })
                .collect();
            assert_eq!(got, step.expect, "step {i} at {}s", step.at);
        }
    }

    const THRESHOLD: &str = r#"
        condition = 'level == "error"'
        group_by = ["app"]
        kind = "threshold"
        window_secs = 10
        threshold = 3
    "#;

    #[test]
    fn threshold_fires_once_and_resolves_when_the_window_empties() {
        let mut r = rule(THRESHOLD);
        run(
            &mut r,
            &[
                Step {
                    at: 0.0,
                    errors: 3,
                    infos: 5,
                    expect: &[],
                }, // 3 is not above 3
                Step {
                    at: 1.0,
                    errors: 1,
                    infos: 0,
                    expect: &["firing"],
                },
                Step {
                    at: 2.0,
                    errors: 5,
                    infos: 0,
                    expect: &[],
                }, // dedup: still firing
                Step {
                    at: 9.0,
                    errors: 0,
                    infos: 0,
                    expect: &[],
                },
                // At 10.5 s the errors at 0 s left the window; 6 remain.
                Step {
                    at: 10.5,
                    errors: 0,
                    infos: 0,
                    expect: &[],
                },
                Step {
                    at: 12.5,
                    errors: 0,
                    infos: 0,
                    expect: &["resolved"],
                },
                Step {
                    at: 13.0,
                    errors: 0,
                    infos: 0,
                    expect: &[],
                },
            ],
        );
        // Resolved and empty: the group is forgotten.
        assert_eq!(r.groups(), 0);
    }

    #[test]
    fn for_secs_holds_before_firing_and_a_blip_does_not_fire() {
        let mut r = rule(&format!("{THRESHOLD}\nfor_secs = 3"));
        run(
            &mut r,
            &[
                Step {
                    at: 0.0,
                    errors: 4,
                    infos: 0,
                    expect: &[],
                }, // pending
                Step {
                    at: 2.0,
                    errors: 0,
                    infos: 0,
                    expect: &[],
                },
                Step {
                    at: 3.0,
                    errors: 0,
                    infos: 0,
                    expect: &["firing"],
                },
                Step {
                    at: 11.0,
                    errors: 0,
                    infos: 0,
                    expect: &["resolved"],
                },
                Step {
                    at: 20.0,
                    errors: 4,
                    infos: 0,
                    expect: &[],
                }, // pending again
                Step {
                    at: 31.0,
                    errors: 0,
                    infos: 0,
                    expect: &[],
                }, // cleared while pending
            ],
        );
        assert!(r.active().is_empty());
    }

    #[test]
    fn repeat_interval_notifies_again_while_firing() {
        let mut r = rule(&format!("{THRESHOLD}\nrepeat_interval_secs = 5"));
        run(
            &mut r,
            &[
                Step {
                    at: 0.0,
                    errors: 4,
                    infos: 0,
                    expect: &["firing"],
                },
                Step {
                    at: 4.0,
                    errors: 4,
                    infos: 0,
                    expect: &[],
                },
                Step {
                    at: 5.0,
                    errors: 0,
                    infos: 0,
                    expect: &["firing+repeat"],
                },
                Step {
                    at: 9.0,
                    errors: 4,
                    infos: 0,
                    expect: &[],
                },
                Step {
                    at: 10.0,
                    errors: 0,
                    infos: 0,
                    expect: &["firing+repeat"],
                },
                Step {
                    at: 30.0,
                    errors: 0,
                    infos: 0,
                    expect: &["resolved"],
                },
            ],
        );
    }

    #[test]
    fn ratio_compares_matching_to_all_events() {
        let mut r = rule(
            r#"
            condition = 'level == "error"'
            group_by = ["app"]
            kind = "ratio"
            window_secs = 10
            threshold = 0.5
            min_events = 4
        "#,
        );
        run(
            &mut r,
            &[
                Step {
                    at: 0.0,
                    errors: 3,
                    infos: 0,
                    expect: &[],
                }, // 3 events < min_events
                Step {
                    at: 1.0,
                    errors: 0,
                    infos: 3,
                    expect: &[],
                }, // 3/6 is not above 0.5
                Step {
                    at: 2.0,
                    errors: 1,
                    infos: 0,
                    expect: &["firing"],
                }, // 4/7
                Step {
                    at: 3.0,
                    errors: 0,
                    infos: 10,
                    expect: &["resolved"],
                }, // 4/17
            ],
        );
    }

    #[test]
    fn absence_fires_for_a_silent_group_and_resolves_when_it_speaks() {
        let mut r = rule(
            r#"
            group_by = ["app"]
            kind = "absence"
            window_secs = 5
            forget_after_secs = 20
        "#,
        );
        run(
            &mut r,
            &[
                Step {
                    at: 0.0,
                    errors: 0,
                    infos: 1,
                    expect: &[],
                },
                Step {
                    at: 4.0,
                    errors: 0,
                    infos: 0,
                    expect: &[],
                },
                Step {
                    at: 5.0,
                    errors: 0,
                    infos: 0,
                    expect: &["firing"],
                },
                Step {
                    at: 6.0,
                    errors: 0,
                    infos: 1,
                    expect: &["resolved"],
                },
                Step {
                    at: 11.0,
                    errors: 0,
                    infos: 0,
                    expect: &["firing"],
                },
                Step {
                    at: 26.0,
                    errors: 0,
                    infos: 0,
                    expect: &[],
                },
                // Silent for longer than forget_after: resolved and forgotten (a group
                // that is gone for good, such as a scaled-down instance, does not fire
                // forever).
                Step {
                    at: 26.5,
                    errors: 0,
                    infos: 0,
                    expect: &["resolved"],
                },
                Step {
                    at: 60.0,
                    errors: 0,
                    infos: 0,
                    expect: &[],
                },
            ],
        );
        assert_eq!(r.groups(), 0);
        // A forgotten group that speaks again is new.
        run(
            &mut r,
            &[
                Step {
                    at: 70.0,
                    errors: 0,
                    infos: 1,
                    expect: &[],
                },
                Step {
                    at: 75.0,
                    errors: 0,
                    infos: 0,
                    expect: &["firing"],
                },
                Step {
                    at: 76.0,
                    errors: 1,
                    infos: 0,
                    expect: &["resolved"],
                },
            ],
        );
    }

    #[test]
    fn groups_are_separate_and_capped() {
        let mut r = rule(&format!("{THRESHOLD}\nmax_groups = 2"));
        for app in ["A", "B", "C"] {
            for _ in 0..4 {
                r.observe(&event(app, "error"), 0);
            }
        }
        r.observe(&event("B", "info"), 0);
        let mut no_app = event("A", "error");
        no_app.fields.remove("app");
        r.observe(&no_app, 0);
        assert_eq!(r.overflow, 4, "group C is over the cap");
        let fired = r.tick(0);
        let mut apps: Vec<String> = fired
            .iter()
            .map(|t| t.group.get("app").unwrap().to_text())
            .collect();
        apps.sort();
        assert_eq!(apps, ["A", "B"]);
        assert_ne!(fired[0].fingerprint, fired[1].fingerprint);
    }

    #[test]
    fn templates_see_group_value_and_sample() {
        let mut r = rule(&format!(
            "{THRESHOLD}\nlabels = {{ team = \"{{{{ app }}}}-oncall\" }}\nannotations = {{ summary = \"{{{{ value }}}} errors on {{{{ app }}}}: {{{{ message }}}}\" }}"
        ));
        for _ in 0..4 {
            r.observe(&event("A", "error"), 0);
        }
        let fired = r.tick(0);
        assert_eq!(fired[0].labels["team"], "A-oncall");
        assert_eq!(fired[0].annotations["summary"], "4 errors on A: error in A");
        assert_eq!(fired[0].message, "4 errors on A: error in A");
        let event = fired[0].to_event(r.spec(), 0);
        assert_eq!(event.get("status"), Some(&Value::from("firing")));
        assert_eq!(event.get("group.app"), Some(&Value::from("A")));
        assert_eq!(event.get("labels.team"), Some(&Value::from("A-oncall")));
        assert!(event.get("ends_at").is_none());
        // The resolution carries the labels rendered at firing.
        let resolved = r.tick(20 * S);
        assert_eq!(resolved[0].labels["team"], "A-oncall");
        assert_eq!(resolved[0].ends_at, Some(20 * S));
        assert_eq!(resolved[0].starts_at, 0);
    }

    #[test]
    fn restore_keeps_firing_without_notifying_then_resolves() {
        let mut r = rule(THRESHOLD);
        for _ in 0..4 {
            r.observe(&event("A", "error"), 0);
        }
        assert_eq!(r.tick(0).len(), 1);
        assert!(r.take_dirty());
        let state = r.snapshot();
        assert_eq!(state.alerts.len(), 1);

        // A new process at 100 s: restored, not re-notified, held for one window.
        let mut r2 = rule(THRESHOLD);
        let restored = r2.restore(state, 100 * S);
        assert_eq!(restored.len(), 1);
        assert!(restored[0].restored);
        assert_eq!(restored[0].starts_at, 0);
        assert!(r2.tick(101 * S).is_empty());
        assert_eq!(r2.active().len(), 1);
        // Errors keep coming: still firing, no new notification.
        for _ in 0..4 {
            r2.observe(&event("A", "error"), 105 * S);
        }
        assert!(r2.tick(111 * S).is_empty());
        // They stop: resolved, with the original start.
        let resolved = r2.tick(116 * S);
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].status, Status::Resolved);
        assert_eq!(resolved[0].starts_at, 0);
        assert!(r2.snapshot().alerts.is_empty());
    }
}
