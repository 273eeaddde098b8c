//! How a rule judges one group's counts: whether its condition holds, the value it is
//! judged on, and whether an inactive group is still worth keeping.

use super::{AlertKind, RuleSpec};

/// An absence member's last match for a group it has not seen yet (the group was restored
/// for another member): it neither fires nor keeps the group until the group speaks.
pub(super) const UNSEEN: i64 = i64::MIN;

/// What a member counts for a group.
#[derive(Debug, Clone, Copy)]
pub(super) enum Counts {
    /// Matching events in the window (threshold and ratio rules).
    Matched(u64),
    /// When the last matching event came (absence rules).
    LastMatch(i64),
}

/// [`holds`] for one rule without reaching into its spec.
#[derive(Debug, Clone, Copy)]
pub(super) struct Check {
    ratio: bool,
    threshold: f64,
    min_events: u64,
}

impl Check {
    pub(super) fn new(spec: &RuleSpec) -> Self {
        Self {
            ratio: spec.kind == AlertKind::Ratio,
            threshold: spec.threshold,
            min_events: spec.min_events,
        }
    }

    pub(super) fn holds(&self, matched: u64, total: u64) -> bool {
        if self.ratio {
            total >= self.min_events && total > 0 && matched as f64 / total as f64 > self.threshold
        } else {
            matched as f64 > self.threshold
        }
    }
}

/// Whether a threshold or ratio rule's condition holds for these counts.
fn holds(spec: &RuleSpec, matched: u64, total: u64) -> bool {
    spec.kind != AlertKind::Absence && Check::new(spec).holds(matched, total)
}

/// Whether the rule's condition holds for a group now, and the value it is judged on.
pub(super) fn evaluate(
    spec: &RuleSpec,
    counts: Counts,
    total: u64,
    last_seen: i64,
    now: i64,
) -> (bool, f64) {
    match counts {
        Counts::Matched(matched) if spec.kind == AlertKind::Ratio => {
            let ratio = if total == 0 {
                0.0
            } else {
                matched as f64 / total as f64
            };
            (holds(spec, matched, total), ratio)
        }
        Counts::Matched(matched) => (holds(spec, matched, total), matched as f64),
        Counts::LastMatch(UNSEEN) => (false, 0.0),
        Counts::LastMatch(last_match) => {
            // Silent for the window, but seen within forget_after: a group gone for longer
            // is forgotten (and its alert resolved).
            let silent = now.saturating_sub(last_match);
            let seen = now.saturating_sub(last_seen) <= spec.forget_nanos;
            (
                silent >= spec.window_nanos && seen,
                (silent / 1_000_000_000) as f64,
            )
        }
    }
}

/// Whether an inactive group is still worth its memory to a rule.
pub(super) fn wanted(
    spec: &RuleSpec,
    counts: Counts,
    total: u64,
    last_seen: i64,
    now: i64,
) -> bool {
    match counts {
        Counts::Matched(_) if spec.kind == AlertKind::Ratio => total > 0,
        Counts::Matched(matched) => matched > 0,
        Counts::LastMatch(UNSEEN) => false,
        Counts::LastMatch(_) => now.saturating_sub(last_seen) <= spec.forget_nanos,
    }
}
