//! Acknowledgement by ownership.
//!
//! A source that can acknowledge creates one [`AckToken`] per batch it reads and attaches a
//! clone to each event. Every copy of an event (fan-out shares batches, transforms may clone)
//! holds the token; sinks record the outcome with [`AckToken::update`]. When the last copy is
//! dropped the merged status (the most severe one seen) is sent once to the source on a
//! oneshot channel. An event dropped on purpose (filtered, sampled) counts as delivered.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::telemetry::Histogram;

/// Outcome of delivering an event, ordered by severity: merging keeps the maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum AckStatus {
    /// Written durably (or dropped on purpose by the pipeline).
    Delivered = 0,
    /// A transient failure: the source should retry or not commit.
    Errored = 1,
    /// A permanent failure: retrying will not help (sent to dead-letter where configured).
    Rejected = 2,
}

impl AckStatus {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => AckStatus::Delivered,
            1 => AckStatus::Errored,
            _ => AckStatus::Rejected,
        }
    }
}

#[derive(Debug)]
struct AckShared {
    status: AtomicU8,
    notify: Option<oneshot::Sender<AckStatus>>,
    /// When the batch was read, and where to record how long acknowledgement took.
    latency: Option<(Instant, Histogram)>,
}

impl Drop for AckShared {
    fn drop(&mut self) {
        if let Some((read_at, histogram)) = &self.latency {
            histogram.observe(read_at.elapsed());
        }
        if let Some(tx) = self.notify.take() {
            // The source may have stopped waiting (shutdown); nothing to report to then.
            let _ = tx.send(AckStatus::from_u8(self.status.load(Ordering::Acquire)));
        }
    }
}

/// A drop-based acknowledgement token shared by every copy of the events of one batch.
#[derive(Debug, Clone)]
pub struct AckToken(Arc<AckShared>);

/// The source's end: resolves with the merged status once every copy is dropped.
pub type AckReceiver = oneshot::Receiver<AckStatus>;

impl AckToken {
    pub fn new() -> (AckToken, AckReceiver) {
        let (tx, rx) = oneshot::channel();
        let shared = AckShared {
            status: AtomicU8::new(AckStatus::Delivered as u8),
            notify: Some(tx),
            latency: None,
        };
        (AckToken(Arc::new(shared)), rx)
    }

    /// A token that records, when it resolves, the time since now in `latency`.
    pub fn timed(latency: &Histogram) -> (AckToken, AckReceiver) {
        let (tx, rx) = oneshot::channel();
        let shared = AckShared {
            status: AtomicU8::new(AckStatus::Delivered as u8),
            notify: Some(tx),
            latency: Some((Instant::now(), latency.clone())),
        };
        (AckToken(Arc::new(shared)), rx)
    }

    /// Merges `status` into the token: the most severe status wins.
    pub fn update(&self, status: AckStatus) {
        self.0.status.fetch_max(status as u8, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_once_when_last_copy_drops() {
        let (token, mut rx) = AckToken::new();
        let copy = token.clone();
        drop(token);
        assert!(rx.try_recv().is_err(), "must wait for every copy");
        drop(copy);
        assert_eq!(rx.await.unwrap(), AckStatus::Delivered);
    }

    #[tokio::test]
    async fn merges_by_severity() {
        let table = [
            (vec![AckStatus::Delivered], AckStatus::Delivered),
            (
                vec![AckStatus::Errored, AckStatus::Delivered],
                AckStatus::Errored,
            ),
            (
                vec![AckStatus::Rejected, AckStatus::Errored],
                AckStatus::Rejected,
            ),
        ];
        for (updates, expected) in table {
            let (token, rx) = AckToken::new();
            for status in updates {
                token.clone().update(status);
            }
            drop(token);
            assert_eq!(rx.await.unwrap(), expected);
        }
    }
}
