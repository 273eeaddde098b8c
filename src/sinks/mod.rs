//! Sinks: where events leave the router.
//!
//! A sink task takes batches from its own bounded queue, writes them, and only then marks
//! the events' acknowledgement tokens. File and console sinks run on a dedicated blocking
//! thread, because their writes are blocking system calls; the encode-then-write loop per
//! batch makes one `write` per batch rather than per event. The `http` sink is a plain
//! async task.

pub mod alertmanager;
pub(crate) mod batch;
pub mod blackhole;
pub mod clickhouse;
pub mod console;
pub mod elasticsearch;
pub mod encoding;
pub mod file;
pub mod http;
pub(crate) mod in_flight;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod loki;
pub mod notify;
pub mod opentelemetry;
pub mod options;
pub mod pagerduty;
pub mod retry;
pub mod s3;
pub mod slack;
pub mod webhook;

use std::sync::Arc;

use crate::ack::AckStatus;
use crate::channel::Fanout;
use crate::delivery::retry::DeliveryError;
use crate::event::{Batch, Event, Map, Value};
use crate::telemetry::{self, Counter};

pub use encoding::Encoding;

/// Named outputs every sink offers: `ID.dead_letter` carries events the sink gave up on
/// (a fatal error, or retries exhausted), each with a `dead_letter` object saying why.
pub const SINK_OUTPUTS: &[&str] = &["dead_letter"];

/// What a sink task gets from the topology.
pub struct SinkContext {
    pub id: Arc<str>,
    pub metrics: SinkMetrics,
    /// Consumers of `ID.dead_letter` (often none).
    pub dead_letter: Fanout,
    /// Lets sinks that run on a blocking thread hand batches to async consumers.
    pub runtime: tokio::runtime::Handle,
}

impl SinkContext {
    /// Hands events the sink gave up on to `ID.dead_letter`, marking them rejected. Called
    /// from a sink's blocking thread (async sinks use [`SinkContext::reject_async`]).
    /// Without a dead-letter consumer they are counted as discarded, and still reported
    /// rejected to the source.
    pub fn reject(&self, events: Vec<Event>) {
        self.runtime.block_on(self.reject_async(events));
    }

    /// [`SinkContext::reject`] for sinks that run as async tasks.
    pub async fn reject_async(&self, events: Vec<Event>) {
        for event in &events {
            event.ack(AckStatus::Rejected);
        }
        let n = events.len() as u64;
        if self.dead_letter.is_empty() {
            self.metrics.discarded.inc(n);
            return;
        }
        let mut fanout = self.dead_letter.clone();
        if fanout.send(Batch::new(events)).await.is_err() {
            self.metrics.discarded.inc(n);
        } else {
            self.metrics.dead_lettered.inc(n);
        }
    }
}

/// The copy of `event` that goes to a dead-letter output: the original fields plus a
/// `dead_letter` object. It shares the original's acknowledgement token, so a source that
/// acknowledges waits until the dead letter itself has been delivered.
pub fn dead_letter_event(event: &Event, component_id: &str, reason: &str, code: &str) -> Event {
    let mut letter = event.clone();
    let mut info = Map::with_capacity(3);
    info.insert("reason", Value::from(reason));
    info.insert("reason_code", Value::from(code));
    info.insert("component_id", Value::from(component_id));
    letter.fields.insert("dead_letter", Value::Object(info));
    letter
}

/// The dead letters of `events`, given up on because of `error`.
pub fn dead_letters<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    component_id: &str,
    error: &DeliveryError,
) -> Vec<Event> {
    let reason = error.to_string();
    let letter = |event| dead_letter_event(event, component_id, &reason, error.code());
    events.into_iter().map(letter).collect()
}

/// Counters every sink keeps.
#[derive(Clone)]
pub struct SinkMetrics {
    pub sent_events: Counter,
    pub sent_bytes: Counter,
    pub write_errors: Counter,
    pub discarded: Counter,
    pub dead_lettered: Counter,
}

impl SinkMetrics {
    pub fn new(id: &str) -> Self {
        Self {
            sent_events: telemetry::counter("component_sent_events_total", &[("component_id", id)]),
            sent_bytes: telemetry::counter("component_sent_bytes_total", &[("component_id", id)]),
            write_errors: telemetry::counter(
                "component_errors_total",
                &[("component_id", id), ("reason", "write_failed")],
            ),
            discarded: telemetry::counter(
                "component_discarded_events_total",
                &[("component_id", id), ("reason", "write_failed")],
            ),
            dead_lettered: telemetry::counter(
                "component_dead_lettered_events_total",
                &[("component_id", id)],
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sink thread failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
}
