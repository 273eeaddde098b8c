//! Framing: cutting a byte stream into frames.
//!
//! Every framer has the same contract ([`Framer::next_frame`]): it takes frames off the
//! front of a read buffer, returns `None` when it needs more input, never fails, and never
//! holds more than about `max_frame_bytes` of one frame. A good frame is a view into the
//! read buffer (`BytesMut::split_to(..).freeze()`), so framing copies nothing.

mod config;
mod counted;
mod delimited;
mod length_delimited;
mod octet_counting;

use bytes::{Bytes, BytesMut};

pub use config::{
    CharacterDelimitedConfig, FrameLimits, FramingConfig, OversizePolicy, DEFAULT_MAX_FRAME_BYTES,
    MAX_FRAME_BYTES_LIMIT,
};
pub use delimited::DelimitedFramer;
pub use length_delimited::LengthDelimitedFramer;
pub use octet_counting::OctetCountingFramer;

use super::BadFrame;

/// One item cut from the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A whole frame, without its delimiter or length prefix.
    Complete(Bytes),
    /// The first `max_frame_bytes` of an oversized frame (`oversize = "truncate"`); the rest
    /// was dropped. Counts as a good frame that lost data.
    Truncated(Bytes),
    /// Input that could not be framed; the stream continues after it.
    Bad(BadFrame),
}

/// The runtime framer, built by [`FramingConfig::build`].
#[derive(Debug)]
pub enum Framer {
    /// `newline` and `character_delimited`.
    Delimited(DelimitedFramer),
    OctetCounting(OctetCountingFramer),
    LengthDelimited(LengthDelimitedFramer),
}

impl Framer {
    /// True while the rest of an oversized frame is being dropped as it arrives: the input
    /// consumed so far ends inside that frame, so a source that records read positions
    /// (checkpoints) must not record one there, or a restart would read the frame's tail as
    /// a frame of its own.
    pub fn is_discarding(&self) -> bool {
        match self {
            Self::Delimited(framer) => framer.is_discarding(),
            Self::OctetCounting(framer) => framer.is_discarding(),
            Self::LengthDelimited(framer) => framer.is_discarding(),
        }
    }

    /// Takes the next frame off the front of `buf`, or returns `None` when more input is
    /// needed. Pass `eof = true` once the input has ended: the framer then also returns the
    /// last frame and any frame cut short, and `None` only when `buf` is empty, after which
    /// it is ready for a new stream.
    pub fn next_frame(&mut self, buf: &mut BytesMut, eof: bool) -> Option<Frame> {
        match self {
            Self::Delimited(framer) => framer.next_frame(buf, eof),
            Self::OctetCounting(framer) => framer.next_frame(buf, eof),
            Self::LengthDelimited(framer) => framer.next_frame(buf, eof),
        }
    }
}

/// Never returns `Err`: bad input is a [`Frame::Bad`] item. The error type is `io::Error`
/// only because `FramedRead` reports read errors through it.
impl tokio_util::codec::Decoder for Framer {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        Ok(self.next_frame(buf, false))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        Ok(self.next_frame(buf, true))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::codec::{BadFrameReason, RAW_SAMPLE_BYTES};

    use OversizePolicy::{Skip, Truncate};

    fn limits(max_frame_bytes: usize, oversize: OversizePolicy) -> FrameLimits {
        FrameLimits {
            max_frame_bytes,
            oversize,
        }
    }

    fn newline(max: usize, oversize: OversizePolicy) -> FramingConfig {
        FramingConfig::Newline(limits(max, oversize))
    }

    fn octet(max: usize, oversize: OversizePolicy) -> FramingConfig {
        FramingConfig::OctetCounting(limits(max, oversize))
    }

    fn length(max: usize, oversize: OversizePolicy) -> FramingConfig {
        FramingConfig::LengthDelimited(limits(max, oversize))
    }

    fn nul_delimited() -> FramingConfig {
        FramingConfig::CharacterDelimited(CharacterDelimitedConfig {
            delimiter: '\0',
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            oversize: Skip,
        })
    }

