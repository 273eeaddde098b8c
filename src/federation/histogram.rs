//! A federated `/v1/histogram`: every peer's buckets summed into one layout.
//!
//! With a time range, the federating router sends every peer the same absolute `from` and
//! `to` (a `since` is turned into a `from` once, here), so they all lay out the same buckets.
//! Without one, the chart covers the data: each peer charts its own span and says what it
//! was (`span_ns`); the union of the spans gives the layout a single store holding all the
//! events would choose, and each peer's buckets are added into it by their start time.
//! That is exact because automatic widths come from a list in which each width divides the
//! next, and buckets start on multiples of their width: a peer's narrower bucket lies
//! inside one of the wider ones.
//!
//! With `split`, peers are asked for every series they may keep
//! ([`MAX_SPLIT_SERIES`](crate::store::search::MAX_SPLIT_SERIES)) and the requested number
//! is kept after summing, so the largest series are chosen over all the data. A peer with
//! more values than that folds its smallest into `_other` first, and only then can the
//! chosen series differ from a single store's.

use std::collections::HashMap;

use serde::Deserialize;

use crate::store::search::{keep_top_series, MAX_BUCKETS};

/// One peer's histogram, as a node answers `local=1`.
#[derive(Debug, Deserialize)]
pub(super) struct PeerHistogram {
    pub(super) times_ms: Vec<i64>,
    pub(super) series: HashMap<String, Vec<u64>>,
    /// The span the peer charted, when it says something of its data.
    pub(super) span_ns: Option<(i64, i64)>,
}

/// The buckets of the merged chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Layout {
    /// Start of the first bucket, nanoseconds.
    pub(super) from: i64,
    pub(super) interval: i64,
    pub(super) buckets: usize,
}

impl Layout {
    /// `from` already aligned, `to` the end of the span.
    pub(super) fn new(from: i64, to: i64, interval: i64) -> Result<Layout, String> {
        let span = i128::from(to) - i128::from(from);
        let buckets = (span + i128::from(interval) - 1) / i128::from(interval);
        if buckets > i128::from(MAX_BUCKETS) {
            return Err(format!(
                "{buckets} buckets is more than {MAX_BUCKETS}: use a longer interval"
            ));
        }
        Ok(Layout {
            from,
            interval,
            buckets: buckets.max(0) as usize,
        })
    }
}

/// The union of the spans peers charted; `None` when none of them has data.
pub(super) fn union_span(histograms: &[PeerHistogram]) -> Option<(i64, i64)> {
    histograms
        .iter()
        .filter_map(|h| h.span_ns)
        .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)))
}

/// The merged chart: the series of every peer added bucket by bucket into `layout`; with a
/// split, the `split_limit` largest kept and the rest summed as `_other`.
pub(super) fn merge_histograms(
    histograms: Vec<PeerHistogram>,
    layout: Layout,
    split_limit: Option<usize>,
) -> serde_json::Value {
    let mut series: HashMap<String, Vec<u64>> = HashMap::new();
    for histogram in histograms {
        for (name, counts) in histogram.series {
            let into = series
                .entry(name)
                .or_insert_with(|| vec![0; layout.buckets]);
            for (time_ms, count) in histogram.times_ms.iter().zip(counts) {
                let start = time_ms.saturating_mul(1_000_000);
                let Some(offset) = start.checked_sub(layout.from) else {
                    continue;
                };
                let bucket = offset.div_euclid(layout.interval);
                if let Some(slot) = usize::try_from(bucket).ok().and_then(|b| into.get_mut(b)) {
                    *slot += count;
                }
            }
        }
    }
    series.retain(|_, counts| counts.iter().any(|&n| n > 0));
    if let Some(limit) = split_limit {
        keep_top_series(&mut series, limit, layout.buckets);
    }
    let total: u64 = series.values().flatten().sum();
    let times_ms: Vec<i64> = (0..layout.buckets as i64)
        .map(|i| (layout.from + i * layout.interval).div_euclid(1_000_000))
        .collect();
    let series: std::collections::BTreeMap<String, Vec<u64>> = series.into_iter().collect();
    serde_json::json!({
        "times_ms": times_ms,
        "interval_ms": layout.interval / 1_000_000,
        "series": series,
        "total": total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn the_span_is_the_union_of_the_peers_spans() {
        let a = PeerHistogram {
            times_ms: vec![0, 1_000, 2_000],
            series: [("all".to_string(), vec![1, 2, 3])].into(),
            span_ns: Some((0, 3 * S)),
        };
        let b = PeerHistogram {
            times_ms: vec![60_000, 65_000],
            series: [("all".to_string(), vec![4, 5])].into(),
            span_ns: Some((60 * S, 70 * S)),
        };
        assert_eq!(union_span(&[a, b]), Some((0, 70 * S)));
    }

    /// Two peers that charted their own spans at their own widths, added into the width of
    /// the union: each narrow bucket falls into the wide one holding it.
    #[test]
    fn narrower_buckets_add_into_the_union_layout() {
        let a = PeerHistogram {
            times_ms: vec![0, 1_000, 2_000],
            series: [("all".to_string(), vec![1, 2, 3])].into(),
            span_ns: Some((0, 3 * S)),
        };
        let b = PeerHistogram {
            times_ms: vec![60_000, 65_000],
            series: [("all".to_string(), vec![4, 5])].into(),
            span_ns: Some((60 * S, 70 * S)),
        };
        let layout = Layout::new(0, 70 * S, 5 * S).expect("layout");
        assert_eq!(layout.buckets, 14);
        let merged = merge_histograms(vec![a, b], layout, None);
        let all: Vec<u64> = serde_json::from_value(merged["series"]["all"].clone()).unwrap();
        assert_eq!(
            all[0], 6,
            "the first peer's three 1 s buckets in one 5 s bucket"
        );
        assert_eq!((all[12], all[13]), (4, 5));
        assert_eq!(merged["total"], 15);
        assert_eq!(merged["interval_ms"], 5_000);
    }
}
