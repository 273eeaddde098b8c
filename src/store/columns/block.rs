//! A block file: up to [`MAX_BLOCK_ROWS`] events of one partition, consecutive in arrival
//! order, stored column by column.
//!
//! ```text
//! magic "SLUCOL02" | header length u32 | header | header crc32 | sections...
//! header: rows u32, first_seq u64, min_ts i64, max_ts i64, flags u32,
//!         section count u32, then per section: name (u16 length + bytes),
//!         offset u64, stored length u32, raw length u32, crc32 u32
//! section: varint pages | per page: varint stored length, varint raw length, crc32 u32 |
//!          the pages' zstd frames
//! ```
//!
//! Sections, each compressed on its own (so a query reads only the ones it needs):
//! `_ts` (the rows' event times, zigzag varints of their differences), `_shape` (per row,
//! which shape), `_shapes` (each shape: the columns a row holds, in its field order),
//! `_bloom` ([`bloom`](super::bloom)), `_tokens` (message words seen at least twice, with
//! their rows: [`tokens`](super::tokens)), then one section per field name: the values of
//! the rows that hold that field, in row order ([`codec`](super::codec)).
//!
//! A section is stored in pages, each with its own checksum, so that a query reads and
//! decompresses only the pages it needs:
//! - a field column of at least 16 KiB: one page per [`PAGE_ROWS`] rows (the values of
//!   those rows), so that returning a few events decodes their pages, not whole columns;
//! - the word index: its directory, then its rows in pages;
//! - the bloom filter: pages picked by a term's hash, stored raw (they do not compress);
//! - everything else: one page.
//!
//! Blocks written as "SLUCOL01" hold each section as one zstd frame (the bloom filter raw)
//! without a page table, and are read as one page.
//!
//! A block is written to a temporary name, synced, and renamed: a block file under its own
//! name is whole. Its name is its sequence range, `<first_seq>-<last_seq>.blk`, so a merge
//! interrupted after renaming its output in but before deleting its inputs leaves blocks
//! whose ranges lie inside another's, which opening removes.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::codec::{put_varint, varint_at};

pub(super) const MAX_BLOCK_ROWS: usize = 65_536;
/// Rows per page of a field column: returning one event decompresses 1/16 of a full
/// block's columns. Smaller pages cost disk (zstd finds fewer repeats in each).
pub(super) const PAGE_ROWS: usize = 4096;
const MAGIC: &[u8; 8] = b"SLUCOL02";
/// The first layout: sections not paged.
const MAGIC_UNPAGED: &[u8; 8] = b"SLUCOL01";
/// zstd level for sections: 1 stored the mixed corpus in as many bytes as 3 (33.0 against
/// 33.1 per event) for about 0.4 µs less CPU per event (benches/RESULTS.md, issue 18).
const LEVEL: i32 = 1;
/// No header is bigger than this (a block with thousands of field names is still far below).
const MAX_HEADER_BYTES: usize = 16 << 20;
/// No section decompresses to more than this.
const MAX_RAW_BYTES: usize = 1 << 30;

pub(super) const TS: &str = "_ts";
pub(super) const SHAPE: &str = "_shape";
pub(super) const SHAPES: &str = "_shapes";
pub(super) const BLOOM: &str = "_bloom";
pub(super) const TOKENS: &str = "_tokens";
/// Sections before the field columns.
pub(super) const FIXED_SECTIONS: usize = 5;
/// Where the bloom filter and the word index are among the sections.
pub(super) const BLOOM_SECTION: usize = 3;
pub(super) const TOKENS_SECTION: usize = 4;

/// Flag: some row nests deeper than the bloom filter looks, so a field term cannot skip
/// this block.
pub(super) const FLAG_DEEP: u32 = 1;
/// Flag: some row holds a field name twice, so a column's values are not one per row.
pub(super) const FLAG_REPEATED_KEYS: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: damaged block ({what})")]
    Damaged { path: PathBuf, what: &'static str },
    /// A block written since the last commit failed: its events are not stored.
    #[error("a block could not be written: {0}")]
    Lost(String),
}