    /// Feeds `input` in `chunk_len`-byte reads, then signals EOF. Also checks the contract
    /// that `FramedRead` relies on: after the last `None` at EOF the buffer is empty.
    /// Returns the frames and the largest the buffer was after draining a read.
    fn run(config: &FramingConfig, input: &[u8], chunk_len: usize) -> (Vec<Frame>, usize) {
        let mut framer = config.build();
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        let mut high_water = 0;
        for chunk in input.chunks(chunk_len.max(1)) {
            buf.extend_from_slice(chunk);
            frames.extend(std::iter::from_fn(|| framer.next_frame(&mut buf, false)));
            high_water = high_water.max(buf.len());
        }
        frames.extend(std::iter::from_fn(|| framer.next_frame(&mut buf, true)));
        assert!(buf.is_empty(), "bytes left after eof: {:?}", buf);
        (frames, high_water)
    }

    /// Printable ASCII as is, other bytes escaped.
    fn show(bytes: &[u8]) -> String {
        bytes
            .iter()
            .map(|&b| match b {
                b' '..=b'~' => char::from(b).to_string(),
                _ => b.escape_ascii().to_string(),
            })
            .collect()
    }

    fn render(frame: &Frame) -> String {
        match frame {
            Frame::Complete(bytes) => show(bytes),
            Frame::Truncated(bytes) => format!("truncated frame: {}", show(bytes)),
            Frame::Bad(bad) => format!("bad {}: {}", bad.reason_label(), bad.reason()),
        }
    }

    /// Frames `input` fed whole, one byte at a time and in 7-byte reads; all three must give
    /// `expected`.
    fn check(config: &FramingConfig, input: &[u8], expected: &[&str]) {
        for chunk_len in [input.len(), 1, 7] {
            let (frames, _) = run(config, input, chunk_len);
            let rendered: Vec<String> = frames.iter().map(render).collect();
            assert_eq!(
                rendered,
                expected,
                "{} in {chunk_len}-byte reads: {}",
                config.method(),
                input.escape_ascii()
            );
        }
    }

    #[test]
    fn reports_discarding_while_an_oversized_frame_streams_past() {
        for config in [newline(4, Skip), octet(4, Skip), length(4, Skip)] {
            let mut framer = config.build();
            let mut buf = BytesMut::new();
            let long: &[u8] = match config {
                FramingConfig::LengthDelimited(_) => b"\0\0\0\x0aabcdef",
                _ => b"abcdef",
            };
            buf.extend_from_slice(long);
            while framer.next_frame(&mut buf, false).is_some() {}
            assert!(framer.is_discarding(), "{config:?}");
            let rest: &[u8] = match config {
                FramingConfig::LengthDelimited(_) => b"ghij",
                _ => b"ghij\n",
            };
            buf.extend_from_slice(rest);
            let frames: Vec<_> =
                std::iter::from_fn(|| framer.next_frame(&mut buf, false)).collect();
            assert!(
                matches!(frames.as_slice(), [Frame::Bad(_)]),
                "{config:?}: {frames:?}"
            );
            assert!(!framer.is_discarding(), "{config:?}");
        }
    }

