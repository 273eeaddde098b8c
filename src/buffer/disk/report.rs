//! What recovery found: returned by `open` (for the caller to log) and by `check` (for
//! `sluice buffer check PATH`).

use std::fmt;
use std::ops::RangeInclusive;
use std::path::PathBuf;

use super::format::{segment_file_name, Position};

/// Where reading resumed, and why there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckState {
    /// No ack file and no segments: a new buffer.
    Fresh,
    /// The ack file was valid: reading resumes after the persisted position.
    Resumed(Position),
    /// No ack file although segments exist: everything present is delivered again.
    Missing,
    /// Neither slot of the ack file has a valid checksum: everything present is delivered
    /// again (at-least-once: redeliver rather than lose).
    Damaged,
    /// The ack file could not be read; treated like [`AckState::Damaged`].
    Unreadable(String),
}

/// Bytes that hold no valid record; at least one record was lost there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DamagedRegion {
    pub segment: u64,
    pub start: u64,
    pub end: u64,
}

impl DamagedRegion {
    pub fn bytes(&self) -> u64 {
        self.end - self.start
    }
}

/// The unfinished last write of a crashed writer. Not damage: the batch it belonged to was
/// never reported as written. `open` truncates it; `check` only reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTail {
    pub segment: u64,
    pub offset: u64,
    pub bytes: u64,
}

/// A segment that could not be opened or read to its end; its unread part is skipped and
/// left on disk for inspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableSegment {
    pub segment: u64,
    /// Where reading stopped (0 when the file could not be opened).
    pub offset: u64,
    pub error: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSummary {
    pub id: u64,
    pub file_bytes: u64,
    /// Where scanning started in this segment (the acknowledged offset or 0).
    pub scanned_from: u64,
    /// Valid unacknowledged records found.
    pub records: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    pub ack: AckState,
    /// The first unacknowledged position: reading starts here.
    pub start: Position,
    /// Readable segments at or after the start position.
    pub segments: Vec<SegmentSummary>,
    pub unacked_records: u64,
    pub unacked_bytes: u64,
    pub damaged: Vec<DamagedRegion>,
    pub torn_tail: Option<TornTail>,
    /// Segment ids absent from the sequence between the start and the newest segment.
    pub missing_segments: Vec<RangeInclusive<u64>>,
    pub unreadable_segments: Vec<UnreadableSegment>,
    /// Segments wholly before the acknowledged position (a deletion interrupted by a
    /// crash); `open` deletes them.
    pub acked_segments: Vec<u64>,
}

impl RecoveryReport {
    /// A lower bound: one per damaged region, since a region whose headers are destroyed
    /// cannot say how many records it held.
    pub fn damaged_records(&self) -> u64 {
        self.damaged.len() as u64
    }

    pub fn damaged_bytes(&self) -> u64 {
        self.damaged.iter().map(DamagedRegion::bytes).sum()
    }

    /// True when nothing was lost or needs a human's attention (a torn tail and a fresh
    /// or valid ack file are normal after a crash).
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty()
            && self.missing_segments.is_empty()
            && self.unreadable_segments.is_empty()
            && matches!(self.ack, AckState::Fresh | AckState::Resumed(_))
    }
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.ack {
            AckState::Fresh => writeln!(f, "acknowledged position: none (new buffer)")?,
            AckState::Resumed(p) => writeln!(
                f,
                "acknowledged position: {} offset {}",
                segment_file_name(p.segment),
                p.offset
            )?,
            AckState::Missing => {
                writeln!(f, "acknowledged position: ack file missing, redelivering from the oldest segment")?
            }
            AckState::Damaged => {
                writeln!(f, "acknowledged position: ack file damaged, redelivering from the oldest segment")?
            }
            AckState::Unreadable(e) => writeln!(
                f,
                "acknowledged position: ack file unreadable ({e}), redelivering from the oldest segment"
            )?,
        }
        writeln!(
            f,
            "unacknowledged: {} records, {} bytes in {} segments",
            self.unacked_records,
            self.unacked_bytes,
            self.segments.len()
        )?;
        for s in &self.segments {
            writeln!(
                f,
                "  {}: {} bytes, {} records from offset {}",
                segment_file_name(s.id),
                s.file_bytes,
                s.records,
                s.scanned_from
            )?;
        }
        writeln!(
            f,
            "damaged: {} regions (at least {} records), {} bytes",
            self.damaged.len(),
            self.damaged_records(),
            self.damaged_bytes()
        )?;
        for d in &self.damaged {
            writeln!(
                f,
                "  {} bytes {}..{}",
                segment_file_name(d.segment),
                d.start,
                d.end
            )?;
        }
        if let Some(t) = &self.torn_tail {
            writeln!(
                f,
                "torn tail: {} at offset {} ({} bytes of an unfinished write)",
                segment_file_name(t.segment),
                t.offset,
                t.bytes
            )?;
        }
        for range in &self.missing_segments {
            writeln!(f, "missing segments: {}..={}", range.start(), range.end())?;
        }
        for u in &self.unreadable_segments {
            writeln!(
                f,
                "unreadable: {} from offset {}: {}",
                segment_file_name(u.segment),
                u.offset,
                u.error
            )?;
        }
        if !self.acked_segments.is_empty() {
            writeln!(
                f,
                "fully acknowledged segments awaiting deletion: {}",
                self.acked_segments.len()
            )?;
        }
        let status = if self.is_clean() {
            "ok"
        } else {
            "damaged: opening the buffer skips the damage and delivers the rest"
        };
        write!(f, "status: {status}")
    }
}

/// The result of [`super::check`]: a read-only look at a buffer directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub path: PathBuf,
    /// Total size of the segment files present, acknowledged or not.
    pub segment_file_bytes: u64,
    pub segment_files: usize,
    pub report: RecoveryReport,
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "disk buffer {}", self.path.display())?;
        writeln!(
            f,
            "segment files: {} ({} bytes)",
            self.segment_files, self.segment_file_bytes
        )?;
        write!(f, "{}", self.report)
    }
}
