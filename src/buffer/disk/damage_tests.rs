//! Damage through `open` and `check`: flipped bytes, garbage, a damaged ack file, missing,
//! empty and unreadable segments.

use std::path::{Path, PathBuf};

use super::format::{encode_record, segment_path, ACK_FILE_NAME};
use super::tests::{
    append_and_close, append_range, append_raw, config, flip, names, open_ok, read_all,
    segment_ids, RECORD_DISK_BYTES,
};
use super::*;

#[test]
fn flipped_bytes_skip_exactly_the_hit_records() {
    let dir = tempfile::tempdir().unwrap();
    let ids = append_and_close(dir.path(), 0..20);
    let path = segment_path(dir.path(), ids[0]);
    flip(&path, 5 * RECORD_DISK_BYTES + 20); // payload of record 5
    flip(&path, 10 * RECORD_DISK_BYTES + 1); // magic of record 10
    flip(&path, 11 * RECORD_DISK_BYTES + 6); // length of record 11, next to 10

    let checked = check(dir.path()).unwrap();
    let (_, mut reader, report) = open_ok(config(dir.path()));
    assert_eq!(checked.report, report, "check and open agree");
    let regions: Vec<(u64, u64)> = report.damaged.iter().map(|d| (d.start, d.end)).collect();
    let at = |i: u64| i * RECORD_DISK_BYTES;
    // Records 10 and 11 both lost their headers: nothing marks where one ended, so they
    // form one region (the record count is a lower bound; the byte count is exact).
    assert_eq!(regions, vec![(at(5), at(6)), (at(10), at(12))]);
    let expected: Vec<String> = (0..20)
        .filter(|i| ![5, 10, 11].contains(i))
        .flat_map(|i| names(i..i + 1))
        .collect();
    assert_eq!(read_all(&mut reader), expected);
    let stats = reader.stats();
    assert_eq!(
        (stats.damaged_records, stats.damaged_bytes),
        (2, 3 * RECORD_DISK_BYTES)
    );
    assert!(
        checked.to_string().contains("damaged: 2 regions"),
        "{checked}"
    );
}

#[test]
fn garbage_between_records_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let ids = append_and_close(dir.path(), 0..3);
    let path = segment_path(dir.path(), ids[0]);
    let mut bytes = std::fs::read(&path).unwrap();
    let tail = bytes.split_off(RECORD_DISK_BYTES as usize);
    bytes.extend_from_slice(b"SLR1 garbage that starts like a header");
    bytes.extend_from_slice(&tail);
    std::fs::write(&path, bytes).unwrap();
    let (_, mut reader, report) = open_ok(config(dir.path()));
    assert_eq!(report.damaged_bytes(), 38);
    assert_eq!(read_all(&mut reader), names(0..3));
}

#[test]
fn damaged_ack_file_redelivers_everything_present() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut writer, mut reader, _) = open_ok(config(dir.path()));
        append_range(&mut writer, 0..10, 10);
        assert_eq!(read_all(&mut reader).len(), 10);
        reader.ack(10).unwrap();
    }
    std::fs::write(dir.path().join(ACK_FILE_NAME), b"garbage, not an ack file").unwrap();
    let checked = check(dir.path()).unwrap();
    assert_eq!(checked.report.ack, AckState::Damaged);
    let (_, mut reader, report) = open_ok(config(dir.path()));
    assert_eq!(report.ack, AckState::Damaged);
    assert!(!report.is_clean());
    // At-least-once: the acknowledged records still on disk come again rather than risk
    // losing unacknowledged ones.
    assert_eq!(read_all(&mut reader), names(0..10));
    drop(reader);
    // The start position was persisted: the next restart is clean.
    let (_, _, report) = open_ok(config(dir.path()));
    assert!(matches!(report.ack, AckState::Resumed(_)), "{report}");
}

#[test]
fn missing_segment_is_reported_and_the_rest_delivered() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut writer, _reader, _) = open_ok(config(dir.path()));
        append_range(&mut writer, 0..30, 3);
    }
    let ids = segment_ids(dir.path());
    assert!(ids.len() >= 4);
    let gone = ids[1];
    let lost = std::fs::metadata(segment_path(dir.path(), gone))
        .unwrap()
        .len()
        / RECORD_DISK_BYTES;
    std::fs::remove_file(segment_path(dir.path(), gone)).unwrap();
    let (_, mut reader, report) = open_ok(config(dir.path()));
    assert_eq!(report.missing_segments, vec![gone..=gone]);
    assert_eq!(
        check(dir.path()).unwrap().report.missing_segments,
        vec![gone..=gone]
    );
    let delivered = read_all(&mut reader);
    assert_eq!(delivered.len(), 30 - lost as usize);
    assert_eq!(delivered[..3], names(0..3));
    assert_eq!(delivered.last(), names(29..30).last());
}

