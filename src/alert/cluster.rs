//! The rules of one task that share `group_by`, window length and `max_groups`, evaluated
//! together over one group table, and each group's lifecycle per rule.
//!
//! [`Cluster::observe`] counts one event for every member rule at once: the group key is
//! built and hashed once, looked up once, and the counts of all members live side by side
//! in one [`Windows`] row, so one event touches a few cache lines however many rules there
//! are. The caller passes which members' conditions the event matched.
//! [`Cluster::tick`] runs periodically, advances every group's window and moves each (group,
//! rule) pair through its lifecycle:
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

use super::evaluate::{evaluate, wanted, Check, Counts, UNSEEN};
use super::state::{PersistedAlert, StateFile, STATE_VERSION};
use super::transition::{message, render, template_context, Active, Status, Transition};
use super::window::{Buckets, Windows};
use super::{fingerprint, AlertKind, RuleSpec};
use crate::condition::{with_scalar_bytes, FieldPath};
use crate::event::{Event, Map, Value};

/// Where a group is in one rule's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Inactive,
    Pending { since: i64 },
    Firing { starts_at: i64, last_notified: i64 },
}

/// One rule's view of one group is a byte of flags, read at every tick and by sampling
/// events, so that a tick over groups that are not alerting reads little memory; the rest
/// is in a [`Detail`] while needed.
///
/// Pending or firing: the [`Detail`] holds the phase.
const ACTIVE: u8 = 1;
/// A sample event is stored in the [`Detail`].
const SAMPLED: u8 = 2;

/// One rule's view of one group that has a sample, is pending or fires.
#[derive(Debug)]
struct Detail {
    phase: Phase,
    /// What the rule's condition was judged on at the last tick.
    value: f64,
    /// The first matching event seen while the condition held, for templates. Stored only
    /// then, so that groups that never alert hold no copy of an event.
    sample: Option<Map>,
    /// A firing alert restored from disk lost its window counts; it is not resolved before
    /// this time, by which the window has refilled.
    hold_until: i64,
    /// The labels and annotations rendered when it fired (resolutions repeat them).
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

impl Default for Detail {
    fn default() -> Self {
        Self {
            phase: Phase::Inactive,
            value: 0.0,
            sample: None,
            hold_until: i64::MIN,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }
}

/// A group's key and what all members share about it.
#[derive(Debug)]
struct Slot {
    /// The keyed hash of the group key, its entry in the index.
    hash: u64,
    /// The `group_by` fields and their values.
    fields: Map,
    last_seen: i64,
    /// False once the group was forgotten; the slot waits on the free list.
    live: bool,
}

/// One rule of the cluster.
#[derive(Debug)]
pub(super) struct Member {
    pub(super) spec: RuleSpec,
    /// Events not counted because `max_groups` was reached (the task counts them).
    pub(super) overflow: u64,
    /// The persisted state changed since the last [`Cluster::take_dirty`].
    dirty: bool,
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

/// Rules sharing a group table.
///
/// Members are ordered: the counted ones (threshold and ratio rules; member `m` counts its
/// matching events in window column `m`) first, then the absence rules (member `counted + a`
/// keeps its last match in stamp `a`). Ratio rules share one more column counting every
/// event, their denominator.
///
/// Groups live in slots that keep their number while the group lives (freed slots are
/// reused), and `index` maps the keyed hash of a group key to its slot. The index holds
/// 64-bit hashes with a per-process random key rather than the key bytes: a lookup then
/// touches one small table entry and no key allocation, and two groups merge only if their
/// keys collide in 64 random bits (about 10⁻¹¹ for 10,000 groups), which an input cannot
/// steer.
#[derive(Debug)]
pub(super) struct Cluster {
    group_by: Vec<FieldPath>,
    window_nanos: i64,
    max_groups: usize,
    buckets: Buckets,
    pub(super) members: Vec<Member>,
    counted: usize,
    /// Per counted member, [`holds`] in a dense array for the per-event sample check.
    checks: Vec<Check>,
    total_column: Option<usize>,
    /// Some member looks at events its condition did not match (ratio denominators,
    /// absence's "seen recently").
    every_event: bool,
    hasher: foldhash::fast::RandomState,
    index: HashMap<u64, u32, std::hash::BuildHasherDefault<Prehashed>>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    windows: Windows,
    /// `slot * absences + a`: the last match of absence member `counted + a`.
    last_match: Vec<i64>,
    /// `slot * members + m`: [`ACTIVE`] and [`SAMPLED`].
    flags: Vec<u8>,
    /// `slot * members + m`: boxed, so that a group that is not alerting costs a pointer.
    details: Vec<Option<Box<Detail>>>,
    /// Scratch buffer for the group key of one event.
    key: Vec<u8>,
}

impl Cluster {
    /// A cluster of `specs`, which must share `group_by`, window and `max_groups`
    /// ([`Cluster::shares`]). Members are reordered: see [`Cluster::members`].
    pub(super) fn new(mut specs: Vec<RuleSpec>) -> Self {
        // Stable: counted members keep their relative order, then the absence ones.
        specs.sort_by_key(|s| s.kind == AlertKind::Absence);
        let first = &specs[0];
        let counted = specs
            .iter()
            .filter(|s| s.kind != AlertKind::Absence)
            .count();
        let has_ratio = specs.iter().any(|s| s.kind == AlertKind::Ratio);
        let total_column = has_ratio.then_some(counted);
        Self {
            group_by: first.group_by.clone(),
            window_nanos: first.window_nanos,
            max_groups: first.max_groups,
            buckets: Buckets::new(first.window_nanos),
            counted,
            total_column,
            every_event: specs.iter().any(|s| s.kind != AlertKind::Threshold),
            checks: specs[..counted].iter().map(Check::new).collect(),
            windows: Windows::new(counted + usize::from(has_ratio), first.max_groups),
            members: specs
                .into_iter()
                .map(|spec| Member {
                    spec,
                    overflow: 0,
                    dirty: false,
                })
                .collect(),
            hasher: Default::default(),
            index: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            last_match: Vec::new(),
            flags: Vec::new(),
            details: Vec::new(),
            key: Vec::new(),
        }
    }

