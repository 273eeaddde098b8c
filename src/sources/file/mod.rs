//! The `file` source: tails the files that `include` globs match, as Vector's `file`
//! source and Fluent Bit's `tail` input do.
//!
//! One task on a thread of its own (file reads block) runs rounds: every
//! `glob_interval_ms` the globs are evaluated again ([`discovery`]); each round reads at
//! most one chunk from every open file, oldest-found first ([`reader`]), and sends what it
//! decoded as one batch per file, so lines of one file stay in order and a busy file does
//! not starve a quiet one. Files are known by their [`fingerprint`], not their path:
//!
//! - a file renamed away (logrotate `create`) or deleted keeps being read through its open
//!   descriptor; once the globs have not found it for `rotate_wait_ms` and it is read to
//!   its end, it is closed. A new file at its path is read from its start, after the old
//!   one has been read to its end, so lines cross a rotation in order;
//! - a file shorter than what was read (`copytruncate`), or whose first bytes changed, is
//!   read again from 0;
//! - a copy of a truncated content that the globs match (logrotate's `copytruncate` copy)
//!   is read from where the original was left, before the original's new lines; a copy of
//!   a file still being read waits until the original moves on, and a new file too short
//!   for a checksum until it has kept its length for a scan (it may be a copy in progress);
//! - symlinks are followed (a file matched twice, through a link and directly, is read
//!   once).
//!
//! Acknowledgement: each batch carries a token; per file, the acknowledged prefix of
//! batches moves that file's entry in the [`checkpoints`] store, so a restart resumes after
//! the last line every sink took and re-reads at most the unacknowledged tail.

mod annotate;
mod checkpoints;
mod compressed;
mod config;
mod discovery;
mod encoding;
mod fingerprint;
mod reader;
pub(super) mod stages;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use annotate::{Annotate, FileAnnotator};
pub use config::{FileSourceConfig, ReadFrom};

use checkpoints::Checkpoints;
use discovery::Discovery;
use fingerprint::{Fingerprint, FINGERPRINT_BYTES};
use reader::{Codec, FileReader, GzipInput, Retired};

use super::{SourceContext, SourceError};
use crate::event::Value;
use crate::telemetry::LogLimiter;

/// How long an idle round waits before looking at the files again: the latency of a line
/// written to a quiet file.
const IDLE_POLL: Duration = Duration::from_millis(50);

impl FileSourceConfig {
    /// At start: creates the checkpoint directory, so an unwritable `data_dir` stops the
    /// router from starting instead of losing every checkpoint later.
    pub fn open(&self, id: &str) -> Result<(), SourceError> {
        if let Some(dir) = &self.data_dir {
            let dir = dir.join(id);
            std::fs::create_dir_all(&dir).map_err(|e| {
                SourceError::Io(std::io::Error::new(
                    e.kind(),
                    format!("cannot create data_dir {}: {e}", dir.display()),
                ))
            })?;
        }
        Ok(())
    }

    pub async fn run(self, ctx: SourceContext) -> Result<(), SourceError> {
        self.run_annotated(ctx, None).await
    }

    /// Runs the source with `annotate` adding fields to each file's events (the sources
    /// built on this one: `kubernetes_logs`).
    pub async fn run_annotated(
        self,
        ctx: SourceContext,
        annotate: Option<Arc<dyn Annotate>>,
    ) -> Result<(), SourceError> {
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || handle.block_on(Server::new(self, ctx, annotate).run()))
            .await
            .map_err(|e| SourceError::Io(std::io::Error::other(e)))?
    }
}

struct Server {
    config: FileSourceConfig,
    ctx: SourceContext,
    codec: Codec,
    discovery: Discovery,
    checkpoints: Checkpoints,
    /// Open files by the order they were found: rounds read older files first.
    readers: BTreeMap<u64, FileReader>,
    /// Device and inode of each open file → its key in `readers`.
    by_inode: HashMap<(u64, u64), u64>,
    next_seq: u64,
    retired: Retiring,
    /// New files found shorter than a fingerprint, not opened yet: their length at the
    /// last scan.
    short_files: HashMap<(u64, u64), u64>,
    /// Compressed files seen, handled or waiting for their length to hold.
    compressed: compressed::Seen,
    first_scan: bool,
    limiter: LogLimiter,
    /// Files found but not opened at the last scan: `max_open_files` were open.
    waiting_files: crate::telemetry::Gauge,
    /// Files closed while idle to let waiting ones open: their length and identity then.
    /// Opened again once they grow; bounded by the files the globs match.
    idle_closed: HashMap<(u64, u64), (u64, Fingerprint)>,
    waiting_limiter: LogLimiter,
    /// Attempts to open a file the globs found that failed (permission, a race with its
    /// deletion); each scan tries again.
    open_failed: crate::telemetry::Counter,
}

