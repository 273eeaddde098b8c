//! Unit tests of the disk buffer's life cycle, and the helpers the other test modules
//! share. Damage is in `damage_tests.rs`, the model-based property test in
//! `model_tests.rs`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;

use super::format::{encode_record, segment_path};
use super::*;

pub(super) fn config(dir: &Path) -> DiskBufferConfig {
    DiskBufferConfig {
        path: dir.to_path_buf(),
        max_bytes: 1024 * 1024,
        // Small segments so that a few dozen records span several files.
        max_segment_bytes: 256,
        fsync: FsyncPolicy::Never,
    }
}

pub(super) fn open_ok(config: DiskBufferConfig) -> (BufferWriter, BufferReader, RecoveryReport) {
    match open(config) {
        Ok(opened) => opened,
        Err(e) => panic!("open failed: {e}"),
    }
}

fn record(i: usize) -> Vec<u8> {
    format!("record-{i:04}").into_bytes()
}

/// On-disk size of `record(i)`.
pub(super) const RECORD_DISK_BYTES: u64 = 16 + 11;

pub(super) fn append_range(writer: &mut BufferWriter, range: std::ops::Range<usize>, batch: usize) {
    let records: Vec<Vec<u8>> = range.map(record).collect();
    for chunk in records.chunks(batch) {
        let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        writer.append_batch(&refs).unwrap();
    }
}

pub(super) fn read_all(reader: &mut BufferReader) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let batch = reader.read_batch(7).unwrap();
        if batch.is_empty() {
            return out;
        }
        out.extend(
            batch
                .iter()
                .map(|b| String::from_utf8_lossy(b).into_owned()),
        );
    }
}

pub(super) fn names(range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|i| String::from_utf8(record(i)).unwrap())
        .collect()
}

pub(super) fn segment_ids(dir: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| format::parse_segment_file_name(e.unwrap().file_name().to_str()?))
        .collect();
    ids.sort_unstable();
    ids
}

pub(super) fn flip(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

pub(super) fn append_raw(path: &Path, bytes: &[u8]) {
    let mut file = OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
}

#[test]
fn append_read_ack_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (mut writer, mut reader, report) = open_ok(config(dir.path()));
    assert_eq!(report.ack, AckState::Fresh);
    assert!(reader.read_batch(10).unwrap().is_empty());
    append_range(&mut writer, 0..10, 3);
    assert_eq!(writer.unacked_bytes(), 10 * RECORD_DISK_BYTES);
    let first: Vec<Bytes> = reader.read_batch(4).unwrap();
    assert_eq!(first.len(), 4);
    assert_eq!(first[0], Bytes::from(record(0)));
    assert_eq!(read_all(&mut reader), names(4..10));
    reader.ack(4).unwrap();
    assert_eq!(writer.unacked_bytes(), 6 * RECORD_DISK_BYTES);
    reader.ack(6).unwrap();
    let stats = reader.stats();
    assert_eq!(
        (
            stats.unacked_records,
            stats.unacked_bytes,
            stats.in_flight_records
        ),
        (0, 0, 0)
    );
    assert!(matches!(
        reader.ack(1),
        Err(DiskBufferError::AckBeyondRead { .. })
    ));
}

#[test]
fn segments_roll_over_and_are_deleted_once_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (mut writer, mut reader, _) = open_ok(config(dir.path()));
    append_range(&mut writer, 0..100, 4);
    let segments = segment_ids(dir.path());
    assert!(segments.len() >= 10, "{segments:?}");
    assert_eq!(read_all(&mut reader), names(0..100));
    reader.ack(50).unwrap();
    let remaining = segment_ids(dir.path());
    assert!(remaining.len() < segments.len() && remaining.len() > 1);
    reader.ack(50).unwrap();
    // Only the segment the writer is appending to is left.
    assert_eq!(segment_ids(dir.path()), vec![*segments.last().unwrap()]);
    assert_eq!(writer.unacked_bytes(), 0);
}