    /// Whether `a` and `b` can share a cluster.
    pub(super) fn shares(a: &RuleSpec, b: &RuleSpec) -> bool {
        a.group_by == b.group_by && a.window_nanos == b.window_nanos && a.max_groups == b.max_groups
    }

    fn absences(&self) -> usize {
        self.members.len() - self.counted
    }

    /// Groups tracked now.
    pub(super) fn groups(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Counts `event`, seen at `now`; `matched[m]` says whether member `m`'s condition
    /// holds for it.
    pub(super) fn observe(&mut self, event: &Event, matched: &[bool], now: i64) {
        debug_assert_eq!(matched.len(), self.members.len());
        let (counted, absent) = matched.split_at(self.counted);
        // A threshold rule looks only at matching events; ratio and absence rules need
        // every event of the group (the denominator; "seen recently").
        if !self.every_event && !counted.iter().any(|m| *m) {
            return;
        }
        self.key.clear();
        for path in &self.group_by {
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
                let mut group_fields = Map::with_capacity(self.group_by.len());
                for path in &self.group_by {
                    if let Some(value) = path.get(&event.fields) {
                        group_fields.insert(path.as_str(), value.clone());
                    }
                }
                match self.add_slot(hash, group_fields, bucket, now) {
                    Some(slot) => slot,
                    None => {
                        for (member, m) in self.members.iter_mut().zip(matched) {
                            if *m || member.spec.kind != AlertKind::Threshold {
                                member.overflow += 1;
                            }
                        }
                        return;
                    }
                }
            }
        };
        self.slots[slot].last_seen = now;
        self.windows.advance(slot, bucket);
        if let Some(total) = self.total_column {
            self.windows.add(slot, total);
        }
        self.windows.add_matched(slot, 0, counted);
        let absences = absent.len();
        for (stamp, m) in self.last_match[slot * absences..(slot + 1) * absences]
            .iter_mut()
            .zip(absent)
        {
            // A member that had not seen the group (restored for another) sees it now.
            // A select rather than a branch: this runs for every event and absence rule.
            *stamp = if *m | (*stamp == UNSEEN) { now } else { *stamp };
        }
        self.take_samples(slot, event, counted);
    }