/// How long a file must have had nothing new before it is closed for one waiting on
/// `max_open_files`.
const IDLE_CLOSE: Duration = Duration::from_secs(1);

/// At most this many earlier contents are remembered in [`Retiring::read_contents`].
const READ_CONTENTS_MAX: usize = 1024;

/// Closed files and earlier contents of truncated ones.
#[derive(Default)]
struct Retiring {
    /// Those whose batches still await acknowledgement.
    list: Vec<Retired>,
    /// Where each was read up to, by identity: a copy of one found later (logrotate's
    /// `copytruncate` copy, when the globs match it) is read from there, not again from 0.
    read_contents: HashMap<Fingerprint, (u64, PathBuf)>,
}

impl Retiring {
    fn push(&mut self, retired: Retired) {
        if retired.fingerprint.is_checksum() {
            if self.read_contents.len() >= READ_CONTENTS_MAX {
                self.read_contents.clear();
            }
            self.read_contents
                .insert(retired.fingerprint, (retired.read_to, retired.path.clone()));
        }
        self.list.push(retired);
    }
}

impl Server {
    fn new(
        config: FileSourceConfig,
        ctx: SourceContext,
        annotate: Option<Arc<dyn Annotate>>,
    ) -> Self {
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let codec = Codec {
            id: ctx.id.clone(),
            framing: config.effective_framing(),
            decoding: config.decoding,
            container: config.container,
            multiline: config.multiline_rules.clone(),
            max_line_bytes: config.line_limit(),
            host: Value::from(host),
            annotate,
            encoding: config.transcode,
            invalid_encoding: crate::telemetry::counter(
                "component_errors_total",
                &[("component_id", &ctx.id), ("reason", "invalid_encoding")],
            ),
            corrupt_gzip: crate::telemetry::counter(
                "component_errors_total",
                &[("component_id", &ctx.id), ("reason", "corrupt_gzip")],
            ),
            ack_latency: crate::telemetry::histogram(
                "acknowledgement_latency_seconds",
                &[("component_id", &ctx.id)],
            ),
        };
        let waiting_files =
            crate::telemetry::gauge("file_source_waiting_files", &[("component_id", &ctx.id)]);
        let open_failed = crate::telemetry::counter(
            "component_errors_total",
            &[("component_id", &ctx.id), ("reason", "open_failed")],
        );
        Self {
            discovery: Discovery::new(&config.include, &config.exclude),
            checkpoints: Checkpoints::load(config.data_dir.as_deref(), &ctx.id),
            config,
            ctx,
            codec,
            readers: BTreeMap::new(),
            by_inode: HashMap::new(),
            next_seq: 0,
            retired: Retiring::default(),
            short_files: HashMap::new(),
            compressed: compressed::Seen::default(),
            first_scan: true,
            limiter: LogLimiter::default(),
            waiting_files,
            waiting_limiter: LogLimiter::default(),
            idle_closed: HashMap::new(),
            open_failed,
        }
    }

