//! Framer targets: `next_frame` against a whole-input model of each frame layout.
//!
//! Input layout: byte 0 is the config (bit 0: `oversize = "truncate"`, bits 1..:
//! `max_frame_bytes` = 1 + bits, so 1..=128, small enough that oversized frames are common),
//! byte 1 seeds the chunking, byte 2 is the delimiter of `character_delimited` (as ASCII),
//! the rest is the stream.
//!
//! Invariants, for every method:
//! - the frames equal those of a model that reads the whole input at once and follows the
//!   layout and the oversize rules in `src/codec/mod.rs` (so any chunking gives the same
//!   frames, and for delimited framing every input byte is accounted for: complete frames,
//!   delimiters, truncated frames and skipped lengths);
//! - no good frame is longer than `max_frame_bytes`; an oversized bad frame keeps at most
//!   `RAW_SAMPLE_BYTES` of raw sample;
//! - after each read has been drained the buffer holds at most `max_frame_bytes` plus the
//!   longest header (0 delimited, 11 octet counting, 4 length prefix), so memory stays bounded
//!   however long a frame is;
//! - a drained framer asked again without new input answers `None` and leaves the buffer;
//! - after EOF the buffer is empty and the framer frames a second stream the same way.

use bytes::{Bytes, BytesMut};
use sluice::codec::{
    BadFrame, BadFrameReason, CharacterDelimitedConfig, Frame, FrameLimits, FramingConfig,
    OversizePolicy, RAW_SAMPLE_BYTES,
};

use crate::check::SplitMix;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Newline,
    CharacterDelimited,
    OctetCounting,
    LengthDelimited,
}

pub fn framing_newline(data: &[u8]) {
    run(Method::Newline, data);
}

pub fn framing_character_delimited(data: &[u8]) {
    run(Method::CharacterDelimited, data);
}

pub fn framing_octet_counting(data: &[u8]) {
    run(Method::OctetCounting, data);
}

pub fn framing_length_delimited(data: &[u8]) {
    run(Method::LengthDelimited, data);
}

struct Setup<'a> {
    config: FramingConfig,
    limits: FrameLimits,
    delimiter: u8,
    chunk_seed: u8,
    stream: &'a [u8],
}

fn setup(method: Method, data: &[u8]) -> Setup<'_> {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let limits = FrameLimits {
        max_frame_bytes: 1 + usize::from(byte(0) >> 1),
        oversize: if byte(0) & 1 == 1 {
            OversizePolicy::Truncate
        } else {
            OversizePolicy::Skip
        },
    };
    let delimiter = match method {
        Method::CharacterDelimited => byte(2) & 0x7f,
        _ => b'\n',
    };
    let config = match method {
        Method::Newline => FramingConfig::Newline(limits),
        Method::CharacterDelimited => FramingConfig::CharacterDelimited(CharacterDelimitedConfig {
            delimiter: char::from(delimiter),
            max_frame_bytes: limits.max_frame_bytes,
            oversize: limits.oversize,
        }),
        Method::OctetCounting => FramingConfig::OctetCounting(limits),
        Method::LengthDelimited => FramingConfig::LengthDelimited(limits),
    };
    Setup {
        config,
        limits,
        delimiter,
        chunk_seed: byte(1),
        stream: data.get(3..).unwrap_or_default(),
    }
}

