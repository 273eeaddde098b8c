//! The `stdin` source: reads the router's standard input until EOF.
//!
//! `myapp | sluice up` is the Twelve-Factor way to ship one process's stdout; when stdin
//! ends the source ends, and once every source has ended the router drains and exits.
//!
//! With `checkpoint_path`, stdin must be a regular file (`sluice up < app.log`): the source
//! then acknowledges end to end. It records, in the checkpoint, the offset up to which every
//! event has been delivered, durably buffered or dead-lettered by every sink, and after a
//! crash resumes from there. A pipe cannot be rewound, so it cannot be checkpointed.
//!
//! With `multiline`, the lines of one message (a stack trace) are joined before decoding,
//! by the stages the file source runs its lines through; a checkpoint then stays before
//! the lines held, and a group idle for `timeout_ms` is sent while stdin is quiet.

use std::io::SeekFrom;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::checkpoint::{self, Checkpoint, PendingAcks};
use super::file::stages::{compile_multiline, Stages};
use super::{read_stream, Decoded, FrameIngest, SourceContext, SourceError, READ_CHUNK_BYTES};
use crate::ack::{AckStatus, AckToken};
use crate::channel::Closed;
use crate::codec::multiline::{MultilineConfig, MultilineRules};
use crate::codec::{DecodingConfig, FramingConfig};
use crate::field_error::FieldError;

/// How often the checkpoint is rewritten while acknowledgements advance. Between writes a
/// crash re-reads at most this much input (duplicates, never loss); at millions of events
/// per second every millisecond of lag is thousands of duplicates after a kill.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(10);

/// `[sources.ID] type = "stdin"`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinConfig {
    /// How the byte stream is cut into frames (default: newline, 100 KiB max).
    #[serde(default)]
    pub framing: FramingConfig,
    /// How each frame becomes fields (default: bytes, the whole line as `message`).
    #[serde(default)]
    pub decoding: DecodingConfig,
    /// Enables end-to-end acknowledgements: the file that records how far stdin (a regular
    /// file) has been read and acknowledged.
    pub checkpoint_path: Option<PathBuf>,
    /// Joins the lines of one message (stack traces) before decoding: the `multiline`
    /// transform's options but `group_by`, as on the file source.
    pub multiline: Option<MultilineConfig>,
    /// `multiline` compiled when the pipeline was built.
    #[serde(skip)]
    multiline_rules: Option<MultilineRules>,
}

impl StdinConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self
            .checkpoint_path
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(FieldError::new("checkpoint_path", "must not be empty"));
        }
        self.framing.validate()
    }

    /// Checks the options and compiles `multiline`'s patterns, kept for the run. Does no IO.
    pub fn build(mut self) -> Result<Self, FieldError> {
        self.validate()?;
        self.multiline_rules = compile_multiline(self.multiline.as_ref())?;
        Ok(self)
    }

    pub async fn run(self, mut ctx: SourceContext) -> Result<(), SourceError> {
        let mut ingest = FrameIngest::new(ctx.id.clone(), &self.framing, self.decoding);
        // No container stage here, so its line limit is never used.
        let stages = Stages::new(&ctx.id, None, self.multiline_rules.as_ref(), usize::MAX);
        match (&self.checkpoint_path, stages) {
            (None, None) => {
                read_stream(tokio::io::stdin(), &mut ingest, &mut ctx, None, None).await
            }
            (None, Some(stages)) => read_joined(ingest, stages, ctx).await,
            (Some(path), stages) => run_acknowledged(path.clone(), ingest, stages, ctx).await,
        }
    }
}

/// Reads stdin to its end (or until shutdown) through the `multiline` stages, sending one
/// batch per read and the groups whose timeout ended while stdin was quiet.
async fn read_joined(
    mut ingest: FrameIngest,
    mut stages: Stages,
    mut ctx: SourceContext,
) -> Result<(), SourceError> {
    let mut input = tokio::io::stdin();
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let mut read_to = 0u64;
    loop {
        buf.reserve(READ_CHUNK_BYTES);
        let deadline = stages.next_deadline();
        let idle = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let (n, eof) = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => (0, true),
            n = input.read_buf(&mut buf) => { let n = n?; (n, n == 0) }
            _ = idle => (0, false),
        };
        ingest.count_bytes(n);
        read_to += n as u64;
        let mut decoded = Decoded::default();
        let offset = |held: usize| read_to - held as u64;
        stages.decode(
            &mut ingest,
            &mut buf,
            &offset,
            eof,
            Instant::now(),
            Vec::new(),
            None,
            &mut decoded,
        );
        if decoded.send(&mut ctx).await.is_err() {
            return Err(SourceError::Io(std::io::Error::other(Closed)));
        }
        if eof {
            return Ok(());
        }
    }
}

