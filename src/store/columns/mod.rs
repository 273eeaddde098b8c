//! The column engine (`store.engine = "columns"`): each partition is a directory of block
//! files, each block up to 64k events stored column by column, zstd-compressed, with the
//! events' time range and a bloom filter of their terms in its header. There is no inverted
//! index: a query skips blocks by time and by bloom filter, and reads the rest.
//!
//! Ingest is appending values to column buffers; a block is written when it is full and at
//! every commit (so an acknowledgement still means "on disk"). Small blocks that commits
//! leave under a light load are merged eight at a time ([`PartitionWriter::commit`]).
//!
//! ```text
//! <path>/20261126T060000Z/                          one partition (arrival hour), as tantivy's
//!   00000000000000000000-00000000000000065535.blk   a block: its sequence range
//! ```

mod aggregate;
mod block;
mod bloom;
mod build;
mod codec;
mod column;
mod fetch;
mod filter;
mod rows;
pub(super) mod scan;
mod terms;
mod tokens;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

pub use aggregate::{histogram_series, top_counts};
pub use block::BlockError;
use block::{BlockMeta, MAX_BLOCK_ROWS};
use build::Builder;
pub use scan::search;

use super::index::{arrival, dir_bytes, store_time, ORIGINAL_TIMESTAMP};
use crate::event::{fields, Event, Value};

/// A builder holding more than this many bytes is written out as a block even before it
/// has [`MAX_BLOCK_ROWS`] rows (large events).
const MAX_BLOCK_BYTES: usize = 32 << 20;
/// Blocks merged at once, when that many of the same size class end the partition.
const MERGE_FANOUT: usize = 8;

/// One partition's blocks (a snapshot list: merges replace entries, queries keep theirs).
#[derive(Debug)]
pub struct Partition {
    pub start_secs: i64,
    pub dir: PathBuf,
    blocks: RwLock<Vec<Arc<BlockMeta>>>,
}

/// What opening a partition found besides its blocks.
#[derive(Debug, Default)]
pub struct Opened {
    /// Blocks that failed their checks: moved aside.
    pub damaged: Vec<(PathBuf, BlockError)>,
}

impl Partition {
    /// Opens (or creates) the partition in `dir`: leftovers of an interrupted write are
    /// removed, blocks a finished merge already holds are removed, damaged blocks are moved
    /// to `damaged/` beside the store's partitions.
    pub fn open(dir: &Path, start_secs: i64) -> std::io::Result<(Partition, Opened)> {
        std::fs::create_dir_all(dir)?;
        let mut opened = Opened::default();
        let mut blocks = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if block::parse_file_name(name).is_none() {
                continue;
            }
            match block::open(&path) {
                Ok(meta) => blocks.push(meta),
                Err(error) => opened.damaged.push((path, error)),
            }
        }
        // Widest range first among equal starts, so a merge's output is kept and its inputs
        // (left by an interrupted merge) are removed.
        blocks.sort_by_key(|b| (b.first_seq, std::cmp::Reverse(b.last_seq())));
        let mut kept: Vec<Arc<BlockMeta>> = Vec::with_capacity(blocks.len());
        for meta in blocks {
            if kept.last().is_some_and(|k| meta.last_seq() <= k.last_seq()) {
                let _ = std::fs::remove_file(&meta.path);
                continue;
            }
            kept.push(Arc::new(meta));
        }
        Ok((
            Partition {
                start_secs,
                dir: dir.to_path_buf(),
                blocks: RwLock::new(kept),
            },
            opened,
        ))
    }

    /// The blocks, in sequence order.
    fn blocks(&self) -> Vec<Arc<BlockMeta>> {
        self.blocks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn num_events(&self) -> u64 {
        self.blocks().iter().map(|b| u64::from(b.rows)).sum()
    }

    pub fn time_bounds(&self) -> Option<(i64, i64)> {
        self.blocks()
            .iter()
            .map(|b| (b.min_ts, b.max_ts))
            .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)))
    }

    pub fn disk_bytes(&self) -> u64 {
        dir_bytes(&self.dir)
    }

    /// Bytes stored per section name over every block (`_ts`, `_shape`, `_shapes`,
    /// `_bloom`, then each field), largest first: where a partition's disk goes.
    pub fn section_bytes(&self) -> Vec<(String, u64)> {
        let mut sums: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
        for block in self.blocks() {
            for section in &block.sections {
                *sums.entry(section.name.clone()).or_default() += section.stored_bytes();
            }
        }
        let mut out: Vec<(String, u64)> = sums.into_iter().collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }

    fn next_seq(&self) -> u64 {
        self.blocks().last().map_or(0, |b| b.last_seq() + 1)
    }

    fn push(&self, meta: BlockMeta) {
        self.blocks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(meta));
    }
}

