//! A federated `/v1/top`: the top values of a field over every peer, merged exactly by
//! over-fetching.
//!
//! Each peer is asked for more values than requested ([`first_fetch`]: ten times the limit,
//! at least 100). A peer that listed fewer than it was asked for listed every value it has,
//! so a value absent from its list counts 0 there. A peer whose list was full may hold any
//! other value up to the smallest count it listed. Summing gives each value a lower bound
//! (the counts listed) and an upper bound (plus, for each full list that lacks it, that
//! list's smallest count); a value no peer listed has at most the sum of those smallest
//! counts. The merged top is certainly the true top, with true counts, when every value
//! kept has equal bounds and every value left out (listed or not) has an upper bound below
//! the last kept count. When that cannot be shown, the peers with full lists are asked again
//! for all their values (up to [`MAX_LIMIT`]); if it still cannot be shown (a peer with more
//! distinct values than that), the answer says `exact: false`.

use std::collections::HashMap;

use serde::Deserialize;

use crate::store::search::MAX_LIMIT;

#[derive(Debug, Deserialize)]
pub(super) struct Counted {
    pub(super) value: String,
    pub(super) count: u64,
}

/// One peer's top values, as a node answers.
#[derive(Debug, Deserialize)]
pub(super) struct PeerTop {
    pub(super) values: Vec<Counted>,
    pub(super) total: u64,
}

/// How many values to ask each peer for first, for a request of `limit`.
pub(super) fn first_fetch(limit: usize) -> usize {
    limit.saturating_mul(10).clamp(100, MAX_LIMIT)
}

/// A peer's list and how many values it was asked for.
pub(super) struct Listed {
    pub(super) asked: usize,
    pub(super) top: PeerTop,
}

impl Listed {
    /// Whether the peer may hold values it did not list.
    pub(super) fn is_full(&self) -> bool {
        self.top.values.len() >= self.asked
    }

    /// What a value missing from this list may count at this peer.
    fn unlisted_bound(&self) -> u64 {
        if self.is_full() {
            self.top.values.iter().map(|v| v.count).min().unwrap_or(0)
        } else {
            0
        }
    }
}

/// The merged top `limit` values, and whether they are provably the exact answer.
pub(super) fn merge_top(lists: &[Listed], limit: usize) -> (Vec<(String, u64)>, bool) {
    let bounds: Vec<u64> = lists.iter().map(Listed::unlisted_bound).collect();
    let unseen_bound: u64 = bounds.iter().sum();
    // Per value: the counts listed, and the bounds of the full lists that listed it.
    let mut merged: HashMap<&str, (u64, u64)> = HashMap::new();
    for (list, bound) in lists.iter().zip(&bounds) {
        for v in &list.top.values {
            let entry = merged.entry(v.value.as_str()).or_insert((0, 0));
            entry.0 += v.count;
            entry.1 += bound;
        }
    }
    let mut values: Vec<(&str, u64, u64)> = merged
        .into_iter()
        .map(|(value, (lower, listed))| (value, lower, lower + (unseen_bound - listed)))
        .collect();
    // As the store orders them: count descending, then value.
    values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let kept = values.len().min(limit);
    let (top, rest) = values.split_at(kept);
    let exact = match top.last() {
        // Nothing kept: exact when no value can exist anywhere unlisted.
        None => limit == 0 || unseen_bound == 0,
        Some(&(_, last, _)) => {
            let counts_exact = top.iter().all(|(_, lower, upper)| lower == upper);
            let rest_below = rest
                .iter()
                .all(|(_, lower, upper)| upper < &last || lower == upper);
            let unseen_below = unseen_bound == 0 || (kept == limit && unseen_bound < last);
            counts_exact && rest_below && unseen_below
        }
    };
    let top = top
        .iter()
        .map(|(value, count, _)| (value.to_string(), *count))
        .collect();
    (top, exact)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(asked: usize, values: &[(&str, u64)]) -> Listed {
        Listed {
            asked,
            top: PeerTop {
                values: values
                    .iter()
                    .map(|(v, c)| Counted {
                        value: v.to_string(),
                        count: *c,
                    })
                    .collect(),
                total: values.iter().map(|(_, c)| c).sum(),
            },
        }
    }

    #[test]
    fn complete_lists_merge_exactly() {
        let lists = [
            listed(100, &[("info", 50), ("error", 5)]),
            listed(100, &[("info", 40), ("warn", 9)]),
        ];
        let (top, exact) = merge_top(&lists, 2);
        assert!(exact);
        assert_eq!(top, [("info".to_string(), 90), ("warn".to_string(), 9)]);
    }

    #[test]
    fn a_full_list_that_may_hide_a_winner_is_not_exact() {
        // Peer b listed 2 of its values, the smallest counting 10: "error", absent there,
        // may count up to 10 at b, so 5 + 10 could beat "warn" at 9.
        let lists = [
            listed(100, &[("info", 50), ("error", 5)]),
            listed(2, &[("info", 40), ("warn", 10)]),
        ];
        let (_, exact) = merge_top(&lists, 2);
        assert!(!exact);
        // With "warn" far ahead, nothing hidden can reach it.
        let lists = [
            listed(100, &[("info", 50), ("warn", 30), ("error", 1)]),
            listed(2, &[("info", 40), ("warn", 10)]),
        ];
        let (top, exact) = merge_top(&lists, 2);
        assert!(exact, "{top:?}");
        assert_eq!(top, [("info".to_string(), 90), ("warn".to_string(), 40)]);
    }
}