    #[test]
    fn frames_every_method() {
        let big = DEFAULT_MAX_FRAME_BYTES;
        let access_line = r#"10.1.2.3 - - [23/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5"#;
        let cases: Vec<(FramingConfig, &[u8], Vec<&str>)> = vec![
            // newline
            (newline(big, Skip), b"", vec![]),
            (newline(big, Skip), b"a", vec!["a"]),
            (newline(big, Skip), b"a\nbc\n", vec!["a", "bc"]),
            (newline(big, Skip), b"a\nbc", vec!["a", "bc"]),
            (newline(big, Skip), b"\n\n", vec!["", ""]),
            (newline(big, Skip), b"a\r\nb\r\n", vec![r"a\r", r"b\r"]),
            (newline(big, Skip), b"\xff\xfe\0\n", vec![r"\xff\xfe\x00"]),
            (newline(8, Skip), b"12345678\n", vec!["12345678"]),
            (
                newline(8, Skip),
                b"123456789abc\nok\n",
                vec![
                    "bad oversized: frame of 12 bytes exceeds max_frame_bytes (8)",
                    "ok",
                ],
            ),
            (
                newline(8, Skip),
                b"ok\n123456789",
                vec![
                    "ok",
                    "bad oversized: frame of 9 bytes exceeds max_frame_bytes (8)",
                ],
            ),
            (
                newline(8, Truncate),
                b"123456789abc\nok\n",
                vec!["truncated frame: 12345678", "ok"],
            ),
            (
                newline(8, Truncate),
                b"123456789",
                vec!["truncated frame: 12345678"],
            ),
            // character_delimited
            (nul_delimited(), b"a\0b\0c", vec!["a", "b", "c"]),
            (nul_delimited(), b"a\nb\0", vec![r"a\nb"]),
            // octet_counting, with and without a newline after each frame
            (octet(big, Skip), b"", vec![]),
            (octet(big, Skip), b"5 <1>ab3 <2>", vec!["<1>ab", "<2>"]),
            (octet(big, Skip), b"5 <1>ab\n3 <2>\n", vec!["<1>ab", "<2>"]),
            (octet(big, Skip), b"5 <1>ab\n\n", vec!["<1>ab", ""]),
            (octet(big, Skip), b"7 <1>a\nb\n\n", vec![r"<1>a\nb\n"]),
            // octet_counting: input that is not octet-counted is a line per frame
            (octet(big, Skip), access_line.as_bytes(), vec![access_line]),
            (octet(big, Skip), b"200 OK done\n", vec!["200 OK done"]),
            (octet(big, Skip), b"12345\n12345", vec!["12345", "12345"]),
            (
                octet(big, Skip),
                b"<13>Nov 23 host app: hi\n",
                vec!["<13>Nov 23 host app: hi"],
            ),
            (
                octet(big, Skip),
                b"5 <1>ab200 OK done\n3 <2>",
                vec!["<1>ab", "200 OK done", "<2>"],
            ),
            // octet_counting: bad frames
            (
                octet(big, Skip),
                b"10 <1>abc",
                vec!["bad truncated: stream ended after 6 of 10 declared frame bytes"],
            ),
            (
                octet(8, Skip),
                b"20 <1>aaaaaaaaaaaaaaaaa\n3 <2>",
                vec![
                    "bad oversized: frame of 20 bytes exceeds max_frame_bytes (8)",
                    "<2>",
                ],
            ),
            (
                octet(8, Truncate),
                b"20 <1>aaaaaaaaaaaaaaaaa\n3 <2>",
                vec!["truncated frame: <1>aaaaa", "<2>"],
            ),
            (
                octet(big, Skip),
                b"9999999999 <1>",
                vec!["bad oversized: frame of 9999999999 bytes exceeds max_frame_bytes (102400)"],
            ),
            (
                octet(8, Skip),
                b"200 OK done twice\n3 <2>",
                vec![
                    "bad oversized: frame of 17 bytes exceeds max_frame_bytes (8)",
                    "<2>",
                ],
            ),
            // length_delimited
            (length(big, Skip), b"", vec![]),
            (length(big, Skip), b"\0\0\0\x03abc\0\0\0\0", vec!["abc", ""]),
            (
                length(big, Skip),
                b"\0\0",
                vec!["bad truncated: stream ended inside a length prefix after 2 bytes"],
            ),
            (
                length(big, Skip),
                b"\0\0\0\x05ab",
                vec!["bad truncated: stream ended after 2 of 5 declared frame bytes"],
            ),
            (
                length(8, Skip),
                b"\0\0\0\x0a0123456789\0\0\0\x01z",
                vec![
                    "bad oversized: frame of 10 bytes exceeds max_frame_bytes (8)",
                    "z",
                ],
            ),
            (
                length(8, Truncate),
                b"\0\0\0\x0a0123456789\0\0\0\x01z",
                vec!["truncated frame: 01234567", "z"],
            ),
            (
                length(big, Skip),
                b"\xff\xff\xff\xffabc",
                vec!["bad oversized: frame of 4294967295 bytes exceeds max_frame_bytes (102400)"],
            ),
        ];
        for (config, input, expected) in cases {
            check(&config, input, &expected);
        }
    }

