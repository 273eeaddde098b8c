//! The store sink's task: appends each batch, publishes it to the live tail, and commits in
//! groups, holding the batches until their commit returned (that is the acknowledgement).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::writer::RETENTION_CHECK_INTERVAL;
use super::{Engine, Store, StoreWriter};
use crate::ack::{AckStatus, Obligation};
use crate::channel::BatchReceiver;
use crate::event::now_nanos;
use crate::sinks::{SinkContext, SinkError};
use crate::telemetry;

/// The shortest time between two commits made because the input went idle.
const MIN_COMMIT_GAP: Duration = Duration::from_millis(20);
/// The same for the column engine, whose commit writes one block (small blocks are merged
/// eight at a time) rather than a segment to reload: a client waiting for its
/// acknowledgement waits less.
const MIN_COMMIT_GAP_COLUMNS: Duration = Duration::from_millis(2);

/// How long no batch must arrive before the input counts as idle. An empty queue alone says
/// little: a steady stream keeps it empty between batches as long as the sink keeps up, and
/// committing at every such gap made dozens of tiny segments a second (each commit writes,
/// syncs and reloads them, and merges follow), which cost the store most of its throughput.
const IDLE_GAP: Duration = Duration::from_millis(5);
const IDLE_GAP_COLUMNS: Duration = Duration::from_millis(1);

pub(super) async fn run_sink(
    store: Arc<Store>,
    mut rx: BatchReceiver,
    ctx: SinkContext,
    commit_interval: Duration,
    commit_max_events: usize,
) -> Result<(), SinkError> {
    let (idle_gap, min_commit_gap) = match store.engine() {
        Engine::Columns => (IDLE_GAP_COLUMNS, MIN_COMMIT_GAP_COLUMNS),
        Engine::Tantivy | Engine::Auto => (IDLE_GAP, MIN_COMMIT_GAP),
    };
    let writer = Arc::new(Mutex::new(store.writer()));
    let mut pending = Uncommitted::default();
    // When the pending batches must be committed: the interval after the first of them, or
    // sooner once the input went idle.
    let mut deadline = tokio::time::Instant::now();
    let mut last_commit = tokio::time::Instant::now();
    let mut pending_since = tokio::time::Instant::now();
    let mut limiter = telemetry::LogLimiter::default();
    let mut idle_retention = tokio::time::interval(RETENTION_CHECK_INTERVAL);
    loop {
        let batch = tokio::select! {
            batch = rx.recv() => batch,
            _ = idle_retention.tick() => {
                let w = writer.clone();
                tokio::task::spawn_blocking(move || {
                    let now = now_nanos().div_euclid(1_000_000_000);
                    w.lock().unwrap_or_else(|e| e.into_inner()).maintain(now);
                })
                .await?;
                continue;
            }
            _ = tokio::time::sleep_until(deadline), if !pending.batches.is_empty() => {
                commit(&writer, &mut pending, &ctx, &mut limiter).await?;
                last_commit = tokio::time::Instant::now();
                continue;
            }
        };
        let Some(batch) = batch else { break };
        if batch.is_empty() {
            batch.settle();
            continue;
        }
        // Live tail first: it never waits for the index.
        store.tail.publish(batch.shared());
        let w = writer.clone();
        let b = batch.shared().clone();
        let appended = tokio::task::spawn_blocking(move || {
            w.lock()
                .unwrap_or_else(|e| e.into_inner())
                .append(&b.events, now_nanos())
        })
        .await?;
        match appended {
            Ok(bytes) => {
                let now = tokio::time::Instant::now();
                if pending.batches.is_empty() {
                    pending_since = now;
                }
                pending.events += batch.len();
                pending.bytes += bytes;
                // The index holds the events now; until the commit only their tokens wait
                // (a second of events at full speed is tens of MiB).
                pending.batches.push(batch.into_obligation());
                // Group commit: while batches keep arriving they share one commit (up to
                // the interval or the event cap); once no batch came for IDLE_GAP, commit,
                // so a lone request is acknowledged in milliseconds rather than a whole
                // interval. A floor between commits keeps a trickle from making a segment
                // per batch.
                let interval_end = pending_since + commit_interval;
                let idle_end = (now + idle_gap).max(last_commit + min_commit_gap);
                deadline = interval_end.min(idle_end);
                if pending.events >= commit_max_events || interval_end <= now {
                    commit(&writer, &mut pending, &ctx, &mut limiter).await?;
                    last_commit = tokio::time::Instant::now();
                }
            }
            Err(error) => {
                ctx.metrics.write_errors.inc(1);
                batch.finish(AckStatus::Errored);
                if let Some(suppressed) = limiter.check() {
                    tracing::warn!(component_id = %ctx.id, %error, suppressed, "store append failed");
                }
            }
        }
    }
    commit(&writer, &mut pending, &ctx, &mut limiter).await?;
    // Everything is committed (and acknowledged); let merges in flight finish so the next
    // start opens fewer, larger segments.
    let closing = tokio::task::spawn_blocking(move || {
        let writer = std::mem::replace(
            &mut *writer.lock().unwrap_or_else(|e| e.into_inner()),
            store.writer(),
        );
        writer.close()
    })
    .await?;
    if let Err(error) = closing {
        tracing::warn!(component_id = %ctx.id, %error, "store close failed");
    }
    Ok(())
}

/// Batches appended but not yet committed: their tokens held so their acknowledgements
/// wait for the commit, stated right after it.
#[derive(Default)]
struct Uncommitted {
    batches: Vec<Obligation>,
    events: usize,
    /// Bytes of the events' stored JSON.
    bytes: usize,
}

async fn commit(
    writer: &Arc<Mutex<StoreWriter>>,
    pending: &mut Uncommitted,
    ctx: &SinkContext,
    limiter: &mut telemetry::LogLimiter,
) -> Result<(), SinkError> {
    if pending.batches.is_empty() {
        return Ok(());
    }
    let w = writer.clone();
    let result = tokio::task::spawn_blocking(move || {
        let now = now_nanos().div_euclid(1_000_000_000);
        w.lock()
            .unwrap_or_else(|e| e.into_inner())
            .commit_and_maintain(now)
    })
    .await?;
    let status = match result {
        Ok(()) => {
            ctx.metrics.sent_events.inc(pending.events as u64);
            ctx.metrics.sent_bytes.inc(pending.bytes as u64);
            AckStatus::Delivered
        }
        Err(error) => {
            // The source hears "errored" and may resend; the writer keeps the documents, so
            // the next successful commit may still make them visible (at-least-once).
            ctx.metrics.write_errors.inc(1);
            if let Some(suppressed) = limiter.check() {
                tracing::warn!(component_id = %ctx.id, %error, suppressed, "store commit failed");
            }
            AckStatus::Errored
        }
    };
    for batch in pending.batches.drain(..) {
        batch.discharge(status);
    }
    pending.events = 0;
    pending.bytes = 0;
    Ok(())
}