    /// Stores the event as the sample of each counted member whose condition it matched and
    /// now holds, unless one is stored already.
    fn take_samples(&mut self, slot: usize, event: &Event, counted: &[bool]) {
        let members = self.members.len();
        let sums = self.windows.sums(slot);
        let total = self.total_column.map_or(0, |c| u64::from(sums[c]));
        let flags = &mut self.flags[slot * members..slot * members + counted.len()];
        // Runs for every event: usually no rule both matched and lacks a sample (the group
        // is quiet for it, or alerting and sampled), which one pass over two byte arrays,
        // without a branch per rule, tells.
        let candidates = counted
            .iter()
            .zip(flags.iter())
            .fold(false, |any, (m, f)| any | (*m & (*f & SAMPLED == 0)));
        if !candidates {
            return;
        }
        for (m, ((matched, flag), (sum, check))) in counted
            .iter()
            .zip(flags.iter_mut())
            .zip(sums.iter().zip(&self.checks))
            .enumerate()
        {
            if !(*matched & (*flag & SAMPLED == 0)) || !check.holds(u64::from(*sum), total) {
                continue;
            }
            *flag |= SAMPLED;
            detail(&mut self.details, slot * members + m).sample = Some(event.fields.clone());
        }
    }

    /// Creates a group; returns its slot, or `None` at `max_groups`.
    fn add_slot(&mut self, hash: u64, fields: Map, bucket: i64, now: i64) -> Option<usize> {
        if self.groups() >= self.max_groups {
            return None;
        }
        let slot = match self.free.pop() {
            Some(slot) => slot as usize,
            None => {
                self.slots.push(Slot {
                    hash: 0,
                    fields: Map::new(),
                    last_seen: now,
                    live: false,
                });
                let members = self.members.len();
                let absences = self.absences();
                self.flags.resize(self.slots.len() * members, 0);
                self.details
                    .resize_with(self.slots.len() * members, || None);
                self.last_match.resize(self.slots.len() * absences, now);
                self.slots.len() - 1
            }
        };
        self.index.insert(hash, slot as u32);
        self.slots[slot] = Slot {
            hash,
            fields,
            last_seen: now,
            live: true,
        };
        self.windows.reset(slot, bucket);
        // A group starts its silence when first seen: an absence rule fires if it never
        // matches within the window.
        let absences = self.absences();
        self.last_match[slot * absences..(slot + 1) * absences].fill(now);
        let members = self.members.len();
        self.flags[slot * members..(slot + 1) * members].fill(0);
        Some(slot)
    }

    /// Forgets the group in `slot`.
    fn remove_slot(&mut self, slot: usize) {
        let removed = &mut self.slots[slot];
        removed.live = false;
        removed.fields = Map::new();
        self.index.remove(&removed.hash);
        let members = self.members.len();
        self.details[slot * members..(slot + 1) * members].fill_with(|| None);
        self.free.push(slot as u32);
    }