#[derive(Debug, Clone)]
pub(super) struct Section {
    pub(super) name: String,
    offset: u64,
    stored: u32,
    raw: u32,
    crc: u32,
}

impl Section {
    pub(super) fn stored_bytes(&self) -> u64 {
        u64::from(self.stored)
    }

    pub(super) fn raw_bytes(&self) -> usize {
        self.raw as usize
    }
}

/// What a block holds, read from its header (kept in memory for every block).
#[derive(Debug)]
pub(super) struct BlockMeta {
    pub(super) path: PathBuf,
    file: File,
    pub(super) rows: u32,
    pub(super) first_seq: u64,
    pub(super) min_ts: i64,
    pub(super) max_ts: i64,
    pub(super) flags: u32,
    /// [`FIXED_SECTIONS`] first, then the field columns.
    pub(super) sections: Vec<Section>,
    /// Sections begin with a page table (not so in blocks of the first layout).
    paged: bool,
}

/// A section's page table, read from the start of its stored bytes.
struct Pages {
    /// Stored length, raw length and checksum of each page.
    pages: Vec<(usize, usize, u32)>,
    /// Where the first page's frame starts in the stored bytes.
    start: usize,
}

/// No section has more pages than this.
pub(super) const MAX_PAGES: usize = 64;
/// No page table is longer than this: [`MAX_PAGES`] pages of two varints and a checksum.
const MAX_TABLE_BYTES: usize = 1 + MAX_PAGES * (10 + 10 + 4);

impl BlockMeta {
    pub(super) fn last_seq(&self) -> u64 {
        self.first_seq + u64::from(self.rows.max(1)) - 1
    }

    pub(super) fn columns(&self) -> &[Section] {
        &self.sections[FIXED_SECTIONS..]
    }

    /// Whether sections begin with a page table (blocks of the first layout do not).
    pub(super) fn is_paged(&self) -> bool {
        self.paged
    }

    pub(super) fn damaged(&self, what: &'static str) -> BlockError {
        BlockError::Damaged {
            path: self.path.clone(),
            what,
        }
    }

    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, BlockError> {
        let mut out = vec![0u8; len];
        self.file
            .read_exact_at(&mut out, offset)
            .map_err(|source| BlockError::Io {
                path: self.path.clone(),
                source,
            })?;
        Ok(out)
    }

    /// The section's stored bytes, checked against its checksum.
    fn stored(&self, section: &Section) -> Result<Vec<u8>, BlockError> {
        let stored = self.read_at(section.offset, section.stored as usize)?;
        if crc32fast::hash(&stored) != section.crc {
            return Err(self.damaged("checksum"));
        }
        Ok(stored)
    }

