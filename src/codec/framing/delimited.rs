//! Frames ended by one delimiter byte: `newline` and `character_delimited`.

use bytes::{Buf, BytesMut};

use super::{Frame, FrameLimits, OversizePolicy};
use crate::codec::bad_frame::Sample;

/// Cuts frames at a delimiter byte (`\n` for `newline`). The delimiter is dropped and
/// nothing else is: a `\r` before a `\n` stays in the frame.
#[derive(Debug)]
pub struct DelimitedFramer {
    delimiter: u8,
    limits: FrameLimits,
    /// How many bytes at the front of the buffer were already searched without finding a
    /// delimiter, so a frame that arrives in many reads is scanned once, not once per read.
    next_index: usize,
    /// Set while the rest of an oversized frame streams past, up to the next delimiter.
    discard: Option<Discard>,
}

/// The part of an oversized frame already seen and dropped.
#[derive(Debug)]
struct Discard {
    seen: u64,
    /// The frame's first bytes, for the bad-frame report; `None` when the frame was
    /// truncated instead, since its prefix was already emitted.
    sample: Option<Sample>,
}

impl DelimitedFramer {
    pub fn new(delimiter: u8, limits: FrameLimits) -> Self {
        Self {
            delimiter,
            limits,
            next_index: 0,
            discard: None,
        }
    }

    pub fn newline(limits: FrameLimits) -> Self {
        Self::new(b'\n', limits)
    }

    /// True while part of a frame has been looked at: the front of the buffer is then the
    /// middle of a frame, which the octet-counting framer must not mistake for a frame start.
    pub(super) fn in_frame(&self) -> bool {
        self.next_index > 0 || self.discard.is_some()
    }

    /// Drops the rest of an oversized frame as it arrives. Returns its report when it ends;
    /// `None` either when it needs more input (still discarding) or when the frame was
    /// truncated and so has nothing to report. Only this frame is consumed, so the
    /// octet-counting framer can take over again right after it.
    pub(super) fn continue_discard(&mut self, buf: &mut BytesMut, eof: bool) -> Option<Frame> {
        let discard = self.discard.as_mut()?;
        match memchr::memchr(self.delimiter, buf) {
            Some(end) => {
                discard.absorb(&buf[..end]);
                buf.advance(end + 1);
            }
            // Still inside the frame: drop everything read so far, keeping memory bounded.
            None => {
                discard.absorb(buf);
                buf.clear();
                if !eof {
                    return None;
                }
            }
        }
        self.next_index = 0;
        let max = self.limits.max_frame_bytes;
        self.discard.take().and_then(|d| d.finish(max))
    }

    pub(super) fn is_discarding(&self) -> bool {
        self.discard.is_some()
    }

    /// The next frame in `buf`, or `None` when more input is needed. With `eof` the input is
    /// complete: a final frame without delimiter is returned, and `None` means `buf` is empty.
    pub fn next_frame(&mut self, buf: &mut BytesMut, eof: bool) -> Option<Frame> {
        let max = self.limits.max_frame_bytes;
        if self.discard.is_some() {
            if let Some(bad) = self.continue_discard(buf, eof) {
                return Some(bad);
            }
            if self.discard.is_some() {
                return None;
            }
        }

        // `min` only guards against a caller that shrank the buffer between calls.
        let start = self.next_index.min(buf.len());
        match memchr::memchr(self.delimiter, &buf[start..]) {
            // A whole frame of acceptable size: hand out a view of the buffer, no copy.
            Some(offset) if start + offset <= max => {
                self.next_index = 0;
                let frame = buf.split_to(start + offset).freeze();
                buf.advance(1);
                Some(Frame::Complete(frame))
            }
            // A whole oversized frame, already in the buffer.
            Some(offset) => {
                self.next_index = 0;
                let end = start + offset;
                match self.limits.oversize {
                    OversizePolicy::Skip => {
                        let bad = Sample::of(&buf[..end]).oversized(end as u64, max);
                        buf.advance(end + 1);
                        Some(Frame::Bad(bad))
                    }
                    OversizePolicy::Truncate => {
                        let frame = buf.split_to(max).freeze();
                        buf.advance(end - max + 1);
                        Some(Frame::Truncated(frame))
                    }
                }
            }
            // No delimiter yet, but already too long: stop buffering and discard until the
            // delimiter arrives.
            None if buf.len() > max => {
                self.next_index = 0;
                let seen = buf.len() as u64;
                match self.limits.oversize {
                    OversizePolicy::Skip => {
                        self.discard = Some(Discard {
                            seen,
                            sample: Some(Sample::of(buf)),
                        });
                        buf.clear();
                        // At EOF the frame ends here; the discard branch reports it.
                        if eof {
                            self.next_frame(buf, eof)
                        } else {
                            None
                        }
                    }
                    OversizePolicy::Truncate => {
                        let frame = buf.split_to(max).freeze();
                        buf.clear();
                        self.discard = Some(Discard { seen, sample: None });
                        Some(Frame::Truncated(frame))
                    }
                }
            }
            // The stream ended without a final delimiter: what is left is the last frame.
            None if eof => {
                self.next_index = 0;
                (!buf.is_empty()).then(|| Frame::Complete(buf.split().freeze()))
            }
            // Remember how far we looked and wait for more input.
            None => {
                self.next_index = buf.len();
                None
            }
        }
    }
}

impl Discard {
    fn absorb(&mut self, bytes: &[u8]) {
        self.seen += bytes.len() as u64;
        if let Some(sample) = &mut self.sample {
            sample.absorb(bytes);
        }
    }

    fn finish(self, max_frame_bytes: usize) -> Option<Frame> {
        let seen = self.seen;
        self.sample
            .map(|sample| Frame::Bad(sample.oversized(seen, max_frame_bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_the_search_where_the_last_call_stopped() {
        let mut framer = DelimitedFramer::newline(FrameLimits::default());
        let mut buf = BytesMut::from(&b"abc"[..]);
        assert_eq!(framer.next_frame(&mut buf, false), None);
        assert_eq!(framer.next_index, 3);
        buf.extend_from_slice(b"de\nf");
        assert_eq!(
            framer.next_frame(&mut buf, false),
            Some(Frame::Complete("abcde".into()))
        );
        assert_eq!(framer.next_index, 0);
        assert_eq!(&buf[..], b"f");
    }

    #[test]
    fn a_shrunken_buffer_does_not_panic() {
        let mut framer = DelimitedFramer::newline(FrameLimits::default());
        let mut buf = BytesMut::from(&b"abcdef"[..]);
        assert_eq!(framer.next_frame(&mut buf, false), None);
        buf.truncate(2);
        assert_eq!(
            framer.next_frame(&mut buf, true),
            Some(Frame::Complete("ab".into()))
        );
    }
}
