//! Enrichment tables (`[enrichment_tables.ID]`): data loaded from files that transforms
//! look events up in — a CSV file keyed by a column (`csv.rs`), a MaxMind `.mmdb`
//! database keyed by IP address (`geoip.rs`). docs/enrichment.md.
//!
//! A table is built at load (no IO) as an empty [`TableHandle`] that transforms keep; the
//! topology fills it at start (a file that cannot be loaded fails the start) and then runs
//! [`TableHandle::watch`], which reloads the file when its modification time or size
//! changes (checked every `reload_interval_secs`) or on SIGUSR1 ([`request_reload`]). A
//! reload that fails keeps the table in use, is logged and counted in
//! `enrichment_table_reloads_total{result="failed"}`. Each successful load bumps the
//! handle's generation, which tells lookup caches to forget what they hold.

pub mod csv;
pub mod geoip;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use crate::event::Map;
use crate::telemetry::{self, Counter};

/// A row or database record: field name → value.
pub type Record = Arc<Map>;

/// A loaded table.
pub trait Table: Send + Sync + std::fmt::Debug {
    /// The record `key` names: the key column's value (CSV), an IP address (GeoIP).
    fn get(&self, key: &str) -> Option<Record>;

    /// The one record whose fields equal every `(field, value)` condition.
    fn find(&self, conditions: &[(&str, &str)]) -> Result<Record, LookupError>;
}

/// Why a lookup by conditions found no single record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("no enrichment table `{0}`")]
    UnknownTable(String),
    #[error("no record matches")]
    NotFound,
    #[error("more than one record matches")]
    Ambiguous,
    #[error("the table cannot be searched by `{0}`")]
    UnsupportedCondition(String),
}

/// Why a table's file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: larger than max_bytes ({max} bytes)")]
    TooLarge { path: PathBuf, max: u64 },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// How a table's file is read: its path, how often to check it, and the parser.
pub trait Loader: Send + Sync + std::fmt::Debug {
    fn path(&self) -> &Path;
    /// How often the file's modification time is checked; zero: only on SIGUSR1.
    fn reload_interval(&self) -> Duration;
    fn load(&self) -> Result<Box<dyn Table>, LoadError>;
}

