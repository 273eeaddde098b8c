//! The bytes on disk: record headers, segment file names and the ack file.
//!
//! Everything here is pure (no IO beyond the ack file's own read and write) so that the
//! scanner, the reader, recovery and `check` all agree on one definition of "a valid record".

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Marks the start of a record: "SLR1" read as little-endian bytes. Resynchronisation after
/// damage searches for these four bytes.
pub(super) const RECORD_MAGIC: [u8; 4] = *b"SLR1";

/// `magic | payload length | payload crc32 | header crc32`, all little-endian u32.
pub(super) const HEADER_LEN: usize = 16;

/// The largest payload a record may carry. A damaged length field can therefore never make
/// a reader allocate more than this, and a legitimate record this large is already far
/// beyond any sane log event.
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

/// Segment files are named by a zero-padded id so that a directory listing sorts them in
/// write order and the id survives a restart without any other metadata.
const SEGMENT_SUFFIX: &str = ".seg";
const SEGMENT_ID_DIGITS: usize = 20;

pub(super) const ACK_FILE_NAME: &str = "ack";

/// Magic of an ack slot ("SLAK").
const ACK_MAGIC: [u8; 4] = *b"SLAK";
/// `magic | generation u64 | segment u64 | offset u64 | crc32`.
const ACK_SLOT_LEN: usize = 32;
/// The two slots sit in different 512-byte sectors, so a torn write of one slot cannot
/// damage the other: there is always a previous valid position to fall back to.
const ACK_SLOT_OFFSETS: [u64; 2] = [0, 512];

/// The on-disk size of a record carrying `payload_len` bytes.
pub(super) fn record_disk_len(payload_len: usize) -> u64 {
    (HEADER_LEN + payload_len) as u64
}

/// Appends one framed record to `out`.
pub(super) fn encode_record(payload: &[u8], out: &mut Vec<u8>) {
    debug_assert!(payload.len() <= MAX_RECORD_BYTES);
    let mut header = [0u8; HEADER_LEN];
    header[0..4].copy_from_slice(&RECORD_MAGIC);
    header[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[8..12].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let header_crc = crc32fast::hash(&header[0..12]);
    header[12..16].copy_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
}

/// What the bytes at a candidate record start say about themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HeaderCheck {
    /// Fewer than [`HEADER_LEN`] bytes are available.
    Short,
    /// Magic, header checksum or length limit is wrong: this is not a record start.
    Invalid,
    /// A header that was written as such, announcing a payload of this many bytes.
    Valid {
        payload_len: usize,
        payload_crc: u32,
    },
}

/// Checks the header at the start of `bytes`. The header carries its own checksum so a
/// header can be trusted before its payload has been read: that is what lets recovery tell
/// a torn tail (a genuine header whose payload never fully reached the disk) from damage.
pub(super) fn check_header(bytes: &[u8]) -> HeaderCheck {
    let Some(header) = bytes.get(..HEADER_LEN) else {
        return HeaderCheck::Short;
    };
    if header[0..4] != RECORD_MAGIC {
        return HeaderCheck::Invalid;
    }
    let field = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    if crc32fast::hash(&header[0..12]) != field(12) {
        return HeaderCheck::Invalid;
    }
    let payload_len = field(4) as usize;
    if payload_len > MAX_RECORD_BYTES {
        return HeaderCheck::Invalid;
    }
    HeaderCheck::Valid {
        payload_len,
        payload_crc: field(8),
    }
}

pub(super) fn payload_matches(payload: &[u8], expected_crc: u32) -> bool {
    crc32fast::hash(payload) == expected_crc
}

pub(super) fn segment_file_name(id: u64) -> String {
    format!("{id:0width$}{SEGMENT_SUFFIX}", width = SEGMENT_ID_DIGITS)
}

pub(super) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(segment_file_name(id))
}

/// The id of a segment file name, or `None` for any other file (which the buffer ignores).
pub(super) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_ID_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A position in the buffer: a byte offset inside a segment. Positions order by segment id
/// first, which is write order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// What the ack file held when it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AckFileRead {
    Missing,
    /// Neither slot has a valid checksum.
    Damaged,
    Valid {
        generation: u64,
        position: Position,
    },
}

fn encode_ack_slot(generation: u64, position: Position) -> [u8; ACK_SLOT_LEN] {
    let mut slot = [0u8; ACK_SLOT_LEN];
    slot[0..4].copy_from_slice(&ACK_MAGIC);
    slot[4..12].copy_from_slice(&generation.to_le_bytes());
    slot[12..20].copy_from_slice(&position.segment.to_le_bytes());
    slot[20..28].copy_from_slice(&position.offset.to_le_bytes());
    let crc = crc32fast::hash(&slot[0..28]);
    slot[28..32].copy_from_slice(&crc.to_le_bytes());
    slot
}

