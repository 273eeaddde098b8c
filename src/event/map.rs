//! An insertion-ordered field map.
//!
//! Log events carry few fields (typically under 20), so a vector with linear lookup beats a
//! hash map on both speed and memory, and it keeps the order fields arrived in, which users
//! expect to see preserved in JSON output. Keys are `CompactString`, stored inline up to 24
//! bytes, so ordinary field names cost no allocation.

use compact_str::CompactString;

use super::Value;

/// Above this many keys a duplicate check switches from a quadratic scan to a sort, so that a
/// hostile object with tens of thousands of keys cannot make parsing quadratic.
const QUADRATIC_DEDUP_LIMIT: usize = 16;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Map {
    entries: Vec<(CompactString, Value)>,
}

impl Map {
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    pub fn with_capacity(n: usize) -> Self {
        Self {
            entries: Vec::with_capacity(n),
        }
    }

    /// Makes room for `additional` more fields, so a run of pushes grows the map once.
    #[inline]
    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[inline]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The value at `key` (with `true`), or else at `fallback` (with `false`), looked for
    /// in one pass: a dotted field's flat key (`"http.status"`) and its first segment.
    pub fn get_mut_or(&mut self, key: &str, fallback: &str) -> Option<(bool, &mut Value)> {
        let mut at_fallback = None;
        let mut at_key = None;
        for (i, (k, _)) in self.entries.iter().enumerate() {
            if k == key {
                at_key = Some(i);
                break;
            }
            if at_fallback.is_none() && k == fallback {
                at_fallback = Some(i);
            }
        }
        match (at_key, at_fallback) {
            (Some(i), _) => Some((true, &mut self.entries[i].1)),
            (None, Some(i)) => Some((false, &mut self.entries[i].1)),
            (None, None) => None,
        }
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }

    /// Inserts or replaces; a replaced key keeps its position.
    pub fn insert(&mut self, key: impl Into<CompactString>, value: Value) -> Option<Value> {
        let key = key.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => Some(std::mem::replace(slot, value)),
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let pos = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(pos).1)
    }

    /// Appends without a duplicate check; callers must call [`Map::dedup_keep_last`] after a
    /// run of pushes that may repeat keys (as a parser does).
    #[inline]
    pub fn push_unchecked(&mut self, key: CompactString, value: Value) {
        self.entries.push((key, value));
    }

    /// Removes earlier occurrences of repeated keys, keeping the last value at the position
    /// of the first occurrence (JSON's "last one wins").
    pub fn dedup_keep_last(&mut self) {
        let n = self.entries.len();
        if n < 2 {
            return;
        }
        let has_dup = if n <= QUADRATIC_DEDUP_LIMIT {
            (1..n).any(|i| {
                self.entries[..i]
                    .iter()
                    .any(|(k, _)| *k == self.entries[i].0)
            })
        } else {
            let mut keys: Vec<&str> = self.entries.iter().map(|(k, _)| k.as_str()).collect();
            keys.sort_unstable();
            keys.windows(2).any(|w| w[0] == w[1])
        };
        if !has_dup {
            return;
        }
        let old = std::mem::take(&mut self.entries);
        let mut index: std::collections::HashMap<CompactString, usize> =
            std::collections::HashMap::with_capacity(n);
        for (k, v) in old {
            match index.get(&k) {
                Some(&i) => self.entries[i].1 = v,
                None => {
                    index.insert(k.clone(), self.entries.len());
                    self.entries.push((k, v));
                }
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&CompactString, &Value)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&CompactString, &mut Value)> {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// Moves every entry of `other` into `self`, replacing values of keys present in both.
    pub fn extend(&mut self, other: Map) {
        for (k, v) in other.entries {
            self.insert(k, v);
        }
    }

    /// Approximate memory held by the map, counting allocated but unused capacity.
    pub fn size_estimate(&self) -> usize {
        let slot = std::mem::size_of::<(CompactString, Value)>();
        let spare = (self.entries.capacity() - self.entries.len()) * slot;
        std::mem::size_of::<Self>()
            + spare
            + self
                .entries
                .iter()
                .map(|(k, v)| {
                    let key_heap = if k.is_heap_allocated() { k.len() } else { 0 };
                    std::mem::size_of::<CompactString>() + key_heap + v.size_estimate()
                })
                .sum::<usize>()
    }

    /// Looks up a dotted path: an exact key first (`"http.status"` as one field name), then
    /// descending through nested objects (`http` → `status`).
    pub fn get_path(&self, path: &str) -> Option<&Value> {
        if let Some(v) = self.get(path) {
            return Some(v);
        }
        let mut parts = path.split('.');
        let mut current = self.get(parts.next()?)?;
        for part in parts {
            match current {
                Value::Object(m) => current = m.get(part)?,
                _ => return None,
            }
        }
        Some(current)
    }
}

impl IntoIterator for Map {
    type Item = (CompactString, Value);
    type IntoIter = std::vec::IntoIter<(CompactString, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl FromIterator<(CompactString, Value)> for Map {
    fn from_iter<I: IntoIterator<Item = (CompactString, Value)>>(iter: I) -> Self {
        let mut map = Map {
            entries: iter.into_iter().collect(),
        };
        map.dedup_keep_last();
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_replaces_in_place() {
        let mut m = Map::new();
        m.insert("a", Value::Integer(1));
        m.insert("b", Value::Integer(2));
        m.insert("a", Value::Integer(3));
        assert_eq!(m.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(m.get("a"), Some(&Value::Integer(3)));
    }

    #[test]
    fn get_mut_or_prefers_the_key_wherever_it_is() {
        let mut m = Map::new();
        m.insert("http", Value::Integer(1));
        m.insert("http.status", Value::Integer(2));
        assert_eq!(
            m.get_mut_or("http.status", "http"),
            Some((true, &mut Value::Integer(2)))
        );
        m.remove("http.status");
        assert_eq!(
            m.get_mut_or("http.status", "http"),
            Some((false, &mut Value::Integer(1)))
        );
        assert_eq!(m.get_mut_or("a", "b"), None);
    }

    #[test]
    fn dedup_keeps_last_value_at_first_position_for_small_and_large_maps() {
        for n in [3usize, 40] {
            let mut m = Map::new();
            for i in 0..n {
                m.push_unchecked(format!("k{i}").into(), Value::Integer(i as i64));
            }
            m.push_unchecked("k0".into(), Value::Integer(-1));
            m.dedup_keep_last();
            assert_eq!(m.len(), n);
            assert_eq!(m.keys().next(), Some("k0"));
            assert_eq!(m.get("k0"), Some(&Value::Integer(-1)));
        }
    }

    #[test]
    fn get_path_prefers_exact_key_then_nested() {
        let mut inner = Map::new();
        inner.insert("status", Value::Integer(500));
        let mut m = Map::new();
        m.insert("http", Value::Object(inner));
        assert_eq!(m.get_path("http.status"), Some(&Value::Integer(500)));
        m.insert("http.status", Value::Integer(200));
        assert_eq!(m.get_path("http.status"), Some(&Value::Integer(200)));
        assert_eq!(m.get_path("http.missing"), None);
    }
}