#[test]
fn full_until_an_ack_frees_space() {
    let dir = tempfile::tempdir().unwrap();
    let config = DiskBufferConfig {
        max_bytes: 10 * RECORD_DISK_BYTES,
        ..config(dir.path())
    };
    let (mut writer, mut reader, _) = open_ok(config);
    append_range(&mut writer, 0..8, 4);
    let r = record(8);
    let batch: [&[u8]; 3] = [&r, &r, &r];
    assert!(matches!(
        writer.append_batch(&batch),
        Err(DiskBufferError::Full { .. })
    ));
    assert_eq!(
        writer.unacked_bytes(),
        8 * RECORD_DISK_BYTES,
        "a full batch writes nothing"
    );
    assert!(!writer.wait_for_space(3 * RECORD_DISK_BYTES, Duration::from_millis(1)));
    let too_big = vec![r.as_slice(); 11];
    assert!(matches!(
        writer.append_batch(&too_big),
        Err(DiskBufferError::BatchTooLarge { .. })
    ));

    assert_eq!(reader.read_batch(2).unwrap().len(), 2);
    reader.ack(2).unwrap();
    assert!(writer.wait_for_space(3 * RECORD_DISK_BYTES, Duration::ZERO));
    writer.append_batch(&batch).unwrap();
    assert_eq!(writer.unacked_bytes(), 9 * RECORD_DISK_BYTES);
}

#[test]
fn reopen_resumes_after_the_acknowledged_position() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut writer, mut reader, _) = open_ok(config(dir.path()));
        append_range(&mut writer, 0..30, 5);
        assert_eq!(reader.read_batch(20).unwrap().len(), 20);
        reader.ack(12).unwrap();
        // Dropped without any shutdown step, as kill -9 would.
    }
    let (mut writer, mut reader, report) = open_ok(config(dir.path()));
    assert!(report.is_clean(), "{report}");
    assert!(matches!(report.ack, AckState::Resumed(_)));
    assert_eq!(report.unacked_records, 18);
    assert_eq!(report.unacked_bytes, 18 * RECORD_DISK_BYTES);
    // Handed out but not acknowledged (12..20) comes again; acknowledged never does.
    assert_eq!(read_all(&mut reader), names(12..30));
    append_range(&mut writer, 30..32, 2);
    assert_eq!(read_all(&mut reader), names(30..32));
}

#[test]
fn torn_tail_is_truncated_not_counted_and_the_writer_starts_a_new_segment() {
    let dir = tempfile::tempdir().unwrap();
    let newest = {
        let (mut writer, _reader, _) = open_ok(config(dir.path()));
        append_range(&mut writer, 0..5, 5);
        *segment_ids(dir.path()).last().unwrap()
    };
    let mut torn = Vec::new();
    encode_record(b"never acknowledged as written", &mut torn);
    append_raw(&segment_path(dir.path(), newest), &torn[..20]);

    let (mut writer, mut reader, report) = open_ok(config(dir.path()));
    assert!(report.is_clean(), "{report}");
    assert_eq!(
        report.torn_tail,
        Some(TornTail {
            segment: newest,
            offset: 5 * RECORD_DISK_BYTES,
            bytes: 20
        })
    );
    assert_eq!(
        std::fs::metadata(segment_path(dir.path(), newest))
            .unwrap()
            .len(),
        5 * RECORD_DISK_BYTES
    );
    append_range(&mut writer, 5..7, 2);
    assert_eq!(segment_ids(dir.path()).last(), Some(&(newest + 1)));
    assert_eq!(read_all(&mut reader), names(0..7));
    drop((writer, reader));
    let (_, _, report) = open_ok(config(dir.path()));
    assert_eq!(report.torn_tail, None);
    assert!(report.is_clean());
}

#[test]
fn truncation_mid_record_loses_only_that_record() {
    let dir = tempfile::tempdir().unwrap();
    drop(append_and_close(dir.path(), 0..5));
    let newest = *segment_ids(dir.path()).last().unwrap();
    let path = segment_path(dir.path(), newest);
    let len = std::fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let (_, mut reader, report) = open_ok(config(dir.path()));
    assert!(report.torn_tail.is_some() && report.is_clean(), "{report}");
    assert_eq!(read_all(&mut reader), names(0..4));
}

/// Writes `range` in one batch and closes; returns the directory's segment ids.
pub(super) fn append_and_close(dir: &Path, range: std::ops::Range<usize>) -> Vec<u64> {
    let config = DiskBufferConfig {
        max_segment_bytes: 1024 * 1024,
        ..config(dir)
    };
    let (mut writer, _reader, _) = open_ok(config);
    append_range(&mut writer, range.clone(), range.len().max(1));
    segment_ids(dir)
}

