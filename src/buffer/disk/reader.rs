//! The consuming end of the buffer: hands records out in order and deletes what the sink
//! acknowledged.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use super::format::{segment_path, AckFile, Position};
use super::report::DamagedRegion;
use super::scan::{SegmentScanner, Step, TailMode};
use super::shared::Shared;
use super::DiskBufferError;

/// Counters for `/metrics` and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BufferStats {
    pub unacked_records: u64,
    pub unacked_bytes: u64,
    /// Handed out by `read_batch` and not acknowledged yet.
    pub in_flight_records: u64,
    /// Damage found since open, by recovery and while reading (regions: a lower bound on
    /// records lost).
    pub damaged_records: u64,
    pub damaged_bytes: u64,
    pub segments: u64,
}

/// Reads records back in order. One reader per buffer; use it from one thread at a time.
#[derive(Debug)]
pub struct BufferReader {
    dir: PathBuf,
    shared: Arc<Shared>,
    ack_file: AckFile,
    /// The segment being read, if its file is open.
    scanner: Option<(u64, SegmentScanner)>,
    read_pos: Position,
    /// End position of each handed-out record, oldest first: acking `n` records moves the
    /// acknowledged position to the end of the `n`th.
    in_flight: VecDeque<Position>,
    /// Regions recovery already reported, keyed by (segment, start), valued by end. The
    /// reader steps over them rather than scanning them again, so that they are not counted
    /// twice, and damage that appeared since open is counted on its own even next to them.
    known_damage: BTreeMap<(u64, u64), u64>,
    damaged_records: u64,
    damaged_bytes: u64,
}

impl BufferReader {
    pub(super) fn new(
        dir: PathBuf,
        shared: Arc<Shared>,
        ack_file: AckFile,
        start: Position,
        recovered_damage: &[DamagedRegion],
    ) -> Self {
        Self {
            dir,
            shared,
            ack_file,
            scanner: None,
            read_pos: start,
            in_flight: VecDeque::new(),
            known_damage: recovered_damage
                .iter()
                .map(|d| ((d.segment, d.start), d.end))
                .collect(),
            damaged_records: recovered_damage.len() as u64,
            damaged_bytes: recovered_damage.iter().map(DamagedRegion::bytes).sum(),
        }
    }

