//! The `journald` source: the systemd journal, read through `journalctl -o json --follow`
//! (docs/journald.md).
//!
//! journalctl is the journal's stable interface: the file format changes between systemd
//! versions and reading it directly would need libsystemd. It runs as a child process,
//! killed when the source stops; its stderr is logged at a limited rate.
//!
//! Acknowledgement: every entry carries its cursor. Each batch's last cursor waits in
//! order until the batch comes back delivered; the checkpoint (`DATA_DIR/ID/cursor.json`)
//! then moves to it, and a start resumes with `--after-cursor`. A kill -9 loses nothing
//! acknowledged and reads again at most the entries in flight. When journalctl exits on
//! its own it is started again, with backoff, after the last cursor *read* (the entries in
//! flight are still in the pipeline and will be acknowledged or not as usual).

mod config;
mod entry;
mod lines;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;
use tokio::process::{Child, Command};

pub use config::JournaldConfig;
use lines::{BoundedLines, Line};

use super::checkpoint::{self, PendingAcks};
use super::{SourceContext, SourceError};
use crate::ack::AckToken;
use crate::event::{now_nanos, Batch, Event, EventMeta};
use crate::telemetry::{self, Counter, LogLimiter};

/// How often the checkpoint is rewritten while acknowledgements advance (as stdin's).
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(10);
/// The first wait before journalctl is started again after it exited; doubled per exit in
/// a row up to `MAX_BACKOFF`, reset once it has delivered entries.
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Longest stderr line kept for the log.
const MAX_STDERR_LINE_BYTES: usize = 4096;

/// The checkpoint file's content.
#[derive(Debug, Serialize, Deserialize)]
struct CursorFile {
    cursor: String,
}

/// What `open` checked and made.
pub struct OpenedJournald {
    journalctl: PathBuf,
    checkpoint: Option<PathBuf>,
}

impl JournaldConfig {
    /// Finds journalctl and creates the checkpoint directory: either failing stops the start.
    pub fn open(&self, id: &str) -> Result<OpenedJournald, SourceError> {
        let journalctl = find_program(&self.journalctl_path).ok_or_else(|| SourceError::Field {
            field: "journalctl_path",
            message: format!(
                "`{}` not found or not executable (install systemd's journalctl, or set journalctl_path)",
                self.journalctl_path.display()
            ),
        })?;
        let checkpoint = match &self.data_dir {
            Some(dir) => {
                let dir = dir.join(id);
                std::fs::create_dir_all(&dir).map_err(|e| SourceError::Field {
                    field: "data_dir",
                    message: format!("cannot create {}: {e}", dir.display()),
                })?;
                Some(dir.join("cursor.json"))
            }
            None => None,
        };
        Ok(OpenedJournald {
            journalctl,
            checkpoint,
        })
    }

    pub async fn run(self, opened: OpenedJournald, ctx: SourceContext) -> Result<(), SourceError> {
        Reader::new(self, opened, ctx).run().await
    }
}

