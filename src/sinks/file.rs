//! The `file` sink: appends events to files whose path may be templated by fields and date.
//!
//! Each batch is encoded into one buffer per destination path and written with one `write`
//! call per path, which is what lets this sink keep up with a million events per second
//! (per-event writes are what holds some peers to tens of thousands). Events are
//! acknowledged only after their bytes were written (and fsync'd, with `fsync = true`).
//!
//! Log rotation: tools like logrotate rename or delete the file; every second (checked when
//! writing) the sink compares the path's inode with the open file's and reopens on a
//! difference. SIGUSR1 (or `POST /v1/reopen`) makes it reopen every file at the next write.

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
use crate::channel::BatchReceiver;
use crate::delivery::retry::{DeliveryError, Outcome, Retrier, RetryConfig};
use crate::event::Batch;
use crate::field_error::{at_least_one, FieldError};
use crate::template::Template;

/// How often an open file's path is checked for rotation.
const ROTATION_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Bumped on SIGUSR1 and `POST /v1/reopen`; file sinks reopen every file when they see it change.
static REOPEN_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Asks every file sink to reopen its files (called on SIGUSR1 and `POST /v1/reopen`).
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
    /// Backoff for failed writes; fatal failures and exhausted retries go to `ID.dead_letter`.
    #[serde(default)]
    pub retry: RetryConfig,
}

fn default_idle_timeout_secs() -> u64 {
    30
}

fn default_max_open_files() -> usize {
    256
}

impl FileConfig {
    /// Checks the settings and compiles the path template, which the sink keeps.
    pub fn build(self) -> Result<FileSink, FieldError> {
        if self.path.is_empty() {
            return Err(FieldError::new("path", "must not be empty"));
        }
        let template =
            Template::parse(&self.path).map_err(|e| FieldError::new("path", e.to_string()))?;
        at_least_one(&[("max_open_files", self.max_open_files as u64)])?;
        self.retry.validate()?;
        Ok(FileSink {
            config: self,
            template,
        })
    }
}

/// A built file sink: its settings and compiled path template.
#[derive(Debug, Clone)]
pub struct FileSink {
    config: FileConfig,
    template: Template,
}