    /// The page table at the start of a section's stored bytes (`head`: all of them, or at
    /// least [`MAX_TABLE_BYTES`]), checked against the section's lengths.
    fn pages(&self, section: &Section, head: &[u8]) -> Result<Pages, BlockError> {
        let (stored, raw) = (section.stored as usize, section.raw as usize);
        if !self.paged {
            return Ok(Pages {
                pages: vec![(stored, raw, 0)],
                start: 0,
            });
        }
        let bad = || self.damaged("page table");
        let mut at = 0;
        let count = varint_at(head, &mut at).map_err(|_| bad())? as usize;
        if count == 0 || count > MAX_PAGES {
            return Err(bad());
        }
        let mut pages = Vec::with_capacity(count);
        for _ in 0..count {
            let stored_len = varint_at(head, &mut at).map_err(|_| bad())? as usize;
            let raw_len = varint_at(head, &mut at).map_err(|_| bad())? as usize;
            let crc = head.get(at..at + 4).ok_or_else(bad)?;
            pages.push((
                stored_len,
                raw_len,
                u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]),
            ));
            at += 4;
        }
        let start = at;
        let stored_sum = pages.iter().try_fold(start, |n, p| n.checked_add(p.0));
        let raw_sum = pages.iter().try_fold(0usize, |n, p| n.checked_add(p.1));
        if stored_sum != Some(stored) || raw_sum != Some(raw) {
            return Err(bad());
        }
        Ok(Pages { pages, start })
    }

    /// Decompresses one page's frame of `section` onto the end of `out` (the bloom
    /// filter's is not compressed).
    fn decompress(
        &self,
        section: &Section,
        frame: &[u8],
        raw: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), BlockError> {
        if raw == 0 && frame.is_empty() {
            return Ok(());
        }
        if section.name == BLOOM {
            if frame.len() != raw {
                return Err(self.damaged("length"));
            }
            out.extend_from_slice(frame);
            return Ok(());
        }
        // One decompression context per thread, not one per section read.
        thread_local! {
            static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
                const { std::cell::RefCell::new(None) };
        }
        let at = out.len();
        out.reserve(raw);
        let mut cursor = std::io::Cursor::new(std::mem::take(out));
        cursor.set_position(at as u64);
        let written = DECOMPRESSOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = Some(zstd::bulk::Decompressor::new()?);
            }
            match slot.as_mut() {
                Some(d) => d.decompress_to_buffer(frame, &mut cursor),
                None => Err(std::io::Error::other("no decompressor")),
            }
        });
        *out = cursor.into_inner();
        match written {
            Ok(n) if n == raw => Ok(()),
            Ok(_) => Err(self.damaged("length")),
            Err(_) => Err(self.damaged("compression")),
        }
    }

    /// The section's bytes, checked and decompressed (the bloom filter as stored).
    pub(super) fn read(&self, section: &Section) -> Result<Bytes, BlockError> {
        let stored = self.stored(section)?;
        let table = self.pages(section, &stored)?;
        let mut raw = Vec::with_capacity(section.raw as usize);
        let mut at = table.start;
        for (stored_len, raw_len, _) in table.pages {
            self.decompress(section, &stored[at..at + stored_len], raw_len, &mut raw)?;
            at += stored_len;
        }
        Ok(Bytes::from(raw))
    }

    /// Page `page` of a section, decompressed, and how many pages the section has: a
    /// section in one page is read whole whatever `page` asks. Reads only the page table
    /// and the page, checked against the page's own checksum.
    pub(super) fn read_page(
        &self,
        section: &Section,
        page: usize,
    ) -> Result<(Bytes, usize), BlockError> {
        if !self.paged {
            return Ok((self.read(section)?, 1));
        }
        let head = self.read_at(
            section.offset,
            (section.stored as usize).min(MAX_TABLE_BYTES),
        )?;
        let table = self.pages(section, &head)?;
        let count = table.pages.len();
        let page = if count == 1 { 0 } else { page };
        if page >= count {
            return Err(self.damaged("page table"));
        }
        let at = table.start + table.pages[..page].iter().map(|p| p.0).sum::<usize>();
        let (stored_len, raw_len, crc) = table.pages[page];
        let frame = self.read_at(section.offset + at as u64, stored_len)?;
        if crc32fast::hash(&frame) != crc {
            return Err(self.damaged("checksum"));
        }
        let mut raw = Vec::new();
        self.decompress(section, &frame, raw_len, &mut raw)?;
        Ok((Bytes::from(raw), count))
    }

    pub(super) fn section(&self, index: usize) -> Result<Bytes, BlockError> {
        self.read(&self.sections[index])
    }
}

pub(super) fn file_name(first_seq: u64, last_seq: u64) -> String {
    format!("{first_seq:020}-{last_seq:020}.blk")
}

pub(super) fn parse_file_name(name: &str) -> Option<(u64, u64)> {
    let (first, last) = name.strip_suffix(".blk")?.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?))
}

/// A block's contents before they are written.
pub(super) struct Encoded {
    pub(super) rows: u32,
    pub(super) first_seq: u64,
    pub(super) min_ts: i64,
    pub(super) max_ts: i64,
    pub(super) flags: u32,
    pub(super) sections: Vec<RawSection>,
}

