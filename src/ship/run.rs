//! `sluice run`: runs a command with its stdout and stderr piped, ships every line tagged
//! with its stream, plus a start and an exit event, forwards SIGINT/SIGTERM to the child and
//! exits with the child's code (128 + N when a signal N ended it, as shells do).

use std::io::BufReader;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{Drained, Input, ShipConfig, ShipError, Shipper, Stream};

/// How long to wait, after the child exited, for its pipes to close. A background process
/// it started may hold them open for ever; its later lines are then not shipped.
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// The outcome of `sluice run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// The exit code to exit with: the child's, or 128 + the signal that ended it.
    pub code: i32,
    pub drained: Drained,
}

pub fn run_command(
    config: &ShipConfig,
    command: &[String],
    drain_timeout: Duration,
) -> Result<RunOutcome, ShipError> {
    let (program, args) = command.split_first().ok_or_else(|| ShipError::Spawn {
        command: String::new(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "no command given"),
    })?;
    let shipper = Shipper::start(config)?;
    let input = shipper.input();
    let command_line = command.join(" ");
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ShipError::Spawn {
            command: command_line.clone(),
            source,
        })?;
    let pid = child.id();
    input.event(fields(json!({
        "event": "start",
        "command": command_line,
        "pid": pid,
    })))?;
    forward_signals(pid)?;

    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut readers = 0;
    let pipes: [(Option<Box<dyn std::io::Read + Send>>, Stream); 2] = [
        (
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            Stream::Stdout,
        ),
        (
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            Stream::Stderr,
        ),
    ];
    for (pipe, stream) in pipes {
        let Some(pipe) = pipe else { continue };
        let input: Input = input.clone();
        let done = done_tx.clone();
        std::thread::Builder::new()
            .name(format!("run-{}", stream.as_str()))
            .spawn(move || {
                if let Err(error) = input.pump(BufReader::with_capacity(64 * 1024, pipe), stream) {
                    if !matches!(error, ShipError::Closed) {
                        eprintln!("sluice run: {}: {error}", stream.as_str());
                    }
                }
                let _ = done.send(());
            })
            .map_err(ShipError::Thread)?;
        readers += 1;
    }
    drop(done_tx);

    let status = child.wait().map_err(|source| ShipError::Spawn {
        command: command_line.clone(),
        source,
    })?;
    // Lines first, then the exit event; give pipes held by grandchildren a bounded grace.
    let deadline = std::time::Instant::now() + PIPE_GRACE;
    for _ in 0..readers {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            eprintln!(
                "sluice run: `{command_line}` exited but its output pipes are still open (a background process?); not waiting for them"
            );
            break;
        }
    }
    let (exit_event, code) = match (status.code(), status.signal()) {
        (Some(code), _) => (json!({ "event": "exit", "code": code }), code),
        (None, Some(signal)) => (
            json!({ "event": "exit", "signal": signal, "signal_name": signal_name(signal) }),
            128 + signal,
        ),
        (None, None) => (json!({ "event": "exit" }), 1),
    };
    input.event(fields(exit_event))?;
    drop(input);
    let drained = shipper.finish(drain_timeout)?;
    Ok(RunOutcome { code, drained })
}

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        6 => "SIGABRT",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => "other",
    }
}

/// SIGINT and SIGTERM are passed on to the child (this process keeps running until the
/// child exited and its lines were shipped).
fn forward_signals(pid: u32) -> Result<(), ShipError> {
    use rustix::process::{kill_process, Pid, Signal};
    use tokio::signal::unix::{signal, SignalKind};
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("run-signals".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(error) => {
                    let _ = ready_tx.send(Err(error));
                    return;
                }
            };
            runtime.block_on(async move {
                let watch = || -> std::io::Result<_> {
                    Ok((
                        signal(SignalKind::interrupt())?,
                        signal(SignalKind::terminate())?,
                    ))
                };
                let (mut interrupt, mut terminate) = match watch() {
                    Ok(pair) => pair,
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
                    return;
                };
                loop {
                    let forwarded = tokio::select! {
                        _ = interrupt.recv() => Signal::INT,
                        _ = terminate.recv() => Signal::TERM,
                    };
                    // The child may have exited already; nothing to do then.
                    let _ = kill_process(pid, forwarded);
                }
            });
        })
        .map_err(ShipError::Thread)?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(ShipError::Thread(error)),
        Err(_) => Err(ShipError::Closed),
    }
}
