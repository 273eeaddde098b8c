//! The `sluice` command line. anyhow lives here and nowhere else.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;

use sluice::config::ConfigError;
use sluice::error_chain::ErrorLines;
use sluice::pipeline::Pipeline;
use sluice::unit_test::TestRunError;

mod cli;

use cli::{BufferCommand, Cli, Command, ShipArgs};

/// jemalloc instead of glibc malloc: events are allocated on the runtime's worker threads
/// and freed on sink threads, a pattern that makes glibc's per-thread arenas fragment
/// (measured on bench scenario C: 40 MiB peak RSS with glibc, 15 MiB with jemalloc as tuned
/// in .cargo/config.toml; see ARCHITECTURE.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A test's transforms warn about the bad input it feeds them on purpose; its report
    // says what came out.
    let default_log = match cli.command {
        Command::Test { .. } => "error",
        _ => "info",
    };
    init_logging(default_log);
    // The one place errors are printed: every subcommand returns them here.
    match run(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!(
                "error: {}",
                sluice::error_chain::error_chain(error.as_ref())
            );
            // `sluice test` tells an invalid pipeline or test (2) from a failed test (1).
            if let Some(TestRunError::Config(_)) = error.downcast_ref::<TestRunError>() {
                return ExitCode::from(2);
            }
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Validate { files } => Ok(validate(&files)),
        Command::Test { files } => {
            let env = |name: &str| std::env::var(name).ok();
            let summary = sluice::unit_test::run(&files, &env, &mut std::io::stdout().lock())?;
            Ok(if summary.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        #[cfg(feature = "store")]
        Command::Query {
            look,
            since,
            from,
            to,
            limit,
            query,
        } => {
            let args = sluice::store::client::QueryArgs {
                url: look.url,
                query,
                since,
                from,
                to,
                limit,
                json: look.json,
                token: look.token.filter(|t| !t.is_empty()),
                tls: look.tls.config(),
            };
            sluice::store::client::run_query(&args, &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "store")]
        Command::Tail {
            look,
            no_retry,
            query,
        } => {
            let args = sluice::store::client::TailArgs {
                url: look.url,
                query,
                json: look.json,
                no_retry,
                token: look.token.filter(|t| !t.is_empty()),
                tls: look.tls.config(),
                ..Default::default()
            };
            sluice::store::client::run_tail(&args, &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "store")]
        Command::Tap {
            look,
            no_retry,
            inputs_of,
            query,
            outputs,
        } => {
            if outputs.is_empty() && inputs_of.is_empty() {
                anyhow::bail!(
                    "name an OUTPUT to tap (a component id, or ID.OUTPUT) or --inputs-of COMPONENT"
                );
            }
            let args = sluice::store::client::TailArgs {
                url: look.url,
                query,
                json: look.json,
                no_retry,
                token: look.token.filter(|t| !t.is_empty()),
                taps: outputs,
                inputs_of,
                tls: look.tls.config(),
            };
            sluice::store::client::run_tail(&args, &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Buffer {
            command: BufferCommand::Check { path },
        } => {
            let report = sluice::buffer::disk::check(&path)
                .with_context(|| format!("cannot check {}", path.display()))?;
            print!("{report}");
            Ok(if report.report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Alerts {
            url,
            token,
            tls,
            json,
        } => {
            let token = token.filter(|t| !t.is_empty());
            let answer = sluice::alert::cli::fetch(&url, token.as_deref(), &tls.config())?;
            if json {
                println!("{answer}");
            } else {
                print!("{}", sluice::alert::cli::render_table(&answer));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ship { to, app, ship } => ship_stdin(&ship.config(&to, app.as_deref()), &ship),
        Command::Run {
            to: Some(to),
            app,
            ship,
            command,
            ..
        } => run_command(&ship.config(&to, Some(&app)), &ship, &command),
        Command::Run {
            to: None,
            config,
            app,
            ship,
            command,
        } => run_local(&config, &app, &ship, &command),
        Command::Up {
            config,
            watch_config,
        } => up(&config, watch_config),
        Command::Reload { url, token, tls } => {
            let token = token.filter(|t| !t.is_empty());
            let answer = sluice::topology::client::post(
                &url,
                sluice::api::admin::RELOAD_PATH,
                token.as_deref(),
                &tls.config(),
            )
            .context("reload refused")?;
            println!("{answer}");
            Ok(ExitCode::SUCCESS)
        }
        Command::ParseCheck {
            file,
            lines,
            format,
            timezone,
        } => parse_check(&file, lines, &format, &timezone),
    }
}

/// `sluice parse-check`: the sample's report on stdout.
fn parse_check(
    file: &std::path::Path,
    lines: usize,
    format: &str,
    timezone: &str,
) -> anyhow::Result<ExitCode> {
    use sluice::transforms::parse::ParseFormat;
    use sluice::transforms::parse_check;
    let format: ParseFormat = serde::Deserialize::deserialize(serde::de::value::StrDeserializer::<
        serde::de::value::Error,
    >::new(format))
    .with_context(|| format!("invalid --format {format:?}"))?;
    if format == ParseFormat::Regex {
        anyhow::bail!("--format regex is not supported by parse-check (it needs a pattern)");
    }
    let config = parse_check::config(format, timezone);
    let now = sluice::event::now_nanos();
    let report = if file.as_os_str() == "-" {
        parse_check::check(std::io::stdin().lock(), &config, lines, now)
            .context("cannot check stdin")?
    } else {
        let opened =
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        parse_check::check(std::io::BufReader::new(opened), &config, lines, now)
            .with_context(|| format!("cannot check {}", file.display()))?
    };
    // A reader that stopped early (`| head`) is not an error; `print!` would panic on it.
    let mut stdout = std::io::stdout().lock();
    match std::io::Write::write_all(&mut stdout, report.to_string().as_bytes()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(error).context("cannot write the report")
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Every problem in a pipeline file, one per line.
fn load_pipeline(path: &std::path::Path) -> Result<Pipeline, ErrorLines<ConfigError>> {
    Pipeline::load(path).map_err(ErrorLines)
}

fn ship_stdin(config: &sluice::ship::ShipConfig, args: &ShipArgs) -> anyhow::Result<ExitCode> {
    let timeout = std::time::Duration::from_secs(args.drain_timeout_secs);
    let drained = sluice::ship::ship_stdin(config, timeout)?;
    Ok(drain_exit(drained))
}

fn run_command(
    config: &sluice::ship::ShipConfig,
    args: &ShipArgs,
    command: &[String],
) -> anyhow::Result<ExitCode> {
    let timeout = std::time::Duration::from_secs(args.drain_timeout_secs);
    let outcome = sluice::ship::run::run_command(config, command, timeout)?;
    if drain_exit(outcome.drained) != ExitCode::SUCCESS && outcome.code == 0 {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::from(u8::try_from(outcome.code).unwrap_or(1)))
}

/// `sluice run` without `--to`: starts the pipeline in this process, ships the command's
/// lines to the pipeline's own http source over loopback (so they are acknowledged like any
/// router's), then drains the pipeline and exits with the command's code. A pipeline that
/// cannot start (another router holds its ports) does not keep the command from running:
/// its lines go to the http source's address, where that other router may be listening,
/// and wait in the spool until something answers there.
fn run_local(
    config: &std::path::Path,
    app: &str,
    args: &ShipArgs,
    command: &[String],
) -> anyhow::Result<ExitCode> {
    let pipeline = load_pipeline(config)?;
    let (file, shutdown_timeout_secs) = (pipeline.file.clone(), pipeline.shutdown_timeout_secs);
    let (http_id, http_address) = pipeline
        .sources
        .iter()
        .find_map(|s| match &s.source {
            sluice::pipeline::Source::Http(http) => Some((s.id.clone(), http.address.clone())),
            _ => None,
        })
        .with_context(|| {
            format!(
                "{file}: the local pipeline needs an http source to receive the command's lines (or pass --to URL)"
            )
        })?;
    let runtime = router_runtime()?;
    let shutdown = CancellationToken::new();
    let running = match runtime.block_on(sluice::topology::start(pipeline, shutdown.clone())) {
        Ok(running) => running,
        Err(error) => {
            let url = ingest_url(&http_address);
            let error = anyhow::Error::new(error).context(format!("cannot start pipeline {file}"));
            eprintln!(
                "error: {}; running the command anyway, its lines go to {url} and wait in the spool until a router answers there",
                sluice::error_chain::error_chain(error.as_ref())
            );
            runtime.shutdown_background();
            return run_command(&args.config(&url, Some(app)), args, command);
        }
    };
    let address = *running
        .bound
        .get(&http_id)
        .context("the http source did not report its address")?;
    tracing::info!(pipeline = %file, %address, "local router started");
    let drained = runtime.spawn(running.wait());
    let url = ingest_url(&address.to_string());
    // The child's signals are forwarded by `run_command`; the pipeline stops after it.
    let code = run_command(&args.config(&url, Some(app)), args, command);
    shutdown.cancel();
    let deadline = std::time::Duration::from_secs(shutdown_timeout_secs);
    let finished = runtime.block_on(async { tokio::time::timeout(deadline, drained).await });
    runtime.shutdown_background();
    let code = code?;
    if finished.is_err() {
        anyhow::bail!("the local pipeline did not drain within shutdown_timeout_secs");
    }
    Ok(code)
}

/// `POST /v1/logs` at a listen address; a wildcard host means this machine.
fn ingest_url(address: &str) -> String {
    let address = match address.parse::<std::net::SocketAddr>() {
        Ok(mut socket) if socket.ip().is_unspecified() => {
            socket.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            socket.to_string()
        }
        _ => address.to_string(),
    };
    format!("http://{address}/v1/logs")
}

fn drain_exit(drained: sluice::ship::Drained) -> ExitCode {
    match drained {
        sluice::ship::Drained::All => ExitCode::SUCCESS,
        sluice::ship::Drained::SetAside { lines, dir } => {
            eprintln!(
                "sluice ship: {lines} lines were refused by the router or damaged; kept in {}",
                dir.display()
            );
            ExitCode::FAILURE
        }
        sluice::ship::Drained::Left(left) => {
            eprintln!(
                "sluice ship: drain timeout: {} lines ({} batches) not acknowledged, left in the spool (sent on the next start)",
                left.lines, left.batches
            );
            ExitCode::FAILURE
        }
    }
}

/// Lifts the soft descriptor limit to the hard one (often 1024 against 524288), so the
/// listeners' caps, not EMFILE, decide how many clients the router holds; says the figure.
fn log_descriptor_limit() {
    match sluice::listen::raise_descriptor_limit() {
        Ok(Some(limit)) => tracing::info!(limit, "open descriptor limit"),
        Ok(None) => tracing::info!("open descriptor limit: unlimited"),
        Err(error) => tracing::warn!(%error, "cannot raise the open descriptor limit"),
    }
}

fn init_logging(default_filter: &str) {
    // The router's own log goes to stderr: stdout belongs to the console sink.
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never in files or pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        // A failed log write (stderr closed: the reader of a pipe went away) is otherwise
        // reported with `eprintln!`, which panics on that same stderr: the task that logged
        // dies. The signal handler was one, so SIGTERM then drained nothing and never exited.
        .log_internal_errors(false)
        .init();
}

/// Exits 1 when any file is invalid: a negative answer, each problem printed as an error.
fn validate(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    for file in files {
        match load_pipeline(file) {
            Ok(p) => {
                let tables = match p.enrichment_tables.len() {
                    0 => String::new(),
                    n => format!(", {n} enrichment tables"),
                };
                println!(
                    "{}: ok ({} sources, {} transforms, {} sinks, {} alert rules{tables})",
                    file.display(),
                    p.sources.len(),
                    p.transforms.len(),
                    p.sinks.len(),
                    p.alerts.len()
                )
            }
            Err(errors) => {
                ok = false;
                eprintln!("error: {errors}");
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn up(config: &std::path::Path, watch_config: bool) -> anyhow::Result<ExitCode> {
    let started_from = std::fs::read(config).ok();
    let pipeline = load_pipeline(config)?;
    log_descriptor_limit();
    let runtime = router_runtime()?;
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        // Watched before the start, so a signal during it is not fatal (their default).
        let reloads = spawn_signal_handlers(shutdown.clone())?;
        let deadline = std::time::Duration::from_secs(pipeline.shutdown_timeout_secs);
        let file = pipeline.file.clone();
        let counts = (
            pipeline.sources.len(),
            pipeline.transforms.len(),
            pipeline.sinks.len(),
        );
        let running = sluice::topology::start(pipeline, shutdown.clone())
            .await
            .with_context(|| format!("cannot start pipeline {file}"))?;
        let _ = reloads.send(running.reloader());
        if watch_config {
            tokio::spawn(sluice::topology::watch::watch_config(
                config.to_path_buf(),
                started_from,
                running.reloader(),
                shutdown.clone(),
            ));
        }
        let mut bound: Vec<_> = running.bound.iter().collect();
        bound.sort();
        for (id, address) in bound {
            tracing::info!(component_id = %id, %address, "listening");
        }
        tracing::info!(
            pipeline = %file,
            sources = counts.0,
            transforms = counts.1,
            sinks = counts.2,
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

/// The multi-threaded runtime a pipeline runs on.
fn router_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all().thread_name("sluice-worker");
    // A task woken by its producer waits in that worker's LIFO slot, which other workers
    // cannot steal from, so a transform and the source feeding it took turns on one core
    // while the other idled. Without the slot: bench scenario C (TCP JSON -> enrich ->
    // file) +8 %, A, B and D unchanged within noise (benches/RESULTS.md). The option needs
    // `--cfg tokio_unstable` (set in .cargo/config.toml); a build without it keeps the slot.
    #[cfg(tokio_unstable)]
    builder.disable_lifo_slot();
    builder.build().context("cannot start the async runtime")
}

/// SIGINT/SIGTERM start a graceful drain; a second one exits at once. SIGHUP reloads the
/// pipeline file (the controller logs and counts the outcome); SIGUSR1 asks file sinks to
/// reopen their files (after logrotate) and enrichment tables to reload theirs.
/// SIGHUP waits for the reloader sent on the channel returned (the pipeline has started).
fn spawn_signal_handlers(
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::sync::oneshot::Sender<sluice::topology::Reloader>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let mut usr1 = signal(SignalKind::user_defined1()).context("cannot watch SIGUSR1")?;
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
    let (reloads, reloader) = tokio::sync::oneshot::channel::<sluice::topology::Reloader>();
    tokio::spawn(async move {
        let Ok(reloader) = reloader.await else { return };
        while hangup.recv().await.is_some() {
            tracing::info!("sighup: reloading the pipeline file");
            let _ = reloader.reload().await;
        }
    });
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            tracing::info!("sigusr1: reopening files, reloading enrichment tables");
            sluice::topology::reopen();
        }
    });
    Ok(reloads)
}
