//! The `file` sink: appends events to files whose path may be templated by fields and date.
//!
//! Each batch is encoded into one buffer per destination path and written with one `write`
//! call per path, which is what lets this sink keep up with a million events per second
//! (per-event writes are what holds some peers to tens of thousands). Events are
//! acknowledged only after their bytes were written (and fsync'd, with `fsync = true`).
//!
//! Log rotation: tools like logrotate rename or delete the file; every second (checked when
//! writing) the sink compares the path's inode with the open file's and reopens on a
//! difference. SIGHUP makes it reopen every file at the next write.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Encoding, SinkContext, SinkError};
use crate::ack::AckStatus;
use crate::config::FieldError;
use crate::event::Batch;
use crate::template::Template;
use crate::topology::BatchReceiver;

/// How often an open file's path is checked for rotation.
const ROTATION_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Bumped on SIGHUP; file sinks reopen every file when they see it change.
static REOPEN_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Asks every file sink to reopen its files (called by the SIGHUP handler).
pub fn request_reopen() {
    REOPEN_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// `[sinks.ID] type = "file"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Destination, e.g. `data/{{ app }}/%Y-%m-%d.log`: `{{ field }}` placeholders and
    /// strftime date tokens (from the event's timestamp, UTC).
    pub path: String,
    #[serde(default)]
    pub encoding: Encoding,
    /// fsync after each batch before acknowledging (durable, slower).
    #[serde(default)]
    pub fsync: bool,
    /// Files not written for this long are closed.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// At most this many files are kept open; the least recently written is closed first.
    #[serde(default = "default_max_open_files")]
    pub max_open_files: usize,
}

fn default_idle_timeout_secs() -> u64 {
    30
}

fn default_max_open_files() -> usize {
    256
}

impl FileConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.path.is_empty() {
            return Err(FieldError::new("path", "must not be empty"));
        }
        Template::parse(&self.path).map_err(|e| FieldError::new("path", e.to_string()))?;
        if self.max_open_files == 0 {
            return Err(FieldError::new("max_open_files", "must be at least 1"));
        }
        Ok(())
    }

    pub async fn run(self, rx: BatchReceiver, ctx: SinkContext) -> Result<(), SinkError> {
        let template = Template::parse(&self.path)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let mut writer = FileWriter {
            config: self,
            template,
            files: HashMap::new(),
            pending: HashMap::new(),
            generation: REOPEN_GENERATION.load(Ordering::Relaxed),
            path_buf: String::new(),
        };
        tokio::task::spawn_blocking(move || writer.run_blocking(rx, ctx)).await?
    }
}

struct OpenFile {
    file: File,
    inode: (u64, u64),
    last_write: Instant,
    last_check: Instant,
}

struct FileWriter {
    config: FileConfig,
    template: Template,
    files: HashMap<PathBuf, OpenFile>,
    /// Encoded bytes per destination for the batch being written; kept to reuse buffers.
    pending: HashMap<PathBuf, Vec<u8>>,
    generation: u64,
    path_buf: String,
}

impl FileWriter {
    fn run_blocking(&mut self, mut rx: BatchReceiver, ctx: SinkContext) -> Result<(), SinkError> {
        while let Some(batch) = rx.blocking_recv() {
            self.write_batch(&batch, &ctx);
        }
        // Writes go straight to the kernel, so there is no user-space buffer to flush; with
        // fsync on, each batch was already synced before its acknowledgement.
        self.files.clear();
        Ok(())
    }

