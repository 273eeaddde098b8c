//! The `store` sink: an embedded, searchable event store on local disk, built on tantivy.
//!
//! Events are indexed into time partitions (one tantivy index each, see [`index`]), committed
//! in groups (once no batch came for 5 ms, at most every 20 ms; under a steady stream every
//! `commit_interval_ms`, or sooner after `commit_max_events`), and only then acknowledged:
//! the sink keeps the appended batches' tokens (not their events, which the index holds)
//! until the commit returns, so an acknowledgement means "committed". A tantivy commit atomically
//! replaces the index's `meta.json`, so after kill -9 a partition opens at its last commit:
//! what is lost is exactly the uncommitted, never-acknowledged tail.
//!
//! Each incoming batch is also published to the [`tail::TailHub`] before it is indexed, so
//! live tail never waits for disk. Queries (`/v1/query`, `/v1/histogram`, `/v1/top`) read
//! committed data through [`search`]; the HTTP side is in [`http`], the CLI's client in
//! [`client`].

pub mod client;
pub mod columns;
pub mod http;
pub mod index;
pub mod query;
pub mod search;
mod sink;
pub mod tail;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Deserialize;

use crate::channel::BatchReceiver;
use crate::event::now_nanos;
use crate::field_error::{at_least_one, FieldError};
use crate::sinks::{SinkContext, SinkError};
use crate::telemetry::{self, Counter};

pub use index::{Fields, Partition};
pub use query::{Query, QueryError};
pub use writer::StoreWriter;

/// `[sinks.ID] type = "store"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Directory holding the partitions.
    pub path: String,
    /// Length of a partition (arrival time), e.g. "1h".
    #[serde(default = "default_partition")]
    pub partition: DurationSetting,
    /// Partitions older than this are dropped, e.g. "7d".
    #[serde(default = "default_retention_age")]
    pub retention_age: DurationSetting,
    /// When the partitions together take more bytes than this, the oldest are dropped.
    #[serde(default)]
    pub retention_bytes: Option<u64>,
    /// Longest time an event waits for its commit (and so its acknowledgement).
    #[serde(default = "default_commit_interval_ms")]
    pub commit_interval_ms: u64,
    /// Commit sooner once this many events are waiting.
    #[serde(default = "default_commit_max_events")]
    pub commit_max_events: usize,
    /// Indexing memory budget of the partition being written.
    #[serde(default = "default_writer_memory_bytes")]
    pub writer_memory_bytes: usize,
    /// Events a live-tail client may have queued before its newer events are dropped (and
    /// it is told so in-band).
    #[serde(default = "default_tail_buffer_events")]
    pub tail_buffer_events: usize,
    /// How partitions are stored: `"tantivy"` (an inverted index), `"columns"` (blocks of
    /// columns with bloom filters: see [`columns`]), or `"auto"` (the default: the engine of
    /// the partitions already in the directory, columns for a new store).
    #[serde(default = "default_engine")]
    pub engine: Engine,
}

/// The store's on-disk engine; a store directory is read by the engine that wrote it (the
/// other's partitions are left alone, with a warning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Tantivy,
    Columns,
    /// The engine of the newest partition already in the directory, or columns for a new
    /// store: a store written before columns were the default keeps being read.
    Auto,
}

impl Engine {
    /// The engine to open `partitions` (newest last) with: `Auto` chosen, others as they are.
    fn resolve(self, partitions: &[(i64, PathBuf)]) -> Engine {
        if self != Engine::Auto {
            return self;
        }
        for (_, path) in partitions.iter().rev() {
            if columns::is_columns_partition(path) {
                return Engine::Columns;
            }
            if path.join("meta.json").exists() {
                return Engine::Tantivy;
            }
        }
        Engine::Columns
    }
}

fn default_engine() -> Engine {
    Engine::Auto
}

/// A duration written as text (`"90s"`, `"15m"`, `"2h"`, `"7d"`) or as seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DurationSetting {
    Secs(u64),
    Text(String),
}

impl DurationSetting {
    pub fn secs(&self) -> Option<u64> {
        match self {
            Self::Secs(s) => Some(*s),
            Self::Text(t) => parse_duration(t).map(|d| d.as_secs()),
        }
    }
}

/// Parses `500ms`, `30s`, `15m`, `2h`, `7d`, `1w`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let ms = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return None,
    };
    n.checked_mul(ms).map(Duration::from_millis)
}

fn default_partition() -> DurationSetting {
    DurationSetting::Text("1h".into())
}
fn default_retention_age() -> DurationSetting {
    DurationSetting::Text("7d".into())
}
fn default_commit_interval_ms() -> u64 {
    1000
}
fn default_commit_max_events() -> usize {
    200_000
}
fn default_writer_memory_bytes() -> usize {
    64 * 1024 * 1024
}
fn default_tail_buffer_events() -> usize {
    1000
}

