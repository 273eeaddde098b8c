//! The body of a length-prefixed frame, shared by `octet_counting` and `length_delimited`:
//! once the prefix is read, both take, truncate or skip a known number of bytes.

use bytes::{Buf, BytesMut};

use super::{Frame, FrameLimits, OversizePolicy};
use crate::codec::bad_frame::{BadFrame, BadFrameReason, Sample};

/// What to do after reading a length prefix.
#[derive(Debug)]
pub(super) enum Step {
    /// The prefix and the frame were consumed (or, at EOF, the rest of the stream).
    Frame(Frame),
    /// Emit this truncated prefix of an oversized frame, then skip the rest of it.
    FrameThenSkip(Frame, Skip),
    /// Skip the oversized frame, which is reported when the skip ends.
    Skip(Skip),
    /// The frame is not complete yet.
    NeedMore,
}

/// The rest of an oversized frame, dropped as it arrives.
#[derive(Debug)]
pub(super) struct Skip {
    remaining: u64,
    declared: u64,
    /// The frame's first bytes for the report; `None` when it was truncated instead.
    sample: Option<Sample>,
}

/// Reads the body of a frame whose `header_len`-byte prefix at the front of `buf` declared
/// `declared` bytes.
pub(super) fn body(
    buf: &mut BytesMut,
    header_len: usize,
    declared: u64,
    limits: &FrameLimits,
    eof: bool,
) -> Step {
    let max = limits.max_frame_bytes;
    let available = buf.len().saturating_sub(header_len);
    // Bytes needed before a frame can be emitted: the whole frame, or its truncated prefix.
    let wanted = match limits.oversize {
        _ if declared <= max as u64 => declared as usize,
        OversizePolicy::Skip => {
            buf.advance(header_len);
            return Step::Skip(Skip {
                remaining: declared,
                declared,
                sample: Some(Sample::default()),
            });
        }
        OversizePolicy::Truncate => max,
    };
    if available >= wanted {
        buf.advance(header_len);
        let frame = buf.split_to(wanted).freeze();
        return match declared - wanted as u64 {
            0 => Step::Frame(Frame::Complete(frame)),
            rest => Step::FrameThenSkip(
                Frame::Truncated(frame),
                Skip {
                    remaining: rest,
                    declared,
                    sample: None,
                },
            ),
        };
    }
    if eof {
        buf.advance(header_len);
        let raw = buf.split().freeze();
        let reason = BadFrameReason::Truncated {
            declared: Some(declared),
            received: raw.len(),
        };
        return Step::Frame(Frame::Bad(BadFrame::new(reason, raw)));
    }
    // A hint so that one read can bring the rest of the frame (bounded by max_frame_bytes).
    buf.reserve(header_len + wanted - buf.len());
    Step::NeedMore
}

impl Skip {
    /// Drops as much of the frame as `buf` holds. Returns true once all of it is gone.
    pub(super) fn consume(&mut self, buf: &mut BytesMut) -> bool {
        let n = self.remaining.min(buf.len() as u64) as usize;
        if let Some(sample) = &mut self.sample {
            sample.absorb(&buf[..n]);
        }
        buf.advance(n);
        self.remaining -= n as u64;
        self.remaining == 0
    }

    /// The report for a skipped frame (also when the stream ended inside it: it was
    /// oversized either way). `None` for a frame that was truncated, not skipped.
    pub(super) fn finish(self, max_frame_bytes: usize) -> Option<Frame> {
        let declared = self.declared;
        self.sample
            .map(|sample| Frame::Bad(sample.oversized(declared, max_frame_bytes)))
    }
}