    async fn run(mut self) -> Result<(), SourceError> {
        let mut next_scan = Instant::now();
        while !self.ctx.shutdown.is_cancelled() {
            if Instant::now() >= next_scan {
                self.scan();
                next_scan = Instant::now() + self.config.glob_interval();
            }
            let Some(progressed) = self.round().await else {
                break; // every consumer stopped
            };
            self.settle(false).await;
            self.checkpoints.save(false, &self.ctx.id);
            if !progressed {
                let wait = IDLE_POLL.min(next_scan.saturating_duration_since(Instant::now()));
                tokio::select! {
                    _ = self.ctx.shutdown.cancelled() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
        // Nothing more is sent: the outputs close first, so that a transform holding events
        // back (`multiline`) sees its input end and sends them, or the wait below would wait
        // for it forever. Unfinished lines stay unread (and unacknowledged) for the next start.
        drop(std::mem::take(&mut self.ctx.out));
        drop(std::mem::take(&mut self.ctx.dead_letter));
        self.settle(true).await;
        self.checkpoints.save(true, &self.ctx.id);
        Ok(())
    }

    /// Reads one chunk from every file; `Some(true)` when any file had new bytes, `None`
    /// when nobody consumes the output any more.
    async fn round(&mut self) -> Option<bool> {
        let rotate_wait = self.config.rotate_wait();
        // A new file at a path whose previous file is still being read to its end waits
        // for it: lines cross a rotation in order.
        let draining: HashSet<PathBuf> = self
            .readers
            .values_mut()
            .filter_map(|r| {
                if r.at_eof {
                    r.blocks = None; // a copy read to its end no longer holds its original
                }
                match (&r.blocks, r.gone_since) {
                    (Some(original), _) => Some(original.clone()),
                    (None, Some(_)) if !r.at_eof => Some(r.path.clone()),
                    _ => None,
                }
            })
            .collect();
        let mut progressed = false;
        let keys: Vec<u64> = self.readers.keys().copied().collect();
        for seq in keys {
            if self.ctx.shutdown.is_cancelled() {
                break;
            }
            let Some(reader) = self.readers.get_mut(&seq) else {
                continue;
            };
            if reader.gone_since.is_none() && draining.contains(&reader.path) {
                continue;
            }
            if let Some(retired) = reader.check_replaced(&self.codec) {
                self.retired.push(retired);
            }
            if reader.awaiting_scan {
                continue;
            }
            // A compressed file is never written to: its end is its end.
            let closing = reader.at_eof
                && (reader.is_compressed()
                    || reader
                        .gone_since
                        .is_some_and(|t| t.elapsed() >= rotate_wait));
            let decoded = match reader.read(&self.codec, closing) {
                Ok(decoded) => decoded,
                Err(error) => {
                    if let Some(suppressed) = self.limiter.check() {
                        tracing::warn!(component_id = %self.ctx.id, path = %reader.path.display(), %error, suppressed, "cannot read file; closing it");
                    }
                    self.close(seq);
                    continue;
                }
            };
            progressed |= !reader.at_eof;
            if let Some((old, new)) = reader.upgrade_fingerprint() {
                self.checkpoints.rekey(&old, new);
            }
            let finished = closing && reader.at_eof;
            if decoded.send(&mut self.ctx).await.is_err() {
                return None;
            }
            if finished {
                if let Some(reader) = self.readers.get(&seq) {
                    tracing::info!(component_id = %self.ctx.id, path = %reader.path.display(), "file read to its end after it was rotated or deleted; closed");
                }
                self.close(seq);
            }
        }
        Some(progressed)
    }

    fn close(&mut self, seq: u64) {
        if let Some((reader, _)) = self.detach(seq) {
            self.retired.push(reader.into_retired());
        }
    }

    /// Takes an open file out of `readers` and `by_inode`; with its device and inode.
    fn detach(&mut self, seq: u64) -> Option<(FileReader, Option<(u64, u64)>)> {
        let reader = self.readers.remove(&seq)?;
        let key = reader.dev_inode();
        if let Some(key) = key {
            self.by_inode.remove(&key);
        }
        // A file replaced in place may be listed under an earlier identity too.
        self.by_inode.retain(|_, s| *s != seq);
        Some((reader, key))
    }

    /// Evaluates the globs: opens new files and marks files no longer found.
    fn scan(&mut self) {
        let id = self.ctx.id.clone();
        let mut short_files = HashMap::new();
        // Truncations first, and identities brought up to date: a copy found in this scan
        // is then known as earlier content, or as the copy of a file being read.
        for reader in self.readers.values_mut() {
            if let Some(retired) = reader.check_replaced(&self.codec) {
                self.retired.push(retired);
            }
            if let Some((old, new)) = reader.upgrade_fingerprint() {
                self.checkpoints.rekey(&old, new);
            }
        }
        let mut seen = HashSet::new();
        let mut compressed_listed = Vec::new();
        let mut waiting = 0usize;
        for path in self.discovery.scan(&id) {
            // `metadata` follows symlinks: a link is read as the file it points to.
            let Ok(meta) = std::fs::metadata(&path) else {
                continue; // gone since the glob listed it
            };
            if !meta.is_file() {
                continue;
            }
            let key = (meta.dev(), meta.ino());
            if !seen.insert(key) {
                continue; // the same file through another path
            }
            let is_compressed = compressed::is_compressed(&path);
            if is_compressed {
                compressed_listed.push(key);
            }
            if let Some(reader) = self
                .by_inode
                .get(&key)
                .and_then(|s| self.readers.get_mut(s))
            {
                reader.gone_since = None; // back (renamed back, or a rename seen late)
                continue;
            }
            if let Some((len, _)) = self.idle_closed.get(&key) {
                if meta.len() == *len {
                    continue; // closed while idle, and nothing new since
                }
                self.idle_closed.remove(&key);
            }
            if self.too_old(&meta) {
                continue;
            }
            // A file to open when `max_open_files` are open waits for a later scan, once an
            // open file is closed: the bound holds however many files the globs match.
            let full = self.readers.len() >= self.config.max_open_files;
            if is_compressed {
                let verdict = self.compressed.verdict(key, &meta, self.first_scan);
                if verdict == compressed::Verdict::Open {
                    if full {
                        waiting += 1;
                    } else {
                        self.open_compressed(path, key, &meta);
                    }
                }
                continue;
            }
            if !self.first_scan && meta.len() < FINGERPRINT_BYTES {
                // Too short for a checksum: perhaps a copy being written (logrotate's
                // `copytruncate`), which must be known by its content. Opened once it has
                // kept its length for a scan or grown long enough.
                let stable = self.short_files.get(&key) == Some(&meta.len());
                short_files.insert(key, meta.len());
                if !stable {
                    continue;
                }
            }
            if full {
                waiting += 1;
                continue;
            }
            match self.open(path) {
                Ok(Some(key)) => {
                    seen.insert(key);
                }
                Ok(None) => {}
                Err((path, error)) => {
                    self.open_failed.inc(1);
                    if let Some(suppressed) = self.limiter.check() {
                        tracing::warn!(component_id = %id, path = %path.display(), %error, suppressed, "cannot open file");
                    }
                }
            }
        }
        self.short_files = short_files;
        self.waiting_files.set(waiting as i64);
        self.idle_closed.retain(|key, _| seen.contains(key));
        if waiting > 0 {
            self.close_idle(waiting);
        }
        if waiting > 0 {
            if let Some(suppressed) = self.waiting_limiter.check() {
                tracing::warn!(component_id = %id, waiting, max_open_files = self.config.max_open_files, suppressed, "files wait for an open file to close (max_open_files)");
            }
        }
        let now = Instant::now();
        for (key, seq) in &self.by_inode {
            if !seen.contains(key) {
                if let Some(reader) = self.readers.get_mut(seq) {
                    reader.gone_since.get_or_insert(now);
                }
            }
        }
        for reader in self.readers.values_mut() {
            reader.awaiting_scan = false;
        }
        let compressed = self.compressed.end_scan(&compressed_listed);
        self.checkpoints.touch(
            self.readers
                .values()
                .map(|r| &r.fingerprint)
                .chain(self.idle_closed.values().map(|(_, f)| f))
                .chain(&compressed),
        );
        self.first_scan = false;
    }

    /// Closes up to `wanted` files idle for [`IDLE_CLOSE`] whose lines are all
    /// acknowledged, so that files waiting for `max_open_files` get their turn; the next
    /// scans open the waiting ones, and these again once they grow.
    fn close_idle(&mut self, wanted: usize) {
        let idle: Vec<u64> = self
            .readers
            .iter()
            .filter(|(_, r)| r.idle_for(IDLE_CLOSE))
            .map(|(seq, _)| *seq)
            .take(wanted)
            .collect();
        for seq in idle {
            let Some((reader, key)) = self.detach(seq) else {
                continue;
            };
            // Reopened from here: what was read (or skipped by `read_from = "end"`) is not
            // read again.
            self.checkpoints
                .set(reader.fingerprint, &reader.path, reader.pending.acked());
            if let Some(key) = key {
                self.idle_closed
                    .insert(key, (reader.read_to(), reader.fingerprint));
            }
        }
    }

    fn too_old(&self, meta: &std::fs::Metadata) -> bool {
        let Some(secs) = self.config.ignore_older_secs else {
            return false;
        };
        meta.modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age > Duration::from_secs(secs))
    }

    /// Opens a file found by the globs; its device and inode when it is read from now on.
    fn open(&mut self, path: PathBuf) -> Result<Option<(u64, u64)>, (PathBuf, std::io::Error)> {
        let opened = File::open(&path).and_then(|file| {
            let meta = file.metadata()?;
            let fingerprint = Fingerprint::of(&file)?;
            Ok((file, meta, fingerprint))
        });
        let (file, meta, fingerprint) = opened.map_err(|e| (path.clone(), e))?;
        // What was opened, which may differ from what was listed if the path was replaced.
        let key = (meta.dev(), meta.ino());
        if self.by_inode.contains_key(&key) {
            return Ok(None);
        }
        if fingerprint.is_checksum() && self.readers.values().any(|r| r.fingerprint == fingerprint)
        {
            // A copy of a file being read (logrotate's `copytruncate` between its copy and
            // its truncate): opened once the original has moved on, from where it was left.
            return Ok(None);
        }
        let len = meta.len();
        let copied = self
            .retired
            .read_contents
            .remove(&fingerprint)
            // Lines the original got after logrotate copied it were read from the original.
            .map(|(offset, original)| (offset.min(len), original));
        let copy_start = copied.as_ref().map(|(offset, _)| *offset);
        let (start, why) = match copy_start.or_else(|| self.checkpoints.offset(&fingerprint, len)) {
            Some(offset) if copied.is_some() => (offset, "copy of a file read before"),
            Some(offset) => (offset, "checkpoint"),
            None if self.first_scan && self.config.read_from == ReadFrom::End => (len, "end"),
            None => (0, "beginning"),
        };
        tracing::info!(component_id = %self.ctx.id, path = %path.display(), offset = start, from = why, "watching file");
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut reader = FileReader::new(path, file, fingerprint, start, &self.codec, None);
        // The rest of the copied content comes before what its original holds now.
        reader.blocks = copied.map(|(_, original)| original);
        self.readers.insert(seq, reader);
        self.by_inode.insert(key, seq);
        Ok(Some(key))
    }

    /// Opens a compressed file the globs found (see [`compressed`]), unless it was read
    /// before or the plain file it was made from is still being read.
    fn open_compressed(&mut self, path: PathBuf, key: (u64, u64), meta: &std::fs::Metadata) {
        let id = self.ctx.id.clone();
        let opened = File::open(&path).and_then(|file| {
            let fingerprint = compressed::fingerprint(&file)?;
            Ok((file, fingerprint))
        });
        let (file, fingerprint) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                if error.kind() != std::io::ErrorKind::NotFound {
                    self.codec.corrupt_gzip.inc(1);
                    tracing::warn!(component_id = %id, path = %path.display(), %error, "cannot read compressed file; skipped until it changes");
                    self.compressed.handled(key, meta, None);
                }
                return;
            }
        };
        let original_pending = self.readers.values().any(|r| r.fingerprint == fingerprint)
            || self
                .retired
                .list
                .iter()
                .any(|r| r.fingerprint == fingerprint);
        if original_pending {
            // Its plain original is still read, or its last lines await acknowledgement:
            // the checkpoint will say where the compressed copy starts.
            return;
        }
        if self.checkpoints.is_done(&fingerprint) {
            tracing::debug!(component_id = %id, path = %path.display(), "compressed file read before; skipped");
            self.compressed.handled(key, meta, Some(fingerprint));
            return;
        }
        let copied = self
            .retired
            .read_contents
            .remove(&fingerprint)
            .map(|(o, _)| o);
        let start = match (copied, self.checkpoints.offset(&fingerprint, u64::MAX)) {
            (Some(a), b) => a.max(b.unwrap_or(0)),
            (None, Some(b)) => b,
            (None, None) if self.first_scan && self.config.read_from == ReadFrom::End => {
                tracing::info!(component_id = %id, path = %path.display(), "compressed file present at start with read_from = \"end\"; left unread");
                self.compressed.handled(key, meta, Some(fingerprint));
                return;
            }
            (None, None) => 0,
        };
        let gzip = match GzipInput::new(&file, start) {
            Ok(gzip) => gzip,
            Err(error) => {
                tracing::warn!(component_id = %id, path = %path.display(), %error, "cannot open file");
                return;
            }
        };
        tracing::info!(component_id = %id, path = %path.display(), offset = start, "reading compressed file once");
        let seq = self.next_seq;
        self.next_seq += 1;
        let reader = FileReader::new(path, file, fingerprint, start, &self.codec, Some(gzip));
        self.readers.insert(seq, reader);
        self.by_inode.insert(key, seq);
        self.compressed.handled(key, meta, Some(fingerprint));
    }

    /// Moves each file's checkpoint over its acknowledged batches; with `wait`, waits for
    /// every batch in flight (shutdown, after the sources stopped reading).
    async fn settle(&mut self, wait: bool) {
        let id = self.ctx.id.clone();
        for reader in self.readers.values_mut() {
            let before = reader.pending.acked();
            reader.pending.settle(wait, &id).await;
            if reader.pending.acked() != before {
                self.checkpoints
                    .set(reader.fingerprint, &reader.path, reader.pending.acked());
            }
        }
        for retired in &mut self.retired.list {
            let before = retired.pending.acked();
            retired.pending.settle(wait, &id).await;
            if retired.checkpoint && retired.pending.acked() != before {
                self.checkpoints.advance(
                    retired.fingerprint,
                    &retired.path,
                    retired.pending.acked(),
                );
            }
            if retired.compressed && retired.pending.acked() >= retired.read_to {
                self.checkpoints
                    .mark_done(retired.fingerprint, &retired.path, retired.read_to);
                retired.compressed = false;
            }
        }
        self.retired.list.retain(|r| !r.pending.is_empty());
    }
}
