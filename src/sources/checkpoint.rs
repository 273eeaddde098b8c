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

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ack::{AckReceiver, AckStatus};

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
    write_atomic(path, &serde_json::to_vec(checkpoint).unwrap_or_default())
}

/// Replaces the file at `path` with `bytes`: written to a temporary name beside it, then
/// renamed over it, so a reader (or a restart after a kill) sees the old or the new
/// content, never a mix.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let err = |source| CheckpointError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Batches sent but not yet acknowledged, oldest first, with the input offset just past
/// each batch's last frame: the acknowledged prefix is how far a checkpoint may move.
#[derive(Debug)]
pub(crate) struct PendingAcks {
    batches: VecDeque<(u64, AckReceiver)>,
    acked: u64,
    /// Set once a batch came back errored: the checkpoint must not move past it, so it
    /// stays where it is until a restart re-reads from there.
    stuck: bool,
}

impl PendingAcks {
    /// Nothing pending; everything before `offset` counts as acknowledged.
    pub(crate) fn new(offset: u64) -> Self {
        Self {
            batches: VecDeque::new(),
            acked: offset,
            stuck: false,
        }
    }

    /// Records a batch sent, ending at input offset `end`.
    pub(crate) fn push(&mut self, end: u64, rx: AckReceiver) {
        self.batches.push_back((end, rx));
    }

    /// The offset up to which every batch came back delivered (or rejected: handled).
    pub(crate) fn acked(&self) -> u64 {
        self.acked
    }

    /// True when no batch awaits its acknowledgement.
    pub(crate) fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Moves `acked` over the leading batches whose acknowledgement arrived; with `wait`,
    /// waits for all of them.
    pub(crate) async fn settle(&mut self, wait: bool, id: &str) {
        while let Some((end, rx)) = self.batches.front_mut() {
            let status = if wait {
                rx.await.unwrap_or(AckStatus::Errored)
            } else {
                match rx.try_recv() {
                    Ok(status) => status,
                    Err(tokio::sync::oneshot::error::TryRecvError::Empty) => return,
                    Err(_) => AckStatus::Errored,
                }
            };
            let end = *end;
            self.batches.pop_front();
            match status {
                AckStatus::Delivered | AckStatus::Rejected if !self.stuck => self.acked = end,
                AckStatus::Delivered | AckStatus::Rejected => {}
                AckStatus::Errored => {
                    if !self.stuck {
                        tracing::warn!(component_id = %id, offset = self.acked, "a sink failed to deliver; the checkpoint stays here until restart");
                    }
                    self.stuck = true;
                }
            }
        }
    }
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

    #[tokio::test]
    async fn pending_acks_advance_over_the_delivered_prefix_only() {
        use crate::ack::AckToken;
        let mut pending = PendingAcks::new(10);
        let (first, rx) = AckToken::new();
        pending.push(20, rx);
        let (second, rx) = AckToken::new();
        pending.push(30, rx);
        let (third, rx) = AckToken::new();
        pending.push(40, rx);
        second.update(AckStatus::Delivered);
        drop(second);
        pending.settle(false, "t").await;
        assert_eq!(
            pending.acked(),
            10,
            "a later batch cannot move past an earlier one"
        );
        first.update(AckStatus::Delivered);
        drop(first);
        pending.settle(false, "t").await;
        assert_eq!(pending.acked(), 30);
        drop(third); // nobody stated an outcome: errored
        pending.settle(true, "t").await;
        assert_eq!(pending.acked(), 30);
        assert!(pending.is_empty());
        let (late, rx) = AckToken::new();
        pending.push(50, rx);
        late.update(AckStatus::Delivered);
        drop(late);
        pending.settle(false, "t").await;
        assert_eq!(pending.acked(), 30, "an errored batch pins the checkpoint");
    }
}