    fn write_batch(&mut self, batch: &Batch, ctx: &SinkContext) {
        let generation = REOPEN_GENERATION.load(Ordering::Relaxed);
        if generation != self.generation {
            self.generation = generation;
            self.files.clear();
        }
        for buf in self.pending.values_mut() {
            buf.clear();
        }
        if self.template.is_static() {
            self.path_buf.clear();
            if let Some(first) = batch.events.first() {
                self.template.render_path(first, &mut self.path_buf);
            }
            let buf = self
                .pending
                .entry(PathBuf::from(&self.path_buf))
                .or_insert_with(|| Vec::with_capacity(256 * 1024));
            for event in &batch.events {
                self.config.encoding.encode(event, buf);
            }
        } else {
            for event in &batch.events {
                self.path_buf.clear();
                self.template.render_path(event, &mut self.path_buf);
                let buf = match self.pending.get_mut(Path::new(&self.path_buf)) {
                    Some(buf) => buf,
                    None => self
                        .pending
                        .entry(PathBuf::from(&self.path_buf))
                        .or_default(),
                };
                self.config.encoding.encode(event, buf);
            }
        }

        let mut failed = false;
        let mut written = 0usize;
        let paths: Vec<PathBuf> = self
            .pending
            .iter()
            .filter(|(_, b)| !b.is_empty())
            .map(|(p, _)| p.clone())
            .collect();
        for path in paths {
            let buf = std::mem::take(self.pending.get_mut(&path).expect("path was just listed"));
            match self.write_to(&path, &buf) {
                Ok(()) => written += buf.len(),
                Err(error) => {
                    failed = true;
                    ctx.metrics.write_errors.inc(1);
                    tracing::error!(component_id = %ctx.id, path = %path.display(), %error, "file write failed");
                    // Reopen on the next batch rather than keep a broken handle.
                    self.files.remove(&path);
                }
            }
            self.pending.insert(path, buf);
        }
        if failed {
            // Durable retries and dead-letter routing arrive with disk buffers; until then a
            // failed write is counted and reported to the source as errored.
            batch.ack_all(AckStatus::Errored);
            ctx.metrics.discarded.inc(batch.len() as u64);
        } else {
            batch.ack_all(AckStatus::Delivered);
            ctx.metrics.sent_events.inc(batch.len() as u64);
        }
        ctx.metrics.sent_bytes.inc(written as u64);
        self.close_idle();
        // Drop buffers of destinations that went quiet so a burst of many paths does not
        // pin memory.
        self.pending
            .retain(|p, b| b.capacity() <= 1 << 20 && self.files.contains_key(p));
    }

    fn write_to(&mut self, path: &Path, buf: &[u8]) -> std::io::Result<()> {
        let now = Instant::now();
        let reopen = match self.files.get_mut(path) {
            None => true,
            Some(open) if now.duration_since(open.last_check) >= ROTATION_CHECK_INTERVAL => {
                open.last_check = now;
                match std::fs::metadata(path) {
                    Ok(meta) => (meta.dev(), meta.ino()) != open.inode,
                    Err(_) => true,
                }
            }
            Some(_) => false,
        };
        if reopen {
            if self.files.len() >= self.config.max_open_files {
                self.close_least_recent();
            }
            let file = open_append(path)?;
            let meta = file.metadata()?;
            self.files.insert(
                path.to_path_buf(),
                OpenFile {
                    file,
                    inode: (meta.dev(), meta.ino()),
                    last_write: now,
                    last_check: now,
                },
            );
        }
        let open = self.files.get_mut(path).expect("file was just opened");
        open.file.write_all(buf)?;
        if self.config.fsync {
            open.file.sync_data()?;
        }
        open.last_write = now;
        Ok(())
    }

    fn close_idle(&mut self) {
        let idle = Duration::from_secs(self.config.idle_timeout_secs);
        let now = Instant::now();
        self.files
            .retain(|_, f| now.duration_since(f.last_write) < idle);
    }

    fn close_least_recent(&mut self) {
        if let Some(oldest) = self
            .files
            .iter()
            .min_by_key(|(_, f)| f.last_write)
            .map(|(p, _)| p.clone())
        {
            self.files.remove(&oldest);
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)?;
        }
    }
    OpenOptions::new().create(true).append(true).open(path)
}