fn run(method: Method, data: &[u8]) {
    let setup = setup(method, data);
    assert!(setup.config.validate().is_ok(), "{:?}", setup.config);
    let expected = model(method, &setup);
    let header = match method {
        Method::Newline | Method::CharacterDelimited => 0,
        Method::OctetCounting => 11,
        Method::LengthDelimited => 4,
    };
    let max = setup.limits.max_frame_bytes;

    // The whole stream in one read, then in reads of pseudo-random sizes (zero included:
    // a read that brought nothing must change nothing).
    let mut framer = setup.config.build();
    let whole = feed(&mut framer, setup.stream, &mut |_| setup.stream.len());
    assert_frames_eq(&whole.frames, &expected, "whole input");
    // The same framer must be ready for a new stream after EOF.
    let again = feed(&mut framer, setup.stream, &mut |_| setup.stream.len());
    assert_frames_eq(&again.frames, &expected, "second stream on the same framer");

    let mut rng = SplitMix::new(u64::from(setup.chunk_seed));
    let max_chunk = 1 + usize::from(setup.chunk_seed % 64);
    let mut framer = setup.config.build();
    let chunked = feed(&mut framer, setup.stream, &mut |_| {
        rng.below_or_eq(max_chunk)
    });
    assert_frames_eq(&chunked.frames, &expected, "chunked input");
    assert!(
        chunked.high_water <= max + header,
        "buffer held {} bytes after a drained read (max_frame_bytes {max}, header {header})",
        chunked.high_water
    );

    for frame in &expected {
        match frame {
            Frame::Complete(bytes) | Frame::Truncated(bytes) => {
                assert!(bytes.len() <= max, "frame of {} bytes", bytes.len());
            }
            Frame::Bad(bad) => assert!(bad.raw().len() <= RAW_SAMPLE_BYTES.max(max)),
        }
    }
}

struct Fed {
    frames: Vec<Frame>,
    /// The most bytes left in the buffer after draining a read.
    high_water: usize,
}

/// Feeds `stream` in reads of `next_len(offset)` bytes, draining after each, then signals
/// EOF. Checks the `next_frame` contract along the way.
fn feed(
    framer: &mut sluice::codec::Framer,
    stream: &[u8],
    next_len: &mut dyn FnMut(usize) -> usize,
) -> Fed {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut high_water = 0;
    let mut offset = 0;
    while offset < stream.len() {
        let len = next_len(offset).min(stream.len() - offset);
        buf.extend_from_slice(&stream[offset..offset + len]);
        offset += len;
        frames.extend(std::iter::from_fn(|| framer.next_frame(&mut buf, false)));
        high_water = high_water.max(buf.len());
        // Asking again without new input changes nothing.
        let before = buf.clone();
        assert_eq!(framer.next_frame(&mut buf, false), None, "second call");
        assert_eq!(buf, before, "a call that returned None consumed input");
    }
    frames.extend(std::iter::from_fn(|| framer.next_frame(&mut buf, true)));
    assert!(buf.is_empty(), "{} bytes left after eof", buf.len());
    assert_eq!(framer.next_frame(&mut buf, true), None, "after eof");
    Fed { frames, high_water }
}

fn assert_frames_eq(got: &[Frame], expected: &[Frame], what: &str) {
    if got != expected {
        let show = |frames: &[Frame]| {
            frames
                .iter()
                .map(|f| match f {
                    Frame::Complete(b) => format!("complete {:?}", b),
                    Frame::Truncated(b) => format!("truncated {:?}", b),
                    Frame::Bad(bad) => format!("bad {} {:?}", bad.reason(), bad.raw()),
                })
                .collect::<Vec<_>>()
                .join("\n  ")
        };
        panic!(
            "{what}: frames differ from the model\ngot:\n  {}\nexpected:\n  {}",
            show(got),
            show(expected)
        );
    }
}

// === the model ===

/// The frames of the whole input by the documented layout, computed without streaming.
fn model(method: Method, setup: &Setup<'_>) -> Vec<Frame> {
    let mut out = Vec::new();
    let input = setup.stream;
    let limits = setup.limits;
    match method {
        Method::Newline | Method::CharacterDelimited => {
            let mut pos = 0;
            while pos < input.len() {
                pos = model_line(input, pos, setup.delimiter, limits, &mut out);
            }
        }
        Method::OctetCounting => model_octet(input, limits, &mut out),
        Method::LengthDelimited => model_length(input, limits, &mut out),
    }
    out
}

/// One delimited frame starting at `pos`; returns the position after its delimiter.
fn model_line(
    input: &[u8],
    pos: usize,
    delimiter: u8,
    limits: FrameLimits,
    out: &mut Vec<Frame>,
) -> usize {
    let end = memchr::memchr(delimiter, &input[pos..]).map_or(input.len(), |i| pos + i);
    let frame = &input[pos..end];
    let max = limits.max_frame_bytes;
    out.push(if frame.len() <= max {
        Frame::Complete(Bytes::copy_from_slice(frame))
    } else {
        match limits.oversize {
            OversizePolicy::Skip => oversized(frame.len() as u64, max, frame),
            OversizePolicy::Truncate => Frame::Truncated(Bytes::copy_from_slice(&frame[..max])),
        }
    });
    end + 1
}

