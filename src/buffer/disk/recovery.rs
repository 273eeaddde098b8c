//! Reading a buffer directory back after a restart (or for `check`).
//!
//! Recovery trusts nothing it reads: each segment is scanned from the acknowledged position
//! with the same scanner the reader uses, so the report says exactly what the reader will
//! deliver and skip. Damaged content is never an error here; only a directory that cannot be
//! listed is.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::RangeInclusive;
use std::path::Path;

use super::format::{parse_segment_file_name, read_ack_file, segment_path, AckFileRead, Position};
use super::report::{
    AckState, DamagedRegion, RecoveryReport, SegmentSummary, TornTail, UnreadableSegment,
};
use super::scan::{SegmentScanner, Step, TailMode};
use super::shared::SegmentMeta;
use super::DiskBufferError;

/// Whether recovery may change the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// `open`: truncate the torn tail (syncing it when `sync` is set).
    Open { sync: bool },
    /// `check`: read only.
    Check,
}

#[derive(Debug)]
pub(super) struct Recovered {
    pub(super) report: RecoveryReport,
    /// Readable segments from the start position on, with their usable lengths.
    pub(super) segments: Vec<SegmentMeta>,
    /// The highest segment id seen anywhere (file names or the ack file).
    pub(super) newest_id: Option<u64>,
    pub(super) ack_generation: u64,
    pub(super) segment_file_bytes: u64,
    pub(super) segment_files: usize,
}

pub(super) fn recover(dir: &Path, mode: Mode) -> Result<Recovered, DiskBufferError> {
    let mut ids = Vec::new();
    let mut file_sizes = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| DiskBufferError::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DiskBufferError::io("list", dir, e))?;
        let Some(id) = entry.file_name().to_str().and_then(parse_segment_file_name) else {
            continue;
        };
        ids.push(id);
        file_sizes.push(entry.metadata().map(|m| m.len()).unwrap_or(0));
    }
    ids.sort_unstable();

    let (ack, mut start, ack_generation) = match read_ack_file(dir) {
        Ok(AckFileRead::Valid {
            generation,
            position,
        }) => (AckState::Resumed(position), position, generation),
        Ok(AckFileRead::Missing) if ids.is_empty() => (AckState::Fresh, Position::default(), 0),
        Ok(AckFileRead::Missing) => (AckState::Missing, oldest(&ids), 0),
        Ok(AckFileRead::Damaged) => (AckState::Damaged, oldest(&ids), 0),
        Err(e) => (AckState::Unreadable(e.to_string()), oldest(&ids), 0),
    };
    let acked_segments: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|&id| id < start.segment)
        .collect();
    let live: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|&id| id >= start.segment)
        .collect();
    let newest_id = ids
        .last()
        .copied()
        .into_iter()
        .chain(match ack {
            AckState::Resumed(p) => Some(p.segment),
            _ => None,
        })
        .max();

    let missing_segments = gaps(start.segment, &live, matches!(ack, AckState::Resumed(_)));
    // Resuming inside a segment that is gone means starting at the next one present.
    if !live.contains(&start.segment) {
        if let Some(&next) = live.first() {
            start = Position {
                segment: next,
                offset: 0,
            };
        }
    }

    let mut report = RecoveryReport {
        ack,
        start,
        segments: Vec::new(),
        unacked_records: 0,
        unacked_bytes: 0,
        damaged: Vec::new(),
        torn_tail: None,
        missing_segments,
        unreadable_segments: Vec::new(),
        acked_segments,
    };
    let mut segments = Vec::new();
    for (i, &id) in live.iter().enumerate() {
        // Only the newest segment can end in an unfinished write: every older one was
        // complete when its writer moved on to the next.
        let tail = if i + 1 == live.len() {
            TailMode::MayBeTorn
        } else {
            TailMode::Sealed
        };
        let from = if id == start.segment { start.offset } else { 0 };
        if let Some(meta) = recover_segment(dir, id, from, tail, mode, &mut report) {
            segments.push(meta);
        }
    }
    // The start offset may point past a segment's usable end (a truncated tail).
    if let Some(first) = segments.first() {
        if first.id == report.start.segment {
            report.start.offset = report.start.offset.min(first.committed);
        }
    }
    report.unacked_bytes = segments
        .iter()
        .map(|s| {
            s.committed
                - if s.id == report.start.segment {
                    report.start.offset
                } else {
                    0
                }
        })
        .sum();
    report.unacked_records = report.segments.iter().map(|s| s.records).sum();
    Ok(Recovered {
        report,
        segments,
        newest_id,
        ack_generation,
        segment_file_bytes: file_sizes.iter().sum(),
        segment_files: ids.len(),
    })
}

