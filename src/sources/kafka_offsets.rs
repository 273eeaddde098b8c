//! Which offsets a `kafka` source may commit.
//!
//! The source reads messages in chunks; the messages of one partition in one chunk share
//! an acknowledgement token, and the chunk is recorded here with its offsets. A partition's
//! commit position only moves over a prefix of chunks that all came back acknowledged
//! (delivered, or rejected into a dead letter — filtered-out events count as delivered), so
//! one slow event holds back the commits of everything read after it on its partition, and
//! a crash re-reads from the oldest unacknowledged message: duplicates, never loss.
//!
//! Every partition's tracking carries an epoch. Revoking a partition (rebalance) or
//! rewinding it (an event came back errored) starts a new epoch, and acknowledgements of
//! chunks from an older epoch are ignored: their messages will be read again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::ack::AckStatus;

/// A topic and partition.
pub(crate) type PartitionKey = (Arc<str>, i32);

/// Names one chunk of one partition, for [`OffsetTracker::acked`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChunkId {
    pub(crate) partition: PartitionKey,
    epoch: u64,
    seq: u64,
}

#[derive(Debug)]
struct Chunk {
    first_offset: i64,
    /// One past the chunk's last offset: the commit position once it is done.
    end_offset: i64,
    done: bool,
}

#[derive(Debug)]
struct PartitionOffsets {
    epoch: u64,
    /// Chunks not yet folded into `committable`, in offset order.
    chunks: VecDeque<Chunk>,
    /// Sequence number of `chunks.front()`.
    first_seq: u64,
    /// The offset to commit: one past the last message of the acknowledged prefix.
    committable: Option<i64>,
    /// The last offset handed out for committing.
    committed: Option<i64>,
    /// Messages below this offset were counted as committed (for the metric).
    counted: i64,
}

/// What revoking a partition leaves.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Revoked {
    /// The position to commit and the messages it covers, if it moved since the last commit.
    pub(crate) commit: Option<(i64, u64)>,
    /// Messages read after the acknowledged prefix (in flight, or acknowledged behind one
    /// that is not): the next owner reads them again, so they may arrive twice.
    pub(crate) unacknowledged: u64,
}

/// What the source must do after an acknowledgement.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AckOutcome {
    /// Nothing (recorded, or from an old epoch).
    Recorded,
    /// An event came back errored (not delivered, not dead-lettered): the partition must be
    /// rewound to this offset and read again; its tracking has been reset.
    Rewind(i64),
}

/// Read-but-uncommitted offsets of every partition a source consumes.
#[derive(Debug, Default)]
pub(crate) struct OffsetTracker {
    partitions: HashMap<PartitionKey, PartitionOffsets>,
    next_epoch: u64,
    /// Partitions currently assigned to this consumer. A message polled just before its
    /// partition was revoked is not this consumer's to deliver or commit any more: the
    /// next owner reads it again, and a commit from here could skip what is still in
    /// flight.
    assigned: HashSet<PartitionKey>,
}

impl OffsetTracker {
    /// Records that `partition` is assigned to this consumer.
    pub(crate) fn assign(&mut self, partition: PartitionKey) {
        self.assigned.insert(partition);
    }

    pub(crate) fn assigned_count(&self) -> usize {
        self.assigned.len()
    }

    pub(crate) fn is_assigned(&self, topic: &str, partition: i32) -> bool {
        // Scans rather than hashing a key, which would need an `Arc<str>` for the topic;
        // called once per partition per chunk, over a handful of partitions.
        self.assigned
            .iter()
            .any(|(t, p)| *p == partition && &**t == topic)
    }

    /// Records a chunk of `partition` holding offsets `first..=last`, read in order.
    pub(crate) fn read(&mut self, partition: PartitionKey, first: i64, last: i64) -> ChunkId {
        let next_epoch = &mut self.next_epoch;
        let offsets = self.partitions.entry(partition.clone()).or_insert_with(|| {
            *next_epoch += 1;
            PartitionOffsets {
                epoch: *next_epoch,
                chunks: VecDeque::new(),
                first_seq: 0,
                committable: None,
                committed: None,
                counted: first,
            }
        });
        let seq = offsets.first_seq + offsets.chunks.len() as u64;
        offsets.chunks.push_back(Chunk {
            first_offset: first,
            end_offset: last + 1,
            done: false,
        });
        ChunkId {
            partition,
            epoch: offsets.epoch,
            seq,
        }
    }

