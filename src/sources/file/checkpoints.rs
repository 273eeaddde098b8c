//! The checkpoint store: per file identity, the offset up to which every line was
//! acknowledged, kept in one JSON file replaced atomically.
//!
//! Written at most every [`SAVE_INTERVAL`] while acknowledgements advance and once at
//! shutdown; a kill between two writes re-reads at most what was acknowledged since
//! (duplicates, never loss). A file that cannot be parsed is reported, counted and set
//! aside (`checkpoints.json.damaged`): the source starts as if it had none, since reading
//! again is safe and refusing to start is not.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::fingerprint::Fingerprint;
use crate::sources::checkpoint::write_atomic;

/// How often the store is rewritten while acknowledgements advance.
pub(super) const SAVE_INTERVAL: Duration = Duration::from_millis(50);

/// Entries of files not seen for this long are dropped, so the store does not grow with
/// every rotated file ever read.
const FORGET_AFTER_SECS: u64 = 7 * 24 * 3600;

const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    files: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    fingerprint: Fingerprint,
    /// Where the file was last seen: for people reading the store, not for matching.
    path: PathBuf,
    offset: u64,
    /// A compressed file read to its end and acknowledged: never read again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    done: bool,
    /// Unix seconds of the last update.
    updated: u64,
}

pub(super) struct Checkpoints {
    path: Option<PathBuf>,
    entries: HashMap<Fingerprint, Entry>,
    dirty: bool,
    last_save: Instant,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Checkpoints {
    /// Reads the store of component `id` under `data_dir` (none: remember nothing).
    pub(super) fn load(data_dir: Option<&Path>, id: &str) -> Self {
        let path = data_dir.map(|d| d.join(id).join("checkpoints.json"));
        let mut entries = HashMap::new();
        if let Some(path) = &path {
            match std::fs::read(path) {
                Ok(bytes) => match serde_json::from_slice::<OnDisk>(&bytes) {
                    Ok(disk) if disk.version == VERSION => {
                        entries = disk.files.into_iter().map(|e| (e.fingerprint, e)).collect();
                    }
                    Ok(disk) => damaged(path, id, &format!("unknown version {}", disk.version)),
                    Err(error) => damaged(path, id, &error.to_string()),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => damaged(path, id, &error.to_string()),
            }
        }
        Self {
            path,
            entries,
            dirty: false,
            last_save: Instant::now(),
        }
    }

    /// The acknowledged offset of the file known as `fingerprint`; an offset past the
    /// file's end means it is not the same file. A file checkpointed while short (by device
    /// and inode) that grew past the checksum's bytes while the router was stopped is not
    /// found: it is read again from its start (at most 256 bytes twice), since a device
    /// and inode reused by another file would otherwise skip that file's first lines.
    pub(super) fn offset(&self, fingerprint: &Fingerprint, len: u64) -> Option<u64> {
        self.entries
            .get(fingerprint)
            .map(|e| e.offset)
            .filter(|offset| *offset <= len)
    }

    /// Records that the file known as `fingerprint` was acknowledged up to `offset`.
    pub(super) fn set(&mut self, fingerprint: Fingerprint, path: &Path, offset: u64) {
        let entry = Entry {
            fingerprint,
            path: path.to_path_buf(),
            offset,
            done: false,
            updated: now_secs(),
        };
        self.entries.insert(fingerprint, entry);
        self.dirty = true;
    }

    /// As [`Checkpoints::set`], unless the entry is already further: an earlier content's
    /// late acknowledgements must not move back the checkpoint of a copy read since.
    pub(super) fn advance(&mut self, fingerprint: Fingerprint, path: &Path, offset: u64) {
        if self
            .entries
            .get(&fingerprint)
            .is_none_or(|e| e.offset < offset)
        {
            self.set(fingerprint, path, offset);
        }
    }

    /// True when the compressed file known as `fingerprint` was read to its end and
    /// acknowledged.
    pub(super) fn is_done(&self, fingerprint: &Fingerprint) -> bool {
        self.entries.get(fingerprint).is_some_and(|e| e.done)
    }

    /// Records that the compressed file known as `fingerprint` was read to its end (at
    /// `offset` in its decompressed stream) and acknowledged.
    pub(super) fn mark_done(&mut self, fingerprint: Fingerprint, path: &Path, offset: u64) {
        if !self.is_done(&fingerprint) {
            self.advance(fingerprint, path, offset);
            if let Some(entry) = self.entries.get_mut(&fingerprint) {
                entry.done = true;
                self.dirty = true;
            }
        }
    }

    /// A file grew past its checksum's bytes: its entry moves to its new identity.
    pub(super) fn rekey(&mut self, old: &Fingerprint, new: Fingerprint) {
        if let Some(mut entry) = self.entries.remove(old) {
            entry.fingerprint = new;
            self.entries.insert(new, entry);
            self.dirty = true;
        }
    }

    /// Marks the files still being read as seen, so they are not forgotten.
    pub(super) fn touch<'a>(&mut self, live: impl IntoIterator<Item = &'a Fingerprint>) {
        let now = now_secs();
        for key in live {
            if let Some(entry) = self.entries.get_mut(key) {
                entry.updated = now;
            }
        }
    }

    /// Writes the store when it changed and `force` or the interval has passed. A failed
    /// write is logged; the next one catches up (until then a crash re-reads more).
    pub(super) fn save(&mut self, force: bool, id: &str) {
        let Some(path) = &self.path else { return };
        if !self.dirty || (!force && self.last_save.elapsed() < SAVE_INTERVAL) {
            return;
        }
        let horizon = now_secs().saturating_sub(FORGET_AFTER_SECS);
        self.entries.retain(|_, e| e.updated >= horizon);
        let mut files: Vec<Entry> = self.entries.values().cloned().collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let disk = OnDisk {
            version: VERSION,
            files,
        };
        let bytes = serde_json::to_vec_pretty(&disk).unwrap_or_default();
        match write_atomic(path, &bytes) {
            Ok(()) => self.dirty = false,
            Err(error) => tracing::warn!(component_id = %id, %error, "checkpoints not saved"),
        }
        self.last_save = Instant::now();
    }
}

/// Reports a checkpoint file that cannot be used and moves it aside for inspection.
fn damaged(path: &Path, id: &str, error: &str) {
    crate::telemetry::counter(
        "component_errors_total",
        &[("component_id", id), ("reason", "checkpoint_damaged")],
    )
    .inc(1);
    let aside = path.with_extension("json.damaged");
    let _ = std::fs::rename(path, &aside);
    tracing::warn!(component_id = %id, path = %path.display(), moved_to = %aside.display(), %error, "checkpoint file damaged; ignoring it (files are read as if seen for the first time)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_rekeys_and_ignores_damage() {
        let dir = tempfile::tempdir().unwrap();
        let long = Fingerprint::Checksum { crc: 7 };
        let short = Fingerprint::DevInode { dev: 1, inode: 2 };
        let mut store = Checkpoints::load(Some(dir.path()), "src");
        assert_eq!(store.offset(&short, 100), None);
        store.set(short, Path::new("/a.log"), 40);
        store.save(true, "src");
        let mut store = Checkpoints::load(Some(dir.path()), "src");
        assert_eq!(store.offset(&short, 100), Some(40));
        assert_eq!(store.offset(&short, 39), None, "shorter: another file");
        assert_eq!(store.offset(&long, 100), None, "grown since: read again");
        // Grown while running: the entry follows the file to its checksum identity.
        store.rekey(&short, long);
        store.set(long, Path::new("/a.log"), 90);
        store.save(true, "src");
        let store = Checkpoints::load(Some(dir.path()), "src");
        assert_eq!(store.offset(&long, 100), Some(90));
        assert_eq!(store.offset(&short, 100), None);

        // A compressed file read to its end stays done across a save and a load.
        let gz = Fingerprint::Checksum { crc: 8 };
        assert!(!store.is_done(&gz));
        let mut store = store;
        store.mark_done(gz, Path::new("/a.log.1.gz"), 500);
        store.save(true, "src");
        let store = Checkpoints::load(Some(dir.path()), "src");
        assert!(store.is_done(&gz));
        assert_eq!(store.offset(&gz, u64::MAX), Some(500));
        assert!(!store.is_done(&long));

        let file = dir.path().join("src/checkpoints.json");
        std::fs::write(&file, b"{\"version\":1,\"files\":[{").unwrap();
        let store = Checkpoints::load(Some(dir.path()), "src");
        assert_eq!(store.offset(&long, 100), None);
        assert!(dir.path().join("src/checkpoints.json.damaged").exists());
        assert!(!file.exists());
    }
}