async fn run_acknowledged(
    path: PathBuf,
    mut ingest: FrameIngest,
    mut stages: Option<Stages>,
    mut ctx: SourceContext,
) -> Result<(), SourceError> {
    let file = std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(SourceError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "checkpoint_path needs stdin redirected from a regular file (sluice up < app.log); a pipe cannot be rewound",
        )));
    }
    let (dev, inode) = (meta.dev(), meta.ino());
    let start = match checkpoint::load(&path) {
        Some(c) if (c.dev, c.inode) == (dev, inode) && c.offset <= meta.len() => c.offset,
        Some(_) => {
            tracing::warn!(component_id = %ctx.id, "checkpoint belongs to another file; reading from the start");
            0
        }
        None => 0,
    };
    if start > 0 {
        tracing::info!(component_id = %ctx.id, offset = start, "resuming from checkpoint");
    }
    let mut input = tokio::fs::File::from_std(file);
    input.seek(SeekFrom::Start(start)).await?;

    let ack_latency = crate::telemetry::histogram(
        "acknowledgement_latency_seconds",
        &[("component_id", &ctx.id)],
    );
    let mut pending = PendingAcks::new(start);
    let mut stored = start;
    let mut last_store = Instant::now();
    let mut read_to = start;
    let mut resume_at = start;
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        buf.reserve(READ_CHUNK_BYTES);
        let n = tokio::select! {
            biased;
            // On shutdown the unfinished frame is left for the next run to read whole.
            _ = ctx.shutdown.cancelled() => break,
            n = input.read_buf(&mut buf) => n?,
        };
        ingest.count_bytes(n);
        read_to += n as u64;
        let eof = n == 0;
        let (token, rx) = AckToken::timed(&ack_latency);
        let mut decoded = Decoded::default();
        match &mut stages {
            None => ingest.decode_with_ack(&mut buf, eof, None, Some(&token), &mut decoded),
            Some(stages) => {
                let offset = |held: usize| read_to - held as u64;
                let now = Instant::now();
                let carried = Vec::new();
                stages.decode(
                    &mut ingest,
                    &mut buf,
                    &offset,
                    eof,
                    now,
                    carried,
                    Some(&token),
                    &mut decoded,
                );
                if decoded.events.is_empty() && decoded.dead.is_empty() {
                    token.update(AckStatus::Delivered); // lines held, or half a line
                }
            }
        }
        // The events hold clones; with no events the receiver resolves (delivered) at once.
        drop(token);
        // Inside an oversized frame being dropped, the checkpoint waits before it: a
        // restart in its middle would read its tail as a frame. So it does before the
        // lines `multiline` holds.
        let mut complete = resume_at;
        if !ingest.is_discarding() {
            complete = read_to - buf.len() as u64;
        }
        if let Some(held) = stages.as_ref().and_then(Stages::pending_start) {
            complete = complete.min(held);
        }
        resume_at = resume_at.max(complete);
        pending.push(resume_at, rx);
        if decoded.send(&mut ctx).await.is_err() {
            break;
        }
        pending.settle(false, &ctx.id).await;
        if pending.acked() != stored && last_store.elapsed() >= CHECKPOINT_INTERVAL {
            save(&path, pending.acked(), dev, inode, &ctx.id);
            stored = pending.acked();
            last_store = Instant::now();
        }
        if eof {
            break;
        }
    }
    // Nothing more is sent: the outputs close first, so that a transform holding events
    // back (`multiline`) sees its input end and sends them before this waits for them.
    drop(std::mem::take(&mut ctx.out));
    drop(std::mem::take(&mut ctx.dead_letter));
    pending.settle(true, &ctx.id).await;
    if pending.acked() != stored {
        save(&path, pending.acked(), dev, inode, &ctx.id);
    }
    Ok(())
}

fn save(path: &std::path::Path, offset: u64, dev: u64, inode: u64, id: &str) {
    if let Err(error) = checkpoint::store(path, &Checkpoint { offset, dev, inode }) {
        // The next successful write catches up; until then a crash re-reads more.
        tracing::warn!(component_id = %id, %error, "checkpoint not saved");
    }
}
