//! A durable FIFO queue of records on local disk, in front of a sink.
//!
//! The pipeline appends batches of encoded events through a [`BufferWriter`] (the source is
//! acknowledged once `append_batch` returns); a [`BufferReader`] on another thread reads
//! them back for the sink, and the sink's acknowledgements let the buffer delete what was
//! delivered. It survives kill -9 at any moment, detects damage, skips it, delivers the
//! rest, and never turns damaged content into an error at open: a restart after any damage
//! works without deleting anything by hand (the failure that left Vector's disk buffer
//! crash-looping, vectordotdev/vector#17644 and #18130).
//!
//! # Layout
//!
//! ```text
//! PATH/
//!   ack                                  two 32-byte slots (at 0 and 512), newest valid wins
//!   00000000000000000007.seg             fully acknowledged: deleted on ack
//!   00000000000000000008.seg  ◀─ ack     reading resumes at the acknowledged position
//!   00000000000000000009.seg  ◀─ writer  only the newest segment is ever appended to
//!
//! segment:  ┌────────┬─────────┬───────────┬───────────┬─────────────┬────────┬── ─ ─
//!           │ "SLR1" │ len u32 │ crc32 of  │ crc32 of  │ payload     │ "SLR1" │ ...
//!           │        │         │ payload   │ bytes 0-11│ (len bytes) │        │
//!           └────────┴─────────┴───────────┴───────────┴─────────────┴────────┴── ─ ─
//!            0        4         8           12          16  (all integers little-endian)
//!
//! ack slot: "SLAK" | generation u64 | segment u64 | offset u64 | crc32 of bytes 0-27
//! ```
//!
//! The header has its own checksum so that a header can be trusted before its payload is
//! read. That is what separates the two kinds of trouble recovery meets:
//!
//! - a **torn tail**: at the end of the newest segment, a valid header whose payload runs
//!   past the end of the file, fewer than 16 bytes, or zeros (the write of a batch that was
//!   never reported as written, cut by a crash). Not damage: `open` truncates it and the
//!   writer continues in a new segment, never after a torn tail.
//! - **damage**: anything else that is not a valid record. A valid header with a bad
//!   payload checksum is exactly one damaged record; bytes that are not a valid header are
//!   skipped up to the next valid header (magic, header checksum, length at most
//!   [`MAX_RECORD_BYTES`]). Each damaged region is counted and reported with its location
//!   (the CRC failures Fluent Bit met after kills, fluent/fluent-bit#2475 and #5265, are
//!   then a number in a report rather than a stuck pipeline).
//!
//! A damaged or missing ack file makes reading start at the oldest segment present:
//! redelivery rather than loss. A segment that cannot be read is skipped and reported.
//!
//! # Durability
//!
//! Under [`FsyncPolicy::EveryBatch`] a batch is `fdatasync`ed before `append_batch` returns
//! and a new segment's directory entry is synced; under [`FsyncPolicy::Never`] data survives
//! a process kill (it is in the page cache) but not a power failure. The ack file is never
//! synced: losing an ack only causes redelivery.
//!
//! # Concurrency
//!
//! Writer and reader share one small mutex-protected state (segment list with each
//! segment's committed length, acknowledged position, unacknowledged totals). The reader
//! never reads past a segment's committed length, so a batch being written is invisible to
//! it rather than looking like damage. Only one process may open a directory at a time;
//! the caller ensures this (nothing on disk could tell a live owner from a killed one).

mod format;
mod reader;
mod recovery;
mod report;
mod scan;
mod shared;
mod writer;

#[cfg(test)]
mod damage_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use format::{Position, MAX_RECORD_BYTES};
pub use reader::{BufferReader, BufferStats};
pub use report::{
    AckState, CheckReport, DamagedRegion, RecoveryReport, SegmentSummary, TornTail,
    UnreadableSegment,
};
pub use writer::BufferWriter;

use format::{segment_path, AckFile};
use recovery::Mode;
use shared::{SegmentMeta, Shared, State};

/// Default size at which the writer starts a new segment.
pub const DEFAULT_MAX_SEGMENT_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskBufferConfig {
    /// The buffer's directory, created if missing. One buffer per directory.
    pub path: PathBuf,
    /// Bound on unacknowledged bytes on disk (record headers included).
    pub max_bytes: u64,
    /// Size at which the writer starts a new segment; acknowledged space is returned to the
    /// filesystem a whole segment at a time.
    pub max_segment_bytes: u64,
    pub fsync: FsyncPolicy,
}