    /// Returns up to `max_records` records not handed out yet, oldest first, without
    /// blocking (an empty Vec when there are none). Damaged records are skipped and
    /// counted in [`Self::stats`].
    pub fn read_batch(&mut self, max_records: usize) -> Result<Vec<Bytes>, DiskBufferError> {
        let mut out = Vec::with_capacity(max_records.min(1024));
        while out.len() < max_records {
            match self.read_one() {
                Ok(Some(record)) => out.push(record),
                Ok(None) => break,
                // Records already taken are in `in_flight`, so they must reach the caller;
                // the error comes back on the next call.
                Err(_) if !out.is_empty() => break,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn read_one(&mut self) -> Result<Option<Bytes>, DiskBufferError> {
        loop {
            let (limit, sealed, next) = {
                let state = self.shared.lock();
                match state.segment(self.read_pos.segment) {
                    Some((meta, sealed)) => (meta.committed, sealed, state.next_segment(meta.id)),
                    // Not readable (skipped by recovery): go to the next one, if any.
                    None => match state.next_segment(self.read_pos.segment) {
                        Some(next) => {
                            drop(state);
                            self.move_to(next);
                            continue;
                        }
                        None => return Ok(None),
                    },
                }
            };
            let segment = self.read_pos.segment;
            let skip_to = self.known_damage.remove(&(segment, self.read_pos.offset));
            let step = match self.scanner_for(segment) {
                Ok(scanner) => match skip_to {
                    Some(end) => {
                        scanner.seek(end);
                        self.read_pos.offset = end;
                        continue;
                    }
                    None => scanner.next(limit, TailMode::Sealed),
                },
                Err(e) => Err(e),
            };
            let step = match step {
                Ok(step) => step,
                Err(e) if sealed || e.kind() == io::ErrorKind::UnexpectedEof => {
                    // The file vanished or shrank under us: what it held is lost, and
                    // waiting will not bring it back.
                    self.count_damage(
                        segment,
                        self.read_pos.offset,
                        limit.max(self.read_pos.offset),
                    );
                    match next {
                        Some(next) => {
                            self.move_to(next);
                            continue;
                        }
                        None => {
                            self.read_pos.offset = limit.max(self.read_pos.offset);
                            self.scanner = None;
                            return Ok(None);
                        }
                    }
                }
                Err(e) => {
                    self.scanner = None;
                    return Err(DiskBufferError::io(
                        "read",
                        &segment_path(&self.dir, segment),
                        e,
                    ));
                }
            };
            match step {
                Step::Record { end, payload, .. } => {
                    let record = Bytes::copy_from_slice(payload);
                    self.read_pos.offset = end;
                    self.in_flight.push_back(self.read_pos);
                    return Ok(Some(record));
                }
                Step::Damage { start, end } => {
                    self.read_pos.offset = end;
                    self.count_damage(segment, start, end);
                }
                // The reader scans sealed-mode only; kept total for safety.
                Step::TornTail { start } => {
                    self.read_pos.offset = limit;
                    self.count_damage(segment, start, limit);
                }
                Step::End => match (sealed, next) {
                    (true, Some(next)) => self.move_to(next),
                    _ => return Ok(None),
                },
            }
        }
    }

    fn scanner_for(&mut self, segment: u64) -> io::Result<&mut SegmentScanner> {
        if self.scanner.as_ref().map(|(id, _)| *id) != Some(segment) {
            let file = File::open(segment_path(&self.dir, segment))?;
            self.scanner = Some((segment, SegmentScanner::new(file, self.read_pos.offset)));
        }
        match &mut self.scanner {
            Some((_, scanner)) => Ok(scanner),
            None => Err(io::Error::other("no segment open")),
        }
    }

    fn move_to(&mut self, segment: u64) {
        self.read_pos = Position { segment, offset: 0 };
        self.scanner = None;
    }

    /// Counts damage found while reading. New damage (corruption since open) can swallow a
    /// region recovery already counted, for instance when it destroys the header before
    /// it; those bytes were counted once already.
    fn count_damage(&mut self, segment: u64, start: u64, end: u64) {
        let inside: Vec<((u64, u64), u64)> = self
            .known_damage
            .range((segment, start)..(segment, end))
            .map(|(&k, &v)| (k, v))
            .collect();
        let mut known_bytes = 0;
        for ((_, known_start), known_end) in inside {
            self.known_damage.remove(&(segment, known_start));
            known_bytes += known_end.min(end) - known_start;
        }
        self.damaged_records += 1;
        self.damaged_bytes += end.saturating_sub(start).saturating_sub(known_bytes);
        let mut state = self.shared.lock();
        state.unacked_records = state.unacked_records.saturating_sub(1);
    }

    /// Acknowledges the oldest `n` handed-out records. The position is persisted (so a
    /// restart resumes after it) and segments wholly before it are deleted.
    pub fn ack(&mut self, n: usize) -> Result<(), DiskBufferError> {
        if n == 0 {
            return Ok(());
        }
        let outstanding = self.in_flight.len();
        let new_ack = match n.cmp(&outstanding) {
            std::cmp::Ordering::Greater => {
                return Err(DiskBufferError::AckBeyondRead {
                    requested: n,
                    outstanding,
                })
            }
            // Everything handed out is acknowledged: advance to the read position, which
            // also covers damage skipped after the last record.
            std::cmp::Ordering::Equal => self.read_pos,
            std::cmp::Ordering::Less => self.in_flight[n - 1],
        };
        // Persist first: if this fails nothing changed and the caller may retry.
        self.ack_file.write(new_ack).map_err(|e| {
            DiskBufferError::io("write", &self.dir.join(super::format::ACK_FILE_NAME), e)
        })?;
        self.in_flight.drain(..n);

        let doomed: Vec<u64> = {
            let mut state = self.shared.lock();
            let freed = state.bytes_between(state.ack, new_ack);
            state.unacked_bytes = state.unacked_bytes.saturating_sub(freed);
            state.unacked_records = state.unacked_records.saturating_sub(n as u64);
            state.ack = new_ack;
            let doomed = state
                .segments
                .iter()
                .map(|s| s.id)
                .take_while(|&id| id < new_ack.segment)
                .collect();
            state.segments.retain(|s| s.id >= new_ack.segment);
            doomed
        };
        self.shared.signal_space();
        for id in doomed {
            // A failure leaves an acknowledged file behind; the next open deletes it.
            let _ = std::fs::remove_file(segment_path(&self.dir, id));
        }
        Ok(())
    }

    pub fn stats(&self) -> BufferStats {
        let state = self.shared.lock();
        BufferStats {
            unacked_records: state.unacked_records,
            unacked_bytes: state.unacked_bytes,
            in_flight_records: self.in_flight.len() as u64,
            damaged_records: self.damaged_records,
            damaged_bytes: self.damaged_bytes,
            segments: state.segments.len() as u64,
        }
    }

    /// True once the writer is dropped: when `read_batch` is then empty, the buffer is
    /// drained.
    pub fn writer_closed(&self) -> bool {
        self.shared.lock().writer_closed
    }

    /// Notified after each append: await it when `read_batch` returned nothing.
    pub fn data_notify(&self) -> Arc<Notify> {
        self.shared.data_notify()
    }

    /// Notified after each ack that freed space.
    pub fn space_notify(&self) -> Arc<Notify> {
        self.shared.space_notify()
    }

    /// Blocks until records were appended beyond what was read, the writer is gone, or
    /// `timeout` passes. A `true` is a hint: `read_batch` may still return nothing if the
    /// new bytes turn out to be damaged.
    pub fn wait_for_data(&self, timeout: Duration) -> bool {
        let pos = self.read_pos;
        self.shared.wait_data(timeout, |s| {
            s.writer_closed
                || s.segments.back().is_some_and(|last| {
                    last.id > pos.segment || (last.id == pos.segment && last.committed > pos.offset)
                })
        })
    }
}

impl Drop for BufferReader {
    fn drop(&mut self) {
        self.shared.lock().reader_closed = true;
        self.shared.signal_space();
    }
}
