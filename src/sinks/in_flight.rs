//! Requests in flight at once (`request.concurrency`) for the sinks that send batches as
//! requests: while up to `concurrency` requests wait for the store's answer, the next
//! request's worth is gathered, so a slow round trip no longer caps the rate at one
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

use futures_util::future::join_all;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::Semaphore;

use super::batch::{gather, Gathered};
use crate::channel::BatchReceiver;
use crate::telemetry::{self, Gauge};

/// The requests a sink has in flight, at most `concurrency`, shown as
/// `component_requests_in_flight`.
pub(crate) struct Requests {
    permits: Semaphore,
    concurrency: usize,
    gauge: Gauge,
}

impl Requests {
    pub(crate) fn new(concurrency: usize, component_id: &str) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            permits: Semaphore::new(concurrency),
            concurrency,
            gauge: in_flight_gauge(component_id),
        }
    }

    /// Sends each of `requests` once there is room, as many at once as there is room for;
    /// returns when every one has completed.
    pub(crate) async fn send_all<F: Future<Output = ()>>(&self, requests: Vec<F>) {
        join_all(requests.into_iter().map(|request| self.send(request))).await;
    }

    async fn send(&self, request: impl Future<Output = ()>) {
        // The semaphore is never closed.
        let permit = self.permits.acquire().await;
        self.show();
        request.await;
        drop(permit);
        self.show();
    }

    fn show(&self) {
        let in_flight = self.concurrency - self.permits.available_permits();
        self.gauge.set(in_flight as i64);
    }
}

fn in_flight_gauge(component_id: &str) -> Gauge {
    telemetry::gauge(
        "component_requests_in_flight",
        &[("component_id", component_id)],
    )
}

/// Up to `concurrency` futures running at once: the stores of objects (shown as
/// `component_requests_in_flight`), or the requests' worth being sent.
pub(crate) struct InFlight<F> {
    pub(crate) running: FuturesUnordered<F>,
    concurrency: usize,
    gauge: Gauge,
}

impl<F: Future<Output = ()>> InFlight<F> {
    /// `component_id` for a gauge of them.
    pub(crate) fn new(concurrency: usize, component_id: Option<&str>) -> Self {
        Self {
            running: FuturesUnordered::new(),
            concurrency: concurrency.max(1),
            gauge: component_id.map(in_flight_gauge).unwrap_or_default(),
        }
    }

    pub(crate) fn has_room(&self) -> bool {
        self.running.len() < self.concurrency
    }

    /// Starts `request` once there is room; the ones in flight go on meanwhile.
    pub(crate) async fn push(&mut self, request: F) {
        while !self.has_room() {
            self.next().await;
        }
        self.running.push(request);
        self.show();
    }

    /// Waits for one to complete (at once when none runs).
    pub(crate) async fn next(&mut self) {
        self.running.next().await;
        self.show();
    }

    /// Waits for every one to complete.
    pub(crate) async fn finish(mut self) {
        while !self.running.is_empty() {
            self.next().await;
        }
    }

    pub(crate) fn show(&self) {
        self.gauge.set(self.running.len() as i64);
    }
}

/// Gathers requests' worth from `rx` and runs `send` on each, up to `concurrency` at once
/// (`send` bounds the requests themselves with `Requests`), until the queue is closed and
/// every one has completed.
pub(crate) async fn run<F, Fut>(
    rx: &mut BatchReceiver,
    (max_events, linger, concurrency): (usize, Duration, usize),
    mut send: F,
) where
    F: FnMut(Gathered) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut in_flight = InFlight::new(concurrency, None);
    loop {
        while !in_flight.has_room() {
            in_flight.next().await;
        }
        // The requests in flight are driven while the next one is gathered; the gather
        // itself is never dropped half-way, since it may hold batches already taken.
        let gathered = {
            let next = gather(rx, max_events, linger);
            tokio::pin!(next);
            loop {
                tokio::select! {
                    gathered = &mut next => break gathered,
                    () = in_flight.next(), if !in_flight.running.is_empty() => {}
                }
            }
        };
        match gathered {
            Some(gathered) => in_flight.push(send(gathered)).await,
            None => break,
        }
    }
    in_flight.finish().await;
}
