//! The command line's shape: subcommands, their arguments and defaults (clap). What each
//! one does is in main.rs.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use sluice::config::DEFAULT_PIPELINE_PATH;

#[derive(Parser)]
#[command(name = "sluice", version, about = "A log aggregation router")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run the router on a pipeline until SIGINT/SIGTERM or until every source has ended.
    /// SIGHUP reloads the pipeline file (docs/reload.md); SIGUSR1 reopens files.
    Up {
        /// Pipeline file (TOML). The default falls back to the embedded default pipeline
        /// when the file does not exist.
        #[arg(long, short, default_value = DEFAULT_PIPELINE_PATH)]
        config: PathBuf,
        /// Reload the pipeline file when it changes (polled once a second).
        #[arg(long)]
        watch_config: bool,
    },
    /// Ask a running router to reload its pipeline file (`POST /v1/reload`). Exits non-zero
    /// when the router refused the new pipeline (it keeps running the old one) or cannot be
    /// reached.
    Reload {
        /// The router's API address.
        #[arg(long, default_value = sluice::alert::cli::DEFAULT_API_URL)]
        url: String,
        /// The API token (an `admin` token), when the router's API asks for one.
        #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[command(flatten)]
        tls: ClientTlsArgs,
    },
    /// Check pipeline files without running them; exit non-zero if any is invalid.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run the unit tests (`[[tests]]`) of pipeline files, or of files of tests beside
    /// them, through the pipeline's transforms without sockets or files
    /// (docs/testing-pipelines.md). Exits 0 when every test passed, 1 when one failed, 2
    /// when a pipeline or a test is invalid.
    Test {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Ship stdin's lines to a router's `POST /v1/logs`, spooling to disk while it is down.
    /// Exits 0 once everything was acknowledged after EOF.
    Ship {
        /// The router: its base URL (`/v1/logs` is added) or its ingest endpoint.
        #[arg(long, default_value = sluice::ship::DEFAULT_URL)]
        to: String,
        /// `app` field of every line.
        #[arg(long)]
        app: Option<String>,
        #[command(flatten)]
        ship: ShipArgs,
    },
    /// Run a command and ship its stdout and stderr lines (tagged `stream`), with start and
    /// exit events; SIGINT/SIGTERM are forwarded; exits with the command's exit code.
    /// Without `--to`, the router runs in this process on `--config` (by default the
    /// embedded default pipeline) and receives the lines on the pipeline's http source.
    Run {
        /// A router: its base URL (e.g. http://127.0.0.1:8080; `/v1/logs` is added) or its
        /// ingest endpoint.
        #[arg(long)]
        to: Option<String>,
        /// The local pipeline, when there is no `--to`; it needs an http source.
        #[arg(long, short, default_value = DEFAULT_PIPELINE_PATH, conflicts_with = "to")]
        config: PathBuf,
        /// `app` field of every line.
        #[arg(long)]
        app: String,
        #[command(flatten)]
        ship: ShipArgs,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Search a router's store, newest first: a table (time, level, app, message) or JSON
    /// lines. QUERY: `app:web level:error`, `"connection refused"`, `status:>=500`, ...
    #[cfg(feature = "store")]
    Query {
        #[command(flatten)]
        look: LookArgs,
        /// Only events from this long ago until now (15m, 2h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// Only events at or after this time (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Only events before this time (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        /// At most this many events.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// A leading `-` negates (`-level:info`), so hyphens start a query, not an option.
        #[arg(default_value = "", allow_hyphen_values = true)]
        query: String,
    },
    /// Follow a router's live events matching QUERY (all when omitted) until interrupted.
    /// When the router ends the stream (it stopped or restarts), say so and reconnect,
    /// waiting 1 s, then twice as long after each failure, up to 30 s.
    #[cfg(feature = "store")]
    Tail {
        #[command(flatten)]
        look: LookArgs,
        /// Exit when the router ends the stream instead of reconnecting.
        #[arg(long)]
        no_retry: bool,
        /// A leading `-` negates (`-level:info`), so hyphens start a query, not an option.
        #[arg(default_value = "", allow_hyphen_values = true)]
        query: String,
    },
    /// Follow the events leaving components of a running router, live: each OUTPUT is a
    /// component id (its default output) or ID.NAME (a named output), with an optional
    /// QUERY (after `--`, or with `-q`). Reconnects like `sluice tail`.
    #[cfg(feature = "store")]
    Tap {
        #[command(flatten)]
        look: LookArgs,
        /// Exit when the router ends the stream instead of reconnecting.
        #[arg(long)]
        no_retry: bool,
        /// Follow what these components read (their inputs), rather than what they send.
        #[arg(long, value_name = "COMPONENT")]
        inputs_of: Vec<String>,
        /// Only events matching this query (the store's query language).
        #[arg(short, long, default_value = "", allow_hyphen_values = true)]
        query: String,
        /// Outputs to follow: ID or ID.OUTPUT.
        #[arg(value_name = "OUTPUT")]
        outputs: Vec<String>,
    },
    /// List a router's pending and firing alerts (`GET /v1/alerts` on its API listener).
    Alerts {
        /// The router's API address.
        #[arg(long, default_value = sluice::alert::cli::DEFAULT_API_URL)]
        url: String,
        /// The API token (a `read` token), when the router's API asks for one.
        #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[command(flatten)]
        tls: ClientTlsArgs,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show what the `parse` transform makes of a sample of a log file: the layouts
    /// detected and their share of lines, the share of lines with a level and with a
    /// timestamp, the levels found, and lines that gave no level or no timestamp.
    ParseCheck {
        /// The log file; `-` reads stdin.
        file: PathBuf,
        /// How many lines (from the start) to sample.
        #[arg(long, default_value_t = sluice::transforms::parse_check::DEFAULT_LINES)]
        lines: usize,
        /// The parse transform's `format`: auto, json, logfmt, syslog or access_log.
        #[arg(long, default_value = "auto")]
        format: String,
        /// The zone of times written without an offset (the transform's `timezone`).
        #[arg(long, default_value = "UTC")]
        timezone: String,
    },
    /// Inspect disk buffers.
    Buffer {
        #[command(subcommand)]
        command: BufferCommand,
    },
}

/// Options shared by `sluice ship` and `sluice run`.
#[derive(clap::Args)]
pub(crate) struct ShipArgs {
    /// `instance` field of every line.
    #[arg(long)]
    pub(crate) instance: Option<String>,
    /// Spool directory [default: $TMPDIR/sluice-ship-$USER/APP[-INSTANCE]].
    #[arg(long)]
    pub(crate) spool: Option<PathBuf>,
    /// Spool size bound; when full, reading pauses (nothing is dropped).
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    pub(crate) spool_max_bytes: u64,
    /// After EOF, how long to wait for the spool to be acknowledged before exiting 1.
    #[arg(long, default_value_t = 60)]
    pub(crate) drain_timeout_secs: u64,
    /// Longest wait between retries.
    #[arg(long, default_value_t = 5)]
    pub(crate) max_backoff_secs: u64,
}

impl ShipArgs {
    pub(crate) fn config(&self, to: &str, app: Option<&str>) -> sluice::ship::ShipConfig {
        let mut config = sluice::ship::ShipConfig::new(
            to.to_string(),
            app.map(str::to_string),
            self.instance.clone(),
        );
        if let Some(dir) = &self.spool {
            config.spool_dir = dir.clone();
        }
        config.spool_max_bytes = self.spool_max_bytes;
        config.retry.max_backoff_secs = self.max_backoff_secs.max(1);
        config
    }
}

/// Options shared by `sluice query` and `sluice tail`.
#[cfg(feature = "store")]
#[derive(clap::Args)]
pub(crate) struct LookArgs {
    /// The router's API address.
    #[arg(long, default_value = sluice::store::client::DEFAULT_URL)]
    pub(crate) url: String,
    /// One JSON event per line instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// The API token (a `read` token), when the router's API asks for one.
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    #[command(flatten)]
    pub(crate) tls: ClientTlsArgs,
}

/// How the CLI talks to a router API on https:// (`sluice query`, `tail`, `tap`, `alerts`,
/// `reload`).
#[derive(clap::Args)]
pub(crate) struct ClientTlsArgs {
    /// For an https:// URL: a PEM CA certificate that signed the router's, trusted besides
    /// the system's.
    #[arg(long, env = "SLUICE_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// For an API that requires client certificates: the PEM certificate to present, with
    /// --key-file.
    #[arg(long, env = "SLUICE_CERT_FILE")]
    cert_file: Option<PathBuf>,
    /// The PEM private key of --cert-file.
    #[arg(long, env = "SLUICE_KEY_FILE")]
    key_file: Option<PathBuf>,
}

impl ClientTlsArgs {
    /// The flags, an empty value (an exported but empty variable) counting as unset.
    pub(crate) fn config(self) -> sluice::tls::CliTls {
        let set = |p: Option<PathBuf>| p.filter(|p| !p.as_os_str().is_empty());
        sluice::tls::CliTls {
            ca_file: set(self.ca_file),
            cert_file: set(self.cert_file),
            key_file: set(self.key_file),
        }
    }
}

#[derive(Subcommand)]
pub(crate) enum BufferCommand {
    /// Report a disk buffer's records, bytes, acknowledged position and damage, without
    /// changing it (stop the router first). Exits 1 if damage was found.
    Check { path: PathBuf },
}