    /// Advances the windows to `now` and runs the lifecycle of every group and member;
    /// pushes (member, transition) pairs to `out`.
    pub(super) fn tick(&mut self, now: i64, out: &mut Vec<(usize, Transition)>) {
        let bucket = self.buckets.at(now);
        let members = self.members.len();
        let absences = self.absences();
        for slot in 0..self.slots.len() {
            if !self.slots[slot].live {
                continue;
            }
            self.windows.advance(slot, bucket);
            let total = self.total_column.map_or(0, |c| self.windows.sum(slot, c));
            let last_seen = self.slots[slot].last_seen;
            let mut keep = false;
            for m in 0..members {
                let counts = if m < self.counted {
                    Counts::Matched(self.windows.sum(slot, m))
                } else {
                    Counts::LastMatch(self.last_match[slot * absences + m - self.counted])
                };
                let member = &mut self.members[m];
                let spec = &member.spec;
                let (holds, value) = evaluate(spec, counts, total, last_seen, now);
                let idx = slot * members + m;
                let flags = self.flags[idx];
                if flags & ACTIVE == 0 && !holds {
                    if flags & SAMPLED != 0 {
                        // The condition held when an event came but no longer does: the
                        // sample belongs to no alert, and the next episode takes its own.
                        self.flags[idx] = 0;
                        self.details[idx] = None;
                    }
                    keep |= wanted(spec, counts, total, last_seen, now);
                    continue;
                }
                let detail = detail(&mut self.details, idx);
                detail.value = value;
                let firing = matches!(detail.phase, Phase::Firing { .. });
                let active = holds || (firing && now < detail.hold_until);
                let fields = &self.slots[slot].fields;
                let mut clear = false;
                match (detail.phase, active) {
                    (Phase::Inactive, true) if spec.for_nanos == 0 => {
                        out.push((m, fire(spec, detail, fields, now)));
                        member.dirty = true;
                    }
                    (Phase::Inactive, true) => detail.phase = Phase::Pending { since: now },
                    (Phase::Pending { since }, true) if now - since >= spec.for_nanos => {
                        out.push((m, fire(spec, detail, fields, now)));
                        member.dirty = true;
                    }
                    (Phase::Pending { .. }, false) => clear = true,
                    (
                        Phase::Firing {
                            starts_at,
                            last_notified,
                        },
                        true,
                    ) if now - last_notified >= spec.repeat_nanos => {
                        detail.phase = Phase::Firing {
                            starts_at,
                            last_notified: now,
                        };
                        let mut t =
                            transition(spec, detail, fields, Status::Firing, starts_at, None);
                        t.repeat = true;
                        out.push((m, t));
                        member.dirty = true;
                    }
                    (Phase::Firing { starts_at, .. }, false) => {
                        let t = transition(
                            spec,
                            detail,
                            fields,
                            Status::Resolved,
                            starts_at,
                            Some(now),
                        );
                        out.push((m, t));
                        clear = true;
                        member.dirty = true;
                    }
                    _ => {}
                }
                if clear {
                    self.flags[idx] = 0;
                    self.details[idx] = None;
                    keep |= wanted(spec, counts, total, last_seen, now);
                } else {
                    self.flags[idx] = flags | ACTIVE;
                    keep = true;
                }
            }
            if !keep {
                self.remove_slot(slot);
            }
        }
    }

    /// Member `m`'s groups with a detail: their fields and the detail.
    fn alerting(&self, m: usize) -> impl Iterator<Item = (&Map, &Detail)> {
        let members = self.members.len();
        self.slots
            .iter()
            .zip(self.details.iter().skip(m).step_by(members))
            .filter(|(slot, _)| slot.live)
            .filter_map(|(slot, detail)| Some((&slot.fields, detail.as_deref()?)))
    }

    /// Member `m`'s pending and firing groups.
    pub(super) fn active(&self, m: usize) -> Vec<Active> {
        let spec = &self.members[m].spec;
        self.alerting(m)
            .filter_map(|(fields, detail)| {
                let (firing, since) = match detail.phase {
                    Phase::Inactive => return None,
                    Phase::Pending { since } => (false, since),
                    Phase::Firing { starts_at, .. } => (true, starts_at),
                };
                Some(Active {
                    group: fields.clone(),
                    fingerprint: fingerprint(&spec.id, fields),
                    firing,
                    value: detail.value,
                    since,
                })
            })
            .collect()
    }

    /// Whether member `m`'s persisted state changed since the last call.
    pub(super) fn take_dirty(&mut self, m: usize) -> bool {
        std::mem::take(&mut self.members[m].dirty)
    }

