//! Moves events through a sink's disk buffer with two threads.
//!
//! ```text
//!  upstream ──queue──▶ writer thread ──append+fsync──▶ segments ──▶ reader thread ──queue──▶ sink
//!                      (acks the source)                            (acks the buffer when the
//!                                                                    sink acks its events)
//! ```
//!
//! The writer acknowledges events to their source as soon as they are durable on disk, so
//! the source never waits for the sink itself: a sink that is down or slow only fills its
//! own buffer. To keep fsync from capping throughput, the writer commits everything that is
//! queued when it wakes up with one append and one fsync ("group commit"): the busier the
//! pipeline, the more events share each fsync.
//!
//! The reader hands records to the sink in order, each batch with a fresh acknowledgement
//! token, and acknowledges them to the buffer in the same order once the sink reports them
//! delivered (or dead-lettered). Records handed out but not acknowledged when the process
//! dies are delivered again after restart: at-least-once, never loss.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::disk::{
    self, BufferReader, BufferWriter, DiskBufferConfig, DiskBufferError, FsyncPolicy,
};
use super::{record, BufferConfig, WhenFull};
use crate::ack::{AckReceiver, AckStatus, AckToken};
use crate::channel::{BatchReceiver, BatchSender};
use crate::event::{Batch, Delivery};
use crate::telemetry::{self, Counter, LogLimiter};

/// The most events' bytes one group commit takes from the queue.
const GROUP_COMMIT_BYTES: usize = 8 * 1024 * 1024;
/// Records the reader hands the sink per batch.
const READ_BATCH_RECORDS: usize = 1024;
/// Batches handed to the sink and not yet acknowledged, at most.
const MAX_IN_FLIGHT_BATCHES: usize = 4;
/// How long an idle reader waits for new data before checking acks and shutdown again.
const IDLE_WAIT: Duration = Duration::from_millis(50);

struct Metrics {
    written_events: Counter,
    dropped: Counter,
    damaged: Counter,
    errors: Counter,
}

/// Opens the buffer and starts its writer and reader threads.
pub(crate) fn spawn(
    id: Arc<str>,
    config: &BufferConfig,
    input: BatchReceiver,
    to_sink: BatchSender,
    shutdown: CancellationToken,
) -> Result<(JoinHandle<()>, JoinHandle<()>), DiskBufferError> {
    let mut disk_config =
        DiskBufferConfig::new(config.path.clone().unwrap_or_default(), config.disk_bytes());
    disk_config.fsync = if config.fsync.unwrap_or(true) {
        FsyncPolicy::EveryBatch
    } else {
        FsyncPolicy::Never
    };
    let (writer, reader, report) = disk::open(disk_config)?;
    let metrics = Arc::new(Metrics {
        written_events: telemetry::counter("buffer_written_events_total", &[("component_id", &id)]),
        dropped: telemetry::counter(
            "component_discarded_events_total",
            &[("component_id", &id), ("reason", "buffer_full")],
        ),
        damaged: telemetry::counter("buffer_damaged_records_total", &[("component_id", &id)]),
        errors: telemetry::counter(
            "component_errors_total",
            &[("component_id", &id), ("reason", "buffer_io")],
        ),
    });
    if report.is_clean() {
        tracing::info!(component_id = %id, unacked_records = report.unacked_records, "disk buffer opened");
    } else {
        metrics.damaged.inc(report.damaged_records());
        tracing::warn!(component_id = %id, damaged_records = report.damaged_records(), "disk buffer recovered with damage skipped:\n{report}");
    }
    let labels = [("component_id", &*id), ("buffer", "disk")];
    telemetry::register_gauge("buffer_usage_bytes", &labels, writer.usage_probe());
    let capacity = writer.max_bytes();
    let alive = writer.usage_probe();
    telemetry::register_gauge(
        "buffer_capacity_bytes",
        &labels,
        Box::new(move || alive().map(|_| capacity)),
    );
    let runtime = Handle::current();
    let writer_task = {
        let (id, metrics) = (id.clone(), metrics.clone());
        let when_full = config.when_full;
        tokio::task::spawn_blocking(move || write_loop(id, writer, input, when_full, metrics))
    };
    let reader_task = tokio::task::spawn_blocking(move || {
        read_loop(id, reader, to_sink, shutdown, runtime, metrics)
    });
    Ok((writer_task, reader_task))
}

