//! The `_bulk` API's two halves: a request of action and document lines (NDJSON), and the
//! answer's per-item statuses read back into what became of each document.
//!
//! A 200 answer says `"errors": true` when some items failed; each item carries its own
//! `status` and, when it failed, an `error` with a `type` and a `reason`
//! (`mapper_parsing_exception: failed to parse field [n] of type [long]...`). Items are
//! judged one by one, as Elasticsearch and OpenSearch document them:
//!
//! - 2xx: stored;
//! - 409 (a `create` whose `_id` exists): stored by an earlier attempt whose answer was
//!   lost, so delivered, not a duplicate;
//! - 429 (`es_rejected_execution_exception`, a full write queue) and 5xx: sent again,
//!   alone with the other retryable items, after a backoff;
//! - any other status: rejected; the event goes to dead-letter with the error's type and
//!   reason.

use std::io::Write;

use serde::Deserialize;

use crate::event::{fields, Event, Value};

/// Writes one item: the action line naming the index (and `_id`), then the document.
pub(super) fn write_item(
    event: &Event,
    action: &str,
    index: &str,
    id: Option<&str>,
    timestamp_field: &str,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(action.as_bytes());
    out.extend_from_slice(b"\":{\"_index\":");
    let _ = serde_json::to_writer(&mut *out, index);
    if let Some(id) = id {
        out.extend_from_slice(b",\"_id\":");
        let _ = serde_json::to_writer(&mut *out, id);
    }
    out.extend_from_slice(b"}}\n");
    if timestamp_field.is_empty() || timestamp_field == fields::TIMESTAMP {
        // Serialising our own value type cannot fail (see `Encoding::encode`).
        let _ = serde_json::to_writer(&mut *out, &event.fields);
    } else {
        // The event's `timestamp` under the name the index expects (`@timestamp` for data
        // streams and Kibana), everything else as it is.
        out.push(b'{');
        let mut first = true;
        for (name, value) in event.fields.iter() {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            let name = if name == fields::TIMESTAMP && matches!(value, Value::Timestamp(_)) {
                timestamp_field
            } else {
                name.as_str()
            };
            let _ = serde_json::to_writer(&mut *out, name);
            out.push(b':');
            let _ = serde_json::to_writer(&mut *out, value);
        }
        out.push(b'}');
    }
    let _ = out.write_all(b"\n");
}

/// What became of one item.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ItemOutcome {
    Stored,
    /// Worth sending again; the reason for the log.
    Retry(String),
    /// Refused for good, with the server's reason.
    Rejected(String),
}

#[derive(Deserialize)]
struct BulkAnswer {
    #[serde(default)]
    errors: bool,
    #[serde(default)]
    items: Vec<std::collections::HashMap<String, Item>>,
}

#[derive(Deserialize)]
struct Item {
    status: u16,
    error: Option<ItemError>,
}

#[derive(Deserialize)]
struct ItemError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    reason: String,
    caused_by: Option<Box<ItemError>>,
}

impl ItemError {
    fn describe(&self) -> String {
        let mut text = format!("{}: {}", self.kind, self.reason);
        if let Some(cause) = &self.caused_by {
            text.push_str(&format!(" (caused by {})", cause.describe()));
        }
        text
    }
}

/// Why a 200 answer could not be read.
#[derive(Debug, PartialEq, thiserror::Error)]
pub(super) enum AnswerError {
    #[error("unreadable bulk answer: {0}")]
    Unreadable(String),
    #[error("bulk answer has {got} items for {sent} sent")]
    Count { got: usize, sent: usize },
}

/// The outcome of each of the `sent` items, in order, from a 200 answer's body.
pub(super) fn read_answer(body: &[u8], sent: usize) -> Result<Vec<ItemOutcome>, AnswerError> {
    let answer: BulkAnswer =
        serde_json::from_slice(body).map_err(|e| AnswerError::Unreadable(e.to_string()))?;
    if !answer.errors {
        // Every item succeeded; with `filter_path` the successful items may even be absent.
        return Ok(vec![ItemOutcome::Stored; sent]);
    }
    if answer.items.len() != sent {
        return Err(AnswerError::Count {
            got: answer.items.len(),
            sent,
        });
    }
    Ok(answer
        .items
        .iter()
        .map(|item| {
            let Some(item) = item.values().next() else {
                return ItemOutcome::Rejected("empty bulk item".into());
            };
            let reason = || {
                let detail = item
                    .error
                    .as_ref()
                    .map_or_else(|| "no reason given".into(), ItemError::describe);
                format!("HTTP {}: {detail}", item.status)
            };
            match item.status {
                200..=299 | 409 => ItemOutcome::Stored,
                429 | 500..=599 => ItemOutcome::Retry(reason()),
                _ => ItemOutcome::Rejected(reason()),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Map;

    #[test]
    fn writes_action_and_document_lines() {
        let mut event = Event::new(Map::new());
        event.fields.insert("message", Value::from("hi"));
        event
            .fields
            .insert("timestamp", Value::Timestamp(1_796_551_872_123_456_000));
        let mut out = Vec::new();
        write_item(
            &event,
            "create",
            "logs-2026.12.06",
            None,
            "@timestamp",
            &mut out,
        );
        write_item(&event, "index", "x", Some("id\"1"), "", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            concat!(
                "{\"create\":{\"_index\":\"logs-2026.12.06\"}}\n",
                "{\"message\":\"hi\",\"@timestamp\":\"2026-12-06T10:11:12.123456Z\"}\n",
                "{\"index\":{\"_index\":\"x\",\"_id\":\"id\\\"1\"}}\n",
                "{\"message\":\"hi\",\"timestamp\":\"2026-12-06T10:11:12.123456Z\"}\n",
            )
        );
    }

    #[test]
    fn reads_each_item() {
        // The documentation's shape of a partly failed bulk request.
        let body = br#"{"took":486,"errors":true,"items":[
            {"create":{"_index":"logs","_id":"1","_version":1,"result":"created","status":201}},
            {"create":{"_index":"logs","_id":"2","status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [n] of type [long]","caused_by":{"type":"illegal_argument_exception","reason":"For input string: \"abc\""}}}},
            {"create":{"_index":"logs","_id":"3","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution"}}},
            {"create":{"_index":"logs","_id":"4","status":409,"error":{"type":"version_conflict_engine_exception","reason":"document already exists"}}},
            {"create":{"_index":"logs","_id":"5","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}}
        ]}"#;
        let outcomes = read_answer(body, 5).unwrap();
        assert_eq!(outcomes[0], ItemOutcome::Stored);
        assert_eq!(
            outcomes[1],
            ItemOutcome::Rejected("HTTP 400: mapper_parsing_exception: failed to parse field [n] of type [long] (caused by illegal_argument_exception: For input string: \"abc\")".into())
        );
        assert!(
            matches!(&outcomes[2], ItemOutcome::Retry(r) if r.contains("es_rejected_execution_exception"))
        );
        assert_eq!(outcomes[3], ItemOutcome::Stored);
        assert!(matches!(&outcomes[4], ItemOutcome::Retry(_)));
        // No errors: every item stored, whatever `filter_path` left of the items.
        assert_eq!(
            read_answer(br#"{"errors":false}"#, 3).unwrap(),
            vec![ItemOutcome::Stored; 3]
        );
        assert_eq!(
            read_answer(br#"{"errors":true,"items":[]}"#, 2),
            Err(AnswerError::Count { got: 0, sent: 2 })
        );
        assert!(matches!(
            read_answer(b"", 1),
            Err(AnswerError::Unreadable(_))
        ));
    }
}