/// A section before it is compressed.
pub(super) struct RawSection {
    pub(super) name: String,
    pub(super) bytes: Bytes,
    /// Where its pages after the first begin in `bytes` (none: one page). The bloom
    /// filter is stored as it is.
    pub(super) page_starts: Vec<usize>,
}

impl RawSection {
    pub(super) fn whole(name: &str, bytes: impl Into<Bytes>) -> RawSection {
        RawSection {
            name: name.to_string(),
            bytes: bytes.into(),
            page_starts: Vec::new(),
        }
    }
}

/// A section's stored form: its page table and each page compressed (the bloom filter's
/// pages as they are: they do not compress).
fn compress(section: &RawSection) -> std::io::Result<Vec<u8>> {
    let bytes = &section.bytes[..];
    let mut bounds = Vec::with_capacity(section.page_starts.len() + 2);
    bounds.push(0);
    bounds.extend(section.page_starts.iter().map(|&at| at.min(bytes.len())));
    bounds.push(bytes.len());
    let mut frames = Vec::with_capacity(bounds.len() - 1);
    for pair in bounds.windows(2) {
        let raw = &bytes[pair[0]..pair[1].max(pair[0])];
        let frame = if raw.is_empty() {
            Vec::new()
        } else if section.name == BLOOM {
            raw.to_vec()
        } else {
            zstd::bulk::compress(raw, LEVEL)?
        };
        frames.push((frame, raw.len()));
    }
    if frames.len() > MAX_PAGES {
        return Err(std::io::Error::other(format!(
            "section {} in {} pages, more than {MAX_PAGES}",
            section.name,
            frames.len()
        )));
    }
    let mut out = Vec::with_capacity(frames.iter().map(|f| f.0.len() + 8).sum::<usize>() + 4);
    put_varint(&mut out, frames.len() as u64);
    for (frame, raw_len) in &frames {
        put_varint(&mut out, frame.len() as u64);
        put_varint(&mut out, *raw_len as u64);
        out.extend_from_slice(&crc32fast::hash(frame).to_le_bytes());
    }
    for (frame, _) in &frames {
        out.extend_from_slice(frame);
    }
    Ok(out)
}

/// Writes `block` into `dir` (temporary name, sync, rename, sync the directory) and opens it.
pub(super) fn write(dir: &Path, block: Encoded) -> Result<BlockMeta, BlockError> {
    let last_seq = block.first_seq + u64::from(block.rows.max(1)) - 1;
    let path = dir.join(file_name(block.first_seq, last_seq));
    let io = |source| BlockError::Io {
        path: path.clone(),
        source,
    };
    let mut stored: Vec<(String, Bytes, u32)> = Vec::with_capacity(block.sections.len());
    for section in block.sections {
        let raw_len = section.bytes.len() as u32;
        let bytes = Bytes::from(compress(&section).map_err(io)?);
        stored.push((section.name, bytes, raw_len));
    }
    let mut header = Vec::with_capacity(256);
    header.extend_from_slice(&block.rows.to_le_bytes());
    header.extend_from_slice(&block.first_seq.to_le_bytes());
    header.extend_from_slice(&block.min_ts.to_le_bytes());
    header.extend_from_slice(&block.max_ts.to_le_bytes());
    header.extend_from_slice(&block.flags.to_le_bytes());
    header.extend_from_slice(&(stored.len() as u32).to_le_bytes());
    let entry_bytes: usize = stored.iter().map(|(n, _, _)| 2 + n.len() + 20).sum();
    let mut offset = (MAGIC.len() + 4 + header.len() + entry_bytes + 4) as u64;
    for (name, bytes, raw_len) in &stored {
        header.extend_from_slice(&(name.len() as u16).to_le_bytes());
        header.extend_from_slice(name.as_bytes());
        header.extend_from_slice(&offset.to_le_bytes());
        header.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        header.extend_from_slice(&raw_len.to_le_bytes());
        header.extend_from_slice(&crc32fast::hash(bytes).to_le_bytes());
        offset += bytes.len() as u64;
    }
    let mut out = Vec::with_capacity(offset as usize);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&crc32fast::hash(&header).to_le_bytes());
    for (_, bytes, _) in &stored {
        out.extend_from_slice(bytes);
    }
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(io)?;
    file.write_all(&out).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(io)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    open(&path)
}

