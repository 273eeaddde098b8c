//! Frames after a 4-byte big-endian length prefix.

use bytes::BytesMut;

use super::counted::{self, Skip, Step};
use super::{Frame, FrameLimits};
use crate::codec::bad_frame::{BadFrame, BadFrameReason};

const HEADER_LEN: usize = 4;

/// Frames `LEN MSG` with `LEN` a big-endian `u32` (the layout of tokio-util's
/// `LengthDelimitedCodec` with its defaults). The prefix is not part of the frame.
#[derive(Debug)]
pub struct LengthDelimitedFramer {
    limits: FrameLimits,
    skip: Option<Skip>,
}

impl LengthDelimitedFramer {
    pub fn new(limits: FrameLimits) -> Self {
        Self { limits, skip: None }
    }

    /// True while the rest of an oversized frame is being dropped.
    pub(super) fn is_discarding(&self) -> bool {
        self.skip.is_some()
    }

    /// See [`super::DelimitedFramer::next_frame`]; the same contract.
    pub fn next_frame(&mut self, buf: &mut BytesMut, eof: bool) -> Option<Frame> {
        loop {
            if let Some(skip) = &mut self.skip {
                if !skip.consume(buf) && !eof {
                    return None;
                }
                let reported = self
                    .skip
                    .take()
                    .and_then(|s| s.finish(self.limits.max_frame_bytes));
                if reported.is_some() {
                    return reported;
                }
            }
            let Some(&[a, b, c, d]) = buf.get(..HEADER_LEN) else {
                // The stream ended inside a length prefix.
                if eof && !buf.is_empty() {
                    let raw = buf.split().freeze();
                    let reason = BadFrameReason::Truncated {
                        declared: None,
                        received: raw.len(),
                    };
                    return Some(Frame::Bad(BadFrame::new(reason, raw)));
                }
                return None;
            };
            let len = u64::from(u32::from_be_bytes([a, b, c, d]));
            match counted::body(buf, HEADER_LEN, len, &self.limits, eof) {
                Step::Frame(frame) => return Some(frame),
                Step::FrameThenSkip(frame, skip) => {
                    self.skip = Some(skip);
                    return Some(frame);
                }
                Step::Skip(skip) => self.skip = Some(skip),
                Step::NeedMore => return None,
            }
        }
    }
}