/// Bumped by SIGUSR1 (and `POST /v1/reopen`): every table reloads its file.
static RELOAD_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Asks every enrichment table to reload its file now (SIGUSR1).
pub fn request_reload() {
    RELOAD_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// A table as transforms hold it: shared, replaced as a whole on reload.
#[derive(Debug, Clone)]
pub struct TableHandle(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    id: String,
    current: RwLock<Option<Arc<dyn Table>>>,
    /// The file's stamp when the last load (successful or not) began.
    loaded: std::sync::Mutex<Option<FileStamp>>,
    generation: AtomicU64,
    reloaded: Counter,
    failed: Counter,
}

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> std::io::Result<FileStamp> {
    let meta = std::fs::metadata(path)?;
    Ok(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

impl TableHandle {
    /// An empty table named `id`: lookups miss until [`TableHandle::open`].
    pub fn new(id: &str) -> Self {
        let reloads = |result| {
            telemetry::counter(
                "enrichment_table_reloads_total",
                &[("table", id), ("result", result)],
            )
        };
        TableHandle(Arc::new(Shared {
            id: id.to_string(),
            current: RwLock::new(None),
            loaded: Default::default(),
            generation: AtomicU64::new(0),
            reloaded: reloads("ok"),
            failed: reloads("failed"),
        }))
    }

    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// Changes whenever the table is replaced: caches of lookups compare it.
    pub fn generation(&self) -> u64 {
        self.0.generation.load(Ordering::Acquire)
    }

    /// The table in use, if loaded.
    pub fn current(&self) -> Option<Arc<dyn Table>> {
        self.0
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn get(&self, key: &str) -> Option<Record> {
        self.current()?.get(key)
    }

    fn replace(&self, table: Box<dyn Table>) {
        *self.0.current.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::from(table));
        self.0.generation.fetch_add(1, Ordering::Release);
    }

    /// Notes the stamp of the file about to be loaded: a change during the load shows as
    /// a newer stamp at the next check.
    fn note_stamp(&self, loader: &dyn Loader) {
        *self.0.loaded.lock().unwrap_or_else(|e| e.into_inner()) = stamp(loader.path()).ok();
    }

    fn loaded_stamp(&self) -> Option<FileStamp> {
        *self.0.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The first load, at start: an error fails the start.
    pub fn open(&self, loader: &dyn Loader) -> Result<(), LoadError> {
        self.note_stamp(loader);
        self.replace(loader.load()?);
        Ok(())
    }

    /// Loads the file again; on failure keeps the table in use, logs and counts. A failed
    /// file is tried again by [`TableHandle::watch`] only once it changes again.
    pub fn reload(&self, loader: &dyn Loader) -> bool {
        self.note_stamp(loader);
        match loader.load() {
            Ok(table) => {
                self.replace(table);
                self.0.reloaded.inc(1);
                tracing::info!(table = %self.0.id, path = %loader.path().display(), "enrichment table reloaded");
                true
            }
            Err(error) => {
                self.0.failed.inc(1);
                tracing::warn!(table = %self.0.id, %error, "enrichment table reload failed; the previous table stays in use");
                false
            }
        }
    }

    /// Reloads the file, from the blocking thread pool, when its stamp differs from the
    /// last load's (checked every `reload_interval`) or SIGHUP asked since this call (checked
    /// every second), until `stop` fires.
    pub fn watch(
        self,
        loader: Arc<dyn Loader>,
        stop: tokio_util::sync::CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        // Read now, not when first polled: a signal sent in between is not lost.
        let last_hangup = RELOAD_GENERATION.load(Ordering::Relaxed);
        self.watch_from(loader, stop, last_hangup)
    }

    async fn watch_from(
        self,
        loader: Arc<dyn Loader>,
        stop: tokio_util::sync::CancellationToken,
        mut last_hangup: u64,
    ) {
        let interval = loader.reload_interval();
        let mut last_check = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let hangup = RELOAD_GENERATION.load(Ordering::Relaxed);
            let forced = hangup != last_hangup;
            let due = !interval.is_zero() && last_check.elapsed() >= interval;
            if !forced && !due {
                continue;
            }
            last_hangup = hangup;
            last_check = tokio::time::Instant::now();
            let now = stamp(loader.path()).ok();
            if !forced && (now.is_none() || now == self.loaded_stamp()) {
                continue;
            }
            let (handle, reader) = (self.clone(), loader.clone());
            let _ = tokio::task::spawn_blocking(move || handle.reload(&*reader)).await;
        }
    }
}

/// Every table of a pipeline, by id.
#[derive(Debug, Clone, Default)]
pub struct Tables(HashMap<String, TableHandle>);

impl Tables {
    pub fn insert(&mut self, handle: TableHandle) {
        self.0.insert(handle.id().to_string(), handle);
    }

    pub fn get(&self, id: &str) -> Option<&TableHandle> {
        self.0.get(id)
    }

    /// The ids, sorted, for error messages.
    pub fn ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.0.keys().map(String::as_str).collect();
        ids.sort_unstable();
        ids
    }
}

/// The record of `table` matching every `(field, value)` condition, as the remap
/// language's `get_enrichment_table_record(table, conditions)` returns it: an error when
/// none or more than one matches.
pub fn get_enrichment_table_record(
    tables: &Tables,
    table: &str,
    conditions: &[(&str, &str)],
) -> Result<Record, LookupError> {
    let handle = tables
        .get(table)
        .ok_or_else(|| LookupError::UnknownTable(table.to_string()))?;
    handle
        .current()
        .ok_or(LookupError::NotFound)?
        .find(conditions)
}

/// Reads a table's whole file, refusing one larger than `max_bytes`.
fn read_bounded(path: &Path, max_bytes: u64) -> Result<Vec<u8>, LoadError> {
    use std::io::Read;
    let read_error = |source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > max_bytes {
        return Err(LoadError::TooLarge {
            path: path.to_path_buf(),
            max: max_bytes,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests;
