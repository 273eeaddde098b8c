//! RFC 6587 octet counting, with a per-frame fallback to newline framing.
//!
//! Syslog over TCP comes in two framings, and relays mix them on one connection. A frame is
//! taken as octet-counted only if it starts `LEN SP <`: a length without leading zeros, one
//! space, then the `<` that opens every syslog priority. Checking that `<` is what keeps
//! ordinary lines that start with a number (`200 OK done`, an access log line starting with
//! an IP address) from being read as a length, which would swallow the following lines.

use bytes::{Buf, BytesMut};

use super::counted::{self, Skip, Step};
use super::{DelimitedFramer, Frame, FrameLimits};

/// The longest `LEN` accepted: ten digits, which also keeps the value far inside `u64`.
const MAX_LEN_DIGITS: usize = 10;

/// Frames `LEN SP MSG` (RFC 6587 octet counting), or one line when a frame does not start
/// like that.
#[derive(Debug)]
pub struct OctetCountingFramer {
    limits: FrameLimits,
    /// Frames that are not octet-counted are lines.
    lines: DelimitedFramer,
    skip: Option<Skip>,
    /// Set after an octet-counted frame: one `\n` right after it is a separator that some
    /// senders add, not an empty line.
    after_octet_frame: bool,
}

/// What the front of the buffer says about the next frame.
#[derive(Debug, PartialEq)]
enum Header {
    /// `LEN SP <`: the frame is `len` bytes after the `header_len`-byte `LEN SP`.
    Octet { header_len: usize, len: u64 },
    /// Anything else: the frame is a line.
    Line,
    /// A prefix of `LEN SP <`: one more byte decides.
    Incomplete,
}

impl OctetCountingFramer {
    pub fn new(limits: FrameLimits) -> Self {
        Self {
            limits,
            lines: DelimitedFramer::newline(limits),
            skip: None,
            after_octet_frame: false,
        }
    }

    /// True while the rest of an oversized frame is being dropped.
    pub(super) fn is_discarding(&self) -> bool {
        self.skip.is_some() || self.lines.is_discarding()
    }

    /// See [`DelimitedFramer::next_frame`]; the same contract.
    pub fn next_frame(&mut self, buf: &mut BytesMut, eof: bool) -> Option<Frame> {
        loop {
            if let Some(skip) = &mut self.skip {
                if !skip.consume(buf) && !eof {
                    return None;
                }
                self.after_octet_frame = true;
                let reported = self
                    .skip
                    .take()
                    .and_then(|s| s.finish(self.limits.max_frame_bytes));
                if reported.is_some() {
                    return reported;
                }
            }
            // Inside an oversized line: drop the rest of it, but no further, since the next
            // frame may be octet-counted.
            if self.lines.is_discarding() {
                let reported = self.lines.continue_discard(buf, eof);
                if reported.is_some() || self.lines.is_discarding() {
                    return reported;
                }
                continue;
            }
            // Inside a line: the front of the buffer is not a frame start.
            if self.lines.in_frame() {
                return self.lines.next_frame(buf, eof);
            }
            if self.after_octet_frame {
                match buf.first() {
                    Some(b'\n') => {
                        buf.advance(1);
                        self.after_octet_frame = false;
                    }
                    Some(_) => self.after_octet_frame = false,
                    None if eof => self.after_octet_frame = false,
                    None => return None,
                }
            }
            if buf.is_empty() {
                return None;
            }
            let (header_len, len) = match parse_header(buf) {
                Header::Octet { header_len, len } => (header_len, len),
                Header::Incomplete if !eof => return None,
                // At EOF an incomplete header is just the start of a last, short line.
                Header::Line | Header::Incomplete => return self.lines.next_frame(buf, eof),
            };
            match counted::body(buf, header_len, len, &self.limits, eof) {
                Step::Frame(frame) => {
                    self.after_octet_frame = true;
                    return Some(frame);
                }
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

/// Matches `[1-9][0-9]{0,9} SP <` at the front of `buf`.
fn parse_header(buf: &[u8]) -> Header {
    let mut len: u64 = 0;
    for (i, &byte) in buf.iter().enumerate() {
        match byte {
            b'1'..=b'9' if i == 0 => len = u64::from(byte - b'0'),
            b'0'..=b'9' if i > 0 && i < MAX_LEN_DIGITS => {
                len = len * 10 + u64::from(byte - b'0');
            }
            b' ' if i > 0 => {
                return match buf.get(i + 1) {
                    Some(b'<') => Header::Octet {
                        header_len: i + 1,
                        len,
                    },
                    Some(_) => Header::Line,
                    None => Header::Incomplete,
                };
            }
            _ => return Header::Line,
        }
    }
    Header::Incomplete
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_needs_a_plain_length_a_space_and_a_priority() {
        let cases: &[(&[u8], Header)] = &[
            (
                b"5 <1>ab",
                Header::Octet {
                    header_len: 2,
                    len: 5,
                },
            ),
            (
                b"9999999999 <",
                Header::Octet {
                    header_len: 11,
                    len: 9_999_999_999,
                },
            ),
            (b"", Header::Incomplete),
            (b"12", Header::Incomplete),
            (b"12 ", Header::Incomplete),
            (b"12345678901 <", Header::Line),
            (b"05 <1>", Header::Line),
            (b"0 <", Header::Line),
            (b" 5 <", Header::Line),
            (b"200 OK done", Header::Line),
            (b"10.1.2.3 - -", Header::Line),
            (b"12345\n", Header::Line),
            (b"12  <", Header::Line),
            (b"<13>Nov 23", Header::Line),
        ];
        for (input, expected) in cases {
            assert_eq!(&parse_header(input), expected, "{}", input.escape_ascii());
        }
    }
}