/// Writes one partition: events go into a block builder; full blocks and commits write it.
pub struct PartitionWriter {
    pub partition: Arc<Partition>,
    builder: Builder,
    /// A full block being compressed and written on its own thread, so that appends go on
    /// meanwhile (at most one at a time; a commit waits for it).
    writing: Option<std::thread::JoinHandle<Result<BlockMeta, BlockError>>>,
    /// A block write that failed since the last commit: its rows are gone, so the next
    /// commit must fail and its batches hear "errored", never "delivered".
    lost: Option<String>,
    /// A merge of small blocks running on its own thread.
    merging: Option<std::thread::JoinHandle<Result<(), BlockError>>>,
}

impl PartitionWriter {
    pub fn new(partition: Arc<Partition>) -> PartitionWriter {
        let builder = Builder::new(partition.next_seq());
        PartitionWriter {
            partition,
            builder,
            writing: None,
            lost: None,
            merging: None,
        }
    }

    /// Adds events (durable at the next [`commit`](Self::commit)); returns the bytes of
    /// column data they took and how many had an implausible time (filed under `fallback`,
    /// their own kept as `original_timestamp`, as the tantivy engine does).
    pub fn append(
        &mut self,
        events: &[Event],
        fallback_now: i64,
    ) -> Result<(usize, u64), BlockError> {
        let before = self.builder.bytes();
        let mut written = 0;
        let mut implausible_count = 0;
        for event in events {
            let (ts, implausible) = store_time(event, arrival(event, fallback_now));
            self.builder.begin_row(ts);
            let own = event.fields.get(fields::TIMESTAMP);
            if own.is_none() {
                self.builder.field(fields::TIMESTAMP, &Value::Timestamp(ts));
            }
            for (key, value) in event.fields.iter() {
                if implausible && key == fields::TIMESTAMP {
                    continue;
                }
                self.builder.field(key, value);
            }
            if implausible {
                implausible_count += 1;
                if let Some(original) = own {
                    self.builder.field(ORIGINAL_TIMESTAMP, original);
                }
                self.builder.field(fields::TIMESTAMP, &Value::Timestamp(ts));
            }
            self.builder.end_row();
            if self.builder.rows() >= MAX_BLOCK_ROWS || self.builder.bytes() >= MAX_BLOCK_BYTES {
                written += self.builder.bytes();
                self.flush_in_background();
            }
        }
        Ok((
            written + self.builder.bytes().saturating_sub(before),
            implausible_count,
        ))
    }

    /// Writes what was appended as a block (synced before this returns), then merges the
    /// partition's trailing small blocks when [`MERGE_FANOUT`] of one size class gathered.
    /// Fails when any block since the last commit could not be written.
    pub fn commit(&mut self) -> Result<(), BlockError> {
        self.flush_in_background();
        self.finish_writing();
        if let Some(error) = self.lost.take() {
            return Err(BlockError::Lost(error));
        }
        self.start_merge();
        Ok(())
    }

    /// Hands the builder's rows to a thread that writes them as a block.
    fn flush_in_background(&mut self) {
        if self.builder.rows() == 0 {
            return;
        }
        self.finish_writing();
        let next = self.builder.first_seq() + self.builder.rows() as u64;
        let successor = self.builder.successor(next);
        let full = std::mem::replace(&mut self.builder, successor);
        let dir = self.partition.dir.clone();
        let spawned = std::thread::Builder::new()
            .name("store-block".into())
            .spawn(move || block::write(&dir, full.finish()));
        match spawned {
            Ok(handle) => self.writing = Some(handle),
            Err(error) => self.lost = Some(format!("cannot start a block writer: {error}")),
        }
    }

    /// Waits for the block being written, and makes it visible to queries.
    fn finish_writing(&mut self) {
        let Some(handle) = self.writing.take() else {
            return;
        };
        match handle.join() {
            Ok(Ok(meta)) => self.partition.push(meta),
            Ok(Err(error)) => self.lost = Some(error.to_string()),
            Err(_) => self.lost = Some("the block writer panicked".into()),
        }
    }