    #[test]
    fn a_10_mb_frame_between_good_ones_is_skipped_without_buffering_it() {
        const HUGE: usize = 10 * 1024 * 1024;
        const READ: usize = 64 * 1024;
        let mut huge_octet = format!("{HUGE} <").into_bytes();
        huge_octet.resize(huge_octet.len() - 1 + HUGE, b'x');
        let mut huge_length = (HUGE as u32).to_be_bytes().to_vec();
        huge_length.resize(4 + HUGE, b'x');
        let cases = [
            (
                newline(DEFAULT_MAX_FRAME_BYTES, Skip),
                [&b"first\n"[..], &[b'x'; HUGE], b"\nlast\n"].concat(),
            ),
            (
                octet(DEFAULT_MAX_FRAME_BYTES, Skip),
                [&b"8 <1>first"[..], &huge_octet, b"7 <1>last"].concat(),
            ),
            (
                length(DEFAULT_MAX_FRAME_BYTES, Skip),
                [&b"\0\0\0\x05first"[..], &huge_length, b"\0\0\0\x04last"].concat(),
            ),
        ];
        for (config, input) in cases {
            let (frames, high_water) = run(&config, &input, READ);
            assert_eq!(frames.len(), 3, "{}", config.method());
            assert!(matches!(&frames[0], Frame::Complete(b) if b.ends_with(b"first")));
            assert!(matches!(&frames[2], Frame::Complete(b) if b.ends_with(b"last")));
            let Frame::Bad(bad) = &frames[1] else {
                panic!(
                    "{}: expected a bad frame, got {:?}",
                    config.method(),
                    frames[1]
                );
            };
            assert_eq!(
                bad.reason(),
                &BadFrameReason::Oversized {
                    len: HUGE as u64,
                    max_frame_bytes: DEFAULT_MAX_FRAME_BYTES
                }
            );
            assert_eq!(bad.raw().len(), RAW_SAMPLE_BYTES);
            assert!(
                high_water <= DEFAULT_MAX_FRAME_BYTES + READ,
                "{}: buffer grew to {high_water}",
                config.method()
            );
        }
    }

    /// A datagram source frames each datagram as a whole stream with one framer, so after
    /// EOF no state (a discard, a half-read prefix) may leak into the next stream.
    #[test]
    fn a_framer_starts_clean_after_eof() {
        let cases: [(FramingConfig, &[u8]); 4] = [
            (newline(8, Skip), b"ok\n123456789"),
            (newline(8, Truncate), b"123456789"),
            (octet(8, Skip), b"20 <1>aaa"),
            (length(8, Skip), b"\0\0\0\x09abc"),
        ];
        for (config, first) in cases {
            let mut framer = config.build();
            let mut buf = BytesMut::from(first);
            while framer.next_frame(&mut buf, true).is_some() {}
            let second: &[u8] = match config {
                FramingConfig::LengthDelimited(_) => b"\0\0\0\x03<2>",
                _ => b"3 <2>",
            };
            buf.extend_from_slice(second);
            let frame = framer.next_frame(&mut buf, true);
            let want = match config {
                FramingConfig::Newline(_) => "3 <2>",
                _ => "<2>",
            };
            assert_eq!(
                frame.as_ref().map(render).as_deref(),
                Some(want),
                "{config:?}"
            );
        }
    }

    // === property tests ===

    /// A frame as a sender writes it.
    #[derive(Debug, Clone)]
    struct Sent {
        payload: Vec<u8>,
        /// octet_counting only: written as `LEN SP MSG` rather than as a line.
        octet: bool,
        /// octet_counting only: a `\n` follows the octet-counted frame.
        newline_after: bool,
    }