impl DiskBufferConfig {
    pub fn new(path: impl Into<PathBuf>, max_bytes: u64) -> Self {
        Self {
            path: path.into(),
            max_bytes,
            max_segment_bytes: DEFAULT_MAX_SEGMENT_BYTES,
            fsync: FsyncPolicy::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Sync data before `append_batch` returns: an acknowledged batch survives power loss.
    #[default]
    EveryBatch,
    /// Leave it to the OS: survives a process crash, not a power failure.
    Never,
}

#[derive(Debug, thiserror::Error)]
pub enum DiskBufferError {
    #[error("disk buffer full: {unacked_bytes} of {max_bytes} bytes unacknowledged, batch needs {batch_bytes}")]
    Full {
        batch_bytes: u64,
        unacked_bytes: u64,
        max_bytes: u64,
    },
    #[error("batch of {batch_bytes} bytes can never fit in a disk buffer of {max_bytes} bytes")]
    BatchTooLarge { batch_bytes: u64, max_bytes: u64 },
    #[error("record of {bytes} bytes exceeds the limit of {max_bytes} bytes")]
    RecordTooLarge { bytes: usize, max_bytes: usize },
    #[error("cannot acknowledge {requested} records: only {outstanding} are handed out")]
    AckBeyondRead {
        requested: usize,
        outstanding: usize,
    },
    #[error("invalid disk buffer config: {0}")]
    InvalidConfig(&'static str),
    #[error("segment ids exhausted")]
    SegmentIdsExhausted,
    #[error("cannot {op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl DiskBufferError {
    fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        DiskBufferError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Opens (or creates) the buffer at `config.path`, recovering whatever a previous run left.
///
/// Fails only on real IO failures (the directory cannot be created or listed, a new segment
/// cannot be created) or an invalid config; damaged content is skipped and described in the
/// returned [`RecoveryReport`], which the caller should log when it is not clean.
pub fn open(
    config: DiskBufferConfig,
) -> Result<(BufferWriter, BufferReader, RecoveryReport), DiskBufferError> {
    if config.max_bytes == 0 {
        return Err(DiskBufferError::InvalidConfig("max_bytes must be positive"));
    }
    if config.max_segment_bytes == 0 {
        return Err(DiskBufferError::InvalidConfig(
            "max_segment_bytes must be positive",
        ));
    }
    let dir = config.path.clone();
    std::fs::create_dir_all(&dir).map_err(|e| DiskBufferError::io("create", &dir, e))?;
    let sync = config.fsync == FsyncPolicy::EveryBatch;
    let recovered = recovery::recover(&dir, Mode::Open { sync })?;
    let mut report = recovered.report;
    for &id in &report.acked_segments {
        // Best effort: a file that cannot be deleted is outside the readable range anyway.
        let _ = std::fs::remove_file(segment_path(&dir, id));
    }

    let mut segments = recovered.segments;
    let reusable = segments.last().filter(|last| {
        Some(last.id) == recovered.newest_id
            && std::fs::metadata(segment_path(&dir, last.id)).is_ok_and(|m| m.len() == 0)
    });
    let (writer_segment, writer_file) = match reusable {
        Some(last) => (last.id, writer::reopen_empty_segment(&dir, last.id)?),
        None => {
            let id = match recovered.newest_id {
                Some(newest) => newest
                    .checked_add(1)
                    .ok_or(DiskBufferError::SegmentIdsExhausted)?,
                None => 1,
            };
            let file = writer::create_segment(&dir, id, config.fsync)?;
            segments.push(SegmentMeta { id, committed: 0 });
            (id, file)
        }
    };
    if report.ack == AckState::Fresh {
        report.start = Position {
            segment: writer_segment,
            offset: 0,
        };
    }

    let mut ack_file = AckFile::open(&dir, recovered.ack_generation)
        .map_err(|e| DiskBufferError::io("open", &dir.join(format::ACK_FILE_NAME), e))?;
    if !matches!(report.ack, AckState::Resumed(_)) {
        // Record where reading starts, so that the next restart resumes instead of
        // reporting a missing ack file again.
        ack_file
            .write(report.start)
            .map_err(|e| DiskBufferError::io("write", &dir.join(format::ACK_FILE_NAME), e))?;
    }

    let state = State {
        segments: segments.into_iter().collect(),
        ack: report.start,
        unacked_bytes: report.unacked_bytes,
        unacked_records: report.unacked_records,
        writer_closed: false,
        reader_closed: false,
    };
    let shared = Arc::new(Shared::new(state));
    let writer = BufferWriter::new(
        dir.clone(),
        Arc::clone(&shared),
        writer_file,
        writer_segment,
        &config,
    );
    let reader = BufferReader::new(dir, shared, ack_file, report.start, &report.damaged);
    Ok((writer, reader, report))
}

/// Inspects the buffer at `path` without changing anything (for `sluice buffer check`).
/// Do not run it on a buffer that is open: a batch being written would show as a torn tail.
pub fn check(path: &Path) -> Result<CheckReport, DiskBufferError> {
    let metadata = std::fs::metadata(path).map_err(|e| DiskBufferError::io("inspect", path, e))?;
    if !metadata.is_dir() {
        return Err(DiskBufferError::io(
            "inspect",
            path,
            std::io::Error::other("not a directory"),
        ));
    }
    let recovered = recovery::recover(path, Mode::Check)?;
    Ok(CheckReport {
        path: path.to_path_buf(),
        segment_file_bytes: recovered.segment_file_bytes,
        segment_files: recovered.segment_files,
        report: recovered.report,
    })
}
