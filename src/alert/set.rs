//! The rules that read the same inputs, evaluated together by one task.
//!
//! Running 100 rules as 100 tasks meant 100 queue consumers, 100 hashes of the same group
//! key and 100 separate group tables touched per event. A [`RuleSet`] instead checks every
//! rule's condition in one pass (`ConditionSet`: each field looked up once, comparisons of
//! one field against many literals answered together) and counts the event once per
//! [`Cluster`] of rules sharing `group_by` and window, where the counts of all of them sit
//! side by side. What each rule does with its counts (lifecycle, state file, output) is
//! still its own.

use super::cluster::Cluster;
use super::state::StateFile;
use super::transition::{Active, Transition};
use super::RuleSpec;
use crate::condition::{Condition, ConditionSet, SetResults};
use crate::event::Event;

/// A running set of rules. Rules are numbered in the order given to [`RuleSet::new`].
#[derive(Debug)]
pub struct RuleSet {
    clusters: Vec<Cluster>,
    /// Per rule: its cluster and member number.
    places: Vec<(usize, usize)>,
    /// Per cluster and member: its rule number.
    rules: Vec<Vec<usize>>,
    /// Per cluster: where its members' results start in `matched`.
    offsets: Vec<usize>,
    /// Every member's condition, cluster by cluster, member by member.
    conditions: ConditionSet,
    matched: SetResults,
}

impl RuleSet {
    pub fn new(specs: Vec<RuleSpec>) -> Self {
        let ids: Vec<String> = specs.iter().map(|s| s.id.clone()).collect();
        let mut groups: Vec<Vec<RuleSpec>> = Vec::new();
        for spec in specs {
            match groups.iter_mut().find(|g| Cluster::shares(&g[0], &spec)) {
                Some(group) => group.push(spec),
                None => groups.push(vec![spec]),
            }
        }
        let clusters: Vec<Cluster> = groups.into_iter().map(Cluster::new).collect();
        let mut places = vec![(0, 0); ids.len()];
        let mut rules = Vec::with_capacity(clusters.len());
        let mut offsets = Vec::with_capacity(clusters.len());
        let mut conditions = Vec::new();
        let always = Condition::compile("true").expect("`true` is a condition");
        for (c, cluster) in clusters.iter().enumerate() {
            offsets.push(conditions.len());
            rules.push(Vec::with_capacity(cluster.members.len()));
            for (m, member) in cluster.members.iter().enumerate() {
                let rule = ids
                    .iter()
                    .position(|id| *id == member.spec.id)
                    .expect("every member is one of the rules");
                places[rule] = (c, m);
                rules[c].push(rule);
                conditions.push(
                    member
                        .spec
                        .condition
                        .clone()
                        .unwrap_or_else(|| always.clone()),
                );
            }
        }
        Self {
            clusters,
            places,
            rules,
            offsets,
            conditions: ConditionSet::new(&conditions),
            matched: SetResults::default(),
        }
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.places.len()
    }

    pub fn is_empty(&self) -> bool {
        self.places.is_empty()
    }

    pub fn spec(&self, rule: usize) -> &RuleSpec {
        let (c, m) = self.places[rule];
        &self.clusters[c].members[m].spec
    }

    /// Groups tracked now for `rule` (shared with the rules of its cluster).
    pub fn groups(&self, rule: usize) -> usize {
        self.clusters[self.places[rule].0].groups()
    }

    /// Counts `event`, seen at `now`, for every rule.
    pub fn observe(&mut self, event: &Event, now: i64) {
        self.conditions.eval(&event.fields, &mut self.matched);
        let matched = self.matched.as_slice();
        for (cluster, offset) in self.clusters.iter_mut().zip(&self.offsets) {
            let n = cluster.members.len();
            cluster.observe(event, &matched[*offset..*offset + n], now);
        }
    }

    /// Advances the windows to `now` and runs every rule's lifecycle; returns the
    /// transitions with the number of their rule.
    pub fn tick(&mut self, now: i64) -> Vec<(usize, Transition)> {
        let mut by_member = Vec::new();
        let mut out = Vec::new();
        for (c, cluster) in self.clusters.iter_mut().enumerate() {
            cluster.tick(now, &mut by_member);
            for (m, transition) in by_member.drain(..) {
                out.push((self.rules[c][m], transition));
            }
        }
        out
    }

    /// `rule`'s pending and firing groups.
    pub fn active(&self, rule: usize) -> Vec<Active> {
        let (c, m) = self.places[rule];
        self.clusters[c].active(m)
    }

    /// Whether `rule`'s persisted state changed since the last call.
    pub fn take_dirty(&mut self, rule: usize) -> bool {
        let (c, m) = self.places[rule];
        self.clusters[c].take_dirty(m)
    }

    /// Events `rule` did not count since the last call because its group table was full.
    pub fn take_overflow(&mut self, rule: usize) -> u64 {
        let (c, m) = self.places[rule];
        std::mem::take(&mut self.clusters[c].members[m].overflow)
    }

    /// `rule`'s firing alerts, to persist.
    pub fn snapshot(&self, rule: usize) -> StateFile {
        let (c, m) = self.places[rule];
        self.clusters[c].snapshot(m)
    }

    /// Takes back `rule`'s firing alerts of a previous run (see [`Cluster::restore`]).
    pub fn restore(&mut self, rule: usize, state: StateFile, now: i64) -> Vec<Transition> {
        let (c, m) = self.places[rule];
        self.clusters[c].restore(m, state, now)
    }
}

#[cfg(test)]
#[path = "set_tests.rs"]
mod tests;
