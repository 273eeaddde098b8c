//! The store's writer: appends into the partition of the current arrival interval, with
//! either engine, commits, and runs retention after commits and while idle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tantivy::IndexWriter;

use super::{
    columns, index, move_aside, open_column_partition, search, Engine, Partition, Store, StoreError,
};
use crate::event::Event;

/// Writes into the current partition; owned by the sink (one writer per store).
pub struct StoreWriter {
    store: Arc<Store>,
    current: Option<Current>,
    columns: Option<columns::PartitionWriter>,
    last_retention: Option<Instant>,
}

struct Current {
    partition: Arc<Partition>,
    writer: IndexWriter,
    next_seq: u64,
}

/// How often retention runs (after a commit).
pub(super) const RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(10);

impl StoreWriter {
    pub(super) fn new(store: Arc<Store>) -> StoreWriter {
        StoreWriter {
            store,
            current: None,
            columns: None,
            last_retention: None,
        }
    }
    /// Adds `events`, arriving at `now_nanos`, to the current partition (visible after the next commit); returns the
    /// bytes of JSON they are stored as.
    pub fn append(&mut self, events: &[Event], now_nanos: i64) -> Result<usize, StoreError> {
        let start = self
            .store
            .partition_start(now_nanos.div_euclid(1_000_000_000));
        if self.store.options.engine == Engine::Columns {
            return self.append_columns(events, now_nanos, start);
        }
        if self.current.as_ref().map(|c| c.partition.start_secs) != Some(start) {
            self.switch(start)?;
        }
        let Some(current) = self.current.as_mut() else {
            return Ok(0);
        };
        let mut bytes = 0;
        for event in events {
            let (doc, source_bytes, implausible) = self.store.fields.document(
                event,
                current.next_seq,
                index::arrival(event, now_nanos),
            );
            if implausible {
                self.store.implausible_times.inc(1);
            }
            bytes += source_bytes;
            current.next_seq += 1;
            current.writer.add_document(doc)?;
        }
        Ok(bytes)
    }

    fn append_columns(
        &mut self,
        events: &[Event],
        now_nanos: i64,
        start: i64,
    ) -> Result<usize, StoreError> {
        if self.columns.as_ref().map(|c| c.partition.start_secs) != Some(start) {
            if let Some(old) = self.columns.take() {
                old.close()?;
            }
            let partition = match self.store.existing_columns(start) {
                Some(p) => p,
                None => {
                    let dir = self.store.dir.join(index::partition_name(start));
                    let p = Arc::new(open_column_partition(
                        &self.store.id,
                        &self.store.dir,
                        &dir,
                        start,
                        &self.store.damaged,
                    )?);
                    self.store.add_column_partition(p.clone());
                    p
                }
            };
            self.columns = Some(columns::PartitionWriter::new(partition));
        }
        let Some(writer) = self.columns.as_mut() else {
            return Ok(0);
        };
        let (bytes, implausible) = writer.append(events, now_nanos)?;
        self.store.implausible_times.inc(implausible);
        Ok(bytes)
    }

    /// Makes everything appended so far durable and visible to queries.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        if let Some(writer) = self.columns.as_mut() {
            writer.commit()?;
            self.store.commits.inc(1);
        }
        if let Some(current) = self.current.as_mut() {
            current.writer.commit()?;
            current.partition.reader.reload()?;
            self.store.commits.inc(1);
        }
        Ok(())
    }

    /// Commits and waits for background merges, leaving the partition in its final shape
    /// (at shutdown, and in benchmarks before measuring queries).
    pub fn close(mut self) -> Result<(), StoreError> {
        if let Some(writer) = self.columns.take() {
            writer.close()?;
            self.store.commits.inc(1);
        }
        self.commit()?;
        if let Some(current) = self.current.take() {
            current.writer.wait_merging_threads()?;
            current.partition.reader.reload()?;
        }
        Ok(())
    }

    /// Commits, then runs retention if it has not run recently.
    pub(super) fn commit_and_maintain(&mut self, now_secs: i64) -> Result<(), StoreError> {
        self.commit()?;
        self.maintain(now_secs);
        Ok(())
    }

    /// Runs retention unless it ran recently (also called while idle, so old partitions go
    /// even when nothing arrives).
    pub(super) fn maintain(&mut self, now_secs: i64) {
        if self
            .last_retention
            .is_none_or(|t| t.elapsed() >= RETENTION_CHECK_INTERVAL)
        {
            self.last_retention = Some(Instant::now());
            let keep = match &self.columns {
                Some(c) => Some(c.partition.start_secs),
                None => self.current.as_ref().map(|c| c.partition.start_secs),
            };
            self.store.enforce_retention(now_secs, keep);
        }
    }

    fn switch(&mut self, start: i64) -> Result<(), StoreError> {
        if let Some(old) = self.current.take() {
            let mut writer = old.writer;
            writer.commit()?;
            old.partition.reader.reload()?;
            // Let merges in flight finish, so the old partition is left in its final shape.
            let _ = writer.wait_merging_threads();
        }
        let partition = match self.store.existing(start) {
            Some(p) => p,
            None => {
                let dir = self.store.dir.join(index::partition_name(start));
                let p = match Partition::open(&dir, start, &self.store.fields, true) {
                    Ok(p) => p,
                    Err(error) => {
                        // A damaged partition for the current interval (e.g. torn files after
                        // kill -9 before the first commit): set it aside and start afresh.
                        self.store.damaged.inc(1);
                        let aside = move_aside(&self.store.dir, &dir);
                        tracing::warn!(component_id = %self.store.id, partition = %dir.display(), moved_to = %aside.display(), %error, "damaged store partition moved aside");
                        Partition::open(&dir, start, &self.store.fields, true)?
                    }
                };
                let p = Arc::new(p);
                self.store.add_partition(p.clone());
                p
            }
        };
        let next_seq = search::max_seq(&partition).map_or(0, |s| s + 1);
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(2);
        let memory = self
            .store
            .options
            .writer_memory_bytes
            .max((threads * 16) << 20);
        let writer = partition.index.writer_with_num_threads(threads, memory)?;
        self.current = Some(Current {
            partition,
            writer,
            next_seq,
        });
        Ok(())
    }
}
