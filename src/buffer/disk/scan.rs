//! Walking the records of one segment file: the single place that decides what is a record,
//! what is damage and what is a torn tail.
//!
//! The scanner reads through a window (a bounded buffer) and never looks at a byte at or past
//! the `limit` it is given. The reader passes the writer's committed length as the limit, so a
//! record that is still being written is never seen, let alone mistaken for damage.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use super::format::{check_header, payload_matches, HeaderCheck, HEADER_LEN, RECORD_MAGIC};

/// How much is read at a time. Large enough that reading is sequential and cheap, small
/// enough that scanning a segment never holds more than this (or one record) in memory.
const CHUNK_BYTES: usize = 256 * 1024;

/// One step of a scan.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step<'a> {
    /// A valid record occupying `[start, end)`.
    Record {
        start: u64,
        end: u64,
        payload: &'a [u8],
    },
    /// `[start, end)` holds no valid record: at least one record was lost there.
    Damage { start: u64, end: u64 },
    /// Everything from `start` to the limit is the unfinished last write of a crashed
    /// writer (only reported in tail mode).
    TornTail { start: u64 },
    /// The scan reached the limit.
    End,
}

/// Whether the bytes just before the limit may be an unfinished write. Only the newest
/// segment found at open is scanned in tail mode: every other segment was complete once its
/// writer moved on, so an incomplete record there is damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TailMode {
    Sealed,
    MayBeTorn,
}

#[derive(Debug)]
pub(super) struct SegmentScanner {
    file: File,
    /// Bytes of the file starting at `window_start`; never extends past a limit seen so far,
    /// so cached bytes are always bytes the writer had finished.
    window: Vec<u8>,
    window_start: u64,
    pos: u64,
}

impl SegmentScanner {
    pub(super) fn new(file: File, pos: u64) -> Self {
        Self {
            file,
            window: Vec::new(),
            window_start: 0,
            pos,
        }
    }

    pub(super) fn position(&self) -> u64 {
        self.pos
    }

    /// Continues at `pos` (used to step over damage recovery already reported).
    pub(super) fn seek(&mut self, pos: u64) {
        self.pos = pos;
    }

