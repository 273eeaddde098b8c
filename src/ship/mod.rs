//! Shipping logs from applications to a router's `POST /v1/logs` (`sluice ship`,
//! `sluice run`).
//!
//! ```text
//! reader thread(s) ──lines──▶ batcher thread ──▶ spool (disk, bounded) ──▶ sender (HTTP)
//!   (stdin, child pipes)       1000 lines / 1 MiB / 200 ms    deleted on 2xx     retries
//! ```
//!
//! Every batch is written to the spool before it is sent, so the reading side depends only
//! on the disk, never on the router: while the router is down the application's writes go
//! on until the spool is full; then reading blocks (backpressure, reported on stderr).
//! Delivery is at-least-once: a batch is deleted only after a 2xx, and the router answers
//! 2xx only once its sinks acknowledged.

pub mod run;
mod send;
pub mod spool;

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::delivery::retry::RetryConfig;
pub use spool::{Pending, Spool};

/// Where to send, how to label, where to spool.
#[derive(Debug, Clone)]
pub struct ShipConfig {
    pub url: String,
    pub app: Option<String>,
    pub instance: Option<String>,
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    pub batch_max_lines: usize,
    pub batch_max_bytes: usize,
    pub batch_max_wait: Duration,
    pub retry: RetryConfig,
    /// How long one request may take (the router holds it until its sinks acknowledged).
    pub request_timeout: Duration,
}

pub const DEFAULT_URL: &str = "http://127.0.0.1:8080/v1/logs";

impl ShipConfig {
    pub fn new(url: String, app: Option<String>, instance: Option<String>) -> ShipConfig {
        let spool_dir = default_spool_dir(app.as_deref(), instance.as_deref());
        ShipConfig {
            url,
            app,
            instance,
            spool_dir,
            spool_max_bytes: 256 * 1024 * 1024,
            batch_max_lines: 1000,
            batch_max_bytes: 1024 * 1024,
            batch_max_wait: Duration::from_millis(200),
            retry: RetryConfig {
                initial_backoff_ms: 100,
                max_backoff_secs: 5,
                max_attempts: None,
            },
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// `$TMPDIR/sluice-ship-$USER/APP[-INSTANCE]`: per user, and per app so that two shippers
/// on one machine do not share a spool.
pub fn default_spool_dir(app: Option<&str>, instance: Option<&str>) -> PathBuf {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self")
                .map(|m| m.uid().to_string())
                .unwrap_or_else(|_| "user".into())
        });
    let mut name = sanitize(app.unwrap_or("default"));
    if let Some(instance) = instance {
        name.push('-');
        name.push_str(&sanitize(instance));
    }
    std::env::temp_dir()
        .join(format!("sluice-ship-{}", sanitize(&user)))
        .join(name)
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error("invalid URL `{url}`: {reason}")]
    Url { url: String, reason: String },
    #[error("spool {}: {source}", path.display())]
    Spool {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("spool {} is in use by process {pid}", path.display())]
    SpoolInUse { path: PathBuf, pid: String },
    #[error("cannot read input: {0}")]
    Input(std::io::Error),
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error("the shipper stopped")]
    Closed,
}

/// Which output of the application a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Turns lines and events into NDJSON records with the app's labels and, for lines, the
/// time they were read (`read_at`): the router uses it as the event's time when the line
/// has none of its own, so lines spooled through an outage keep when they happened, in
/// order.
#[derive(Debug, Default)]
struct Encoder {
    app: Option<String>,
    instance: Option<String>,
    /// The last `read_at` given (nanoseconds): each line's is later than the one before
    /// (stdout and stderr readers share it), so equal clock readings cannot reorder them.
    last_read_at: AtomicI64,
}

impl Encoder {
    fn new(app: Option<String>, instance: Option<String>) -> Self {
        Self {
            app,
            instance,
            last_read_at: AtomicI64::new(0),
        }
    }

    /// Now, or a microsecond after the previous line's time if the clock has not moved
    /// that far: times are written with microseconds, and must not tie.
    fn read_at(&self) -> i64 {
        const STEP: i64 = 1_000;
        let now = crate::event::now_nanos();
        let previous = self
            .last_read_at
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                Some(now.max(last + STEP))
            })
            .unwrap_or(now);
        now.max(previous + STEP)
    }

    fn labels(&self, map: &mut serde_json::Map<String, serde_json::Value>) {
        if let Some(app) = &self.app {
            map.insert("app".into(), app.clone().into());
        }
        if let Some(instance) = &self.instance {
            map.insert("instance".into(), instance.clone().into());
        }
    }

    fn line(&self, stream: Stream, line: &[u8]) -> Vec<u8> {
        let mut map = serde_json::Map::new();
        map.insert(
            "message".into(),
            String::from_utf8_lossy(line).into_owned().into(),
        );
        self.labels(&mut map);
        map.insert("stream".into(), stream.as_str().into());
        map.insert(
            crate::parse::READ_AT.into(),
            crate::event::format_timestamp(self.read_at()).into(),
        );
        encode(map)
    }

    fn event(&self, mut fields: serde_json::Map<String, serde_json::Value>) -> Vec<u8> {
        self.labels(&mut fields);
        encode(fields)
    }
}