    /// Records the merged acknowledgement status of chunk `id`.
    pub(crate) fn acked(&mut self, id: &ChunkId, status: AckStatus) -> AckOutcome {
        let Some(offsets) = self.partitions.get_mut(&id.partition) else {
            return AckOutcome::Recorded;
        };
        if offsets.epoch != id.epoch || id.seq < offsets.first_seq {
            return AckOutcome::Recorded;
        }
        let index = (id.seq - offsets.first_seq) as usize;
        let Some(chunk) = offsets.chunks.get_mut(index) else {
            return AckOutcome::Recorded;
        };
        if status == AckStatus::Errored {
            let rewind = chunk.first_offset;
            self.next_epoch += 1;
            offsets.epoch = self.next_epoch;
            offsets.chunks.clear();
            offsets.first_seq = id.seq + 1;
            return AckOutcome::Rewind(rewind);
        }
        chunk.done = true;
        while offsets.chunks.front().is_some_and(|c| c.done) {
            if let Some(chunk) = offsets.chunks.pop_front() {
                offsets.committable = Some(chunk.end_offset);
                offsets.first_seq += 1;
            }
        }
        AckOutcome::Recorded
    }

    /// Partitions whose commit position moved since the last call, with the offset to
    /// commit and how many messages that covers; they count as committed from now on.
    pub(crate) fn take_commits(&mut self) -> Vec<(PartitionKey, i64, u64)> {
        let mut commits = Vec::new();
        for (key, offsets) in &mut self.partitions {
            if let Some(commit) = Self::take(offsets) {
                commits.push((key.clone(), commit.0, commit.1));
            }
        }
        commits.sort_by(|a, b| a.0.cmp(&b.0));
        commits
    }

    fn take(offsets: &mut PartitionOffsets) -> Option<(i64, u64)> {
        let committable = offsets.committable?;
        if offsets.committed.is_some_and(|c| c >= committable) {
            return None;
        }
        let covered = (committable - offsets.counted).max(0) as u64;
        offsets.counted = offsets.counted.max(committable);
        offsets.committed = Some(committable);
        Some((committable, covered))
    }

    /// A commit of `partition` at `offset` failed: offer it again at the next
    /// [`OffsetTracker::take_commits`].
    pub(crate) fn commit_failed(&mut self, partition: &PartitionKey, offset: i64) {
        if let Some(offsets) = self.partitions.get_mut(partition) {
            if offsets.committed == Some(offset) {
                offsets.committed = None;
            }
        }
    }

    /// Stops tracking `partition` (revoked in a rebalance); returns its uncommitted commit
    /// position, to commit before letting go, and how many messages it read past that
    /// position. Acknowledgements of its chunks in flight are ignored from now on: the
    /// partition's next owner reads them again.
    pub(crate) fn revoke(&mut self, partition: &PartitionKey) -> Revoked {
        self.assigned.remove(partition);
        let Some(mut offsets) = self.partitions.remove(partition) else {
            return Revoked::default();
        };
        Revoked {
            commit: Self::take(&mut offsets),
            unacknowledged: offsets
                .chunks
                .iter()
                .map(|c| (c.end_offset - c.first_offset).max(0) as u64)
                .sum(),
        }
    }