fn oldest(ids: &[u64]) -> Position {
    Position {
        segment: ids.first().copied().unwrap_or(0),
        offset: 0,
    }
}

/// Ids missing between `first` and the newest live segment. When the ack file was valid,
/// `first` (the acknowledged segment) must itself be present: the buffer never deletes it.
fn gaps(first: u64, live: &[u64], expect_first: bool) -> Vec<RangeInclusive<u64>> {
    let mut out = Vec::new();
    let mut expected = if expect_first {
        Some(first)
    } else {
        live.first().copied()
    };
    for &id in live {
        if let Some(e) = expected {
            if id > e {
                out.push(e..=id - 1);
            }
        }
        expected = id.checked_add(1);
    }
    if expect_first && live.is_empty() {
        out.push(first..=first);
    }
    out
}

/// Scans one segment; returns its readable extent, or `None` if it cannot be opened.
fn recover_segment(
    dir: &Path,
    id: u64,
    from: u64,
    tail: TailMode,
    mode: Mode,
    report: &mut RecoveryReport,
) -> Option<SegmentMeta> {
    let path = segment_path(dir, id);
    let opened = File::open(&path).and_then(|f| f.metadata().map(|m| (f, m.len())));
    let (file, file_bytes) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            report.unreadable_segments.push(UnreadableSegment {
                segment: id,
                offset: 0,
                error: e.to_string(),
            });
            return None;
        }
    };
    let from = from.min(file_bytes);
    let mut scanner = SegmentScanner::new(file, from);
    let mut records = 0;
    let mut committed = file_bytes;
    loop {
        match scanner.next(file_bytes, tail) {
            Ok(Step::Record { .. }) => records += 1,
            Ok(Step::Damage { start, end }) => report.damaged.push(DamagedRegion {
                segment: id,
                start,
                end,
            }),
            Ok(Step::TornTail { start }) => {
                committed = start;
                report.torn_tail = Some(TornTail {
                    segment: id,
                    offset: start,
                    bytes: file_bytes - start,
                });
                if let Mode::Open { sync } = mode {
                    // Best effort: if the truncation fails the writer still never appends
                    // here (it starts a new segment) and the reader stops at `committed`.
                    let _ = truncate(&path, start, sync);
                }
                break;
            }
            Ok(Step::End) => break,
            Err(e) => {
                committed = scanner.position();
                report.unreadable_segments.push(UnreadableSegment {
                    segment: id,
                    offset: committed,
                    error: e.to_string(),
                });
                break;
            }
        }
    }
    report.segments.push(SegmentSummary {
        id,
        file_bytes,
        scanned_from: from,
        records,
    });
    Some(SegmentMeta { id, committed })
}

fn truncate(path: &Path, len: u64, sync: bool) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    if sync {
        file.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_name_missing_ids() {
        // (first id, live ids, ack file valid, expected gaps)
        type Case = (u64, &'static [u64], bool, Vec<RangeInclusive<u64>>);
        let table: &[Case] = &[
            (3, &[3, 4, 5], true, vec![]),
            (3, &[4, 5], true, vec![3..=3]),
            (3, &[3, 6, 7, 9], true, vec![4..=5, 8..=8]),
            (0, &[6, 7], false, vec![]),
            (3, &[], true, vec![3..=3]),
            (0, &[], false, vec![]),
        ];
        for (first, live, expect_first, expected) in table {
            assert_eq!(
                &gaps(*first, live, *expect_first),
                expected,
                "{first} {live:?}"
            );
        }
    }
}
