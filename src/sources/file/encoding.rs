//! A file's `encoding`: its bytes transcoded to UTF-8 before framing, by `encoding_rs`
//! (the WHATWG Encoding Standard's decoders, as Firefox uses them).
//!
//! Framing cuts the UTF-8 text, but a checkpoint must be an offset in the file's own bytes.
//! So each newline's end is recorded in both: the raw offset just past the encoded newline
//! (`0A`, or the code unit `0A 00` / `00 0A` in UTF-16) beside the text offset just past
//! the `\n` it decoded to. The decoders emit exactly one `\n` per encoded newline (a broken
//! sequence before one is replaced and the newline read again), so the n-th of each pair up;
//! a read where the counts differ records nothing, and the offset then falls back to an
//! earlier line's end: read again after a restart (a duplicate), never cut in a line.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;

use bytes::BytesMut;
use encoding_rs::{Decoder, DecoderResult, Encoding, UTF_16BE, UTF_16LE};

use crate::telemetry::Counter;

/// The UTF-8 text of the replacement character, put where a sequence could not be decoded.
const REPLACEMENT: &str = "\u{FFFD}";

pub(super) struct Transcoder {
    decoder: Decoder,
    /// Text bytes appended to the reader's buffer since the file was opened.
    fed: u64,
    /// (text offset, raw offset) at line ends, ascending; the first is where reading began.
    marks: VecDeque<(u64, u64)>,
    /// In UTF-16, the first byte of a code unit the last read ended in.
    split_unit: Option<u8>,
    invalid: Counter,
}

impl Transcoder {
    /// A transcoder for a file read from raw offset `start`. From the file's start, a
    /// byte-order mark is honoured (it names the encoding, whatever `encoding` says) and
    /// left out of the text; elsewhere the reading resumes a line, after any mark.
    pub(super) fn new(encoding: &'static Encoding, start: u64, invalid: Counter) -> Self {
        let decoder = if start == 0 {
            encoding.new_decoder()
        } else {
            encoding.new_decoder_without_bom_handling()
        };
        Self {
            decoder,
            fed: 0,
            marks: VecDeque::from([(0, start)]),
            split_unit: None,
            invalid,
        }
    }

    /// A transcoder resuming at `start` in `file`: the encoding its byte-order mark names,
    /// if it has one (checked here because a decoder resuming mid-file cannot see it).
    pub(super) fn resume(
        encoding: &'static Encoding,
        file: &File,
        start: u64,
        invalid: Counter,
    ) -> Self {
        let mut encoding = encoding;
        if start > 0 {
            let mut head = [0u8; 3];
            if let Ok(n) = file.read_at(&mut head, 0) {
                if let Some((named, _)) = Encoding::for_bom(&head[..n]) {
                    encoding = named;
                }
            }
        }
        Self::new(encoding, start, invalid)
    }

    fn is_utf16(&self) -> Option<bool> {
        let encoding = self.decoder.encoding();
        (encoding == UTF_16LE || encoding == UTF_16BE).then_some(encoding == UTF_16LE)
    }

    /// How many raw bytes to read of `want`: whole UTF-16 code units, so that a newline's
    /// two bytes are never split between reads.
    pub(super) fn align(&self, want: usize) -> usize {
        match self.is_utf16() {
            Some(_) => want & !1,
            None => want,
        }
    }

    /// Text bytes appended so far.
    pub(super) fn fed(&self) -> u64 {
        self.fed
    }

    /// Decodes `raw`, read at raw offset `at`, onto `out`; `last` when the file is being
    /// closed (a sequence left unfinished becomes a replacement character).
    pub(super) fn decode(&mut self, raw: &[u8], at: u64, last: bool, out: &mut BytesMut) {
        let out_start = out.len();
        let mut src = raw;
        loop {
            let room = self
                .decoder
                .max_utf8_buffer_length_without_replacement(src.len())
                .unwrap_or(src.len() * 3 + 16);
            let len = out.len();
            out.resize(len + room, 0);
            let (result, read, written) =
                self.decoder
                    .decode_to_utf8_without_replacement(src, &mut out[len..], last);
            out.truncate(len + written);
            src = &src[read..];
            match result {
                DecoderResult::InputEmpty => break,
                DecoderResult::OutputFull => continue,
                DecoderResult::Malformed(_, _) => {
                    self.invalid.inc(1);
                    out.extend_from_slice(REPLACEMENT.as_bytes());
                }
            }
        }
        let text = &out[out_start..];
        let fed = self.fed;
        let text_ends: Vec<u64> = memchr::memchr_iter(b'\n', text)
            .map(|i| fed + i as u64 + 1)
            .collect();
        let text_len = text.len() as u64;
        let raw_ends: Vec<u64> = match self.is_utf16() {
            None => memchr::memchr_iter(b'\n', raw)
                .map(|i| at + i as u64 + 1)
                .collect(),
            Some(le) => self.utf16_newline_ends(raw, at, le),
        };
        if text_ends.len() == raw_ends.len() {
            self.marks.extend(text_ends.into_iter().zip(raw_ends));
        }
        self.fed += text_len;
        if last {
            // Everything read was decoded: the end of the text is the end of the bytes.
            self.marks.push_back((self.fed, at + raw.len() as u64));
        }
    }

