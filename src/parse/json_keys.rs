//! Telling cheaply whether the keys a parser read (a JSON object's, a logfmt line's) may repeat.

/// Says cheaply whether a parsed line's keys may repeat, so that the map's own duplicate check
/// (string comparisons of every pair of keys) runs only when one may: a key is printed as
/// its length and four of its bytes (first, second, middle, last) in one `u64`, and equal
/// keys have equal prints. Distinct prints prove distinct keys; equal ones (or more keys
/// than are printed) leave the exact check to `dedup_keep_last`. Logs almost never
/// repeat a key, and the pairwise check was a twentieth of `auto` on the mixed bench lines.
#[derive(Default)]
pub(super) struct KeyPrints {
    prints: [u64; PRINTED_KEYS],
    len: usize,
    pub(super) maybe_repeated: bool,
}

/// Keys printed per object: most log objects have fewer; past this, the exact check runs.
const PRINTED_KEYS: usize = 16;

impl KeyPrints {
    pub(super) fn add(&mut self, key: &str) {
        if self.len == PRINTED_KEYS {
            self.maybe_repeated = true;
            return;
        }
        let b = key.as_bytes();
        let byte = |i: usize| u64::from(b.get(i).copied().unwrap_or(0));
        let n = b.len();
        // The top bit marks a print, so the empty slots (zero) never match: all slots are
        // compared at once, without a branch per key, which compiles to vector compares.
        let print = 1 << 63
            | (n as u64) << 32
            | byte(0) << 24
            | byte(1) << 16
            | byte(n / 2) << 8
            | byte(n.wrapping_sub(1));
        self.maybe_repeated |= self
            .prints
            .iter()
            .fold(false, |seen, p| seen | (*p == print));
        self.prints[self.len] = print;
        self.len += 1;
    }
}
