//! Stable identity of one alert: the rule and its group.

use crate::event::Map;

/// A 64-bit FNV-1a hash of the rule id and the group's field names and values, as 16 hex
/// digits. FNV rather than std's `DefaultHasher` because the value is persisted and sent to
/// notifiers (PagerDuty's `dedup_key`), so it must not change between builds or runs.
pub fn fingerprint(rule: &str, group: &Map) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let mut feed = |bytes: &[u8]| {
        // Length first, so ("ab", "c") and ("a", "bc") differ.
        for b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    feed(rule.as_bytes());
    for (name, value) in group.iter() {
        feed(name.as_bytes());
        feed(value.to_text().as_bytes());
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Value;

    fn group(pairs: &[(&str, &str)]) -> Map {
        let mut map = Map::new();
        for (k, v) in pairs {
            map.insert(*k, Value::from(*v));
        }
        map
    }

    #[test]
    fn stable_and_distinct() {
        let a = fingerprint("errors", &group(&[("app", "A")]));
        // A fixed value: persisted state and PagerDuty dedup keys depend on it.
        assert_eq!(a, "8508b3912675e26a");
        assert_eq!(a.len(), 16);
        assert_ne!(a, fingerprint("errors", &group(&[("app", "B")])));
        assert_ne!(a, fingerprint("other", &group(&[("app", "A")])));
        assert_ne!(
            fingerprint("r", &group(&[("a", "bc")])),
            fingerprint("r", &group(&[("ab", "c")]))
        );
    }
}