    /// Member `m`'s firing alerts, to persist.
    pub(super) fn snapshot(&self, m: usize) -> StateFile {
        let spec = &self.members[m].spec;
        let mut alerts: Vec<PersistedAlert> = self
            .alerting(m)
            .filter_map(|(fields, detail)| {
                let Phase::Firing {
                    starts_at,
                    last_notified,
                } = detail.phase
                else {
                    return None;
                };
                Some(PersistedAlert {
                    group: Value::Object(fields.clone()),
                    fingerprint: fingerprint(&spec.id, fields),
                    starts_at,
                    last_notified,
                    value: detail.value,
                    labels: detail.labels.clone(),
                    annotations: detail.annotations.clone(),
                })
            })
            .collect();
        alerts.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
        StateFile {
            version: STATE_VERSION,
            rule: spec.id.clone(),
            alerts,
        }
    }

    /// Takes back member `m`'s firing alerts of a previous run. They stay firing without a
    /// new notification; each is returned as a `restored` transition so that notifiers which
    /// keep a set of firing alerts (Alertmanager) can rebuild it. A threshold or ratio alert
    /// is held for one window (its counts were lost) before its condition is judged again.
    pub(super) fn restore(&mut self, m: usize, state: StateFile, now: i64) -> Vec<Transition> {
        let bucket = self.buckets.at(now);
        let members = self.members.len();
        let absences = self.absences();
        let mut out = Vec::new();
        for alert in state.alerts {
            let Value::Object(group_fields) = alert.group else {
                continue;
            };
            // The key is rebuilt from the fields exactly as `observe` builds it.
            let mut key = Vec::new();
            let complete = self.group_by.iter().all(|path| {
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
            let slot = match self.index.get(&hash) {
                Some(slot) => *slot as usize,
                None => {
                    let Some(slot) = self.add_slot(hash, group_fields, bucket, now) else {
                        break;
                    };
                    // The other absence members have not seen this group.
                    self.last_match[slot * absences..(slot + 1) * absences].fill(UNSEEN);
                    slot
                }
            };
            let flags = &mut self.flags[slot * members + m];
            if *flags & ACTIVE != 0 {
                continue;
            }
            *flags |= ACTIVE;
            let spec = &self.members[m].spec;
            if m >= self.counted {
                // Silent for a whole window already: an absence alert stays firing until
                // the group speaks again.
                self.last_match[slot * absences + m - self.counted] = now - self.window_nanos;
            }
            let detail = detail(&mut self.details, slot * members + m);
            detail.phase = Phase::Firing {
                starts_at: alert.starts_at,
                last_notified: alert.last_notified,
            };
            detail.value = alert.value;
            detail.hold_until = now + self.window_nanos;
            detail.labels = alert.labels;
            detail.annotations = alert.annotations;
            let fields = &self.slots[slot].fields;
            let mut t = transition(spec, detail, fields, Status::Firing, alert.starts_at, None);
            t.restored = true;
            out.push(t);
        }
        out
    }
}

/// The detail at `idx`, created if missing.
fn detail(details: &mut [Option<Box<Detail>>], idx: usize) -> &mut Detail {
    details[idx].get_or_insert_with(Box::default)
}

// === transitions ===

/// Moves a group into firing and renders its labels and annotations.
fn fire(spec: &RuleSpec, detail: &mut Detail, fields: &Map, now: i64) -> Transition {
    detail.phase = Phase::Firing {
        starts_at: now,
        last_notified: now,
    };
    let context = template_context(spec, fields, detail.value, detail.sample.as_ref());
    detail.labels = render(&spec.labels, &context);
    detail.annotations = render(&spec.annotations, &context);
    transition(spec, detail, fields, Status::Firing, now, None)
}

fn transition(
    spec: &RuleSpec,
    detail: &Detail,
    fields: &Map,
    status: Status,
    starts_at: i64,
    ends_at: Option<i64>,
) -> Transition {
    Transition {
        status,
        repeat: false,
        restored: false,
        group: fields.clone(),
        fingerprint: fingerprint(&spec.id, fields),
        value: detail.value,
        starts_at,
        ends_at,
        message: message(spec, fields, detail.value, &detail.annotations, status),
        labels: detail.labels.clone(),
        annotations: detail.annotations.clone(),
    }
}
