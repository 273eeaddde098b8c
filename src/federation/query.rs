//! A federated `/v1/query`: every peer's page merged newest first, with a cursor that
//! spans nodes.
//!
//! Across nodes, events are ordered by `(time, peer, partition, arrival)`, all descending:
//! a node's own order (`store::search`) with the peer's URL put between the time and the
//! node-local rest, so the order is total. The federated cursor is simply the merged key of
//! the page's last event. From it each peer's own cursor follows (its events after that
//! point are exactly those with a smaller merged key), so a cursor needs no state per peer,
//! and a peer that joins (a new pod) or that failed on the previous page is asked from the
//! same point. Each peer is asked for a whole page after its cursor: the merged page is the
//! newest `limit` of at most `peers × limit` events, the same events a single store holding
//! all of them would return.

use base64::Engine;
use serde::Deserialize;

use crate::store::search::{encode_cursor, Key};
use crate::store::StoreError;

/// The merged sort key: time, peer, then the peer's own partition and arrival order.
pub(super) type MergedKey = (i64, String, i64, u64);

/// Marks a federated cursor, so a node's own cursor given to a federating router (or the
/// reverse) is refused rather than misread.
const CURSOR_PREFIX: &str = "fed1 ";

pub(super) fn encode_merged_cursor(key: &MergedKey) -> String {
    let (ts, peer, partition, seq) = key;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{CURSOR_PREFIX}{ts} {partition} {seq} {peer}"))
}

pub(super) fn decode_merged_cursor(cursor: &str) -> Result<MergedKey, StoreError> {
    let bad = || StoreError::BadRequest("cursor is not one this router returned".into());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let rest = text.strip_prefix(CURSOR_PREFIX).ok_or_else(bad)?;
    let mut parts = rest.splitn(4, ' ');
    let mut next = || parts.next().ok_or_else(bad);
    let ts = next()?.parse().map_err(|_| bad())?;
    let partition = next()?.parse().map_err(|_| bad())?;
    let seq = next()?.parse().map_err(|_| bad())?;
    let peer = next()?.to_string();
    Ok((ts, peer, partition, seq))
}

/// The cursor to send `peer` so that it returns exactly its events after `after` in the
/// merged order.
pub(super) fn peer_cursor(after: &MergedKey, peer: &str) -> String {
    let (ts, at_peer, partition, seq) = after;
    let key: Key = match peer.cmp(at_peer.as_str()) {
        std::cmp::Ordering::Equal => (*ts, *partition, *seq),
        // Ordered after `at_peer` at the same time: its events of that time are still to
        // come (no partition starts at i64::MAX).
        std::cmp::Ordering::Less => (*ts, i64::MAX, u64::MAX),
        // Ordered before: its events of that time were shown already.
        std::cmp::Ordering::Greater => (*ts, i64::MIN, 0),
    };
    encode_cursor(key)
}

/// One peer's page, as a node answers `local=1`.
#[derive(Debug, Deserialize)]
pub(super) struct PeerPage {
    pub(super) events: Vec<serde_json::Value>,
    pub(super) total: u64,
    /// Each event's own cursor: its sort key.
    pub(super) cursors: Vec<String>,
}

/// The merged page.
pub(super) struct MergedPage {
    pub(super) events: Vec<serde_json::Value>,
    pub(super) total: u64,
    pub(super) next_cursor: Option<String>,
}

