//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use sluice::pipeline::Pipeline;
use sluice::topology::{self, RunningTopology};
use tokio_util::sync::CancellationToken;

/// Every wait in these tests is bounded by this.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);

/// A pipeline running in this process, with its shutdown handle.
pub(crate) struct Router {
    pub(crate) running: Option<RunningTopology>,
    pub(crate) shutdown: CancellationToken,
}

impl Router {
    /// Parses `toml` (no environment substitution beyond the process's), starts it.
    pub(crate) async fn start(toml: &str) -> Router {
        let pipeline = Pipeline::from_str("test.toml", toml, |name| std::env::var(name).ok())
            .unwrap_or_else(|errors| {
                panic!(
                    "pipeline invalid: {}",
                    errors
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            });
        let shutdown = CancellationToken::new();
        let running = topology::start(pipeline, shutdown.clone())
            .await
            .expect("pipeline starts");
        Router {
            running: Some(running),
            shutdown,
        }
    }

    pub(crate) fn addr(&self, source: &str) -> std::net::SocketAddr {
        self.running.as_ref().expect("running").bound[source]
    }

    /// Stops the sources and waits until every event in flight reached the sinks.
    pub(crate) async fn stop(mut self) {
        self.shutdown.cancel();
        let running = self.running.take().expect("running");
        tokio::time::timeout(TIMEOUT, running.wait())
            .await
            .expect("router drains within the timeout");
    }
}

impl Drop for Router {
    /// A test that panics still stops its router's sources, so that the pipeline drains
    /// and the test runtime can shut down instead of waiting on sink threads forever.
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Reads a FIFO to its end on a detached thread when dropped (e.g. by a panicking test), so a
/// sink blocked opening or writing it can finish and the runtime can shut down.
pub(crate) struct FifoDrain(pub(crate) std::path::PathBuf);

impl Drop for FifoDrain {
    fn drop(&mut self) {
        let path = self.0.clone();
        std::thread::spawn(move || {
            if let Ok(mut f) = std::fs::File::open(path) {
                let _ = std::io::copy(&mut f, &mut std::io::sink());
            }
        });
    }
}

/// A port that was free a moment ago (for a process that must bind a known port, or for
/// sending where nothing listens yet). It lies below the kernel's ephemeral range: a port
/// from there could be handed to another test's listener on port 0 in the meantime, which
/// would then receive what this test sends (a shipper's compressed requests written into
/// another test's file).
pub(crate) fn free_port() -> u16 {
    let (low, _) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| {
            let mut parts = range.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .unwrap_or((32768, 60999));
    let floor = 10_000u16.min(low / 2);
    let start = floor + fastrand::u16(..low.saturating_sub(floor + 1_000).max(1));
    (start..low)
        .chain(floor..start)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port below the ephemeral range")
}

/// Waits until `condition` holds, checking every few milliseconds; panics after TIMEOUT.
/// This polls an observable condition (a counter, a file's content) rather than sleeping
/// for a guessed duration.
pub(crate) async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The value of a telemetry counter for one component (and optionally one reason).
pub(crate) fn counter(name: &str, component: &str, reason: Option<&str>) -> u64 {
    let mut labels = vec![("component_id", component)];
    if let Some(r) = reason {
        labels.push(("reason", r));
    }
    sluice::telemetry::counter_value(name, &labels)
}

pub(crate) fn read_lines(path: &Path) -> Vec<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => s.lines().map(str::to_string).collect(),
        Err(_) => Vec::new(),
    }
}

pub(crate) fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// The repository root (tests run with the crate root as the working directory).
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Path of the built `sluice` binary.
pub(crate) fn sluice_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sluice"))
}

/// True when the test command requires real external tools to be present, so a missing
/// tool fails instead of skipping (scripts/test sets it; a bare `cargo test` does not).
pub(crate) fn services_required() -> bool {
    std::env::var_os("SLUICE_REQUIRE_SERVICES").is_some()
}

/// Whether an external program is available; fails the test when services are required.
pub(crate) fn have_tool(tool: &str) -> bool {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        assert!(
            !services_required(),
            "{tool} is required (SLUICE_REQUIRE_SERVICES is set) but missing"
        );
        println!("skipping: {tool} not installed (run scripts/test to install it)");
    }
    found
}

/// `sluice up --config CONFIG`, ready for [`spawn_router`].
pub(crate) fn sluice_up(config: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(sluice_bin());
    cmd.args(["up", "--config"]).arg(config);
    cmd
}

