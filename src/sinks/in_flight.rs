//! Requests in flight at once (`request.concurrency`): while some wait for the store, the
//! next are gathered and sent, so a round trip no longer caps the rate. Each is acknowledged
//! or dead-lettered on its own, once the store answered for its events; they may complete
//! out of order (sources acknowledge in their own order), so a store that needs order
//! (Loki's streams) sends one at a time. Memory stays bounded: a request's worth keeps its
//! room in the sink's queue (`Gathered`) until settled.

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
        let labels = [("component_id", component_id)];
        Self {
            permits: Semaphore::new(concurrency),
            concurrency,
            gauge: telemetry::gauge("component_requests_in_flight", &labels),
        }
    }

    /// Sends each of `requests` once there is room, as many at once as there is room for.
    pub(crate) async fn send_all<F: Future<Output = ()>>(&self, requests: Vec<F>) {
        join_all(requests.into_iter().map(|request| self.send(request))).await;
    }

    pub(crate) async fn send<T>(&self, request: impl Future<Output = T>) -> T {
        // The semaphore is never closed.
        let permit = self.permits.acquire().await;
        self.show();
        let answer = request.await;
        drop(permit);
        self.show();
        answer
    }

    fn show(&self) {
        let in_flight = self.concurrency - self.permits.available_permits();
        self.gauge.set(in_flight as i64);
    }
}

/// Gathers requests' worth from `rx` and runs `send` on each (which bounds its requests by
/// `Requests`), up to `concurrency` at once, until the queue is closed and all are done.
pub(crate) async fn run<F, Fut>(
    rx: &mut BatchReceiver,
    (max_events, linger, concurrency): (usize, Duration, usize),
    mut send: F,
) where
    F: FnMut(Gathered) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() >= concurrency {
            running.next().await;
        }
        // The requests in flight are driven while the next one is gathered; the gather
        // itself is never dropped half-way, since it may hold batches already taken.
        let gathered = {
            let next = gather(rx, max_events, linger);
            tokio::pin!(next);
            loop {
                tokio::select! {
                    gathered = &mut next => break gathered,
                    Some(()) = running.next(), if !running.is_empty() => {}
                }
            }
        };
        match gathered {
            Some(gathered) => running.push(send(gathered)),
            None => break,
        }
    }
    while running.next().await.is_some() {}
}
