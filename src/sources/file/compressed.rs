//! Compressed rotated files (`.gz`, logrotate's `compress`) that the globs match: read
//! once through their decompressed stream, never tailed.
//!
//! A compressed file is known by the same [`Fingerprint`] as the plain file it was made
//! from: the checksum of its first decompressed bytes. So the `.gz` of a file read as plain
//! text meets that file's checkpoint and is read from there (usually: nothing is left),
//! not again from its start; and one read to its end and acknowledged is marked done in
//! the checkpoints, which a restart honours without decompressing it again.
//!
//! A `.gz` is opened once its length held for a scan (logrotate may still be writing it);
//! one that is corrupt or truncated is counted and reported by name, and looked at again
//! only if it changes. The files already handled are remembered by device, inode, length
//! and modification time, so a scan does not decompress them again.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use super::fingerprint::{Fingerprint, FINGERPRINT_BYTES};

/// True for the files read as compressed.
pub(super) fn is_compressed(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

/// A file read from its start by position: a second descriptor of a file shares its offset
/// with the first, so reading through one would move the other.
pub(super) struct FromStart {
    file: File,
    pos: u64,
}

impl FromStart {
    pub(super) fn new(file: &File) -> std::io::Result<Self> {
        Ok(Self {
            file: file.try_clone()?,
            pos: 0,
        })
    }
}

impl Read for FromStart {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// The identity of a compressed file: the checksum of its first decompressed bytes (as the
/// plain file it was made from has), or its device and inode while it holds fewer.
pub(super) fn fingerprint(file: &File) -> std::io::Result<Fingerprint> {
    let meta = file.metadata()?;
    let mut head = Vec::with_capacity(FINGERPRINT_BYTES as usize);
    flate2::read::MultiGzDecoder::new(FromStart::new(file)?)
        .take(FINGERPRINT_BYTES)
        .read_to_end(&mut head)?;
    if (head.len() as u64) < FINGERPRINT_BYTES {
        return Ok(Fingerprint::DevInode {
            dev: meta.dev(),
            inode: meta.ino(),
        });
    }
    Ok(Fingerprint::Checksum {
        crc: crc32fast::hash(&head),
    })
}

/// What a compressed file looked like when it was handled.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: i64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            len: meta.len(),
            modified: meta.mtime_nsec() + meta.mtime() * 1_000_000_000,
        }
    }
}

/// The compressed files seen by the scans.
#[derive(Default)]
pub(super) struct Seen {
    /// Handled (read, being read, done or corrupt), with their identity when known.
    handled: HashMap<(u64, u64), (Stamp, Option<Fingerprint>)>,
    /// Not handled yet: their length at the last scan.
    lengths: HashMap<(u64, u64), u64>,
}

/// What a scan does with a compressed file.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Handled before and unchanged.
    Handled,
    /// Still changing (or first seen after start): looked at again next scan.
    Wait,
    /// To be looked at now.
    Open,
}

impl Seen {
    /// What to do with a compressed file a scan found (and did not find being read).
    pub(super) fn verdict(
        &mut self,
        key: (u64, u64),
        meta: &std::fs::Metadata,
        first_scan: bool,
    ) -> Verdict {
        let stamp = Stamp::of(meta);
        if self.handled.get(&key).is_some_and(|(s, _)| *s == stamp) {
            return Verdict::Handled;
        }
        let stable = self.lengths.get(&key) == Some(&stamp.len);
        self.lengths.insert(key, stamp.len);
        if first_scan || stable {
            Verdict::Open
        } else {
            Verdict::Wait
        }
    }

    /// Records that the file was handled (read, being read, done or corrupt).
    pub(super) fn handled(
        &mut self,
        key: (u64, u64),
        meta: &std::fs::Metadata,
        fingerprint: Option<Fingerprint>,
    ) {
        self.lengths.remove(&key);
        self.handled.insert(key, (Stamp::of(meta), fingerprint));
    }

    /// Ends a scan: forgets the files it did not list; the identities of those it did, so
    /// their checkpoints are kept.
    pub(super) fn end_scan(&mut self, listed: &[(u64, u64)]) -> Vec<Fingerprint> {
        let listed: std::collections::HashSet<_> = listed.iter().collect();
        self.handled.retain(|k, _| listed.contains(k));
        self.lengths.retain(|k, _| listed.contains(k));
        self.handled.values().filter_map(|(_, f)| *f).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(path: &Path, content: &[u8]) {
        let mut enc =
            flate2::write::GzEncoder::new(File::create(path).unwrap(), flate2::Compression::fast());
        enc.write_all(content).unwrap();
        enc.finish().unwrap();
    }

    #[test]
    fn a_compressed_copy_has_its_plain_original_s_identity() {
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..40)
            .flat_map(|i| format!("line {i:04}\n").into_bytes())
            .collect();
        let plain = dir.path().join("app.log.1");
        std::fs::write(&plain, &content).unwrap();
        let gz = dir.path().join("app.log.1.gz");
        gzip(&gz, &content);
        assert!(is_compressed(&gz) && !is_compressed(&plain));
        let expected = Fingerprint::of(&File::open(&plain).unwrap()).unwrap();
        assert!(expected.is_checksum());
        assert_eq!(fingerprint(&File::open(&gz).unwrap()).unwrap(), expected);

        let short = dir.path().join("short.gz");
        gzip(&short, b"tiny\n");
        assert!(!fingerprint(&File::open(&short).unwrap())
            .unwrap()
            .is_checksum());

        let bad = dir.path().join("bad.gz");
        std::fs::write(&bad, b"not gzip at all, not even close").unwrap();
        assert!(fingerprint(&File::open(&bad).unwrap()).is_err());
    }

    #[test]
    fn waits_for_a_stable_length_then_remembers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.gz");
        std::fs::write(&path, b"abc").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let key = (meta.dev(), meta.ino());
        let mut seen = Seen::default();
        assert_eq!(seen.verdict(key, &meta, false), Verdict::Wait);
        assert_eq!(seen.verdict(key, &meta, false), Verdict::Open);
        seen.handled(key, &meta, Some(Fingerprint::Checksum { crc: 1 }));
        assert_eq!(seen.verdict(key, &meta, false), Verdict::Handled);
        assert_eq!(seen.end_scan(&[key]), [Fingerprint::Checksum { crc: 1 }]);
        assert!(seen.end_scan(&[]).is_empty(), "forgotten once not listed");
        assert_eq!(seen.verdict(key, &meta, true), Verdict::Open);
    }
}