/// A router running as its own process.
pub(crate) struct RouterProcess {
    pub(crate) child: std::process::Child,
    /// The address the first network source listens on, from its startup log.
    pub(crate) address: Option<String>,
    /// Its stderr up to "router started".
    pub(crate) startup_log: String,
    /// The rest of its stderr, line by line, read on a thread so the router never blocks
    /// on a full pipe.
    rest: std::sync::mpsc::Receiver<String>,
    /// Lines taken from `rest` by [`RouterProcess::wait_for_log`].
    seen: String,
}

impl RouterProcess {
    pub(crate) fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} failed");
    }

    /// The address component `id` listens on, from the startup log.
    pub(crate) fn address_of(&self, id: &str) -> Option<String> {
        self.startup_log
            .lines()
            .filter(|l| l.contains("listening"))
            .find(|l| l.contains(&format!("component_id={id} ")))?
            .split_whitespace()
            .find_map(|w| w.strip_prefix("address="))
            .map(str::to_string)
    }

    /// Waits (at most [`TIMEOUT`]) for a line of the router's log containing every one of
    /// `needles`; false if the router exited or the time ran out first.
    pub(crate) fn wait_for_log(&mut self, needles: &[&str]) -> bool {
        self.wait_for_log_line(needles).is_some()
    }

    /// [`RouterProcess::wait_for_log`], returning the line found.
    pub(crate) fn wait_for_log_line(&mut self, needles: &[&str]) -> Option<String> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.rest.recv_timeout(left).ok()?;
            self.seen.push_str(&line);
            if needles.iter().all(|n| line.contains(n)) {
                return Some(line);
            }
        }
    }

    /// Waits for the router to exit; returns its status and the rest of its log.
    pub(crate) fn finish(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().expect("router exits");
        let mut log = std::mem::take(&mut self.seen);
        // The reading thread ends at the pipe's EOF, which the exit brings.
        log.extend(self.rest.iter());
        (status, log)
    }
}

impl Drop for RouterProcess {
    /// A router still running when its test lets go of it (a failed assertion unwinding,
    /// most often) is killed, so failing tests do not leave routers behind holding ports,
    /// files and CPU for the rest of the suite.
    /// A failing test also prints the router's log, the first thing needed to tell a slow
    /// machine from a real defect.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            // The reading thread ends at the pipe's EOF, which the exit above brings.
            let rest: Vec<String> = self.rest.iter().collect();
            let lines: Vec<&str> = self
                .startup_log
                .lines()
                .chain(self.seen.lines())
                .chain(rest.iter().map(|l| l.trim_end()))
                .collect();
            const KEPT: usize = 200;
            let skipped = lines.len().saturating_sub(KEPT);
            eprintln!(
                "--- router {} log (last {} of {} lines) ---\n{}",
                self.child.id(),
                lines.len() - skipped,
                lines.len(),
                lines[skipped..].join("\n")
            );
        }
    }
}

/// Starts `command` (a `sluice up`) and waits for its startup log line, the signal that it
/// serves.
pub(crate) fn spawn_router(mut command: std::process::Command) -> RouterProcess {
    use std::io::{BufRead, BufReader};
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("router starts");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut address = None;
    let mut startup_log = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap_or(0) == 0 {
            let _ = child.kill();
            panic!("router exited early: {startup_log}");
        }
        if address.is_none() && line.contains("listening") {
            address = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("address="))
                .map(str::to_string);
        }
        startup_log.push_str(&line);
        if line.contains("router started") {
            break;
        }
    }
    let (tx, rest) = std::sync::mpsc::channel();
    std::thread::spawn(move || loop {
        let mut line = String::new();
        match stderr.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if tx.send(line).is_err() {
                    break;
                }
            }
        }
    });
    RouterProcess {
        child,
        address,
        startup_log,
        rest,
        seen: String::new(),
    }
}

/// GET `url`, parsed as JSON; `None` when unreachable or not 2xx.
pub(crate) async fn get_json(url: &str) -> Option<Value> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = tokio::time::timeout(Duration::from_secs(5), client.get(url.parse().ok()?))
        .await
        .ok()?
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body = response.into_body().collect().await.ok()?.to_bytes();
    serde_json::from_slice(&body).ok()
}

/// Polls `probe` every 100 ms until it returns `Some`; panics after TIMEOUT.
pub(crate) async fn poll<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
pub(crate) fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
