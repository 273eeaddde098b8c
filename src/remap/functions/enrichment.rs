//! `get_enrichment_table_record(table, conditions)` at run time: the table was resolved
//! when the program compiled (`parser/enrichment.rs`); here the conditions are turned into
//! text and the table in use is searched.

use std::borrow::Cow;

use super::{type_name, CallResult};
use crate::enrichment::TableHandle;
use crate::event::{Map, Value};

/// The function's name, which the parser handles itself (its first argument is resolved
/// at compile time).
pub(in crate::remap) const TABLE_RECORD: &str = "get_enrichment_table_record";

/// The one record of `table` whose fields equal every condition, as an object. Condition
/// values are compared as text, as a table holds them (CSV cells are strings), so
/// `{"id": .user_id}` matches the row `42` whether `.user_id` is `42` or `"42"`.
pub(in crate::remap) fn table_record(table: &TableHandle, conditions: &Value) -> CallResult {
    let Value::Object(map) = conditions else {
        return Err(format!(
            "argument 2 must be an object of conditions (`{{\"field\": value}}`), not {}",
            type_name(conditions)
        ));
    };
    if map.is_empty() {
        return Err("argument 2 has no conditions".into());
    }
    let mut texts: Vec<(&str, Cow<'_, str>)> = Vec::with_capacity(map.len());
    for (field, value) in map.iter() {
        let text = match value {
            Value::Bytes(b) => Cow::Borrowed(
                std::str::from_utf8(b)
                    .map_err(|_| format!("the condition on `{field}` is not UTF-8 text"))?,
            ),
            Value::Integer(_) | Value::Float(_) | Value::Bool(_) => Cow::Owned(value.to_text()),
            other => {
                return Err(format!(
                    "the condition on `{field}` must be a string, a number or a boolean, not {}",
                    type_name(other)
                ))
            }
        };
        texts.push((field.as_str(), text));
    }
    let pairs: Vec<(&str, &str)> = texts.iter().map(|(f, t)| (*f, t.as_ref())).collect();
    let current = table
        .current()
        .ok_or_else(|| format!("the table `{}` is not loaded", table.id()))?;
    let record = current.find(&pairs).map_err(|e| e.to_string())?;
    Ok(Value::Object(Map::clone(&record)))
}