#[test]
fn reader_and_writer_on_two_threads_never_see_a_partial_batch() {
    let dir = tempfile::tempdir().unwrap();
    let config = DiskBufferConfig {
        max_bytes: 64 * 1024,
        max_segment_bytes: 8 * 1024,
        ..config(dir.path())
    };
    let (mut writer, mut reader, _) = open_ok(config);
    let total = 20_000;
    let producer = std::thread::spawn(move || {
        let records: Vec<Vec<u8>> = (0..total).map(record).collect();
        for chunk in records.chunks(37) {
            let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
            loop {
                match writer.append_batch(&refs) {
                    Ok(()) => break,
                    Err(DiskBufferError::Full { batch_bytes, .. }) => {
                        writer.wait_for_space(batch_bytes, Duration::from_millis(50));
                    }
                    Err(e) => panic!("append failed: {e}"),
                }
            }
        }
    });
    let mut next = 0;
    while next < total {
        let batch = reader.read_batch(100).unwrap();
        if batch.is_empty() {
            reader.wait_for_data(Duration::from_millis(50));
            continue;
        }
        for r in &batch {
            assert_eq!(r.as_ref(), record(next).as_slice());
            next += 1;
        }
        reader.ack(batch.len()).unwrap();
    }
    producer.join().unwrap();
    assert!(reader.writer_closed());
    let stats = reader.stats();
    assert_eq!((stats.damaged_records, stats.unacked_bytes), (0, 0));
    assert!(segment_ids(dir.path()).len() <= 2);
}

#[tokio::test]
async fn notifies_wake_async_waiters() {
    let dir = tempfile::tempdir().unwrap();
    let (mut writer, mut reader, _) = open_ok(config(dir.path()));
    let data = reader.data_notify();
    let space = writer.space_notify();
    let r = record(0);
    writer.append_batch(&[&r]).unwrap();
    // The permit is stored even though nobody waited yet: no lost wake-up.
    tokio::time::timeout(Duration::from_secs(5), data.notified())
        .await
        .unwrap();
    assert_eq!(reader.read_batch(10).unwrap().len(), 1);
    reader.ack(1).unwrap();
    tokio::time::timeout(Duration::from_secs(5), space.notified())
        .await
        .unwrap();
}

/// Throughput for 200-byte records in batches of 300. Run with
/// `cargo test --release -- --ignored --nocapture disk_throughput`.
#[test]
#[ignore = "timing: run in release"]
fn disk_throughput() {
    for fsync in [FsyncPolicy::EveryBatch, FsyncPolicy::Never] {
        let dir = tempfile::tempdir().unwrap();
        let config = DiskBufferConfig {
            path: dir.path().to_path_buf(),
            max_bytes: 1 << 30,
            max_segment_bytes: DEFAULT_MAX_SEGMENT_BYTES,
            fsync,
        };
        let (mut writer, mut reader, _) = open_ok(config);
        let payload = vec![b'x'; 200];
        let batch: Vec<&[u8]> = vec![payload.as_slice(); 300];
        let batches = if fsync == FsyncPolicy::EveryBatch {
            300
        } else {
            3000
        };
        let start = std::time::Instant::now();
        for _ in 0..batches {
            writer.append_batch(&batch).unwrap();
        }
        let write = start.elapsed();
        let start = std::time::Instant::now();
        let mut read = 0;
        loop {
            let got = reader.read_batch(300).unwrap();
            if got.is_empty() {
                break;
            }
            read += got.len();
            reader.ack(got.len()).unwrap();
        }
        let read_time = start.elapsed();
        let records = (batches * 300) as f64;
        assert_eq!(read as f64, records);
        let mib = records * 216.0 / (1024.0 * 1024.0);
        println!(
            "{fsync:?}: append {:.0} records/s ({:.1} MiB/s, {:.2} ms/batch), read+ack {:.0} records/s ({:.1} MiB/s)",
            records / write.as_secs_f64(),
            mib / write.as_secs_f64(),
            write.as_secs_f64() * 1000.0 / batches as f64,
            records / read_time.as_secs_f64(),
            mib / read_time.as_secs_f64(),
        );
    }
}