fn write_loop(
    id: Arc<str>,
    mut writer: BufferWriter,
    mut input: BatchReceiver,
    when_full: WhenFull,
    metrics: Arc<Metrics>,
) {
    let mut encoded = Vec::with_capacity(GROUP_COMMIT_BYTES);
    let mut ranges = Vec::new();
    let mut limiter = LogLimiter::default();
    let group_limit = (writer.max_bytes() as usize / 4).clamp(64 * 1024, GROUP_COMMIT_BYTES);
    while let Some(first) = input.blocking_recv() {
        let mut group: Vec<Delivery> = vec![first];
        let mut queued = group[0].size_estimate();
        while queued < group_limit {
            match input.try_recv() {
                Some(batch) => {
                    queued += batch.size_estimate();
                    group.push(batch);
                }
                None => break,
            }
        }
        encoded.clear();
        ranges.clear();
        for event in group.iter().flat_map(|b| b.events.iter()) {
            let start = encoded.len();
            record::encode_event(event, &mut encoded);
            ranges.push(start..encoded.len());
        }
        let records: Vec<&[u8]> = ranges.iter().map(|r| &encoded[r.clone()]).collect();
        let events = records.len() as u64;
        if append(
            &id,
            &mut writer,
            &records,
            group_limit,
            when_full,
            &metrics,
            &mut limiter,
        ) {
            metrics.written_events.inc(events);
        } else {
            metrics.dropped.inc(events);
        }
        // Durable (or dropped by policy, which never holds up the source): either way the
        // sources may now acknowledge these events.
        for batch in group.drain(..) {
            batch.finish(AckStatus::Delivered);
        }
    }
    // Dropping the writer tells the reader no more data will come.
}