fn decode_ack_slot(bytes: &[u8]) -> Option<(u64, Position)> {
    let slot = bytes.get(..ACK_SLOT_LEN)?;
    if slot[0..4] != ACK_MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(slot[28..32].try_into().ok()?);
    if crc32fast::hash(&slot[0..28]) != crc {
        return None;
    }
    let u64_at = |at: usize| slot[at..at + 8].try_into().ok().map(u64::from_le_bytes);
    Some((
        u64_at(4)?,
        Position {
            segment: u64_at(12)?,
            offset: u64_at(20)?,
        },
    ))
}

/// Reads both slots and keeps the valid one with the highest generation.
pub(super) fn read_ack_file(dir: &Path) -> std::io::Result<AckFileRead> {
    let mut bytes = Vec::new();
    match File::open(dir.join(ACK_FILE_NAME)) {
        // Bounded read: a huge file in place of the ack file must not be slurped whole.
        Ok(file) => {
            file.take(ACK_SLOT_OFFSETS[1] + ACK_SLOT_LEN as u64)
                .read_to_end(&mut bytes)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(AckFileRead::Missing),
        Err(e) => return Err(e),
    }
    let best = ACK_SLOT_OFFSETS
        .iter()
        .filter_map(|&at| bytes.get(at as usize..).and_then(decode_ack_slot))
        .max_by_key(|(generation, _)| *generation);
    Ok(match best {
        Some((generation, position)) => AckFileRead::Valid {
            generation,
            position,
        },
        None => AckFileRead::Damaged,
    })
}

/// The writing end of the double-buffered ack file.
#[derive(Debug)]
pub(super) struct AckFile {
    file: File,
    generation: u64,
}

impl AckFile {
    /// Opens (creating if needed) the ack file; the next write uses a generation above
    /// `last_generation` so it wins over both slots present now.
    pub(super) fn open(dir: &Path, last_generation: u64) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(ACK_FILE_NAME))?;
        Ok(Self {
            file,
            generation: last_generation,
        })
    }

    /// Writes `position` into the older slot. No fsync: losing an ack on power loss only
    /// causes redelivery, never loss, so the cost of a sync per ack buys nothing we promise.
    pub(super) fn write(&mut self, position: Position) -> std::io::Result<()> {
        let generation = self.generation.wrapping_add(1);
        let slot = encode_ack_slot(generation, position);
        self.file
            .seek(SeekFrom::Start(ACK_SLOT_OFFSETS[(generation % 2) as usize]))?;
        self.file.write_all(&slot)?;
        self.generation = generation;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_flips() {
        let mut out = Vec::new();
        encode_record(b"hello", &mut out);
        assert_eq!(out.len() as u64, record_disk_len(5));
        let HeaderCheck::Valid {
            payload_len,
            payload_crc,
        } = check_header(&out)
        else {
            panic!("valid header expected");
        };
        assert_eq!(payload_len, 5);
        assert!(payload_matches(&out[HEADER_LEN..], payload_crc));
        for i in 0..HEADER_LEN {
            let mut damaged = out.clone();
            damaged[i] ^= 0x40;
            assert_eq!(check_header(&damaged), HeaderCheck::Invalid, "byte {i}");
        }
        assert_eq!(check_header(&out[..HEADER_LEN - 1]), HeaderCheck::Short);
    }

    #[test]
    fn segment_names_round_trip_and_ignore_strangers() {
        assert_eq!(parse_segment_file_name(&segment_file_name(42)), Some(42));
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        for name in [
            "ack",
            "1.seg",
            "0000000000000000000x.seg",
            "00000000000000000001.seg.tmp",
        ] {
            assert_eq!(parse_segment_file_name(name), None, "{name}");
        }
    }

    #[test]
    fn ack_file_keeps_the_newest_valid_slot() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_ack_file(dir.path()).unwrap(), AckFileRead::Missing);
        let mut ack = AckFile::open(dir.path(), 0).unwrap();
        for offset in 1..=3 {
            ack.write(Position { segment: 7, offset }).unwrap();
        }
        let read = read_ack_file(dir.path()).unwrap();
        assert_eq!(
            read,
            AckFileRead::Valid {
                generation: 3,
                position: Position {
                    segment: 7,
                    offset: 3
                }
            }
        );
        // Tear the newest slot (generation 3 lives in slot 1): the previous one remains.
        let path = dir.path().join(ACK_FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[512 + 13] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            read_ack_file(dir.path()).unwrap(),
            AckFileRead::Valid {
                generation: 2,
                position: Position {
                    segment: 7,
                    offset: 2
                }
            }
        );
        std::fs::write(&path, b"garbage").unwrap();
        assert_eq!(read_ack_file(dir.path()).unwrap(), AckFileRead::Damaged);
    }
}
