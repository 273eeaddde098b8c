//! Model-based property test: random sequences of writes, reads, acks, crashes (with torn
//! writes) and corruption, checked against a queue of records with states.
//!
//! Invariants checked after every operation:
//! 1. every record whose append returned Ok and that was not acknowledged is delivered
//!    (again after a restart) unless corruption hit it, and then the damage counters say so;
//! 2. nothing is delivered that was never written;
//! 3. order is preserved;
//! 4. acknowledged records are not delivered again after a restart; handed-out records that
//!    were not acknowledged are (duplicates the model allows);
//! 5. `open` never fails and never panics;
//!
//! plus exact byte accounting (`unacked_bytes`, damaged bytes) and `Full` exactly when the
//! model says the batch does not fit. More cases: `PROPTEST_CASES=5000 cargo test model`.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

use super::format::{encode_record, parse_segment_file_name, record_disk_len, HEADER_LEN};
use super::*;

const MAX_BYTES: u64 = 4096;

#[derive(Debug, Clone)]
enum Op {
    Write(Vec<Vec<u8>>),
    Read(usize),
    Ack(usize),
    /// Drop writer and reader with no shutdown step; optionally leave the first bytes of a
    /// record that was being appended (never reported as written) at the end of the newest
    /// segment, as a kill during `write` would.
    CrashReopen {
        torn_tail_bytes: Option<Index>,
    },
    /// XOR one byte of one unacknowledged record on disk.
    Corrupt {
        record: Index,
        byte: Index,
        xor: u8,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..120), 1..6)
            .prop_map(Op::Write),
        3 => (1usize..12).prop_map(Op::Read),
        3 => (0usize..12).prop_map(Op::Ack),
        1 => proptest::option::of(any::<Index>())
            .prop_map(|torn_tail_bytes| Op::CrashReopen { torn_tail_bytes }),
        1 => (any::<Index>(), any::<Index>(), 1u8..=255)
            .prop_map(|(record, byte, xor)| Op::Corrupt { record, byte, xor }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Written, not handed out since the last open.
    Pending,
    Handed,
    /// Skipped by the reader as damaged.
    Lost,
}

#[derive(Debug)]
struct Record {
    payload: Vec<u8>,
    state: State,
    /// `Some(hit_header)` once corrupted.
    corrupted: Option<bool>,
    /// Corrupted before the current open: recovery has already counted it.
    known_at_open: bool,
}

impl Record {
    fn disk_len(&self) -> u64 {
        record_disk_len(self.payload.len())
    }
}

/// Damage the buffer should have counted since the last open.
#[derive(Debug, Default)]
struct Damage {
    bytes: u64,
    records: u64,
    payload_only: u64,
    header: u64,
}

impl Damage {
    fn add(&mut self, record: &Record) {
        self.bytes += record.disk_len();
        self.records += 1;
        match record.corrupted {
            Some(true) => self.header += 1,
            _ => self.payload_only += 1,
        }
    }

    /// A record with a damaged payload is one region; records whose headers are damaged
    /// next to each other may merge into one region.
    fn check(&self, counted_records: u64, counted_bytes: u64) -> Result<(), TestCaseError> {
        prop_assert_eq!(counted_bytes, self.bytes, "damaged bytes");
        let lower = self.payload_only + self.header.min(1);
        prop_assert!(
            (lower..=self.records).contains(&counted_records),
            "damaged records {} not in {}..={}",
            counted_records,
            lower,
            self.records
        );
        Ok(())
    }
}

struct Harness {
    config: DiskBufferConfig,
    buffer: Option<(BufferWriter, BufferReader)>,
    records: VecDeque<Record>,
    /// Index of the first record the reader has not passed yet.
    cursor: usize,
    next_id: u64,
    damage: Damage,
}

impl Harness {
    fn new(dir: &Path) -> Result<Self, TestCaseError> {
        let config = DiskBufferConfig {
            path: dir.to_path_buf(),
            max_bytes: MAX_BYTES,
            max_segment_bytes: 600,
            // Syncing changes nothing a process crash can show; it only slows the test.
            fsync: FsyncPolicy::Never,
        };
        let mut harness = Self {
            config,
            buffer: None,
            records: VecDeque::new(),
            cursor: 0,
            next_id: 0,
            damage: Damage::default(),
        };
        harness.reopen(None)?;
        Ok(harness)
    }

