//! A file's identity, which survives a rename and tells a new file at an old path apart.
//!
//! A path says where a file is now, not which file it is: logrotate's `create` renames the
//! file being written and puts a new one at its path. Device and inode numbers follow a
//! rename, but the kernel reuses an inode as soon as a file is deleted, so a new file can
//! come back with a checkpointed inode. As Vector does, a file is known by a checksum of its
//! first [`FINGERPRINT_BYTES`] bytes, which no rename or inode reuse changes; a file shorter
//! than that has no such checksum yet and is known by device and inode until it grows.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};

use serde::{Deserialize, Serialize};

/// How many leading bytes the checksum covers: long enough to hold a timestamp or a
/// sequence number on the first line, so two logs of one app differ.
pub(super) const FINGERPRINT_BYTES: u64 = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum Fingerprint {
    /// CRC-32 of the first [`FINGERPRINT_BYTES`] bytes.
    Checksum { crc: u32 },
    /// A file still shorter than [`FINGERPRINT_BYTES`].
    DevInode { dev: u64, inode: u64 },
}

impl Fingerprint {
    /// The identity of `file` as it is now. A file that shrank while being read is short:
    /// known by device and inode.
    pub(super) fn of(file: &File) -> std::io::Result<Fingerprint> {
        let meta = file.metadata()?;
        let short = Fingerprint::DevInode {
            dev: meta.dev(),
            inode: meta.ino(),
        };
        if meta.len() < FINGERPRINT_BYTES {
            return Ok(short);
        }
        let mut head = [0u8; FINGERPRINT_BYTES as usize];
        match file.read_exact_at(&mut head, 0) {
            Ok(()) => Ok(Fingerprint::Checksum {
                crc: crc32fast::hash(&head),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(short),
            Err(e) => Err(e),
        }
    }

    pub(super) fn is_checksum(&self) -> bool {
        matches!(self, Fingerprint::Checksum { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn short_files_by_inode_long_files_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&a)
            .unwrap();
        file.write_all(b"short\n").unwrap();
        let first = Fingerprint::of(&file).unwrap();
        assert!(!first.is_checksum());
        file.write_all(&[b'x'; 300]).unwrap();
        let grown = Fingerprint::of(&file).unwrap();
        assert!(grown.is_checksum());

        // The same leading bytes in another file (a copy) have the same identity; a rename
        // keeps it; other leading bytes do not.
        let b = dir.path().join("b");
        std::fs::copy(&a, &b).unwrap();
        assert_eq!(Fingerprint::of(&File::open(&b).unwrap()).unwrap(), grown);
        std::fs::rename(&a, dir.path().join("a.1")).unwrap();
        let moved = File::open(dir.path().join("a.1")).unwrap();
        assert_eq!(Fingerprint::of(&moved).unwrap(), grown);
        std::fs::write(&b, [b'y'; 300]).unwrap();
        assert_ne!(Fingerprint::of(&File::open(&b).unwrap()).unwrap(), grown);
    }
}
