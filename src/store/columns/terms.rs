//! A block's term hashes as rows are appended: the message words (and which of them occur
//! twice or more, for the word index) and every `name=value`, for the bloom filter.
//!
//! Hashes are pushed onto plain vectors and sorted once when the block is written. Counting
//! them in a map as they came took a cache miss per unique value (request ids, users,
//! paths, numbers in messages): a sixth of ingest's CPU. A small direct-mapped filter of
//! recent hashes keeps a value that repeats (a level, an app, a common word) from being
//! pushed again.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;

use super::bloom::PassThrough;

/// Slots of each filter of recent hashes: small enough to stay in the first-level cache.
const RECENT: usize = 1024;

/// Hashes already spread by FNV: used as they are.
pub(super) type HashSetOfHashes = HashSet<u64, BuildHasherDefault<PassThrough>>;

pub(super) struct TermHashes {
    words: Vec<u64>,
    /// Words known to occur twice or more (found in the filter of recent words).
    repeated: Vec<u64>,
    recent_words: Box<[(u64, bool); RECENT]>,
    pairs: Vec<u64>,
    recent_pairs: Box<[u64; RECENT]>,
}

/// A block's terms, sorted and deduplicated.
pub(super) struct Sealed {
    /// Every distinct word hash and `name=value` hash (a word and a pair of the same hash
    /// may both be listed).
    pub(super) all: Vec<u64>,
    /// The words that occur twice or more.
    pub(super) repeated: HashSetOfHashes,
}

fn slot(h: u64) -> usize {
    (h ^ (h >> 32)) as usize % RECENT
}

impl TermHashes {
    pub(super) fn new() -> TermHashes {
        TermHashes {
            words: Vec::new(),
            repeated: Vec::new(),
            recent_words: Box::new([(0, false); RECENT]),
            pairs: Vec::new(),
            recent_pairs: Box::new([0; RECENT]),
        }
    }

    /// Room for as many hashes as `other` gathered (the previous block's).
    pub(super) fn reserve_like(&mut self, other: &TermHashes) {
        self.words.reserve(other.words.len());
        self.pairs.reserve(other.pairs.len());
    }

    /// Hashes held, for bounding a block by memory.
    pub(super) fn len(&self) -> usize {
        self.words.len() + self.repeated.len() + self.pairs.len()
    }

    /// A word's occurrence. A word found in the filter is a repeat (noted once while it
    /// stays there); one evicted meanwhile is pushed again, and the sort finds the pair.
    pub(super) fn word(&mut self, h: u64) {
        let slot = &mut self.recent_words[slot(h)];
        // A zero hash matches an empty slot: always pushed.
        if slot.0 == h && h != 0 {
            if !slot.1 {
                slot.1 = true;
                self.repeated.push(h);
            }
        } else {
            *slot = (h, false);
            self.words.push(h);
        }
    }

    pub(super) fn pair(&mut self, h: u64) {
        let slot = &mut self.recent_pairs[slot(h)];
        if *slot != h || h == 0 {
            *slot = h;
            self.pairs.push(h);
        }
    }

    pub(super) fn seal(self) -> Sealed {
        let TermHashes {
            mut words,
            repeated,
            mut pairs,
            ..
        } = self;
        words.sort_unstable();
        let mut repeated: HashSetOfHashes = repeated.into_iter().collect();
        repeated.extend(words.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]));
        words.dedup();
        pairs.sort_unstable();
        pairs.dedup();
        words.append(&mut pairs);
        Sealed {
            all: words,
            repeated,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Against a plain count: the distinct hashes and the words seen twice or more, with
    /// enough distinct words that the filter evicts (and a zero hash).
    #[test]
    fn sealed_terms_equal_a_plain_count() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut terms = TermHashes::new();
        let mut counts: HashMap<u64, u32> = HashMap::new();
        let mut pairs = std::collections::BTreeSet::new();
        for _ in 0..50_000 {
            // Skewed: a few common words, many rare ones.
            let w = if rng.bool() {
                rng.u64(0..20)
            } else {
                rng.u64(0..40_000) << 20
            };
            terms.word(w);
            *counts.entry(w).or_default() += 1;
            let p = rng.u64(0..5_000) | (1 << 63);
            terms.pair(p);
            pairs.insert(p);
        }
        let sealed = terms.seal();
        let mut expected: Vec<u64> = counts.keys().copied().chain(pairs).collect();
        expected.sort_unstable();
        let mut all = sealed.all.clone();
        all.sort_unstable();
        assert_eq!(all, expected);
        let repeated: HashSetOfHashes = counts
            .iter()
            .filter(|(_, &n)| n >= 2)
            .map(|(&h, _)| h)
            .collect();
        assert_eq!(sealed.repeated, repeated);
        assert!(sealed.repeated.contains(&0), "zero is a common word here");
    }
}