    /// Starts merging the partition's last [`MERGE_FANOUT`] blocks on a thread of its own
    /// when they are of one size class (rows within a factor of 8) and fit one block; at
    /// most one merge runs at a time. Acknowledgements never wait for a merge.
    fn start_merge(&mut self) {
        if self.merging.as_ref().is_some_and(|m| !m.is_finished()) {
            return;
        }
        self.finish_merge();
        let Some(tail) = merge_candidate(&self.partition) else {
            return;
        };
        let partition = self.partition.clone();
        let spawned = std::thread::Builder::new()
            .name("store-merge".into())
            .spawn(move || merge(&partition, &tail));
        match spawned {
            Ok(handle) => self.merging = Some(handle),
            Err(error) => tracing::warn!(%error, "cannot start a store block merge"),
        }
    }

    /// Waits for the merge in progress, if any; true when it merged.
    fn finish_merge(&mut self) -> bool {
        let Some(handle) = self.merging.take() else {
            return false;
        };
        match handle.join() {
            Ok(Ok(())) => true,
            // The blocks to merge are still there, whole: only the merge is not done.
            Ok(Err(error)) => {
                tracing::warn!(partition = %self.partition.dir.display(), %error, "store block merge failed");
                false
            }
            Err(_) => {
                tracing::warn!(partition = %self.partition.dir.display(), "store block merge panicked");
                false
            }
        }
    }

    /// Commits, then merges until no merge is left (at shutdown and in tests, so the
    /// partition is left in its lasting shape).
    pub fn close(mut self) -> Result<(), BlockError> {
        self.commit()?;
        while self.finish_merge() {
            self.start_merge();
        }
        Ok(())
    }
}

/// The last [`MERGE_FANOUT`] blocks of `partition` when they should be merged.
fn merge_candidate(partition: &Partition) -> Option<Vec<Arc<BlockMeta>>> {
    let blocks = partition.blocks();
    if blocks.len() < MERGE_FANOUT {
        return None;
    }
    let tail = &blocks[blocks.len() - MERGE_FANOUT..];
    let class = |rows: u32| rows.max(1).ilog(8);
    let rows: usize = tail.iter().map(|b| b.rows as usize).sum();
    let same_class = tail.iter().all(|b| class(b.rows) == class(tail[0].rows));
    let contiguous = tail
        .windows(2)
        .all(|w| w[0].last_seq() + 1 == w[1].first_seq);
    (same_class && contiguous && rows <= MAX_BLOCK_ROWS).then(|| tail.to_vec())
}

/// Writes `tail`'s rows as one block, then puts it in their place in the list (blocks
/// written meanwhile stay after it) and removes their files.
fn merge(partition: &Partition, tail: &[Arc<BlockMeta>]) -> Result<(), BlockError> {
    let mut merged = Builder::new(tail[0].first_seq);
    for meta in tail {
        let mut rows = rows::Rows::open(meta)?;
        while let Some(row) = rows.next_row() {
            let Ok((_, ts, map)) = row else {
                return Err(BlockError::Damaged {
                    path: meta.path.clone(),
                    what: "rows",
                });
            };
            merged.begin_row(ts);
            for (key, value) in map.iter() {
                merged.field(key, value);
            }
            merged.end_row();
        }
    }
    let meta = Arc::new(block::write(&partition.dir, merged.finish())?);
    {
        let mut list = partition.blocks.write().unwrap_or_else(|e| e.into_inner());
        let Some(at) = list.iter().position(|b| Arc::ptr_eq(b, &tail[0])) else {
            // Not ours to replace any more (retention dropped the partition meanwhile).
            return Ok(());
        };
        let same = list.len() >= at + tail.len()
            && list[at..at + tail.len()]
                .iter()
                .zip(tail)
                .all(|(a, b)| Arc::ptr_eq(a, b));
        if !same {
            let _ = std::fs::remove_file(&meta.path);
            return Ok(());
        }
        list.splice(at..at + tail.len(), [meta]);
    }
    for old in tail {
        let _ = std::fs::remove_file(&old.path);
    }
    Ok(())
}

/// Whether `dir` holds a partition of this engine (block files and no tantivy index).
pub fn is_columns_partition(dir: &Path) -> bool {
    !dir.join("meta.json").exists()
        && std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.filter_map(Result::ok).any(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| block::parse_file_name(n).is_some())
            })
        })
}

#[cfg(test)]
mod tests;