    /// Chunks read and not yet acknowledged, over every partition.
    pub(crate) fn pending_chunks(&self) -> usize {
        self.partitions.values().map(|p| p.chunks.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i32) -> PartitionKey {
        (Arc::from("logs"), p)
    }

    #[test]
    fn commits_only_the_acknowledged_prefix() {
        let mut t = OffsetTracker::default();
        let a = t.read(key(0), 0, 9);
        let b = t.read(key(0), 10, 19);
        let c = t.read(key(0), 20, 29);
        // A later chunk done first: nothing committable (one slow event holds back).
        assert_eq!(t.acked(&c, AckStatus::Delivered), AckOutcome::Recorded);
        assert_eq!(t.take_commits(), vec![]);
        assert_eq!(t.acked(&a, AckStatus::Delivered), AckOutcome::Recorded);
        assert_eq!(t.take_commits(), vec![(key(0), 10, 10)]);
        assert_eq!(t.take_commits(), vec![], "nothing new");
        // Rejected (dead-lettered) counts as done; the prefix now spans b and c.
        assert_eq!(t.acked(&b, AckStatus::Rejected), AckOutcome::Recorded);
        assert_eq!(t.take_commits(), vec![(key(0), 30, 20)]);
        assert_eq!(t.pending_chunks(), 0);
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = OffsetTracker::default();
        let a0 = t.read(key(0), 5, 5);
        let a1 = t.read(key(1), 100, 199);
        let b0 = t.read(key(0), 6, 8);
        t.acked(&a1, AckStatus::Delivered);
        t.acked(&b0, AckStatus::Delivered);
        assert_eq!(t.take_commits(), vec![(key(1), 200, 100)]);
        t.acked(&a0, AckStatus::Delivered);
        assert_eq!(t.take_commits(), vec![(key(0), 9, 4)]);
    }

    #[test]
    fn errored_rewinds_and_ignores_the_old_epoch() {
        let mut t = OffsetTracker::default();
        let a = t.read(key(0), 0, 9);
        let b = t.read(key(0), 10, 19);
        let c = t.read(key(0), 20, 29);
        t.acked(&a, AckStatus::Delivered);
        assert_eq!(t.acked(&b, AckStatus::Errored), AckOutcome::Rewind(10));
        // c belonged to the old epoch: its acknowledgement must not move the commit.
        assert_eq!(t.acked(&c, AckStatus::Delivered), AckOutcome::Recorded);
        assert_eq!(t.take_commits(), vec![(key(0), 10, 10)]);
        let again = t.read(key(0), 10, 29);
        t.acked(&again, AckStatus::Delivered);
        assert_eq!(t.take_commits(), vec![(key(0), 30, 20)]);
    }

    #[test]
    fn revoke_hands_back_the_done_prefix_and_forgets_the_rest() {
        let mut t = OffsetTracker::default();
        let a = t.read(key(3), 0, 4);
        let b = t.read(key(3), 5, 9);
        t.acked(&a, AckStatus::Delivered);
        assert_eq!(
            t.revoke(&key(3)),
            Revoked {
                commit: Some((5, 5)),
                unacknowledged: 5
            }
        );
        assert_eq!(t.acked(&b, AckStatus::Delivered), AckOutcome::Recorded);
        assert_eq!(t.take_commits(), vec![]);
        assert_eq!(t.revoke(&key(3)), Revoked::default());
        // Reassigned later: a fresh epoch, old acknowledgements stay ignored.
        let c = t.read(key(3), 5, 9);
        assert_eq!(t.acked(&b, AckStatus::Delivered), AckOutcome::Recorded);
        assert_eq!(t.take_commits(), vec![]);
        t.acked(&c, AckStatus::Delivered);
        assert_eq!(t.take_commits(), vec![(key(3), 10, 5)]);
    }

    #[test]
    fn assignment_follows_rebalances() {
        let mut t = OffsetTracker::default();
        assert!(!t.is_assigned("logs", 1));
        t.assign(key(1));
        assert!(t.is_assigned("logs", 1));
        assert!(!t.is_assigned("logs", 2));
        assert!(!t.is_assigned("other", 1));
        t.revoke(&key(1));
        assert!(!t.is_assigned("logs", 1));
    }

    #[test]
    fn failed_commit_is_offered_again() {
        let mut t = OffsetTracker::default();
        let a = t.read(key(0), 0, 9);
        t.acked(&a, AckStatus::Delivered);
        assert_eq!(t.take_commits().len(), 1);
        t.commit_failed(&key(0), 10);
        // Offered again, but its messages are not counted twice.
        assert_eq!(t.take_commits(), vec![(key(0), 10, 0)]);
    }
}
