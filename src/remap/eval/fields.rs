//! Changing an event's fields by path, and putting back what a change replaced (the undo
//! log's other half).

use compact_str::CompactString;

use crate::condition::FieldPath;
use crate::event::{Map, Value};
use crate::remap::functions::type_name;

/// Room in an object an assignment creates (`.http.method = ...`) for the keys set beside
/// the first (`.http.path`), which a program writes next: an object made for one key is
/// moved to a larger allocation by the second. Four is what a vector grows to first.
const NEW_OBJECT_CAPACITY: usize = 4;

/// Sets `path` to `value`, creating the objects on the way. A path whose flat dotted key
/// exists at the top (`"http.status"`) sets that key, as reading it would. Returns the
/// depth of the key it changed and writes the key's old value to `old`: the caller points
/// `old` into its undo log, so that the replaced value (40 bytes) is written once where it
/// is kept rather than moved through every level's return value.
pub(super) fn set_field(
    map: &mut Map,
    path: &FieldPath,
    value: Value,
    old: &mut Option<Value>,
) -> Result<usize, String> {
    if let (Some(exact), [first, rest @ ..]) = (path.exact_key(), path.segments()) {
        // One pass over the fields for both keys: a new dotted field is looked for once.
        return match map.get_mut_or(exact, first) {
            Some((true, slot)) => {
                *old = Some(std::mem::replace(slot, value));
                Ok(0)
            }
            Some((false, found)) => set_inside(found, first, rest, value, 1, old),
            None => {
                create(map, first, rest, value);
                Ok(1)
            }
        };
    }
    set_in(map, path.segments(), value, 1, old)
}

fn set_in(
    map: &mut Map,
    segments: &[CompactString],
    value: Value,
    depth: usize,
    old: &mut Option<Value>,
) -> Result<usize, String> {
    let Some((first, rest)) = segments.split_first() else {
        return Err("empty path".into());
    };
    if rest.is_empty() {
        // Only a replaced value is written: copying the `None` a new key gives back would
        // read 40 bytes of which one was written (a store-forwarding stall in the profile).
        if let Some(replaced) = map.insert(first.clone(), value) {
            *old = Some(replaced);
        }
        return Ok(depth);
    }
    match map.get_mut(first) {
        Some(found) => set_inside(found, first, rest, value, depth, old),
        None => {
            create(map, first, rest, value);
            Ok(depth)
        }
    }
}

/// Sets `rest` of a path inside `found`, the value at the path's segment `first`.
fn set_inside(
    found: &mut Value,
    first: &str,
    rest: &[CompactString],
    value: Value,
    depth: usize,
    old: &mut Option<Value>,
) -> Result<usize, String> {
    match found {
        Value::Object(inner) => set_in(inner, rest, value, depth + 1, old),
        other => Err(format!("`{first}` is {}, not an object", type_name(other))),
    }
}

/// Adds `first`, which the caller looked for and did not find, holding `value` inside new
/// objects for the segments of `rest`.
fn create(map: &mut Map, first: &CompactString, rest: &[CompactString], value: Value) {
    let mut nested = value;
    for segment in rest.iter().rev() {
        let mut object = Map::with_capacity(NEW_OBJECT_CAPACITY);
        object.push_unchecked(segment.clone(), nested);
        nested = Value::Object(object);
    }
    map.push_unchecked(first.clone(), nested);
}

/// Removes `path`; returns the depth of the removed key and its value.
pub(super) fn delete_field(map: &mut Map, path: &FieldPath) -> Option<(usize, Value)> {
    if let Some(exact) = path.exact_key() {
        if let Some(old) = map.remove(exact) {
            return Some((0, old));
        }
    }
    let segments = path.segments();
    let (last, parents) = segments.split_last()?;
    let parent = object_at(map, parents)?;
    parent.remove(last).map(|old| (segments.len(), old))
}

fn object_at<'m>(map: &'m mut Map, segments: &[CompactString]) -> Option<&'m mut Map> {
    let mut current = map;
    for segment in segments {
        match current.get_mut(segment) {
            Some(Value::Object(inner)) => current = inner,
            _ => return None,
        }
    }
    Some(current)
}

/// Puts back what a change replaced: `old` at the key `depth` segments down `path`, or
/// no key there when `old` is `None`.
pub(super) fn restore(map: &mut Map, path: &FieldPath, depth: usize, old: Option<Value>) {
    let (parent, key): (Option<&mut Map>, &str) = if depth == 0 {
        (Some(map), path.exact_key().unwrap_or_default())
    } else {
        let segments = &path.segments()[..depth];
        let Some((last, parents)) = segments.split_last() else {
            return;
        };
        (object_at(map, parents), last.as_str())
    };
    let Some(parent) = parent else {
        return;
    };
    match old {
        Some(value) => {
            parent.insert(key, value);
        }
        None => {
            parent.remove(key);
        }
    }
}