impl StoreConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.path.is_empty() {
            return Err(FieldError::new("path", "must not be empty"));
        }
        let duration = |field: &str, setting: &DurationSetting| match setting.secs() {
            Some(s) if s > 0 => Ok(s),
            _ => Err(FieldError::new(
                field,
                "expected a duration such as \"1h\", \"7d\" or a number of seconds (more than 0)",
            )),
        };
        let partition = duration("partition", &self.partition)?;
        if partition < 60 {
            return Err(FieldError::new("partition", "must be at least 1m"));
        }
        duration("retention_age", &self.retention_age)?;
        at_least_one(&[
            ("commit_interval_ms", self.commit_interval_ms),
            ("commit_max_events", self.commit_max_events as u64),
        ])?;
        if self.writer_memory_bytes < 16 * 1024 * 1024 {
            return Err(FieldError::new(
                "writer_memory_bytes",
                "must be at least 16777216 (16 MiB, tantivy's minimum)",
            ));
        }
        at_least_one(&[("tail_buffer_events", self.tail_buffer_events as u64)])?;
        Ok(())
    }

    pub fn options(&self) -> StoreOptions {
        StoreOptions {
            partition_secs: self.partition.secs().unwrap_or(3600).max(60) as i64,
            retention_age_secs: self.retention_age.secs().map(|s| s as i64),
            retention_bytes: self.retention_bytes,
            writer_memory_bytes: self.writer_memory_bytes,
            tail_buffer_events: self.tail_buffer_events,
            engine: self.engine,
        }
    }

    /// Opens (or creates) the store; done by the topology at start, before the API serves.
    pub fn open(&self, id: &str) -> Result<Arc<Store>, StoreError> {
        Store::open(id, Path::new(&self.path), self.options())
    }

    pub async fn run(
        self,
        store: Arc<Store>,
        rx: BatchReceiver,
        ctx: SinkContext,
    ) -> Result<(), SinkError> {
        sink::run_sink(
            store,
            rx,
            ctx,
            Duration::from_millis(self.commit_interval_ms),
            self.commit_max_events,
        )
        .await
    }
}

