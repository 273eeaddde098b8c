//! Events and batches: the unit of data that flows through a pipeline.
//!
//! An event is a field map plus metadata that never reaches an output by itself (which
//! component received it, when, from which peer, and the acknowledgement token that reports
//! its fate back to the source). Events travel in batches; a batch is shared between the
//! sinks of a fan-out through an `Arc`, so fan-out never deep-copies an event.

mod delivery;
mod map;
mod value;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

pub use delivery::Delivery;
pub use map::Map;
pub use value::{format_timestamp, Value};

use crate::ack::{AckStatus, AckToken};

/// An event from a JSON object, for tests; anything else is a mistake in the test.
#[cfg(test)]
pub fn test_event(json: &str) -> Event {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(map)) => Event::new(map),
        other => panic!("test event must be a JSON object: {json} ({other:?})"),
    }
}

/// Well-known field names. Parsing and enrichment normalise towards these.
pub mod fields {
    pub const MESSAGE: &str = "message";
    pub const TIMESTAMP: &str = "timestamp";
    pub const LEVEL: &str = "level";
    pub const APP: &str = "app";
    pub const INSTANCE: &str = "instance";
    pub const HOST: &str = "host";
    pub const STREAM: &str = "stream";
}

/// Metadata about where and when an event entered the router.
#[derive(Debug, Clone, Default)]
pub struct EventMeta {
    /// Id of the source component that received the event.
    pub source: Option<Arc<str>>,
    /// Receive time, nanoseconds since the Unix epoch (UTC).
    pub received_at: i64,
    /// Remote address for network sources.
    pub peer: Option<SocketAddr>,
    /// Reports the event's fate back to its source when the last copy is dropped.
    pub ack: Option<AckToken>,
}

#[derive(Debug, Clone, Default)]
pub struct Event {
    pub fields: Map,
    pub meta: EventMeta,
}

impl Event {
    pub fn new(fields: Map) -> Self {
        Self {
            fields,
            meta: EventMeta::default(),
        }
    }

    /// An event whose only field is `message`, holding `line` without a copy.
    pub fn from_message(line: Bytes) -> Self {
        let mut fields = Map::with_capacity(1);
        fields.push_unchecked(fields::MESSAGE.into(), Value::Bytes(line));
        Self::new(fields)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get_path(key)
    }

    pub fn insert(&mut self, key: &str, value: impl Into<Value>) -> Option<Value> {
        self.fields.insert(key, value.into())
    }

    pub fn message(&self) -> Option<&Value> {
        self.fields.get(fields::MESSAGE)
    }

    /// Records a delivery outcome for this event; the worst outcome over all copies wins.
    pub fn ack(&self, status: AckStatus) {
        if let Some(token) = &self.meta.ack {
            token.update_event(status);
        }
    }

    /// Approximate memory held by the event, used to bound queues by bytes.
    pub fn size_estimate(&self) -> usize {
        std::mem::size_of::<Event>() + self.fields.size_estimate()
    }
}

/// A run of events that travel together between component tasks.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub events: Vec<Event>,
}

impl Batch {
    pub fn new(events: Vec<Event>) -> Self {
        Self { events }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn size_estimate(&self) -> usize {
        self.events.iter().map(Event::size_estimate).sum()
    }

    /// Marks every event in the batch with `status`.
    pub fn ack_all(&self, status: AckStatus) {
        for event in &self.events {
            event.ack(status);
        }
    }
}

/// A batch as it travels on a channel: shared by every consumer of a fan-out.
pub type SharedBatch = Arc<Batch>;

/// Takes ownership of a shared batch, cloning only if another consumer still holds it.
pub fn into_owned(batch: SharedBatch) -> Batch {
    Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone())
}

/// Current time in nanoseconds since the Unix epoch.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