    /// The raw offsets just past each UTF-16 newline in `raw`, read at `at`; code units
    /// count from where reading began (the reader reads whole units, but a unit split
    /// between two reads is joined here all the same).
    fn utf16_newline_ends(&mut self, raw: &[u8], at: u64, le: bool) -> Vec<u64> {
        let newline: [u8; 2] = if le { [b'\n', 0] } else { [0, b'\n'] };
        let mut ends = Vec::new();
        let mut i = 0;
        if let Some(first) = self.split_unit.take() {
            match raw.first() {
                Some(&second) => {
                    if [first, second] == newline {
                        ends.push(at + 1);
                    }
                    i = 1;
                }
                None => self.split_unit = Some(first),
            }
        }
        while i + 1 < raw.len() {
            if raw[i..i + 2] == newline {
                ends.push(at + i as u64 + 2);
            }
            i += 2;
        }
        if i < raw.len() {
            self.split_unit = Some(raw[i]);
        }
        ends
    }

    /// The raw offset of text offset `text`: exact at a line's end, else the end of the
    /// last line before it.
    pub(super) fn raw_offset(&self, text: u64) -> u64 {
        let after = self.marks.partition_point(|(t, _)| *t <= text);
        self.marks
            .get(after.saturating_sub(1))
            .map_or(0, |(_, raw)| *raw)
    }

    /// Forgets line ends before text offset `text` but the last of them (what the reader
    /// still holds begins there or later).
    pub(super) fn forget_before(&mut self, text: u64) {
        while self.marks.len() > 1 && self.marks[1].0 <= text {
            self.marks.pop_front();
        }
    }
}

/// The encoding a label names (`utf-16le`, `latin1`, `shift_jis`…: the WHATWG labels);
/// `None` for UTF-8, whose bytes are passed on as they are.
pub(super) fn for_label(label: &str) -> Result<Option<&'static Encoding>, String> {
    match Encoding::for_label(label.trim().as_bytes()) {
        Some(e) if e == encoding_rs::UTF_8 => Ok(None),
        Some(e) if e == encoding_rs::REPLACEMENT => Err(format!(
            "`{label}` names an encoding that decodes to nothing but replacement characters"
        )),
        Some(e) => Ok(Some(e)),
        None => Err(format!(
            "unknown encoding `{label}` (use a WHATWG label: utf-8, utf-16le, utf-16be, latin1, windows-1251, shift_jis, gbk…)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> Counter {
        crate::telemetry::counter(
            "component_errors_total",
            &[
                ("component_id", "encoding_test"),
                ("reason", "invalid_encoding"),
            ],
        )
    }

    fn utf16le(text: &str, bom: bool) -> Vec<u8> {
        let mut raw = if bom { vec![0xFF, 0xFE] } else { vec![] };
        raw.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        raw
    }

    #[test]
    fn utf16_with_a_bom_maps_line_ends_to_raw_offsets() {
        let raw = utf16le("héllo\nwörld\npart", true);
        let mut t = Transcoder::new(encoding_rs::WINDOWS_1252, 0, counter());
        let mut out = BytesMut::new();
        // Split in odd places: the decoder keeps what it has not finished.
        let (a, b) = raw.split_at(7);
        t.decode(a, 0, false, &mut out);
        t.decode(b, 7, false, &mut out);
        assert_eq!(
            &out[..],
            "héllo\nwörld\npart".as_bytes(),
            "the BOM named UTF-16LE"
        );
        let first = "héllo\n".len() as u64;
        // BOM (2) + 6 code units.
        assert_eq!(t.raw_offset(first), 2 + 12);
        let second = "héllo\nwörld\n".len() as u64;
        assert_eq!(t.raw_offset(second), 2 + 24);
        assert_eq!(t.raw_offset(second + 2), 2 + 24, "inside a line: its start");
        t.forget_before(second);
        assert_eq!(t.raw_offset(second), 2 + 24);
    }

    #[test]
    fn latin1_and_invalid_sequences() {
        let latin1 = for_label("latin1").unwrap().unwrap();
        let mut t = Transcoder::new(latin1, 10, counter());
        let mut out = BytesMut::new();
        t.decode(b"caf\xe9\nna\xefve\n", 10, false, &mut out);
        assert_eq!(&out[..], "café\nnaïve\n".as_bytes());
        assert_eq!(t.raw_offset("café\n".len() as u64), 15);
        assert_eq!(t.raw_offset(0), 10);

        let before = counter().get();
        let mut t = Transcoder::new(UTF_16LE, 0, counter());
        let mut out = BytesMut::new();
        // A lone high surrogate before the newline.
        t.decode(&[0x41, 0, 0x00, 0xD8, b'\n', 0], 0, false, &mut out);
        assert_eq!(&out[..], "A\u{FFFD}\n".as_bytes());
        assert_eq!(t.raw_offset(out.len() as u64), 6);
        assert!(counter().get() > before);

        assert_eq!(for_label("UTF-8").unwrap(), None);
        assert_eq!(for_label("iso-8859-1").unwrap(), Some(latin1));
        assert!(for_label("ebcdic").is_err());
        assert!(
            for_label("iso-2022-kr").is_err(),
            "the replacement encoding"
        );
    }
}