/// `program` as given when it has a `/`, else the first executable of that name in `PATH`.
fn find_program(program: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.components().count() > 1 || program.is_absolute() {
        return executable(program).then(|| program.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

/// Counters, named once.
struct Metrics {
    received_events: Counter,
    received_bytes: Counter,
    invalid: Counter,
    oversized: Counter,
    restarts: Counter,
    ack_latency: telemetry::Histogram,
}

struct Reader {
    config: JournaldConfig,
    opened: OpenedJournald,
    ctx: SourceContext,
    metrics: Metrics,
    bad_log: LogLimiter,
    /// The cursor after the last entry read: where a restarted journalctl resumes.
    read_cursor: Option<String>,
    /// Batches in flight by sequence number, and each batch's last cursor.
    pending: PendingAcks,
    cursors: std::collections::VecDeque<(u64, String)>,
    sent: u64,
    /// The cursor acknowledged, and the one in the checkpoint file.
    acked_cursor: Option<String>,
    stored_cursor: Option<String>,
    last_store: Instant,
}

impl Reader {
    fn new(config: JournaldConfig, opened: OpenedJournald, ctx: SourceContext) -> Self {
        let id: &str = &ctx.id;
        let counter = |name, reason: Option<&str>| {
            let mut labels = vec![("component_id", id)];
            labels.extend(reason.map(|r| ("reason", r)));
            telemetry::counter(name, &labels)
        };
        let metrics = Metrics {
            received_events: counter("component_received_events_total", None),
            received_bytes: counter("component_received_bytes_total", None),
            invalid: counter("component_errors_total", Some("invalid_json")),
            oversized: counter("component_errors_total", Some("oversized")),
            restarts: counter("component_errors_total", Some("journalctl_exited")),
            ack_latency: telemetry::histogram(
                "acknowledgement_latency_seconds",
                &[("component_id", id)],
            ),
        };
        let stored = opened.checkpoint.as_deref().and_then(|p| load(p, id));
        if let Some(cursor) = &stored {
            tracing::info!(component_id = %id, %cursor, "resuming from checkpoint");
        }
        Self {
            config,
            opened,
            metrics,
            bad_log: LogLimiter::default(),
            read_cursor: stored.clone(),
            pending: PendingAcks::new(0),
            cursors: Default::default(),
            sent: 0,
            acked_cursor: stored.clone(),
            stored_cursor: stored,
            last_store: Instant::now(),
            ctx,
        }
    }

    async fn run(mut self) -> Result<(), SourceError> {
        let mut backoff = MIN_BACKOFF;
        let mut exit_log = LogLimiter::default();
        let mut started = false;
        loop {
            let (outcome, status) = match self.spawn() {
                Ok(mut child) => {
                    started = true;
                    let outcome = self.read_child(&mut child).await;
                    // Killed at shutdown, or reaped after it exited; no zombie is left.
                    let _ = child.start_kill();
                    (outcome, child.wait().await.map(|s| s.to_string()))
                }
                // The first start's failure stops the router's start; a later one (the
                // program replaced during an upgrade) is retried like an exit.
                Err(error) if started => {
                    (Outcome::Exited { read_any: false }, Ok(error.to_string()))
                }
                Err(error) => return Err(error),
            };
            match outcome {
                Outcome::Stop => break,
                Outcome::Exited { read_any } => {
                    self.metrics.restarts.inc(1);
                    if read_any {
                        backoff = MIN_BACKOFF;
                    }
                    if let Some(suppressed) = exit_log.check() {
                        tracing::warn!(component_id = %self.ctx.id, status = %status.unwrap_or_else(|e| e.to_string()), suppressed, retry_in_ms = backoff.as_millis() as u64, "journalctl exited; starting it again");
                    }
                    tokio::select! {
                        _ = self.ctx.shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        // Nothing more is sent: outputs close first so that a transform holding events
        // back sees its input end before this waits for their acknowledgement.
        drop(std::mem::take(&mut self.ctx.out));
        drop(std::mem::take(&mut self.ctx.dead_letter));
        self.settle(true).await;
        self.save(true);
        Ok(())
    }

    fn spawn(&self) -> Result<Child, SourceError> {
        let args = self.config.args(self.read_cursor.as_deref());
        let mut child = Command::new(&self.opened.journalctl)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| SourceError::Field {
                field: "journalctl_path",
                message: format!("cannot run `{}`: {e}", self.opened.journalctl.display()),
            })?;
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(log_stderr(stderr, self.ctx.id.clone()));
        }
        Ok(child)
    }

    /// Reads the child's entries until it exits or shutdown.
    async fn read_child(&mut self, child: &mut Child) -> Outcome {
        let Some(stdout) = child.stdout.take() else {
            return Outcome::Exited { read_any: false };
        };
        let mut lines = BoundedLines::new(stdout, self.config.max_entry_bytes);
        let mut read_any = false;
        loop {
            let mut events = Vec::new();
            let mut last_cursor = None;
            let received_at = now_nanos();
            while events.len() < self.config.batch_size {
                let Some(line) = lines.buffered() else { break };
                match line {
                    Line::Text(text) => {
                        self.metrics.received_bytes.inc(text.len() as u64 + 1);
                        match entry::decode(&text) {
                            Ok(entry) => {
                                if entry.cursor.is_some() {
                                    last_cursor = entry.cursor;
                                }
                                events.push(entry.fields);
                            }
                            Err(error) => {
                                self.metrics.invalid.inc(1);
                                if let Some(suppressed) = self.bad_log.check() {
                                    tracing::warn!(component_id = %self.ctx.id, %error, suppressed, "journal entry skipped");
                                }
                            }
                        }
                    }
                    Line::Oversized => {
                        self.metrics.oversized.inc(1);
                        if let Some(suppressed) = self.bad_log.check() {
                            tracing::warn!(component_id = %self.ctx.id, max_entry_bytes = self.config.max_entry_bytes, suppressed, "oversized journal entry skipped");
                        }
                    }
                }
            }
            if !events.is_empty() || last_cursor.is_some() {
                read_any = true;
                if self.send(events, last_cursor, received_at).await.is_err() {
                    return Outcome::Stop;
                }
                continue;
            }
            self.settle(false).await;
            self.save(false);
            tokio::select! {
                biased;
                _ = self.ctx.shutdown.cancelled() => return Outcome::Stop,
                filled = lines.fill() => match filled {
                    Ok(true) => {}
                    Ok(false) => return Outcome::Exited { read_any },
                    Err(error) => {
                        tracing::warn!(component_id = %self.ctx.id, %error, "reading journalctl's output failed");
                        return Outcome::Exited { read_any };
                    }
                },
                // A checkpoint write waiting for acknowledgements that arrive while the
                // journal is quiet.
                _ = tokio::time::sleep(CHECKPOINT_INTERVAL), if !self.pending.is_empty() => {}
            }
        }
    }

    /// Sends one batch with one acknowledgement token, remembering its last cursor.
    async fn send(
        &mut self,
        fields: Vec<crate::event::Map>,
        last_cursor: Option<String>,
        received_at: i64,
    ) -> Result<(), crate::channel::Closed> {
        let (token, rx) = AckToken::timed(&self.metrics.ack_latency);
        self.metrics.received_events.inc(fields.len() as u64);
        let events: Vec<Event> = fields
            .into_iter()
            .map(|fields| Event {
                fields,
                meta: EventMeta {
                    source: Some(self.ctx.id.clone()),
                    received_at,
                    peer: None,
                    ack: Some(token.clone()),
                },
            })
            .collect();
        if events.is_empty() {
            // Entries that could not be decoded: skipped, and the cursor may pass them.
            token.update(crate::ack::AckStatus::Delivered);
        }
        drop(token);
        self.sent += 1;
        if let Some(cursor) = last_cursor {
            self.read_cursor = Some(cursor.clone());
            self.cursors.push_back((self.sent, cursor));
        }
        self.pending.push(self.sent, rx);
        let result = if events.is_empty() {
            Ok(())
        } else {
            self.ctx.out.send(Batch::new(events)).await
        };
        self.settle(false).await;
        self.save(false);
        result
    }

    /// Moves the acknowledged cursor over the batches that came back delivered.
    async fn settle(&mut self, wait: bool) {
        self.pending.settle(wait, &self.ctx.id).await;
        let acked = self.pending.acked();
        while let Some((seq, _)) = self.cursors.front() {
            if *seq > acked {
                break;
            }
            self.acked_cursor = self.cursors.pop_front().map(|(_, c)| c);
        }
    }

    /// Writes the checkpoint when it moved, at most every `CHECKPOINT_INTERVAL` unless
    /// `now`.
    fn save(&mut self, now: bool) {
        let Some(path) = &self.opened.checkpoint else {
            return;
        };
        if self.acked_cursor == self.stored_cursor
            || (!now && self.last_store.elapsed() < CHECKPOINT_INTERVAL)
        {
            return;
        }
        let Some(cursor) = self.acked_cursor.clone() else {
            return;
        };
        let bytes = serde_json::to_vec(&CursorFile {
            cursor: cursor.clone(),
        })
        .unwrap_or_default();
        match checkpoint::write_atomic(path, &bytes) {
            Ok(()) => self.stored_cursor = Some(cursor),
            // The next successful write catches up; until then a crash re-reads more.
            Err(error) => {
                tracing::warn!(component_id = %self.ctx.id, %error, "checkpoint not saved")
            }
        }
        self.last_store = Instant::now();
    }
}

enum Outcome {
    /// Shutdown, or no consumer left.
    Stop,
    /// journalctl's output ended: it exited (a bad cursor, a journal it cannot read).
    Exited { read_any: bool },
}

/// The checkpoint's cursor; missing or damaged means a first start (said in the log).
fn load(path: &Path, id: &str) -> Option<String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(component_id = %id, path = %path.display(), %error, "checkpoint unreadable; starting as on a first start");
            return None;
        }
    };
    match serde_json::from_slice::<CursorFile>(&bytes) {
        Ok(file) if !file.cursor.is_empty() => Some(file.cursor),
        _ => {
            tracing::warn!(component_id = %id, path = %path.display(), "checkpoint damaged; starting as on a first start");
            None
        }
    }
}

/// Logs journalctl's complaints, at a limited rate, until its stderr closes.
async fn log_stderr(stderr: impl AsyncRead + Unpin, id: Arc<str>) {
    let mut lines = BoundedLines::new(stderr, MAX_STDERR_LINE_BYTES);
    let mut limiter = LogLimiter::default();
    loop {
        while let Some(line) = lines.buffered() {
            if let Some(suppressed) = limiter.check() {
                let text = match &line {
                    Line::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    Line::Oversized => "(a line too long to log)".to_string(),
                };
                tracing::warn!(component_id = %id, stderr = %text, suppressed, "journalctl");
            }
        }
        if !matches!(lines.fill().await, Ok(true)) {
            return;
        }
    }
}