    fn line_payload() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            any::<u8>().prop_map(|b| if b == b'\n' { b'n' } else { b }),
            0..24,
        )
    }

    fn sent(method: u8) -> BoxedStrategy<Sent> {
        let plain = |payload| Sent {
            payload,
            octet: false,
            newline_after: false,
        };
        match method {
            0 => line_payload().prop_map(plain).boxed(),
            // Lines that never start like `LEN SP <` (no `<`) and are never empty (an empty
            // line right after an octet frame is its optional separator), or octet frames.
            1 => prop_oneof![
                line_payload().prop_map(move |mut p| {
                    p.retain(|&b| b != b'<');
                    p.push(b'.');
                    plain(p)
                }),
                (prop::collection::vec(any::<u8>(), 0..24), any::<bool>()).prop_map(
                    |(mut payload, newline_after)| {
                        payload.insert(0, b'<');
                        Sent {
                            payload,
                            octet: true,
                            newline_after,
                        }
                    }
                ),
            ]
            .boxed(),
            _ => prop::collection::vec(any::<u8>(), 0..24)
                .prop_map(plain)
                .boxed(),
        }
    }

    fn encode(config: &FramingConfig, frames: &[Sent]) -> Vec<u8> {
        let mut out = Vec::new();
        for frame in frames {
            match config {
                FramingConfig::LengthDelimited(_) => {
                    out.extend_from_slice(&(frame.payload.len() as u32).to_be_bytes());
                    out.extend_from_slice(&frame.payload);
                }
                _ if frame.octet => {
                    out.extend_from_slice(format!("{} ", frame.payload.len()).as_bytes());
                    out.extend_from_slice(&frame.payload);
                    if frame.newline_after {
                        out.push(b'\n');
                    }
                }
                _ => {
                    out.extend_from_slice(&frame.payload);
                    out.push(b'\n');
                }
            }
        }
        out
    }

    /// What the framer must return for a frame, by the documented oversize rules.
    fn expected(limits: FrameLimits, payload: &[u8]) -> Frame {
        let max = limits.max_frame_bytes;
        match limits.oversize {
            _ if payload.len() <= max => Frame::Complete(Bytes::copy_from_slice(payload)),
            Skip => Frame::Bad(BadFrame::new(
                BadFrameReason::Oversized {
                    len: payload.len() as u64,
                    max_frame_bytes: max,
                },
                Bytes::copy_from_slice(&payload[..payload.len().min(RAW_SAMPLE_BYTES)]),
            )),
            Truncate => Frame::Truncated(Bytes::copy_from_slice(&payload[..max])),
        }
    }

    fn config_of(method: u8, max: usize, truncate: bool) -> FramingConfig {
        let policy = if truncate { Truncate } else { Skip };
        match method {
            0 => newline(max, policy),
            1 => octet(max, policy),
            _ => length(max, policy),
        }
    }

    fn method_and_frames() -> impl Strategy<Value = (u8, Vec<Sent>)> {
        (0u8..3).prop_flat_map(|method| (Just(method), prop::collection::vec(sent(method), 0..12)))
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_frames_that_were_sent(
            (method, frames) in method_and_frames(),
            max in 1usize..32,
            truncate in any::<bool>(),
            chunk_len in 1usize..40,
        ) {
            let config = config_of(method, max, truncate);
            let input = encode(&config, &frames);
            let want: Vec<Frame> =
                frames.iter().map(|f| expected(config.limits(), &f.payload)).collect();
            let (whole, _) = run(&config, &input, input.len());
            let (chunked, high_water) = run(&config, &input, chunk_len);
            prop_assert_eq!(&whole, &want);
            prop_assert_eq!(&chunked, &want);
            prop_assert!(high_water <= max + 12 + chunk_len);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_frame_the_same_in_any_chunking(
            method in 0u8..3,
            input in prop::collection::vec(
                prop_oneof![any::<u8>(), Just(b'\n'), Just(b'<'), Just(b' '), Just(b'1')],
                0..300,
            ),
            max in 1usize..32,
            truncate in any::<bool>(),
            chunk_len in 1usize..40,
        ) {
            let config = config_of(method, max, truncate);
            let (whole, _) = run(&config, &input, input.len());
            let (chunked, high_water) = run(&config, &input, chunk_len);
            prop_assert_eq!(whole, chunked);
            prop_assert!(high_water <= max + 12 + chunk_len);
        }
    }
}