/// Reads a block's header and checks it against the file (sections are checked when read).
pub(super) fn open(path: &Path) -> Result<BlockMeta, BlockError> {
    let io = |source| BlockError::Io {
        path: path.to_path_buf(),
        source,
    };
    let damaged = |what| BlockError::Damaged {
        path: path.to_path_buf(),
        what,
    };
    let file = File::open(path).map_err(io)?;
    let file_bytes = file.metadata().map_err(io)?.len();
    let mut start = [0u8; 12];
    file.read_exact_at(&mut start, 0)
        .map_err(|_| damaged("too short"))?;
    let paged = match &start[..8] {
        m if m == MAGIC => true,
        m if m == MAGIC_UNPAGED => false,
        _ => return Err(damaged("not a block")),
    };
    let header_len = u32::from_le_bytes([start[8], start[9], start[10], start[11]]) as usize;
    if header_len > MAX_HEADER_BYTES || (12 + header_len + 4) as u64 > file_bytes {
        return Err(damaged("header length"));
    }
    let mut header = vec![0u8; header_len + 4];
    file.read_exact_at(&mut header, 12).map_err(io)?;
    let crc = u32::from_le_bytes(header[header_len..].try_into().unwrap_or_default());
    header.truncate(header_len);
    if crc32fast::hash(&header) != crc {
        return Err(damaged("header checksum"));
    }
    let mut at = HeaderReader {
        bytes: &header,
        pos: 0,
    };
    let fields = (|| {
        let rows = at.u32()?;
        let first_seq = at.u64()?;
        let min_ts = at.u64()? as i64;
        let max_ts = at.u64()? as i64;
        let flags = at.u32()?;
        let count = at.u32()? as usize;
        let mut sections = Vec::with_capacity(count.min(header_len / 22));
        for _ in 0..count {
            let name_len = at.u16()? as usize;
            let name = String::from_utf8(at.take(name_len)?.to_vec()).ok()?;
            let offset = at.u64()?;
            let stored = at.u32()?;
            let raw = at.u32()?;
            let crc = at.u32()?;
            if offset + u64::from(stored) > file_bytes || raw as usize > MAX_RAW_BYTES {
                return None;
            }
            sections.push(Section {
                name,
                offset,
                stored,
                raw,
                crc,
            });
        }
        Some((rows, first_seq, min_ts, max_ts, flags, sections))
    })();
    let Some((rows, first_seq, min_ts, max_ts, flags, sections)) = fields else {
        return Err(damaged("header"));
    };
    let fixed = [TS, SHAPE, SHAPES, BLOOM, TOKENS];
    if sections.len() < FIXED_SECTIONS
        || sections.iter().zip(fixed).any(|(s, name)| s.name != name)
        || rows == 0
        || rows as usize > MAX_BLOCK_ROWS
    {
        return Err(damaged("sections"));
    }
    Ok(BlockMeta {
        path: path.to_path_buf(),
        file,
        rows,
        first_seq,
        min_ts,
        max_ts,
        flags,
        sections,
        paged,
    })
}

struct HeaderReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> HeaderReader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(out)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// The rows' shapes, as written in `_shapes`: per shape, its column indexes in field order.
pub(super) fn encode_shapes(shapes: &[Vec<u32>]) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, shapes.len() as u64);
    for shape in shapes {
        put_varint(&mut out, shape.len() as u64);
        for &column in shape {
            put_varint(&mut out, u64::from(column));
        }
    }
    out
}