fn encode(map: serde_json::Map<String, serde_json::Value>) -> Vec<u8> {
    let mut out = serde_json::to_vec(&serde_json::Value::Object(map)).unwrap_or_default();
    out.push(b'\n');
    out
}

/// A handle to feed lines and events into a running [`Shipper`]. Sending blocks only while
/// the spool is full.
#[derive(Clone)]
pub struct Input {
    /// `None` asks the batcher to flush and stop even while readers still hold inputs.
    tx: SyncSender<Option<Vec<u8>>>,
    encoder: Arc<Encoder>,
}

impl Input {
    pub fn line(&self, stream: Stream, line: &[u8]) -> Result<(), ShipError> {
        self.tx
            .send(Some(self.encoder.line(stream, line)))
            .map_err(|_| ShipError::Closed)
    }

    /// An event record: `fields` plus the app's labels.
    pub fn event(
        &self,
        fields: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), ShipError> {
        self.tx
            .send(Some(self.encoder.event(fields)))
            .map_err(|_| ShipError::Closed)
    }

    /// Reads `reader` to its end, line by line, shipping each. Lines longer than 1 MiB are
    /// shipped in 1 MiB pieces (never dropped); a trailing `\r` is removed.
    pub fn pump(&self, mut reader: impl BufRead, stream: Stream) -> Result<u64, ShipError> {
        const MAX_LINE: usize = 1024 * 1024;
        let mut line = Vec::new();
        let mut count = 0;
        loop {
            let available = match reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ShipError::Input(e)),
            };
            if available.is_empty() {
                if !line.is_empty() {
                    self.line(stream, trim_cr(&line))?;
                    count += 1;
                }
                return Ok(count);
            }
            let room = MAX_LINE - line.len();
            let window = &available[..available.len().min(room)];
            match memchr::memchr(b'\n', window) {
                Some(i) => {
                    line.extend_from_slice(&window[..i]);
                    reader.consume(i + 1);
                    self.line(stream, trim_cr(&line))?;
                    count += 1;
                    line.clear();
                }
                None => {
                    let n = window.len();
                    line.extend_from_slice(window);
                    reader.consume(n);
                    if line.len() >= MAX_LINE {
                        self.line(stream, &line)?;
                        count += 1;
                        line.clear();
                    }
                }
            }
        }
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// How a drain ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drained {
    /// Everything was acknowledged by the router.
    All,
    /// The spool is empty, but the router refused (4xx) or the spool damaged this many
    /// lines; they are kept in the spool's `damaged/` directory.
    SetAside { lines: u64, dir: PathBuf },
    /// The drain timeout passed with this much still in the spool.
    Left(Pending),
}

/// The running batcher and sender.
pub struct Shipper {
    input: Option<Input>,
    batcher: Option<JoinHandle<Result<(), ShipError>>>,
    spool: Arc<Spool>,
}

impl Shipper {
    /// Opens the spool (queueing leftovers first) and starts the batcher and sender threads.
    pub fn start(config: &ShipConfig) -> Result<Shipper, ShipError> {
        let target = send::Target::parse(&config.url)?;
        let spool = Arc::new(Spool::open(&config.spool_dir, config.spool_max_bytes)?);
        let (tx, rx) = sync_channel(config.batch_max_lines);
        let batcher = {
            let spool = spool.clone();
            let config = config.clone();
            std::thread::Builder::new()
                .name("ship-batcher".into())
                .spawn(move || batch(rx, &spool, &config))
                .map_err(ShipError::Thread)?
        };
        {
            let spool = spool.clone();
            let config = config.clone();
            // Detached: it runs until the process exits (after the drain or its timeout).
            std::thread::Builder::new()
                .name("ship-sender".into())
                .spawn(move || send::run(target, spool, config))
                .map_err(ShipError::Thread)?;
        }
        Ok(Shipper {
            input: Some(Input {
                tx,
                encoder: Arc::new(Encoder::new(config.app.clone(), config.instance.clone())),
            }),
            batcher: Some(batcher),
            spool,
        })
    }