    /// Classifies what starts at the current position and moves past it.
    pub(super) fn next(&mut self, limit: u64, tail: TailMode) -> io::Result<Step<'_>> {
        let start = self.pos;
        if start >= limit {
            return Ok(Step::End);
        }
        let available = limit - start;
        let header_len = (HEADER_LEN as u64).min(available) as usize;
        let header = check_header(self.fill(start, header_len, limit)?);
        match header {
            HeaderCheck::Valid {
                payload_len,
                payload_crc,
            } => {
                let end = start + (HEADER_LEN + payload_len) as u64;
                if end <= limit {
                    let bytes = self.fill(start, HEADER_LEN + payload_len, limit)?;
                    if payload_matches(&bytes[HEADER_LEN..], payload_crc) {
                        self.pos = end;
                        let from = (start - self.window_start) as usize + HEADER_LEN;
                        return Ok(Step::Record {
                            start,
                            end,
                            payload: &self.window[from..from + payload_len],
                        });
                    }
                    // The header checksum vouches for the length, so the damage is exactly
                    // this record: no need to search for the next one.
                    self.pos = end;
                    return Ok(Step::Damage { start, end });
                }
                if tail == TailMode::MayBeTorn {
                    self.pos = limit;
                    return Ok(Step::TornTail { start });
                }
            }
            HeaderCheck::Short if tail == TailMode::MayBeTorn => {
                self.pos = limit;
                return Ok(Step::TornTail { start });
            }
            // A file extended by the filesystem whose data never reached the disk reads
            // back as zeros: an unfinished write, not damage.
            HeaderCheck::Invalid
                if tail == TailMode::MayBeTorn && self.is_zero_until(start, limit)? =>
            {
                self.pos = limit;
                return Ok(Step::TornTail { start });
            }
            HeaderCheck::Short | HeaderCheck::Invalid => {}
        }
        let end = self.resync(start + 1, limit, tail)?;
        self.pos = end;
        Ok(Step::Damage { start, end })
    }

    /// Finds the next place a record may start at or after `from`: a header with a valid
    /// checksum. Its payload is checked by the next call to [`Self::next`], which reports a
    /// bad payload as damage of exactly that record.
    fn resync(&mut self, from: u64, limit: u64, tail: TailMode) -> io::Result<u64> {
        let finder = memchr::memmem::Finder::new(&RECORD_MAGIC);
        let mut at = from;
        while at + RECORD_MAGIC.len() as u64 <= limit {
            let chunk = (CHUNK_BYTES as u64).min(limit - at) as usize;
            let found = finder.find(self.fill(at, chunk, limit)?);
            let Some(i) = found else {
                // Keep the last three bytes: the magic may straddle the chunk boundary.
                at += (chunk - (RECORD_MAGIC.len() - 1)).max(1) as u64;
                continue;
            };
            let candidate = at + i as u64;
            let header_len = (HEADER_LEN as u64).min(limit - candidate) as usize;
            match check_header(self.fill(candidate, header_len, limit)?) {
                HeaderCheck::Valid { payload_len, .. } => {
                    let fits = candidate + (HEADER_LEN + payload_len) as u64 <= limit;
                    if fits || tail == TailMode::MayBeTorn {
                        return Ok(candidate);
                    }
                }
                HeaderCheck::Short if tail == TailMode::MayBeTorn => return Ok(candidate),
                HeaderCheck::Short | HeaderCheck::Invalid => {}
            }
            at = candidate + 1;
        }
        if tail == TailMode::MayBeTorn {
            // One to three bytes of a magic at the very end: the first bytes of a torn write.
            for k in (1..RECORD_MAGIC.len() as u64).rev() {
                if limit >= from + k
                    && self.fill(limit - k, k as usize, limit)? == &RECORD_MAGIC[..k as usize]
                {
                    return Ok(limit - k);
                }
            }
        }
        Ok(limit)
    }

    fn is_zero_until(&mut self, from: u64, limit: u64) -> io::Result<bool> {
        let mut at = from;
        while at < limit {
            let chunk = (CHUNK_BYTES as u64).min(limit - at) as usize;
            if self.fill(at, chunk, limit)?.iter().any(|&b| b != 0) {
                return Ok(false);
            }
            at += chunk as u64;
        }
        Ok(true)
    }

    /// Makes `[at, at + len)` available (with `at + len <= limit`) and returns it. Reads
    /// ahead up to a chunk, but never past `limit`.
    fn fill(&mut self, at: u64, len: usize, limit: u64) -> io::Result<&[u8]> {
        let window_end = self.window_start + self.window.len() as u64;
        if at < self.window_start || at + len as u64 > window_end {
            let read_end = limit.min(at + len.max(CHUNK_BYTES) as u64);
            let want = (read_end - at) as usize;
            self.window.clear();
            self.window.resize(want, 0);
            self.window_start = at;
            self.file.seek(SeekFrom::Start(at))?;
            if let Err(e) = self.file.read_exact(&mut self.window) {
                // Forget the partly filled window so that nothing reads stale zeros.
                self.window.clear();
                return Err(e);
            }
        }
        let from = (at - self.window_start) as usize;
        Ok(&self.window[from..from + len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::disk::format::encode_record;

    /// Scans `bytes` to the end and describes each step in a compact form.
    fn scan(bytes: &[u8], tail: TailMode) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, bytes).unwrap();
        let mut scanner = SegmentScanner::new(File::open(&path).unwrap(), 0);
        let mut out = Vec::new();
        loop {
            match scanner.next(bytes.len() as u64, tail).unwrap() {
                Step::Record { payload, .. } => {
                    out.push(String::from_utf8_lossy(payload).into_owned())
                }
                Step::Damage { start, end } => out.push(format!("damage {start}..{end}")),
                Step::TornTail { start } => out.push(format!("torn {start}")),
                Step::End => return out,
            }
        }
    }

    fn records(payloads: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            encode_record(p.as_bytes(), &mut out);
        }
        out
    }

    #[test]
    fn classifies_records_damage_and_torn_tails() {
        let clean = records(&["one", "two", "three"]); // records of 19, 19, 21 bytes
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = clean.clone();
            f(&mut b);
            b
        };
        use TailMode::*;
        let table: Vec<(&str, Vec<u8>, TailMode, Vec<&str>)> = vec![
            ("clean", clean.clone(), Sealed, vec!["one", "two", "three"]),
            (
                "payload flip",
                with(&|b| b[20 + 16] ^= 1),
                Sealed,
                vec!["one", "damage 19..38", "three"],
            ),
            (
                "header flip",
                with(&|b| b[19 + 5] ^= 1),
                Sealed,
                vec!["one", "damage 19..38", "three"],
            ),
            (
                "magic flip",
                with(&|b| b[19] ^= 1),
                Sealed,
                vec!["one", "damage 19..38", "three"],
            ),
            (
                "torn tail",
                clean[..50].to_vec(),
                MayBeTorn,
                vec!["one", "two", "torn 38"],
            ),
            (
                "torn header",
                clean[..45].to_vec(),
                MayBeTorn,
                vec!["one", "two", "torn 38"],
            ),
            (
                "torn magic",
                clean[..40].to_vec(),
                MayBeTorn,
                vec!["one", "two", "torn 38"],
            ),
            (
                "incomplete in sealed",
                clean[..50].to_vec(),
                Sealed,
                vec!["one", "two", "damage 38..50"],
            ),
            (
                "zeroed tail",
                with(&|b| b.extend_from_slice(&[0; 40])),
                MayBeTorn,
                vec!["one", "two", "three", "torn 59"],
            ),
            (
                "last record flipped",
                with(&|b| b[58] ^= 1),
                MayBeTorn,
                vec!["one", "two", "damage 38..59"],
            ),
            (
                "header flip then torn",
                with(&|b| {
                    b[38 + 1] ^= 1;
                    b.extend_from_slice(&records(&["four"])[..10]);
                }),
                MayBeTorn,
                vec!["one", "two", "damage 38..59", "torn 59"],
            ),
            (
                "header flip then torn magic prefix",
                with(&|b| {
                    b[38 + 1] ^= 1;
                    b.extend_from_slice(b"SL");
                }),
                MayBeTorn,
                vec!["one", "two", "damage 38..59", "torn 59"],
            ),
            (
                "garbage only",
                b"not a record at all".to_vec(),
                Sealed,
                vec!["damage 0..19"],
            ),
        ];
        for (name, bytes, tail, expected) in table {
            assert_eq!(scan(&bytes, tail), expected, "{name}");
        }
    }

    #[test]
    fn resyncs_across_chunk_boundaries() {
        let big = "x".repeat(CHUNK_BYTES + 100);
        let mut bytes = records(&[&big, "after"]);
        bytes[3] ^= 1;
        assert_eq!(
            scan(&bytes, TailMode::Sealed),
            vec![
                format!("damage 0..{}", CHUNK_BYTES + 116),
                "after".to_string()
            ]
        );
    }
}
