//! The appending end of the buffer.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::format::{encode_record, record_disk_len, segment_path, MAX_RECORD_BYTES};
use super::shared::{SegmentMeta, Shared};
use super::{DiskBufferError, FsyncPolicy};

/// Appends batches of records. One writer per buffer; use it from one thread at a time.
#[derive(Debug)]
pub struct BufferWriter {
    dir: PathBuf,
    shared: Arc<Shared>,
    file: File,
    segment: u64,
    segment_len: u64,
    /// Set after a failed write or sync: the current file may hold a partial batch, and
    /// after a failed fsync the kernel may have dropped dirty pages, so nothing more is
    /// appended to it (the reader's limit, the committed length, excludes the partial part).
    needs_new_segment: bool,
    max_bytes: u64,
    max_segment_bytes: u64,
    fsync: FsyncPolicy,
    scratch: Vec<u8>,
}

impl BufferWriter {
    pub(super) fn new(
        dir: PathBuf,
        shared: Arc<Shared>,
        file: File,
        segment: u64,
        config: &super::DiskBufferConfig,
    ) -> Self {
        Self {
            dir,
            shared,
            file,
            segment,
            segment_len: 0,
            needs_new_segment: false,
            max_bytes: config.max_bytes,
            max_segment_bytes: config.max_segment_bytes,
            fsync: config.fsync,
            scratch: Vec::new(),
        }
    }

    /// Appends `records` and returns once they are written (and synced under
    /// [`FsyncPolicy::EveryBatch`]): only then may the source be acknowledged.
    ///
    /// Fails with [`DiskBufferError::Full`], writing nothing, when the batch does not fit
    /// in `max_bytes` of unacknowledged data; wait for space
    /// ([`Self::space_notify`]) and retry. A batch is all or nothing for the reader: it
    /// becomes visible only once completely written.
    pub fn append_batch(&mut self, records: &[&[u8]]) -> Result<(), DiskBufferError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut batch_bytes = 0;
        for record in records {
            if record.len() > MAX_RECORD_BYTES {
                return Err(DiskBufferError::RecordTooLarge {
                    bytes: record.len(),
                    max_bytes: MAX_RECORD_BYTES,
                });
            }
            batch_bytes += record_disk_len(record.len());
        }
        if batch_bytes > self.max_bytes {
            return Err(DiskBufferError::BatchTooLarge {
                batch_bytes,
                max_bytes: self.max_bytes,
            });
        }
        {
            // Only the reader changes the total meanwhile, and it only lowers it, so this
            // check cannot be invalidated before the batch is counted below.
            let state = self.shared.lock();
            if state.unacked_bytes + batch_bytes > self.max_bytes {
                return Err(DiskBufferError::Full {
                    batch_bytes,
                    unacked_bytes: state.unacked_bytes,
                    max_bytes: self.max_bytes,
                });
            }
        }
        if self.needs_new_segment
            || (self.segment_len > 0 && self.segment_len + batch_bytes > self.max_segment_bytes)
        {
            self.roll()?;
        }

        self.scratch.clear();
        self.scratch.reserve(batch_bytes as usize);
        for record in records {
            encode_record(record, &mut self.scratch);
        }
        if let Err(e) = self.write_scratch() {
            self.needs_new_segment = true;
            // Best effort: cut the partial batch so that a later restart finds a clean end.
            let _ = self.file.set_len(self.segment_len);
            return Err(DiskBufferError::io(
                "append to",
                &segment_path(&self.dir, self.segment),
                e,
            ));
        }
        self.segment_len += batch_bytes;
        {
            let mut state = self.shared.lock();
            if let Some(last) = state.segments.back_mut() {
                last.committed = self.segment_len;
            }
            state.unacked_bytes += batch_bytes;
            state.unacked_records += records.len() as u64;
        }
        self.shared.signal_data();
        Ok(())
    }

    fn write_scratch(&mut self) -> io::Result<()> {
        self.file.write_all(&self.scratch)?;
        if self.fsync == FsyncPolicy::EveryBatch {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Starts the next segment. The new file is listed in the shared state before anything
    /// is written to it, which is also what seals the previous one for the reader.
    fn roll(&mut self) -> Result<(), DiskBufferError> {
        let next = self
            .segment
            .checked_add(1)
            .ok_or(DiskBufferError::SegmentIdsExhausted)?;
        let file = create_segment(&self.dir, next, self.fsync)?;
        self.file = file;
        self.segment = next;
        self.segment_len = 0;
        self.needs_new_segment = false;
        self.shared.lock().segments.push_back(SegmentMeta {
            id: next,
            committed: 0,
        });
        Ok(())
    }

    /// Bytes appended and not yet acknowledged by the reader (what `max_bytes` bounds).
    pub fn unacked_bytes(&self) -> u64 {
        self.shared.lock().unacked_bytes
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// A gauge probe of [`Self::unacked_bytes`] that outlives this writer's borrow; `None`
    /// once the buffer is closed.
    pub fn usage_probe(&self) -> crate::telemetry::GaugeProbe {
        let shared = Arc::downgrade(&self.shared);
        Box::new(move || Some(shared.upgrade()?.lock().unacked_bytes))
    }

    /// Notified after each append: await it in the reading task when `read_batch` is empty.
    pub fn data_notify(&self) -> Arc<Notify> {
        self.shared.data_notify()
    }

    /// Notified after each ack that freed space: await it after [`DiskBufferError::Full`].
    pub fn space_notify(&self) -> Arc<Notify> {
        self.shared.space_notify()
    }

    /// Blocks until a batch of `batch_bytes` would fit, the reader is gone, or `timeout`
    /// passes; returns whether it fits.
    pub fn wait_for_space(&self, batch_bytes: u64, timeout: Duration) -> bool {
        let max = self.max_bytes;
        self.shared.wait_space(timeout, |s| {
            s.reader_closed || s.unacked_bytes + batch_bytes <= max
        }) && self.shared.lock().unacked_bytes + batch_bytes <= max
    }
}

impl Drop for BufferWriter {
    /// Dropping is not a shutdown step: everything appended is already on disk. It only
    /// tells a waiting reader that no more data will come.
    fn drop(&mut self) {
        self.shared.lock().writer_closed = true;
        self.shared.signal_data();
    }
}

/// Creates segment `id`. Under `EveryBatch` the directory is synced too, since a file whose
/// directory entry is lost on power failure takes its synced data with it.
pub(super) fn create_segment(
    dir: &Path,
    id: u64,
    fsync: FsyncPolicy,
) -> Result<File, DiskBufferError> {
    let path = segment_path(dir, id);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| DiskBufferError::io("create", &path, e))?;
    if fsync == FsyncPolicy::EveryBatch {
        sync_dir(dir).map_err(|e| DiskBufferError::io("sync", dir, e))?;
    }
    Ok(file)
}

/// Opens an existing empty segment for appending (the newest segment left empty by a
/// previous run is reused rather than leaving one empty file per restart).
pub(super) fn reopen_empty_segment(dir: &Path, id: u64) -> Result<File, DiskBufferError> {
    let path = segment_path(dir, id);
    OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|e| DiskBufferError::io("open", &path, e))
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}
