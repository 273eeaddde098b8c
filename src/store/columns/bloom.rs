//! A block's bloom filter of what a term query can ask for: the message's tokens and every
//! field's `name=value` (as [`Query::matches`](crate::store::Query::matches) compares them).
//! A block whose filter lacks a term the query requires is not read at all.
//!
//! Hashes are FNV-1a (64 bits), a fixed function: the filter is on disk and must mean the
//! same to every later version.
//!
//! A large filter is cut into pages (at most [`MAX_PAGES`], of at least [`PAGE_BYTES`]),
//! and a term's probes all fall in the page its hash picks: a query reads one page per
//! term and block, not the whole filter. Blocks written before pages hold one page.

use std::hash::Hasher;

use fnv::FnvHasher;

/// Filter bits per distinct term: about 3 % false positives with [`PROBES`] probes.
const BITS_PER_TERM: usize = 8;
const PROBES: u64 = 4;

pub(super) fn hash(bytes: &[u8]) -> u64 {
    let mut hasher = FnvHasher::default();
    hasher.write(bytes);
    hasher.finish()
}

/// The hash of `name=value` without building the string.
pub(super) fn hash_pair(name: &str, value: &[u8]) -> u64 {
    let mut hasher = FnvHasher::default();
    hasher.write(name.as_bytes());
    hasher.write(b"=");
    hasher.write(value);
    hasher.finish()
}

/// The hasher of sets and maps keyed by these hashes: already spread, used as they are.
#[derive(Default)]
pub(super) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Smallest page of a paged filter.
pub(super) const PAGE_BYTES: usize = 4096;
/// Most pages a filter is cut into (a power of two).
const MAX_PAGES: usize = 32;

/// How many pages a filter of `bytes` bytes is cut into.
pub(super) fn pages_for(bytes: usize) -> usize {
    (bytes / PAGE_BYTES).clamp(1, MAX_PAGES)
}

/// The page of a filter in `pages` pages that holds `h`'s probes. Its bits are above those
/// the probes take (`h`'s low 32 bits and bits 32 to 50 for a page of up to 2^18 bits), so
/// the page does not narrow where in it they fall.
pub(super) fn page_of(h: u64, pages: usize) -> usize {
    (h >> 59) as usize & (pages - 1)
}

/// The filter's bytes for the term hashes `terms`, about `count` distinct ones (a hash seen
/// twice is set twice, harmlessly): a power-of-two number of bits, little-endian words, in
/// [`pages_for`] pages of equal size.
pub(super) fn build<'a>(terms: impl IntoIterator<Item = &'a u64>, count: usize) -> Vec<u8> {
    let bits = (count.max(1) * BITS_PER_TERM).next_power_of_two().max(64);
    let mut words = vec![0u64; bits / 64];
    let pages = pages_for(bits / 8);
    let page_bits = bits / pages;
    let mask = page_bits as u64 - 1;
    for &h in terms {
        let base = (page_of(h, pages) * page_bits) as u64;
        for at in probes(h, mask) {
            let at = base + at;
            words[(at / 64) as usize] |= 1 << (at % 64);
        }
    }
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Whether a page of a filter built by [`build`] (the one [`page_of`] picks) may hold `h`
/// (an empty or malformed page may hold anything).
pub(super) fn may_contain(filter: &[u8], h: u64) -> bool {
    let bits = filter.len() * 8;
    if bits < 64 || !bits.is_power_of_two() {
        return true;
    }
    let mask = bits as u64 - 1;
    probes(h, mask).all(|at| {
        let byte = filter[(at / 8) as usize];
        byte & (1 << (at % 8)) != 0
    })
}

/// Double hashing (Kirsch and Mitzenmacher): positions `h1 + i * h2`.
fn probes(h: u64, mask: u64) -> impl Iterator<Item = u64> {
    let h1 = h;
    let h2 = h.rotate_left(32) | 1;
    (0..PROBES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_term_put_in_is_found_and_most_others_are_not() {
        let terms: Vec<u64> = (0..100_000)
            .map(|i| hash(format!("term{i}").as_bytes()))
            .collect();
        let filter = build(&terms, terms.len());
        let pages = pages_for(filter.len());
        assert_eq!(pages, 32, "a filter of {} bytes", filter.len());
        let page_bytes = filter.len() / pages;
        let may = |h: u64| {
            let page = page_of(h, pages);
            may_contain(&filter[page * page_bytes..(page + 1) * page_bytes], h)
        };
        for i in 0..100_000 {
            assert!(may(hash(format!("term{i}").as_bytes())));
        }
        let false_positives = (0..10_000)
            .filter(|i| may(hash(format!("other{i}").as_bytes())))
            .count();
        assert!(false_positives < 600, "{false_positives} false positives");
    }

    #[test]
    fn a_pair_hashes_as_its_text() {
        assert_eq!(hash_pair("app", b"web"), hash(b"app=web"));
    }
}
