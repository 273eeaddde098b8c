//! Requests in flight at once (`request.concurrency`) for the sinks that gather batches
//! into requests: while up to `concurrency` requests wait for the store's answer, the next
//! request's worth is gathered, and a slow round trip no longer caps the rate at one
//! request's worth per round trip.
//!
//! Each request's worth is sent and acknowledged on its own, whatever became of the others:
//! its events are stated delivered only once the store answered for them, rejected ones go
//! to dead-letter, and a failure of one request touches no other's events. Requests may
//! complete out of order; sources acknowledge in their own order (`PendingAcks`), so that
//! is only a matter of which answer comes first. A store that needs order (Loki's
//! streams) runs with `concurrency = 1`. Memory stays bounded: a request's worth keeps its
//! room in the sink's queue (`Gathered`) until it is settled.

use std::future::Future;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::batch::{gather, Gathered};
use crate::channel::BatchReceiver;
use crate::telemetry::Gauge;

/// Gathers requests' worth from `rx` and runs `send` on each, up to `concurrency` at once,
/// until the queue is closed and every request has completed. `in_flight` shows how many
/// are waiting for an answer.
pub(crate) async fn run<F, Fut>(
    rx: &mut BatchReceiver,
    max_events: usize,
    linger: Duration,
    concurrency: usize,
    in_flight: &Gauge,
    mut send: F,
) where
    F: FnMut(Gathered) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut running = FuturesUnordered::new();
    loop {
        in_flight.set(running.len() as i64);
        if running.len() >= concurrency.max(1) {
            running.next().await;
            continue;
        }
        // The requests in flight are driven while the next one is gathered; the gather
        // itself is never dropped half-way, since it may hold batches already taken.
        let gathered = {
            let next = gather(rx, max_events, linger);
            tokio::pin!(next);
            loop {
                tokio::select! {
                    gathered = &mut next => break gathered,
                    Some(()) = running.next(), if !running.is_empty() => {
                        in_flight.set(running.len() as i64);
                    }
                }
            }
        };
        match gathered {
            Some(gathered) => running.push(send(gathered)),
            None => break,
        }
    }
    while running.next().await.is_some() {
        in_flight.set(running.len() as i64);
    }
    in_flight.set(0);
}
