//! Sinks: where events leave the router.
//!
//! A sink task takes batches from its own bounded queue, writes them, and only then marks
//! the events' acknowledgement tokens. File and console sinks run on a dedicated blocking
//! thread, because their writes are blocking system calls; the encode-then-write loop per
//! batch makes one `write` per batch rather than per event.

pub mod blackhole;
pub mod console;
pub mod encoding;
pub mod file;

use std::sync::Arc;

use crate::telemetry::{self, Counter};

pub use encoding::Encoding;

/// What a sink task gets from the topology.
pub struct SinkContext {
    pub id: Arc<str>,
    pub metrics: SinkMetrics,
}

/// Counters every sink keeps.
#[derive(Clone)]
pub struct SinkMetrics {
    pub sent_events: Counter,
    pub sent_bytes: Counter,
    pub write_errors: Counter,
    pub discarded: Counter,
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
