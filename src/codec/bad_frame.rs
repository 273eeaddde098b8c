//! Frames that cannot become events, and why.

use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::parse::ParseError;

/// At most this many leading bytes of an oversized frame are kept for the dead-letter output;
/// the rest streams past without being buffered.
pub const RAW_SAMPLE_BYTES: usize = 1024;

/// A frame that was counted and dropped instead of becoming an event.
///
/// The stream always continues after a bad frame. A source counts it by
/// [`reason_label`](Self::reason_label)
/// and may write [`reason`](Self::reason) and [`raw`](Self::raw) to a dead-letter output.
#[derive(Debug, Clone, PartialEq)]
pub struct BadFrame {
    reason: BadFrameReason,
    raw: Bytes,
}

impl BadFrame {
    pub fn new(reason: BadFrameReason, raw: Bytes) -> Self {
        Self { reason, raw }
    }

    /// A short, fixed label for the bad-frame counter: `oversized`, `truncated` or
    /// `parse_error`.
    pub fn reason_label(&self) -> &'static str {
        self.reason.label()
    }

    /// Why the frame was dropped; its `Display` is the human text for logs and dead letters.
    pub fn reason(&self) -> &BadFrameReason {
        &self.reason
    }

    /// The frame's bytes as received, without delimiter or length prefix. An oversized frame
    /// keeps only its first [`RAW_SAMPLE_BYTES`]; any other bad frame is no longer than
    /// `max_frame_bytes` and is kept whole (shared with the read buffer, not copied).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    pub fn into_parts(self) -> (BadFrameReason, Bytes) {
        (self.reason, self.raw)
    }
}

/// Why a frame was dropped.
#[derive(Debug, Clone, PartialEq)]
pub enum BadFrameReason {
    /// Longer than `max_frame_bytes` with `oversize = "skip"`. `len` is the whole frame's
    /// length: counted up to the delimiter, or as declared by a length prefix.
    Oversized { len: u64, max_frame_bytes: usize },
    /// The stream ended inside a length-prefixed frame. `declared` is `None` when it ended
    /// inside the length prefix itself.
    Truncated {
        declared: Option<u64>,
        received: usize,
    },
    /// The frame was cut cleanly but the decoding rejected it. `truncated` says the frame had
    /// already been cut to `max_frame_bytes`, which is the likely cause.
    Parse {
        /// The decoding that rejected it, as named in config (`json`, `logfmt`, `syslog`).
        format: &'static str,
        error: ParseError,
        truncated: bool,
    },
    /// A line that is not in the container runtime's log format (`docker`, `cri`).
    Container {
        format: &'static str,
        error: &'static str,
    },
}

impl BadFrameReason {
    /// See [`BadFrame::reason_label`].
    pub fn label(&self) -> &'static str {
        match self {
            Self::Oversized { .. } => "oversized",
            Self::Truncated { .. } => "truncated",
            Self::Parse { .. } | Self::Container { .. } => "parse_error",
        }
    }
}

impl fmt::Display for BadFrameReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Oversized {
                len,
                max_frame_bytes,
            } => write!(
                f,
                "frame of {len} bytes exceeds max_frame_bytes ({max_frame_bytes})"
            ),
            Self::Truncated {
                declared: Some(declared),
                received,
            } => write!(
                f,
                "stream ended after {received} of {declared} declared frame bytes"
            ),
            Self::Truncated {
                declared: None,
                received,
            } => write!(
                f,
                "stream ended inside a length prefix after {received} bytes"
            ),
            Self::Parse {
                format,
                error,
                truncated,
            } => {
                write!(f, "invalid {format} frame: {error}")?;
                if *truncated {
                    f.write_str(" (the frame was truncated to max_frame_bytes)")?;
                }
                Ok(())
            }
            Self::Container { format, error } => write!(f, "not a {format} log line: {error}"),
        }
    }
}

impl std::error::Error for BadFrameReason {}

/// The first [`RAW_SAMPLE_BYTES`] of a frame that streams past in pieces.
#[derive(Debug, Default)]
pub(super) struct Sample(BytesMut);

impl Sample {
    pub(super) fn of(bytes: &[u8]) -> Self {
        let mut sample = Self::default();
        sample.absorb(bytes);
        sample
    }

    pub(super) fn absorb(&mut self, bytes: &[u8]) {
        let room = RAW_SAMPLE_BYTES.saturating_sub(self.0.len());
        self.0.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    pub(super) fn oversized(self, len: u64, max_frame_bytes: usize) -> BadFrame {
        BadFrame::new(
            BadFrameReason::Oversized {
                len,
                max_frame_bytes,
            },
            self.0.freeze(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_keeps_only_the_first_bytes_across_pieces() {
        let mut sample = Sample::of(&[b'a'; 1000]);
        sample.absorb(&[b'b'; 1000]);
        sample.absorb(b"c");
        let bad = sample.oversized(2001, 100);
        assert_eq!(bad.raw().len(), RAW_SAMPLE_BYTES);
        assert_eq!(&bad.raw()[998..1002], b"aabb");
        assert_eq!(bad.reason_label(), "oversized");
    }

    #[test]
    fn reasons_read_as_lowercase_sentences() {
        let cases = [
            (
                BadFrameReason::Oversized {
                    len: 20,
                    max_frame_bytes: 10,
                },
                "frame of 20 bytes exceeds max_frame_bytes (10)",
            ),
            (
                BadFrameReason::Truncated {
                    declared: Some(9),
                    received: 3,
                },
                "stream ended after 3 of 9 declared frame bytes",
            ),
            (
                BadFrameReason::Truncated {
                    declared: None,
                    received: 2,
                },
                "stream ended inside a length prefix after 2 bytes",
            ),
            (
                BadFrameReason::Parse {
                    format: "json",
                    error: ParseError {
                        reason: "expected value".into(),
                    },
                    truncated: true,
                },
                "invalid json frame: expected value (the frame was truncated to max_frame_bytes)",
            ),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
        }
    }
}