impl FileSink {
    pub async fn run(self, rx: BatchReceiver, ctx: SinkContext) -> Result<(), SinkError> {
        let mut writer = FileWriter {
            config: self.config,
            template: self.template,
            files: HashMap::new(),
            pending: HashMap::default(),
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

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    events: Vec<usize>,
}

struct FileWriter {
    config: FileConfig,
    template: Template,
    files: HashMap<PathBuf, OpenFile>,
    /// Per destination, the encoded bytes of the batch being written and the indices of its
    /// events (to dead-letter exactly those if the destination fails for good). Kept between
    /// batches to reuse the buffers.
    /// Keyed by the rendered path as text, with foldhash: hashing a `Path` walks its
    /// components, which showed at 2-3 % of this sink's thread when done per event.
    pending: PendingByPath,
    generation: u64,
    path_buf: String,
}

impl FileWriter {
    fn run_blocking(&mut self, mut rx: BatchReceiver, ctx: SinkContext) -> Result<(), SinkError> {
        let mut retrier = Retrier::new(
            self.config.retry.clone(),
            Some(&ctx.id),
            ctx.metrics.write_errors.clone(),
        );
        while let Some(batch) = rx.blocking_recv() {
            // Every event's outcome is stated inside: delivered, or rejected to dead-letter.
            self.write_batch(&batch, &ctx, &mut retrier);
            batch.settle();
        }
        // Writes go straight to the kernel, so there is no user-space buffer to flush; with
        // fsync on, each batch was already synced before its acknowledgement.
        self.files.clear();
        Ok(())
    }

    fn write_batch(&mut self, batch: &Batch, ctx: &SinkContext, retrier: &mut Retrier) {
        let generation = REOPEN_GENERATION.load(Ordering::Relaxed);
        if generation != self.generation {
            self.generation = generation;
            self.files.clear();
        }
        for pending in self.pending.values_mut() {
            pending.bytes.clear();
            pending.events.clear();
        }
        if self.template.is_static() {
            // One destination, rendered and looked up once per batch.
            if let Some(first) = batch.events.first() {
                self.path_buf.clear();
                self.template.render_path(first, &mut self.path_buf);
                let pending = pending_for(&mut self.pending, &self.path_buf);
                for (index, event) in batch.events.iter().enumerate() {
                    self.config.encoding.encode(event, &mut pending.bytes);
                    pending.events.push(index);
                }
            }
        } else {
            for (index, event) in batch.events.iter().enumerate() {
                self.path_buf.clear();
                self.template.render_path(event, &mut self.path_buf);
                let pending = pending_for(&mut self.pending, &self.path_buf);
                self.config.encoding.encode(event, &mut pending.bytes);
                pending.events.push(index);
            }
        }

        let paths: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| !p.events.is_empty())
            .map(|(path, _)| path.clone())
            .collect();
        let mut rejected = Vec::new();
        for path in paths {
            let pending =
                std::mem::take(self.pending.get_mut(&path).expect("path was just listed"));
            match self.deliver(Path::new(&path), &pending.bytes, retrier) {
                Ok(()) => {
                    ctx.metrics.sent_events.inc(pending.events.len() as u64);
                    ctx.metrics.sent_bytes.inc(pending.bytes.len() as u64);
                    for &i in &pending.events {
                        batch.events[i].ack(AckStatus::Delivered);
                    }
                }
                Err(error) => {
                    tracing::error!(component_id = %ctx.id, %path, %error, events = pending.events.len(), "write failed for good; events go to dead-letter");
                    let events = pending.events.iter().map(|&i| &batch.events[i]);
                    rejected.extend(super::dead_letters(events, &ctx.id, &error));
                }
            }
            self.pending.insert(path, pending);
        }
        if !rejected.is_empty() {
            ctx.reject(rejected);
        }
        self.close_idle();
        // Drop buffers of destinations that went quiet so a burst of many paths does not
        // pin memory.
        self.pending
            .retain(|p, b| b.bytes.capacity() <= 1 << 20 && self.files.contains_key(Path::new(p)));
    }

    /// Writes `bytes` to `path`, retrying retryable failures with backoff. A retry resumes
    /// after the bytes already written, so a failure mid-write never duplicates half a line.
    fn deliver(
        &mut self,
        path: &Path,
        bytes: &[u8],
        retrier: &mut Retrier,
    ) -> Result<(), DeliveryError> {
        let mut written = 0;
        retrier.run_blocking(&path.display(), || {
            match self.write_to(path, bytes, &mut written) {
                Ok(()) => Outcome::Delivered,
                Err(error) => {
                    // Reopen on the next attempt rather than keep a broken handle.
                    self.files.remove(path);
                    Outcome::from_io(&error)
                }
            }
        })
    }

    fn write_to(&mut self, path: &Path, buf: &[u8], written: &mut usize) -> std::io::Result<()> {
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
            // Opening can block for a long time (a FIFO waits for its reader, NFS may hang):
            // the clocks start when the file is open, or the idle check would close it again
            // right after the first write.
            let opened = Instant::now();
            self.files.insert(
                path.to_path_buf(),
                OpenFile {
                    file,
                    inode: (meta.dev(), meta.ino()),
                    last_write: opened,
                    last_check: opened,
                },
            );
        }
        let open = self.files.get_mut(path).expect("file was just opened");
        while *written < buf.len() {
            match open.file.write(&buf[*written..]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => *written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.config.fsync {
            open.file.sync_data()?;
        }
        // After the write, which may itself have waited (a full pipe, a slow disk).
        open.last_write = Instant::now();
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

type PendingByPath = HashMap<String, Pending, foldhash::fast::RandomState>;

/// The buffer of destination `path`, made on first use (the key is allocated only then).
fn pending_for<'a>(pending: &'a mut PendingByPath, path: &str) -> &'a mut Pending {
    if !pending.contains_key(path) {
        pending.insert(path.to_owned(), Pending::default());
    }
    pending.get_mut(path).expect("inserted above")
}

fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)?;
        }
    }
    // Only a regular file is opened for reading too (to repair a torn tail): opening a FIFO
    // read-write would never wait for its reader, and a device has no tail to repair.
    let regular = std::fs::metadata(path).map_or(true, |m| m.is_file());
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(regular)
        .open(path)?;
    if regular {
        repair_torn_tail(&file, path)?;
    }
    Ok(file)
}

/// How far back a torn line is looked for; longer lines are left alone (and reported).
const MAX_TORN_TAIL_BYTES: u64 = 16 * 1024 * 1024;

/// Removes a partial last line left by a process killed in the middle of a `write` (Linux
/// stops copying a large write when SIGKILL arrives, so a crash can leave half a line).
/// Those events were never acknowledged and are written again whole, so the fragment is
/// only damage: without this, the next line would be glued to it.
///
/// Every line this sink writes ends in a newline, so a regular file that does not is torn.
fn repair_torn_tail(file: &File, path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let meta = file.metadata()?;
    let len = meta.len();
    if !meta.is_file() || len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1)?;
    if last[0] == b'\n' {
        return Ok(());
    }
    let window = len.min(MAX_TORN_TAIL_BYTES);
    let mut tail = vec![0u8; window as usize];
    file.read_exact_at(&mut tail, len - window)?;
    let keep = match memchr::memrchr(b'\n', &tail) {
        Some(i) => len - window + i as u64 + 1,
        None if window == len => 0,
        None => {
            tracing::warn!(path = %path.display(), "file ends in an unterminated line longer than 16 MiB; left as is");
            return Ok(());
        }
    };
    tracing::warn!(path = %path.display(), removed_bytes = len - keep, "removed a partial last line left by an interrupted write; its events are written again");
    file.set_len(keep)
}