/// The newest `limit` events of every peer's page (`pages`: the peer and its page).
pub(super) fn merge_pages(
    pages: Vec<(String, PeerPage)>,
    limit: usize,
) -> Result<MergedPage, String> {
    let mut total = 0u64;
    let mut all: Vec<(MergedKey, serde_json::Value)> = Vec::new();
    for (peer, page) in pages {
        total += page.total;
        if page.cursors.len() != page.events.len() {
            return Err(format!(
                "{peer} sent {} cursors for {} events",
                page.cursors.len(),
                page.events.len()
            ));
        }
        for (event, cursor) in page.events.into_iter().zip(page.cursors) {
            let (ts, partition, seq) = crate::store::search::decode_cursor(&cursor)
                .map_err(|_| format!("{peer} sent a cursor that is not one"))?;
            all.push(((ts, peer.clone(), partition, seq), event));
        }
    }
    all.sort_by(|a, b| b.0.cmp(&a.0));
    all.truncate(limit);
    // As a single store: a full page has a next cursor (the next page may be empty).
    let next_cursor = if all.len() == limit && limit > 0 {
        all.last().map(|(key, _)| encode_merged_cursor(key))
    } else {
        None
    };
    Ok(MergedPage {
        events: all.into_iter().map(|(_, e)| e).collect(),
        total,
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_cursors_round_trip_and_refuse_a_node_cursor() {
        let key = (
            1_764_136_800_000_000_123,
            "http://10.0.0.7:8686".to_string(),
            1_764_136_800,
            42,
        );
        assert_eq!(
            decode_merged_cursor(&encode_merged_cursor(&key)).expect("decodes"),
            key
        );
        let node = encode_cursor((1, 2, 3));
        assert!(decode_merged_cursor(&node).is_err());
        assert!(decode_merged_cursor("!!").is_err());
    }

    fn page(peer: &str, keys: &[(i64, u64)]) -> (String, PeerPage) {
        let events = keys
            .iter()
            .map(|(ts, seq)| serde_json::json!({"ts": ts, "peer": peer, "seq": seq}))
            .collect();
        let cursors = keys
            .iter()
            .map(|(ts, seq)| encode_cursor((*ts, 0, *seq)))
            .collect();
        (
            peer.to_string(),
            PeerPage {
                events,
                total: keys.len() as u64,
                cursors,
            },
        )
    }

    /// Paging through the merge, each peer asked after its own cursor, yields every event
    /// once, newest first, ties at one time included.
    #[test]
    fn paging_across_peers_visits_every_event_once() {
        let data: Vec<(&str, Vec<(i64, u64)>)> = vec![
            ("http://a:1", vec![(9, 1), (7, 2), (7, 1), (3, 1)]),
            ("http://b:1", vec![(8, 1), (7, 1), (2, 1)]),
            ("http://c:1", vec![(7, 3), (7, 2), (1, 1)]),
        ];
        let local = |peer: &str, cursor: Option<&str>, limit: usize| -> (String, PeerPage) {
            let before = cursor.map(|c| crate::store::search::decode_cursor(c).expect("cursor"));
            let keys: Vec<(i64, u64)> = data
                .iter()
                .find(|(p, _)| *p == peer)
                .map(|(_, k)| k.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|(ts, seq)| before.is_none_or(|b| (*ts, 0, *seq) < b))
                .take(limit)
                .collect();
            page(peer, &keys)
        };
        let mut seen = Vec::new();
        let mut cursor: Option<MergedKey> = None;
        for _ in 0..10 {
            let pages = data
                .iter()
                .map(|(peer, _)| {
                    let c = cursor.as_ref().map(|k| peer_cursor(k, peer));
                    local(peer, c.as_deref(), 3)
                })
                .collect();
            let merged = merge_pages(pages, 3).expect("merges");
            for e in &merged.events {
                seen.push((
                    e["ts"].as_i64().unwrap(),
                    e["peer"].as_str().unwrap().to_string(),
                    e["seq"].as_u64().unwrap(),
                ));
            }
            match merged.next_cursor {
                Some(c) => cursor = Some(decode_merged_cursor(&c).expect("ours")),
                None => break,
            }
        }
        let mut expected: Vec<(i64, String, u64)> = data
            .iter()
            .flat_map(|(p, keys)| keys.iter().map(move |(ts, seq)| (*ts, p.to_string(), *seq)))
            .collect();
        expected.sort_by(|a, b| b.cmp(a));
        assert_eq!(seen, expected);
    }
}
