//! The `sluice` command line. anyhow lives here and nowhere else.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use sluice::config::{Pipeline, DEFAULT_PIPELINE_PATH};

/// mimalloc instead of glibc malloc: events are allocated on the runtime's worker threads
/// and freed on sink threads, a pattern that makes glibc's per-thread arenas fragment
/// (measured on bench scenario C: 40 MiB peak RSS with glibc, see ARCHITECTURE.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "sluice", version, about = "A log aggregation router")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the router on a pipeline until SIGINT/SIGTERM or until every source has ended.
    Up {
        /// Pipeline file (TOML). The default falls back to the embedded default pipeline
        /// when the file does not exist.
        #[arg(long, short, default_value = DEFAULT_PIPELINE_PATH)]
        config: PathBuf,
    },
    /// Check pipeline files without running them; exit non-zero if any is invalid.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Inspect disk buffers.
    Buffer {
        #[command(subcommand)]
        command: BufferCommand,
    },
}

#[derive(Subcommand)]
enum BufferCommand {
    /// Report a disk buffer's records, bytes, acknowledged position and damage, without
    /// changing it (stop the router first). Exits 1 if damage was found.
    Check { path: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Validate { files } => validate(&files),
        Command::Buffer {
            command: BufferCommand::Check { path },
        } => match sluice::buffer::disk::check(&path) {
            Ok(report) => {
                print!("{report}");
                if report.report.is_clean() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(error) => {
                eprintln!("error: {}: {error}", path.display());
                ExitCode::from(2)
            }
        },
        Command::Up { config } => match up(&config) {
            Ok(code) => code,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn init_logging() {
    // The router's own log goes to stderr: stdout belongs to the console sink.
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never in files or pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

fn validate(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    for file in files {
        match Pipeline::load(file) {
            Ok(p) => println!(
                "{}: ok ({} sources, {} transforms, {} sinks)",
                file.display(),
                p.sources.len(),
                p.transforms.len(),
                p.sinks.len()
            ),
            Err(errors) => {
                ok = false;
                for error in errors {
                    eprintln!("error: {error}");
                }
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn up(config: &std::path::Path) -> anyhow::Result<ExitCode> {
    let pipeline = match Pipeline::load(config) {
        Ok(p) => p,
        Err(errors) => {
            for error in errors {
                eprintln!("error: {error}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sluice-worker")
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        spawn_signal_handlers(shutdown.clone())?;
        let deadline = std::time::Duration::from_secs(pipeline.shutdown_timeout_secs);
        let running = sluice::topology::start(&pipeline, shutdown.clone())
            .await
            .with_context(|| format!("cannot start pipeline {}", pipeline.file))?;
        let mut bound: Vec<_> = running.bound.iter().collect();
        bound.sort();
        for (id, address) in bound {
            tracing::info!(component_id = %id, %address, "listening");
        }
        tracing::info!(
            pipeline = %pipeline.file,
            sources = pipeline.sources.len(),
            transforms = pipeline.transforms.len(),
            sinks = pipeline.sinks.len(),
            "router started"
        );
        let drained = running.wait();
        tokio::pin!(drained);
        tokio::select! {
            () = &mut drained => {}
            () = shutdown.cancelled() => {
                if tokio::time::timeout(deadline, &mut drained).await.is_err() {
                    // Disk buffers keep what they hold; memory buffers lose it. Say so.
                    tracing::error!(
                        shutdown_timeout_secs = deadline.as_secs(),
                        "shutdown deadline passed with events still in flight; exiting without them"
                    );
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        tracing::info!("router stopped; all in-flight events drained");
        Ok(ExitCode::SUCCESS)
    });
    // A sink thread stuck in a blocking call (a hung NFS write, a FIFO nobody reads) must not
    // keep the process alive past the deadline; everything that could drain has drained.
    runtime.shutdown_background();
    result
}

/// SIGINT/SIGTERM start a graceful drain; a second one exits at once. SIGHUP asks file sinks
/// to reopen their files (after logrotate).
fn spawn_signal_handlers(shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            if shutdown.is_cancelled() {
                tracing::warn!("second signal: exiting without draining");
                std::process::exit(130);
            }
            tracing::info!("signal received: draining in-flight events (send again to exit now)");
            shutdown.cancel();
        }
    });
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("sighup: reopening files");
            sluice::sinks::file::request_reopen();
        }
    });
    Ok(())
}
