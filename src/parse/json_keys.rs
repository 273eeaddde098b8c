//! The keys a parser reads (a JSON object's, a logfmt line's): telling cheaply whether they
//! may repeat, and making them cheaply.

use std::cell::RefCell;

use compact_str::CompactString;

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
    /// Notes a key made elsewhere.
    #[inline]
    pub(super) fn add(&mut self, key: &str) {
        self.note(print(key));
    }

    /// Notes `text` and returns it as a key: a clone of the one an earlier line made when
    /// the thread's [`RECENT`] keys hold it. Making a short key copies its bytes into an
    /// inline buffer and reads the buffer back as words, a store-forwarding stall per key
    /// that was a twelfth of `auto` on the mixed bench lines; a clone is three word copies.
    #[inline]
    pub(super) fn key(&mut self, text: &str) -> CompactString {
        let print = print(text);
        self.note(print);
        RECENT.with(|recent| {
            let Ok(mut recent) = recent.try_borrow_mut() else {
                return CompactString::from(text);
            };
            let slot = &mut recent[recent_slot(print)];
            if slot.0 == print && slot.1 == text {
                return slot.1.clone();
            }
            let key = CompactString::from(text);
            *slot = (print, key.clone());
            key
        })
    }

    fn note(&mut self, print: u64) {
        if self.len == PRINTED_KEYS {
            self.maybe_repeated = true;
            return;
        }
        // All slots are compared at once, without a branch per key, which compiles to
        // vector compares.
        self.maybe_repeated |= self
            .prints
            .iter()
            .fold(false, |seen, p| seen | (*p == print));
        self.prints[self.len] = print;
        self.len += 1;
    }
}

/// A key's length and four of its bytes (first, second, middle, last). The top bit marks a
/// print, so empty slots (zero) never match one.
#[inline]
fn print(key: &str) -> u64 {
    let b = key.as_bytes();
    let byte = |i: usize| u64::from(b.get(i).copied().unwrap_or(0));
    let n = b.len();
    1 << 63
        | (n as u64) << 32
        | byte(0) << 24
        | byte(1) << 16
        | byte(n / 2) << 8
        | byte(n.wrapping_sub(1))
}

/// Keys remembered per thread: a stream's lines repeat a few dozen field names.
const RECENT_KEYS: usize = 128;

thread_local! {
    /// The keys parsers made last, each in the slot its print picks.
    static RECENT: RefCell<[(u64, CompactString); RECENT_KEYS]> =
        const { RefCell::new([const { (0, CompactString::const_new("")) }; RECENT_KEYS]) };
}

fn recent_slot(print: u64) -> usize {
    // A print's bytes differ in its low half: mixed (splitmix64's finaliser) so that a
    // stream's few dozen keys spread over the slots.
    let mut x = print ^ (print >> 29);
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    x as usize % RECENT_KEYS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_with_one_print_stay_apart() {
        // Same length, first, second, middle and last bytes: one print, one slot.
        assert_eq!(print("abcde"), print("abcxe"));
        let mut keys = KeyPrints::default();
        assert_eq!(keys.key("abcde"), "abcde");
        assert_eq!(keys.key("abcxe"), "abcxe");
        assert_eq!(keys.key("abcde"), "abcde");
        assert!(
            keys.maybe_repeated,
            "equal prints leave the exact check to the map"
        );
    }

    #[test]
    fn a_remembered_key_is_the_same_key() {
        let long = "a.key.longer.than.an.inline.compact.string";
        for _ in 0..2 {
            let mut keys = KeyPrints::default();
            assert_eq!(keys.key(long), long);
            assert_eq!(keys.key("level"), "level");
            assert_eq!(keys.key(""), "");
            assert!(!keys.maybe_repeated);
        }
    }
}