/// Appends `records`, waiting for space or retrying IO failures as needed. Returns false
/// when the records were dropped because the buffer was full and `when_full = drop_newest`.
fn append(
    id: &str,
    writer: &mut BufferWriter,
    records: &[&[u8]],
    chunk_bytes: usize,
    when_full: WhenFull,
    metrics: &Metrics,
    limiter: &mut LogLimiter,
) -> bool {
    let mut backoff = Duration::from_millis(10);
    let mut rest = records;
    while !rest.is_empty() {
        // Chunks keep a single append within what the buffer can ever accept.
        let mut take = 0;
        let mut bytes = 0;
        while take < rest.len() && (take == 0 || bytes + rest[take].len() <= chunk_bytes) {
            bytes += rest[take].len();
            take += 1;
        }
        match writer.append_batch(&rest[..take]) {
            Ok(()) => {
                rest = &rest[take..];
                backoff = Duration::from_millis(10);
            }
            Err(DiskBufferError::Full { .. }) => match when_full {
                WhenFull::DropNewest => return false,
                WhenFull::Block => {
                    // Backpressure: the upstream queue fills behind us while we wait.
                    writer.wait_for_space(bytes as u64 + 1024, IDLE_WAIT);
                }
            },
            Err(error) => {
                metrics.errors.inc(1);
                if let Some(suppressed) = limiter.check() {
                    tracing::error!(component_id = %id, %error, suppressed, "disk buffer append failed; retrying");
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    true
}

fn read_loop(
    id: Arc<str>,
    mut reader: BufferReader,
    to_sink: BatchSender,
    shutdown: CancellationToken,
    runtime: Handle,
    metrics: Arc<Metrics>,
) {
    let mut in_flight: VecDeque<(usize, AckReceiver)> = VecDeque::new();
    let mut limiter = LogLimiter::default();
    let mut damaged_seen = reader.stats().damaged_records;
    loop {
        settle(&id, &mut reader, &mut in_flight, false, &mut limiter);
        if shutdown.is_cancelled() {
            // Stop handing out more; what is on disk stays for the next run.
            break;
        }
        if in_flight.len() >= MAX_IN_FLIGHT_BATCHES {
            settle(&id, &mut reader, &mut in_flight, true, &mut limiter);
            continue;
        }
        // Checked before reading: if the writer was already gone and the read finds nothing,
        // nothing more can ever arrive.
        let writer_gone = reader.writer_closed();
        let records = match reader.read_batch(READ_BATCH_RECORDS) {
            Ok(records) => records,
            Err(error) => {
                metrics.errors.inc(1);
                if let Some(suppressed) = limiter.check() {
                    tracing::error!(component_id = %id, %error, suppressed, "disk buffer read failed; retrying");
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let damaged_now = reader.stats().damaged_records;
        if damaged_now > damaged_seen {
            metrics.damaged.inc(damaged_now - damaged_seen);
            tracing::warn!(component_id = %id, damaged_records = damaged_now - damaged_seen, "damaged records skipped in disk buffer");
            damaged_seen = damaged_now;
        }
        if records.is_empty() {
            if writer_gone {
                // Everything was read: finish what is in flight, then let the sink end.
                break;
            }
            reader.wait_for_data(IDLE_WAIT);
            continue;
        }
        let count = records.len();
        let (token, rx) = AckToken::new();
        let mut events = Vec::with_capacity(count);
        for bytes in &records {
            match record::decode_event_shared(bytes) {
                Ok(mut event) => {
                    event.meta.ack = Some(token.clone());
                    events.push(event);
                }
                Err(error) => {
                    // The checksum matched but the content does not decode: count it as
                    // damage and move on (it is acknowledged with the rest of the batch,
                    // even when nothing else in the batch decoded).
                    token.update(AckStatus::Rejected);
                    metrics.damaged.inc(1);
                    if let Some(suppressed) = limiter.check() {
                        tracing::warn!(component_id = %id, %error, suppressed, "undecodable record skipped");
                    }
                }
            }
        }
        drop(token);
        in_flight.push_back((count, rx));
        if runtime
            .block_on(to_sink.send(Arc::new(Batch::new(events))))
            .is_err()
        {
            tracing::error!(component_id = %id, "sink stopped; disk buffer keeps the rest");
            break;
        }
    }
    // Everything handed out gets its acknowledgement recorded before the reader goes, so a
    // clean shutdown redelivers nothing.
    settle(&id, &mut reader, &mut in_flight, true, &mut limiter);
    drop(to_sink);
}

/// Acknowledges, in order, the leading in-flight batches the sink has finished; with `wait`,
/// waits for all of them (or for the first one that failed).
fn settle(
    id: &str,
    reader: &mut BufferReader,
    in_flight: &mut VecDeque<(usize, AckReceiver)>,
    wait: bool,
    limiter: &mut LogLimiter,
) {
    let mut acked = 0;
    while let Some((count, rx)) = in_flight.front_mut() {
        let count = *count;
        let status = if wait {
            let Some((_, rx)) = in_flight.pop_front() else {
                break;
            };
            rx.blocking_recv().unwrap_or(AckStatus::Errored)
        } else {
            let status = match rx.try_recv() {
                Ok(status) => status,
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => break,
                Err(_) => AckStatus::Errored,
            };
            in_flight.pop_front();
            status
        };
        if status == AckStatus::Errored {
            // Not delivered: leave it (and everything after it) unacknowledged so the next
            // run delivers it again.
            if let Some(suppressed) = limiter.check() {
                tracing::warn!(component_id = %id, suppressed, "sink did not deliver a batch; it stays in the disk buffer");
            }
            in_flight.clear();
            break;
        }
        acked += count;
    }
    if acked > 0 {
        if let Err(error) = reader.ack(acked) {
            tracing::error!(component_id = %id, %error, "disk buffer ack failed");
        }
    }
}