fn oversized(len: u64, max: usize, seen: &[u8]) -> Frame {
    let sample = &seen[..seen.len().min(RAW_SAMPLE_BYTES)];
    Frame::Bad(BadFrame::new(
        BadFrameReason::Oversized {
            len,
            max_frame_bytes: max,
        },
        Bytes::copy_from_slice(sample),
    ))
}

fn cut_short(declared: Option<u64>, rest: &[u8]) -> Frame {
    Frame::Bad(BadFrame::new(
        BadFrameReason::Truncated {
            declared,
            received: rest.len(),
        },
        Bytes::copy_from_slice(rest),
    ))
}

/// A body of `declared` bytes at `start`; returns where the next frame starts, or `None`
/// when the stream ended inside the body.
fn model_body(
    input: &[u8],
    start: usize,
    declared: u64,
    limits: FrameLimits,
    out: &mut Vec<Frame>,
) -> Option<usize> {
    let max = limits.max_frame_bytes;
    let available = input.len() - start;
    let present = usize::try_from(declared).map_or(available, |d| d.min(available));
    if declared <= max as u64 {
        if present as u64 == declared {
            out.push(Frame::Complete(Bytes::copy_from_slice(
                &input[start..start + present],
            )));
            return Some(start + present);
        }
        out.push(cut_short(Some(declared), &input[start..]));
        return None;
    }
    match limits.oversize {
        // Skipped as it streams past; a stream that ends inside it still reports it as
        // oversized, since it was either way.
        OversizePolicy::Skip => {
            out.push(oversized(declared, max, &input[start..start + present]));
            Some(start + present)
        }
        OversizePolicy::Truncate if available >= max => {
            out.push(Frame::Truncated(Bytes::copy_from_slice(
                &input[start..start + max],
            )));
            Some(start + present)
        }
        OversizePolicy::Truncate => {
            out.push(cut_short(Some(declared), &input[start..]));
            None
        }
    }
}

/// `[1-9][0-9]{0,9} SP <` at the front: the header length and the declared length.
fn octet_header(s: &[u8]) -> Option<(usize, u64)> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if !(1..=10).contains(&digits) || s[0] == b'0' {
        return None;
    }
    if s.get(digits) != Some(&b' ') || s.get(digits + 1) != Some(&b'<') {
        return None;
    }
    let len = s[..digits]
        .iter()
        .fold(0u64, |n, b| n * 10 + u64::from(b - b'0'));
    Some((digits + 1, len))
}

pub(crate) fn model_octet(input: &[u8], limits: FrameLimits, out: &mut Vec<Frame>) {
    let mut pos = 0;
    let mut after_octet_frame = false;
    loop {
        // One `\n` right after an octet-counted frame is a separator, not an empty line.
        if after_octet_frame && input.get(pos) == Some(&b'\n') {
            pos += 1;
        }
        after_octet_frame = false;
        if pos >= input.len() {
            return;
        }
        match octet_header(&input[pos..]) {
            Some((header_len, declared)) => {
                match model_body(input, pos + header_len, declared, limits, out) {
                    Some(next) => {
                        pos = next;
                        after_octet_frame = true;
                    }
                    None => return,
                }
            }
            None => pos = model_line(input, pos, b'\n', limits, out),
        }
    }
}

fn model_length(input: &[u8], limits: FrameLimits, out: &mut Vec<Frame>) {
    let mut pos = 0;
    while pos < input.len() {
        let Some(&[a, b, c, d]) = input.get(pos..pos + 4) else {
            out.push(cut_short(None, &input[pos..]));
            return;
        };
        let declared = u64::from(u32::from_be_bytes([a, b, c, d]));
        match model_body(input, pos + 4, declared, limits, out) {
            Some(next) => pos = next,
            None => return,
        }
    }
}