    /// A handle for reader threads.
    pub fn input(&self) -> Input {
        self.input.clone().expect("input taken only by finish")
    }

    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// Ends the input (lines sent through remaining [`Input`] clones afterwards fail with
    /// [`ShipError::Closed`]), flushes the last batch and waits up to `timeout` for the spool
    /// to be sent.
    pub fn finish(mut self, timeout: Duration) -> Result<Drained, ShipError> {
        if let Some(input) = self.input.take() {
            // Fails only if the batcher already stopped (it then reports why on join).
            let _ = input.tx.send(None);
        }
        if let Some(batcher) = self.batcher.take() {
            batcher.join().map_err(|_| ShipError::Closed)??;
        }
        let left = self.spool.wait_empty(timeout);
        let set_aside = self.spool.set_aside_lines();
        Ok(if left.batches == 0 && set_aside == 0 {
            Drained::All
        } else if left.batches == 0 {
            Drained::SetAside {
                lines: set_aside,
                dir: self.spool.dir().join("damaged"),
            }
        } else {
            Drained::Left(left)
        })
    }
}

/// Collects records into batches and appends them to the spool.
fn batch(
    rx: Receiver<Option<Vec<u8>>>,
    spool: &Spool,
    config: &ShipConfig,
) -> Result<(), ShipError> {
    let mut body = Vec::with_capacity(64 * 1024);
    let mut lines = 0u32;
    let mut open = true;
    let mut last_full = None;
    while open {
        match rx.recv() {
            Ok(Some(record)) => {
                body.extend_from_slice(&record);
                lines += 1;
            }
            Ok(None) | Err(_) => break,
        }
        let deadline = Instant::now() + config.batch_max_wait;
        while (lines as usize) < config.batch_max_lines && body.len() < config.batch_max_bytes {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match rx.recv_timeout(deadline - now) {
                Ok(Some(record)) => {
                    body.extend_from_slice(&record);
                    lines += 1;
                }
                Err(RecvTimeoutError::Timeout) => break,
                Ok(None) | Err(RecvTimeoutError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        append_retrying(spool, lines, &body, &mut last_full)?;
        body.clear();
        lines = 0;
    }
    Ok(())
}

const FULL_REPORT_EVERY: Duration = Duration::from_secs(10);

/// Appends, retrying IO errors (a full disk) every second: blocking is backpressure, and
/// nothing is dropped.
fn append_retrying(
    spool: &Spool,
    lines: u32,
    body: &[u8],
    last_full: &mut Option<Instant>,
) -> Result<(), ShipError> {
    let mut reported = false;
    loop {
        let on_full = || {
            // Once per episode, not once per batch: a long outage would flood stderr.
            if last_full.is_some_and(|at| at.elapsed() < FULL_REPORT_EVERY) {
                return;
            }
            *last_full = Some(Instant::now());
            let pending = spool.pending();
            eprintln!(
                "sluice ship: spool full ({} bytes, {} lines in {}); reading paused until the router catches up",
                pending.bytes,
                pending.lines,
                spool.dir().display()
            );
        };
        match spool.append(lines, body, on_full) {
            Ok(()) => return Ok(()),
            Err(error) => {
                if !reported {
                    eprintln!("sluice ship: cannot write to the spool ({error}); retrying every second, reading paused");
                    reported = true;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// `sluice ship`: stdin to the router. Returns how the drain ended.
pub fn ship_stdin(config: &ShipConfig, drain_timeout: Duration) -> Result<Drained, ShipError> {
    let shipper = Shipper::start(config)?;
    let input = shipper.input();
    // Reading stays on this thread; the batcher and sender run on their own.
    let stdin = std::io::stdin().lock();
    let result = input.pump(
        std::io::BufReader::with_capacity(64 * 1024, stdin),
        Stream::Stdout,
    );
    drop(input);
    result?;
    shipper.finish(drain_timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_escaped_and_lossy() {
        let encoder = Encoder::new(Some("web".into()), Some("web.1".into()));
        let out = encoder.line(Stream::Stderr, b"say \"hi\"\t\xff");
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["message"], "say \"hi\"\t\u{fffd}");
        assert_eq!(value["app"], "web");
        assert_eq!(value["instance"], "web.1");
        assert_eq!(value["stream"], "stderr");
        assert!(out.ends_with(b"}\n"));
    }

    #[test]
    fn each_line_is_read_later_than_the_one_before() {
        let encoder = Encoder::default();
        let times: Vec<String> = (0..1000)
            .map(|_| {
                let out = encoder.line(Stream::Stdout, b"x");
                let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
                value["read_at"].as_str().unwrap().to_string()
            })
            .collect();
        // RFC 3339 with a fixed number of digits sorts as the times do.
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    }

    #[test]
    fn pump_splits_lines_and_keeps_an_unterminated_tail() {
        let (tx, rx) = sync_channel(16);
        let input = Input {
            tx,
            encoder: Arc::new(Encoder::default()),
        };
        let n = input.pump(&b"a\r\nb\n\nc"[..], Stream::Stdout).unwrap();
        drop(input);
        assert_eq!(n, 4);
        let messages: Vec<String> = rx
            .iter()
            .flatten()
            .map(|r| {
                let v: serde_json::Value = serde_json::from_slice(&r).unwrap();
                v["message"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(messages, ["a", "b", "", "c"]);
    }
}
