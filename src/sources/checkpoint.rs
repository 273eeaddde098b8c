//! Read-position checkpoints for sources that read a file they can rewind.
//!
//! A checkpoint records how far the input was read *and acknowledged by every sink*; after
//! a crash the source seeks back to it, so events acknowledged are never read twice more
//! than needed and events not acknowledged are read again (at-least-once). The file is
//! written to a temporary name, fsync'd and renamed, so a kill during the write leaves the
//! previous checkpoint intact. It is not fsync'd: a killed process loses nothing that
//! reached the page cache, and after a power failure an older or unreadable checkpoint only
//! means reading again from further back (duplicates, never loss), while an fsync per write
//! would cap how often the checkpoint can follow the acknowledgements.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where the input was acknowledged up to, and which file it was (a different file at the
/// same place — rotated, replaced — starts from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub offset: u64,
    pub dev: u64,
    pub inode: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot write checkpoint {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Reads the checkpoint at `path`. A missing or unreadable checkpoint means "start from the
/// beginning" (re-reading is safe; skipping is not), and says so in the log.
pub fn load(path: &Path) -> Option<Checkpoint> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "checkpoint unreadable; reading from the start");
            return None;
        }
    };
    match serde_json::from_str(&text) {
        Ok(c) => Some(c),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "checkpoint damaged; reading from the start");
            None
        }
    }
}

/// Writes `checkpoint` atomically (see the module doc for why not durably).
pub fn store(path: &Path, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
    let err = |source| CheckpointError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(err)?;
    file.write_all(&serde_json::to_vec(checkpoint).unwrap_or_default())
        .map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/cp.json");
        assert_eq!(load(&path), None);
        let cp = Checkpoint {
            offset: 42,
            dev: 1,
            inode: 2,
        };
        store(&path, &cp).unwrap();
        assert_eq!(load(&path), Some(cp));
        std::fs::write(&path, b"{garbage").unwrap();
        assert_eq!(load(&path), None);
    }
}
