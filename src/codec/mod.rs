//! Codecs: bytes off the wire → frames → fields.
//!
//! A codec is two independent steps, each a closed enum built from a small config enum:
//!
//! 1. **Framing** ([`FramingConfig`] → [`Framer`]) cuts a byte stream into frames.
//! 2. **Decoding** ([`DecodingConfig`] → [`Deserializer`]) turns one frame into the fields of
//!    an event.
//!
//! [`Decoder`] joins the two and implements [`tokio_util::codec::Decoder`], so a source
//! wraps a socket or file in a `FramedRead`, or drives [`Decoder::decode_all`] over its own
//! read buffer to collect a whole batch in one call.
//!
//! # Frame layouts
//!
//! `newline` and `character_delimited` (the delimiter is never part of the frame; a `\r`
//! before a `\n` is kept, so a passthrough reproduces the input byte for byte; at the end of
//! the stream a final frame without a delimiter still counts):
//!
//! ```text
//! +---- frame ----+----+---- frame ----+----+--- last frame ---+
//! | 127.0.0.1 ... | \n | level=info ...| \n | {"msg": "bye"}   | EOF
//! +---------------+----+---------------+----+------------------+
//! ```
//!
//! `octet_counting` (RFC 6587): a decimal length without leading zeros (at most ten digits),
//! one space, then exactly that many bytes, which must start with a syslog priority `<`.
//! A single `\n` after a frame is skipped, since some senders add one and some do not:
//!
//! ```text
//! +-----+----+-------------- LEN bytes --------------+------+
//! | LEN | SP | <34>1 2026-11-23T10:00:00Z host app - | (\n) |
//! +-----+----+---------------------------------------+------+
//! ```
//!
//! A frame that does not look like that (`200 OK done`, `10.1.2.3 - - [23/Nov/2026...`,
//! `12345`) is framed as one newline-terminated line instead. The choice is made again for
//! every frame, so a stream may mix both, as real syslog relays do.
//!
//! `length_delimited`: a 4-byte big-endian unsigned length, then that many bytes:
//!
//! ```text
//! +---------- len: u32 be ---------+------ len bytes ------+
//! | 0x00 | 0x00 | 0x00 | 0x0B      | Hello world           |
//! +--------------------------------+-----------------------+
//! ```
//!
//! # Bad input
//!
//! Nothing a peer sends makes a codec fail or grow without bound. A frame longer than
//! `max_frame_bytes` is skipped (or truncated, with `oversize = "truncate"`) while it streams
//! past, never buffered whole; a stream that ends inside a frame, or a frame the decoding
//! rejects, becomes a [`BadFrame`] item that the source counts by [`BadFrame::reason_label`] and may
//! write to a dead-letter output. `Err` is reserved for IO errors of the underlying reader.
//!
//! **Architecture invariant:** codecs know nothing about the topology. They see bytes and
//! produce field maps and bad frames; events, metadata, acknowledgements, batches, channels
//! and metrics belong to the source that drives them.

mod bad_frame;
pub mod container;
mod decoder;
mod framing;
pub mod multiline;

pub use bad_frame::{BadFrame, BadFrameReason, RAW_SAMPLE_BYTES};
pub use decoder::{Decoded, Decoder, DecodingConfig, Deserializer};
pub use framing::{
    CharacterDelimitedConfig, DelimitedFramer, Frame, FrameLimits, Framer, FramingConfig,
    LengthDelimitedFramer, OctetCountingFramer, OversizePolicy, DEFAULT_MAX_FRAME_BYTES,
    MAX_FRAME_BYTES_LIMIT,
};