#[test]
fn zero_length_segments_are_harmless_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let ids = append_and_close(dir.path(), 0..4);
    let last = *ids.last().unwrap();
    // A crash right after creating a segment file leaves it empty.
    std::fs::write(segment_path(dir.path(), last + 1), b"").unwrap();
    std::fs::write(segment_path(dir.path(), last + 2), b"").unwrap();
    let (mut writer, mut reader, report) = open_ok(config(dir.path()));
    assert!(report.is_clean(), "{report}");
    append_range(&mut writer, 4..6, 2);
    assert_eq!(
        segment_ids(dir.path()).last(),
        Some(&(last + 2)),
        "the newest empty one is reused"
    );
    assert_eq!(read_all(&mut reader), names(0..6));
}

#[test]
fn unreadable_segment_is_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let ids = append_and_close(dir.path(), 0..4);
    let last = *ids.last().unwrap();
    // A directory where a segment should be: it opens but every read fails (this test runs
    // as root, where permission bits would not stop a read).
    std::fs::create_dir(segment_path(dir.path(), last + 1)).unwrap();
    std::fs::write(segment_path(dir.path(), last + 2), b"").unwrap();
    append_raw(&segment_path(dir.path(), last + 2), &{
        let mut b = Vec::new();
        encode_record(b"after", &mut b);
        b
    });
    let (_, mut reader, report) = open_ok(config(dir.path()));
    assert_eq!(report.unreadable_segments.len(), 1, "{report}");
    assert_eq!(report.unreadable_segments[0].segment, last + 1);
    let mut expected = names(0..4);
    expected.push("after".into());
    assert_eq!(read_all(&mut reader), expected);
}

#[test]
fn check_describes_each_kind_of_trouble_without_changing_anything() {
    type Damage = fn(&Path, &[u64]);
    let table: &[(&str, Damage, &str)] = &[
        ("clean", |_, _| {}, "status: ok"),
        (
            "torn",
            |d, ids| append_raw(&segment_path(d, ids[ids.len() - 1]), b"SLR1\x05"),
            "torn tail",
        ),
        // Record 0 is acknowledged; record 1 (offset 27) is not.
        (
            "flip",
            |d, ids| flip(&segment_path(d, ids[0]), 27 + 20),
            "damaged: 1 regions",
        ),
        (
            "ack",
            |d, _| std::fs::write(d.join(ACK_FILE_NAME), b"x").unwrap(),
            "ack file damaged",
        ),
        (
            "missing",
            |d, ids| std::fs::remove_file(segment_path(d, ids[1])).unwrap(),
            "missing segments",
        ),
        (
            "empty",
            |d, ids| std::fs::write(segment_path(d, ids[ids.len() - 1] + 1), b"").unwrap(),
            "status: ok",
        ),
    ];
    for (name, damage, expected) in table {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut writer, mut reader, _) = open_ok(config(dir.path()));
            append_range(&mut writer, 0..30, 3);
            reader.read_batch(1).unwrap();
            reader.ack(1).unwrap();
        }
        let ids = segment_ids(dir.path());
        damage(dir.path(), &ids);
        let before = snapshot(dir.path());
        let report = check(dir.path()).unwrap();
        assert_eq!(
            snapshot(dir.path()),
            before,
            "{name}: check changed the directory"
        );
        let text = report.to_string();
        assert!(text.contains(expected), "{name}: {text}");
        let (_, _, opened) = open_ok(config(dir.path()));
        assert_eq!(opened.damaged, report.report.damaged, "{name}");
        assert_eq!(
            opened.unacked_records, report.report.unacked_records,
            "{name}"
        );
    }
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_default();
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn check_fails_cleanly_on_a_missing_directory_and_open_on_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let err = check(&dir.path().join("nope")).unwrap_err();
    assert!(err.to_string().starts_with("cannot inspect"), "{err}");
    let bad = DiskBufferConfig {
        max_bytes: 0,
        ..config(dir.path())
    };
    assert!(matches!(open(bad), Err(DiskBufferError::InvalidConfig(_))));
}