/// The runtime knobs of a store, from [`StoreConfig`] (tests and benches build them directly).
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub partition_secs: i64,
    pub retention_age_secs: Option<i64>,
    pub retention_bytes: Option<u64>,
    pub writer_memory_bytes: usize,
    pub tail_buffer_events: usize,
    pub engine: Engine,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            partition_secs: 3600,
            retention_age_secs: Some(7 * 86_400),
            retention_bytes: None,
            writer_memory_bytes: default_writer_memory_bytes(),
            tail_buffer_events: default_tail_buffer_events(),
            // Tests and benches that do not choose get tantivy; a config's default is `auto`.
            engine: Engine::Tantivy,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use store directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("index error: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("{0}")]
    Query(#[from] QueryError),
    #[error("{0}")]
    BadRequest(String),
    /// A request reached its cost bound (`search::Budget`).
    #[error("{0}")]
    CostLimit(String),
    #[error(transparent)]
    Block(#[from] columns::BlockError),
}

/// An open store: the partitions (shared with queries) and the live-tail hub.
pub struct Store {
    pub id: Arc<str>,
    pub fields: Fields,
    dir: PathBuf,
    options: StoreOptions,
    /// Ascending by start (the tantivy engine's).
    partitions: RwLock<Vec<Arc<Partition>>>,
    /// Ascending by start (the column engine's).
    column_partitions: RwLock<Vec<Arc<columns::Partition>>>,
    pub tail: tail::TailHub,
    dropped_age: Counter,
    dropped_size: Counter,
    damaged: Counter,
    implausible_times: Counter,
    commits: Counter,
}

impl Store {
    /// Opens every partition under `dir`; a partition that fails to open is moved to
    /// `dir/damaged/`, counted and logged (the store still starts).
    pub fn open(id: &str, dir: &Path, options: StoreOptions) -> Result<Arc<Store>, StoreError> {
        let dir_err = |source| StoreError::Dir {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(dir_err)?;
        let fields = Fields::new();
        let damaged = telemetry::counter("store_partitions_damaged_total", &[("component_id", id)]);
        let mut partitions = Vec::new();
        let mut entries: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)
            .map_err(dir_err)?
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| {
                let start = index::parse_partition_name(e.file_name().to_str()?)?;
                Some((start, e.path()))
            })
            .collect();
        entries.sort();
        let mut options = options;
        options.engine = options.engine.resolve(&entries);
        tracing::info!(component_id = %id, engine = ?options.engine, "store engine");
        let mut column_partitions = Vec::new();
        for (start, path) in entries {
            let columns = columns::is_columns_partition(&path);
            if columns != (options.engine == Engine::Columns) {
                tracing::warn!(component_id = %id, partition = %path.display(), engine = ?options.engine, "store partition written by the other engine: left alone, not searched");
                continue;
            }
            if columns {
                let partition = open_column_partition(id, dir, &path, start, &damaged)?;
                column_partitions.push(Arc::new(partition));
                continue;
            }
            match Partition::open(&path, start, &fields, false) {
                Ok(p) => partitions.push(Arc::new(p)),
                Err(error) => {
                    damaged.inc(1);
                    let aside = move_aside(dir, &path);
                    tracing::warn!(component_id = %id, partition = %path.display(), moved_to = %aside.display(), %error, "damaged store partition moved aside");
                }
            }
        }
        let tail = tail::TailHub::new(id, options.tail_buffer_events);
        Ok(Arc::new(Store {
            id: Arc::from(id),
            fields,
            dir: dir.to_path_buf(),
            partitions: RwLock::new(partitions),
            column_partitions: RwLock::new(column_partitions),
            tail,
            dropped_age: telemetry::counter(
                "store_partitions_dropped_total",
                &[("component_id", id), ("reason", "age")],
            ),
            dropped_size: telemetry::counter(
                "store_partitions_dropped_total",
                &[("component_id", id), ("reason", "size")],
            ),
            damaged,
            implausible_times: telemetry::counter(
                "store_implausible_timestamps_total",
                &[("component_id", id)],
            ),
            commits: telemetry::counter("store_commits_total", &[("component_id", id)]),
            options,
        }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The partitions, oldest first (a snapshot: retention may drop some meanwhile, their
    /// open files stay readable until the snapshot is dropped).
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The column engine's partitions, oldest first (a snapshot, as [`Store::partitions`]).
    pub fn column_partitions(&self) -> Vec<Arc<columns::Partition>> {
        self.column_partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn engine(&self) -> Engine {
        self.options.engine
    }

    /// Partitions (and, for the column engine, blocks) found damaged and moved aside.
    pub fn damaged_partitions(&self) -> u64 {
        self.damaged.get()
    }

    /// Committed events over all partitions.
    pub fn num_events(&self) -> u64 {
        let columns: u64 = self
            .column_partitions()
            .iter()
            .map(|p| p.num_events())
            .sum();
        columns
            + self
                .partitions()
                .iter()
                .map(|p| p.reader.searcher().num_docs())
                .sum::<u64>()
    }

    pub fn disk_bytes(&self) -> u64 {
        let columns: u64 = self
            .column_partitions()
            .iter()
            .map(|p| p.disk_bytes())
            .sum();
        columns
            + self
                .partitions()
                .iter()
                .map(|p| p.disk_bytes())
                .sum::<u64>()
    }

    pub fn writer(self: &Arc<Self>) -> StoreWriter {
        StoreWriter::new(self.clone())
    }

    fn partition_start(&self, now_secs: i64) -> i64 {
        now_secs.div_euclid(self.options.partition_secs) * self.options.partition_secs
    }

    /// Drops whole partitions older than the retention age, then the oldest while the
    /// total is above the retention size; never the partition being written (`keep`).
    pub fn enforce_retention(&self, now_secs: i64, keep: Option<i64>) -> Vec<i64> {
        let mut dropped = self.retain(&self.partitions, now_secs, keep);
        dropped.extend(self.retain(&self.column_partitions, now_secs, keep));
        dropped
    }

    fn retain<P: Retained>(
        &self,
        partitions: &RwLock<Vec<Arc<P>>>,
        now_secs: i64,
        keep: Option<i64>,
    ) -> Vec<i64> {
        let mut dropped = Vec::new();
        let mut partitions = partitions.write().unwrap_or_else(|e| e.into_inner());
        if let Some(age) = self.options.retention_age_secs {
            let cutoff = now_secs - age;
            partitions.retain(|p| {
                let expired = p.start_secs() + self.options.partition_secs <= cutoff
                    && Some(p.start_secs()) != keep;
                if expired {
                    self.dropped_age.inc(1);
                    dropped.push((p.clone(), "age"));
                }
                !expired
            });
        }
        if let Some(max) = self.options.retention_bytes {
            let mut sizes: Vec<u64> = partitions.iter().map(|p| p.disk_bytes()).collect();
            let mut total: u64 = sizes.iter().sum();
            while total > max && !partitions.is_empty() && Some(partitions[0].start_secs()) != keep
            {
                let p = partitions.remove(0);
                total -= sizes.remove(0);
                self.dropped_size.inc(1);
                dropped.push((p, "size"));
            }
        }
        drop(partitions);
        dropped
            .into_iter()
            .map(|(p, reason)| {
                tracing::info!(component_id = %self.id, partition = %p.dir().display(), reason, "store partition dropped by retention");
                if let Err(error) = std::fs::remove_dir_all(p.dir()) {
                    tracing::warn!(component_id = %self.id, partition = %p.dir().display(), %error, "cannot remove dropped partition");
                }
                p.start_secs()
            })
            .collect()
    }

    fn add_partition(&self, partition: Arc<Partition>) {
        add_in_order(&self.partitions, partition);
    }

    fn add_column_partition(&self, partition: Arc<columns::Partition>) {
        add_in_order(&self.column_partitions, partition);
    }

    fn existing_columns(&self, start: i64) -> Option<Arc<columns::Partition>> {
        self.column_partitions()
            .into_iter()
            .find(|p| p.start_secs == start)
    }

    fn existing(&self, start: i64) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|p| p.start_secs == start)
            .cloned()
    }
}

/// Adds `partition` to `list`, kept in time order, unless one for its interval is there.
fn add_in_order<P: Retained>(list: &RwLock<Vec<Arc<P>>>, partition: Arc<P>) {
    let mut list = list.write().unwrap_or_else(|e| e.into_inner());
    if !list
        .iter()
        .any(|p| p.start_secs() == partition.start_secs())
    {
        list.push(partition);
        list.sort_by_key(|p| p.start_secs());
    }
}

/// What retention needs of a partition, of either engine.
trait Retained {
    fn start_secs(&self) -> i64;
    fn dir(&self) -> &Path;
    fn disk_bytes(&self) -> u64;
}

impl Retained for Partition {
    fn start_secs(&self) -> i64 {
        self.start_secs
    }
    fn dir(&self) -> &Path {
        &self.dir
    }
    fn disk_bytes(&self) -> u64 {
        Partition::disk_bytes(self)
    }
}

impl Retained for columns::Partition {
    fn start_secs(&self) -> i64 {
        self.start_secs
    }
    fn dir(&self) -> &Path {
        &self.dir
    }
    fn disk_bytes(&self) -> u64 {
        columns::Partition::disk_bytes(self)
    }
}

/// Opens (or creates) the column engine's partition at `path`, moving its damaged blocks
/// aside (counted in `damaged`, logged).
fn open_column_partition(
    id: &str,
    dir: &Path,
    path: &Path,
    start: i64,
    damaged: &Counter,
) -> Result<columns::Partition, StoreError> {
    let (partition, opened) =
        columns::Partition::open(path, start).map_err(|source| StoreError::Dir {
            path: path.to_path_buf(),
            source,
        })?;
    for (block, error) in opened.damaged {
        damaged.inc(1);
        let aside = move_aside(dir, &block);
        tracing::warn!(component_id = %id, block = %block.display(), moved_to = %aside.display(), %error, "damaged store block moved aside");
    }
    Ok(partition)
}

fn move_aside(dir: &Path, path: &Path) -> PathBuf {
    let damaged = dir.join("damaged");
    let _ = std::fs::create_dir_all(&damaged);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target = damaged.join(format!("{name}-{}", now_nanos()));
    match std::fs::rename(path, &target) {
        Ok(()) => target,
        Err(_) => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_table() {
        let cases = [
            ("15m", Some(900)),
            ("2h", Some(7200)),
            ("7d", Some(604_800)),
            ("30", Some(30)),
            ("30s", Some(30)),
            ("1w", Some(604_800)),
            ("h", None),
            ("5y", None),
            ("", None),
        ];
        for (text, secs) in cases {
            assert_eq!(parse_duration(text).map(|d| d.as_secs()), secs, "{text}");
        }
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    }

    #[test]
    fn config_errors_name_the_field() {
        let base = r#"path = "x""#;
        let cases = [
            ("partition = \"10s\"", "partition"),
            ("partition = \"soon\"", "partition"),
            ("retention_age = 0", "retention_age"),
            ("commit_interval_ms = 0", "commit_interval_ms"),
            ("writer_memory_bytes = 1000", "writer_memory_bytes"),
            ("tail_buffer_events = 0", "tail_buffer_events"),
        ];
        for (line, field) in cases {
            let config: StoreConfig = toml::from_str(&format!("{base}\n{line}")).expect("parses");
            assert_eq!(config.validate().expect_err(line).field, field, "{line}");
        }
        let ok: StoreConfig = toml::from_str(base).expect("parses");
        ok.validate().expect("defaults are valid");
    }
}