    fn parts(&mut self) -> Result<&mut (BufferWriter, BufferReader), TestCaseError> {
        self.buffer
            .as_mut()
            .ok_or_else(|| TestCaseError::fail("buffer not open"))
    }

    fn unacked_bytes(&self) -> u64 {
        self.records.iter().map(Record::disk_len).sum()
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Write(bodies) => self.write(bodies)?,
            Op::Read(n) => self.read(*n)?,
            Op::Ack(n) => self.ack(*n)?,
            Op::CrashReopen { torn_tail_bytes } => self.reopen(torn_tail_bytes.as_ref())?,
            Op::Corrupt { record, byte, xor } => self.corrupt(record, byte, *xor)?,
        }
        self.check_counters()
    }

    fn write(&mut self, bodies: &[Vec<u8>]) -> Result<(), TestCaseError> {
        let payloads: Vec<Vec<u8>> = bodies
            .iter()
            .map(|body| {
                // A unique id makes every record findable on disk and distinguishable. The
                // final '.' keeps a damaged last record from ending in bytes that read as
                // the start of a torn write ("S", "SL", "SLR"): that case is genuinely
                // ambiguous, and recovery counts those bytes as a torn tail.
                let mut p = self.next_id.to_le_bytes().to_vec();
                self.next_id += 1;
                p.extend_from_slice(body);
                p.push(b'.');
                p
            })
            .collect();
        let batch_bytes: u64 = payloads.iter().map(|p| record_disk_len(p.len())).sum();
        let fits = self.unacked_bytes() + batch_bytes <= MAX_BYTES;
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let result = self.parts()?.0.append_batch(&refs);
        match result {
            Ok(()) if fits => {
                self.records
                    .extend(payloads.into_iter().map(|payload| Record {
                        payload,
                        state: State::Pending,
                        corrupted: None,
                        known_at_open: false,
                    }));
            }
            Err(DiskBufferError::Full { .. }) if !fits => {}
            other => prop_assert!(false, "append: fits={} but got {:?}", fits, other),
        }
        Ok(())
    }

    fn read(&mut self, n: usize) -> Result<(), TestCaseError> {
        let got = self
            .parts()?
            .1
            .read_batch(n)
            .map_err(|e| TestCaseError::fail(format!("read: {e}")))?;
        for payload in &got {
            loop {
                let Some(record) = self.records.get_mut(self.cursor) else {
                    return Err(TestCaseError::fail(
                        "delivered a record that was never written",
                    ));
                };
                self.cursor += 1;
                if record.payload == payload.as_ref() {
                    record.state = State::Handed;
                    break;
                }
                // Only a corrupted record may be skipped; anything else is loss or reordering.
                prop_assert!(record.corrupted.is_some(), "record skipped or out of order");
                self.lose_previous()?;
            }
        }
        if got.len() < n {
            // The reader reached the end: everything left must have been corrupted.
            while self.cursor < self.records.len() {
                prop_assert!(
                    self.records[self.cursor].corrupted.is_some(),
                    "record {} of {} not delivered",
                    self.cursor,
                    self.records.len()
                );
                self.cursor += 1;
                self.lose_previous()?;
            }
        }
        Ok(())
    }

    /// Marks the record just before the cursor as skipped.
    fn lose_previous(&mut self) -> Result<(), TestCaseError> {
        let record = &mut self.records[self.cursor - 1];
        record.state = State::Lost;
        if !record.known_at_open {
            self.damage.add(record);
        }
        Ok(())
    }

    fn ack(&mut self, n: usize) -> Result<(), TestCaseError> {
        let handed = self
            .records
            .iter()
            .filter(|r| r.state == State::Handed)
            .count();
        let n = n.min(handed);
        self.parts()?
            .1
            .ack(n)
            .map_err(|e| TestCaseError::fail(format!("ack: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        // Acking all that was handed out moves the position to the read cursor, past any
        // damage after the last record; otherwise to the end of the nth record.
        let remove = if n == handed {
            self.cursor
        } else {
            let mut seen = 0;
            self.records
                .iter()
                .position(|r| {
                    seen += usize::from(r.state == State::Handed);
                    seen == n
                })
                .map_or(0, |i| i + 1)
        };
        self.records.drain(..remove);
        self.cursor -= remove;
        Ok(())
    }

    fn reopen(&mut self, torn: Option<&Index>) -> Result<(), TestCaseError> {
        self.buffer = None;
        let dir = self.config.path.clone();
        let torn_bytes = match (torn, segment_files(&dir).last()) {
            (Some(index), Some((_, newest))) => {
                let mut encoded = Vec::new();
                encode_record(
                    b"a batch the crash cut short, never acknowledged",
                    &mut encoded,
                );
                let n = 1 + index.index(encoded.len() - 1);
                let mut file = OpenOptions::new().append(true).open(newest).map_err(fail)?;
                file.write_all(&encoded[..n]).map_err(fail)?;
                Some(n as u64)
            }
            _ => None,
        };
        let (writer, reader, report) = open(self.config.clone())
            .map_err(|e| TestCaseError::fail(format!("open failed: {e}")))?;
        prop_assert_eq!(
            report.torn_tail.map(|t| t.bytes),
            torn_bytes,
            "torn tail: {}",
            report
        );
        prop_assert!(report.missing_segments.is_empty(), "{}", report);
        prop_assert!(report.unreadable_segments.is_empty(), "{}", report);
        prop_assert!(
            matches!(report.ack, AckState::Resumed(_) | AckState::Fresh),
            "{}",
            report
        );
        prop_assert_eq!(report.unacked_bytes, self.unacked_bytes(), "{}", report);

        self.damage = Damage::default();
        for record in &mut self.records {
            record.state = State::Pending;
            record.known_at_open = record.corrupted.is_some();
            if record.known_at_open {
                self.damage.add(record);
            }
        }
        self.damage
            .check(report.damaged_records(), report.damaged_bytes())?;
        self.cursor = 0;
        self.buffer = Some((writer, reader));
        Ok(())
    }

    fn corrupt(&mut self, record: &Index, byte: &Index, xor: u8) -> Result<(), TestCaseError> {
        let candidates: Vec<usize> = (0..self.records.len())
            .filter(|&i| self.records[i].corrupted.is_none())
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let target = &mut self.records[candidates[record.index(candidates.len())]];
        let mut encoded = Vec::new();
        encode_record(&target.payload, &mut encoded);
        let within = byte.index(encoded.len());
        let mut found = None;
        for (_, path) in segment_files(&self.config.path) {
            let bytes = std::fs::read(&path).map_err(fail)?;
            if let Some(at) = memchr::memmem::find(&bytes, &encoded) {
                found = Some((path, at));
                break;
            }
        }
        let Some((path, at)) = found else {
            return Err(TestCaseError::fail(
                "an unacknowledged record is not on disk",
            ));
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(fail)?;
        file.seek(SeekFrom::Start((at + within) as u64))
            .map_err(fail)?;
        file.write_all(&[encoded[within] ^ xor]).map_err(fail)?;
        target.corrupted = Some(within < HEADER_LEN);
        Ok(())
    }

    fn check_counters(&mut self) -> Result<(), TestCaseError> {
        let expected_bytes = self.unacked_bytes();
        let handed = self
            .records
            .iter()
            .filter(|r| r.state == State::Handed)
            .count() as u64;
        let (writer, reader) = self.parts()?;
        let stats = reader.stats();
        prop_assert_eq!(writer.unacked_bytes(), expected_bytes);
        prop_assert_eq!(stats.unacked_bytes, expected_bytes);
        prop_assert_eq!(stats.in_flight_records, handed);
        self.damage
            .check(stats.damaged_records, stats.damaged_bytes)
    }
}

fn fail(e: std::io::Error) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

fn segment_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| Some((parse_segment_file_name(e.file_name().to_str()?)?, e.path())))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

proptest! {
    #![proptest_config(ProptestConfig {
        // A failure would otherwise write a regressions file next to the sources.
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases())
    })]

    #[test]
    fn model_random_operations(ops in proptest::collection::vec(op_strategy(), 1..60)) {
        let dir = tempfile::tempdir().map_err(fail)?;
        let mut harness = Harness::new(dir.path())?;
        for op in &ops {
            harness.apply(op)?;
        }
        // Finally: crash once more and drain. Every unacknowledged record that was not
        // corrupted must come out, in order.
        harness.reopen(None)?;
        harness.read(usize::MAX / 2)?;
        harness.check_counters()?;
    }
}
