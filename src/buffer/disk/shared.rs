//! State shared by the writer and the reader, and the wake-ups between them.
//!
//! The writer and the reader run on different threads. Everything either one must learn
//! from the other lives behind one mutex: which segments exist, how far each one has been
//! completely written (the reader's hard limit), the acknowledged position, and the totals
//! used for `max_bytes`. File IO never happens while the lock is held.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use super::format::Position;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SegmentMeta {
    pub(super) id: u64,
    /// Bytes completely written (and synced, per policy). Only the last segment grows; a
    /// segment followed by another one is sealed and its length final.
    pub(super) committed: u64,
}

#[derive(Debug)]
pub(super) struct State {
    /// Readable segments in id order; the writer appends to the last one.
    pub(super) segments: VecDeque<SegmentMeta>,
    pub(super) ack: Position,
    pub(super) unacked_bytes: u64,
    pub(super) unacked_records: u64,
    pub(super) writer_closed: bool,
    pub(super) reader_closed: bool,
}

impl State {
    /// Bytes on disk between two positions, counting only segments that are readable.
    /// Every byte counter is derived from positions so that skipped damage, torn tails and
    /// deleted segments can never make the counters drift.
    pub(super) fn bytes_between(&self, from: Position, to: Position) -> u64 {
        self.segments
            .iter()
            .filter(|s| s.id >= from.segment && s.id <= to.segment)
            .map(|s| {
                let start = if s.id == from.segment {
                    from.offset.min(s.committed)
                } else {
                    0
                };
                let end = if s.id == to.segment {
                    to.offset.min(s.committed)
                } else {
                    s.committed
                };
                end.saturating_sub(start)
            })
            .sum()
    }

    pub(super) fn segment(&self, id: u64) -> Option<(SegmentMeta, bool)> {
        let index = self.segments.iter().position(|s| s.id == id)?;
        let sealed = index + 1 < self.segments.len();
        Some((self.segments[index], sealed))
    }

    /// The first readable segment after `id`.
    pub(super) fn next_segment(&self, id: u64) -> Option<u64> {
        self.segments.iter().map(|s| s.id).find(|&s| s > id)
    }
}

#[derive(Debug)]
pub(super) struct Shared {
    state: Mutex<State>,
    data_ready: Condvar,
    space_freed: Condvar,
    data_notify: Arc<Notify>,
    space_notify: Arc<Notify>,
}

impl Shared {
    pub(super) fn new(state: State) -> Self {
        Self {
            state: Mutex::new(state),
            data_ready: Condvar::new(),
            space_freed: Condvar::new(),
            data_notify: Arc::new(Notify::new()),
            space_notify: Arc::new(Notify::new()),
        }
    }

    /// A panic on the other thread while holding the lock leaves state that is still
    /// consistent (every update is a few plain assignments), so poisoning is ignored rather
    /// than turned into a second panic.
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn data_notify(&self) -> Arc<Notify> {
        Arc::clone(&self.data_notify)
    }

    pub(super) fn space_notify(&self) -> Arc<Notify> {
        Arc::clone(&self.space_notify)
    }

    /// `notify_one` stores a permit when nobody waits yet, so a wake-up that races with the
    /// other side's check-then-wait is never lost.
    pub(super) fn signal_data(&self) {
        self.data_ready.notify_all();
        self.data_notify.notify_one();
    }

    pub(super) fn signal_space(&self) {
        self.space_freed.notify_all();
        self.space_notify.notify_one();
    }

    /// Blocks until `ready` holds or `timeout` passes; returns whether it holds.
    pub(super) fn wait_data(&self, timeout: Duration, ready: impl Fn(&State) -> bool) -> bool {
        let guard = self.lock();
        let (guard, _) = self
            .data_ready
            .wait_timeout_while(guard, timeout, |s| !ready(s))
            .unwrap_or_else(|e| e.into_inner());
        ready(&guard)
    }

    pub(super) fn wait_space(&self, timeout: Duration, ready: impl Fn(&State) -> bool) -> bool {
        let guard = self.lock();
        let (guard, _) = self
            .space_freed
            .wait_timeout_while(guard, timeout, |s| !ready(s))
            .unwrap_or_else(|e| e.into_inner());
        ready(&guard)
    }
}
