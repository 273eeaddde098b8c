//! Decoding a frame into fields, and the composed [`Decoder`] sources use.

use std::fmt;

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::{BadFrame, BadFrameReason, Frame, Framer};
use crate::event::{fields, Map, Value};
use crate::parse;

/// How a frame becomes fields: `decoding = "bytes" | "json" | "logfmt" | "syslog" | "auto"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecodingConfig {
    /// The frame, untouched, as `message`. Never fails.
    #[default]
    Bytes,
    /// A JSON object; its keys become fields.
    Json,
    Logfmt,
    /// RFC 5424, RFC 3164 or Heroku logplex.
    Syslog,
    /// Whatever the frame looks like; plain text becomes `message`. Never fails.
    Auto,
}

impl DecodingConfig {
    pub fn name(self) -> &'static str {
        match self {
            Self::Bytes => "bytes",
            Self::Json => "json",
            Self::Logfmt => "logfmt",
            Self::Syslog => "syslog",
            Self::Auto => "auto",
        }
    }

    pub fn build(self) -> Deserializer {
        match self {
            Self::Bytes => Deserializer::Bytes,
            Self::Json => Deserializer::Json,
            Self::Logfmt => Deserializer::Logfmt,
            Self::Syslog => Deserializer::Syslog,
            Self::Auto => Deserializer::Auto,
        }
    }
}

impl fmt::Display for DecodingConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The runtime side of [`DecodingConfig`]: turns one frame into fields. Stateless today; a
/// separate type so that parser options can be resolved once at build time later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deserializer {
    Bytes,
    Json,
    Logfmt,
    Syslog,
    Auto,
}

impl Deserializer {
    /// The config name, also used in bad-frame reasons.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bytes => "bytes",
            Self::Json => "json",
            Self::Logfmt => "logfmt",
            Self::Syslog => "syslog",
            Self::Auto => "auto",
        }
    }

    /// The fields of one frame. On failure the frame comes back with the parser's error, for
    /// the bad-frame report.
    pub fn decode(self, frame: Bytes) -> Result<Map, (parse::ParseError, Bytes)> {
        let parsed = match self {
            Self::Bytes => {
                // The frame moves into the map as is: a view of the read buffer, not a copy.
                let mut map = Map::with_capacity(1);
                map.push_unchecked(fields::MESSAGE.into(), Value::Bytes(frame));
                return Ok(map);
            }
            Self::Auto => return Ok(parse::auto(frame)),
            Self::Json => parse::json(&frame),
            // The `_bytes` variants make string fields slices of the frame instead of copies.
            Self::Logfmt => parse::logfmt_bytes(&frame),
            Self::Syslog => parse::syslog_bytes(&frame),
        };
        parsed.map_err(|error| (error, frame))
    }
}

/// One item of a decoded stream.
///
/// A source turns `Fields` into an event and counts the rest: a `Bad` frame by
/// [`BadFrame::reason_label`] (it may also go to a dead-letter output with its reason and raw
/// bytes), and a `Fields` with `truncated` set as a truncated frame, since it lost data.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A good frame's fields. `truncated`: the frame was longer than `max_frame_bytes` and
    /// only its first `max_frame_bytes` were decoded (`oversize = "truncate"`).
    Fields { fields: Map, truncated: bool },
    /// A frame that was dropped; the stream continues after it.
    Bad(BadFrame),
}

/// Framing followed by decoding: bytes in, [`Decoded`] items out.
///
/// Implements [`tokio_util::codec::Decoder`] for `FramedRead`; sources that manage their own
/// read buffer call [`decode_all`](Self::decode_all) to drain a whole batch at once.
#[derive(Debug)]
pub struct Decoder {
    framer: Framer,
    deserializer: Deserializer,
}

impl Decoder {
    /// See [`Framer::is_discarding`].
    pub fn is_discarding(&self) -> bool {
        self.framer.is_discarding()
    }

    pub fn new(framer: Framer, deserializer: Deserializer) -> Self {
        Self {
            framer,
            deserializer,
        }
    }

    pub fn framer(&self) -> &Framer {
        &self.framer
    }

    pub fn deserializer(&self) -> Deserializer {
        self.deserializer
    }

    /// Decodes the next frame in `buf`, or returns `None` when more input is needed. With
    /// `eof`, the input has ended: `None` then means `buf` is empty (see
    /// [`Framer::next_frame`]).
    pub fn next(&mut self, buf: &mut BytesMut, eof: bool) -> Option<Decoded> {
        let frame = self.framer.next_frame(buf, eof)?;
        Some(match frame {
            Frame::Complete(bytes) => self.decode_frame(bytes, false),
            Frame::Truncated(bytes) => self.decode_frame(bytes, true),
            Frame::Bad(bad) => Decoded::Bad(bad),
        })
    }

    /// The next frame, not decoded (see [`Framer::next_frame`]).
    pub fn next_frame(&mut self, buf: &mut BytesMut, eof: bool) -> Option<Frame> {
        self.framer.next_frame(buf, eof)
    }

    /// Calls `f` with every item decodable from `buf` now, leaving only the start of an
    /// incomplete frame in it (nothing at all with `eof`). Allocates nothing itself beyond
    /// what each item holds.
    pub fn decode_all(&mut self, buf: &mut BytesMut, eof: bool, mut f: impl FnMut(Decoded)) {
        while let Some(item) = self.next(buf, eof) {
            f(item);
        }
    }

    /// Decodes one frame's bytes (`truncated`: cut to the maximum frame length).
    pub fn decode_frame(&self, bytes: Bytes, truncated: bool) -> Decoded {
        match self.deserializer.decode(bytes) {
            Ok(fields) => Decoded::Fields { fields, truncated },
            Err((error, bytes)) => Decoded::Bad(BadFrame::new(
                BadFrameReason::Parse {
                    format: self.deserializer.name(),
                    error,
                    truncated,
                },
                bytes,
            )),
        }
    }
}

/// Never returns `Err`: bad input is a [`Decoded::Bad`] item. The error type is `io::Error`
/// only because `FramedRead` reports read errors through it.
impl tokio_util::codec::Decoder for Decoder {
    type Item = Decoded;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, Self::Error> {
        Ok(self.next(buf, false))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, Self::Error> {
        Ok(self.next(buf, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{FrameLimits, FramingConfig, OversizePolicy};

    fn decoder(framing: FramingConfig, decoding: DecodingConfig) -> Decoder {
        Decoder::new(framing.build(), decoding.build())
    }

    /// Everything `input` decodes to when it arrives in one read and then ends.
    fn decode(framing: FramingConfig, decoding: DecodingConfig, input: &[u8]) -> Vec<Decoded> {
        let mut decoder = decoder(framing, decoding);
        let mut buf = BytesMut::from(input);
        let mut items = Vec::new();
        decoder.decode_all(&mut buf, false, |item| items.push(item));
        decoder.decode_all(&mut buf, true, |item| items.push(item));
        assert!(buf.is_empty());
        items
    }

    fn message(item: &Decoded) -> &[u8] {
        match item {
            Decoded::Fields { fields, .. } => fields
                .get(fields::MESSAGE)
                .and_then(Value::as_bytes)
                .expect("a message field"),
            Decoded::Bad(bad) => panic!("unexpected bad frame: {}", bad.reason()),
        }
    }

    #[test]
    fn bytes_passthrough_reproduces_the_input_byte_for_byte() {
        let input = b"plain\r\n\xff\xfe not utf-8\n\n{\"json\": true}\n\ttabbed \x00\n";
        let items = decode(FramingConfig::default(), DecodingConfig::Bytes, input);
        let mut rebuilt = Vec::new();
        for item in &items {
            rebuilt.extend_from_slice(message(item));
            rebuilt.push(b'\n');
        }
        assert_eq!(rebuilt, input);
    }

    #[test]
    fn bytes_frames_share_the_read_buffer() {
        let mut decoder = decoder(FramingConfig::default(), DecodingConfig::Bytes);
        let mut buf = BytesMut::from(&b"one\ntwo\n"[..]);
        let start = buf.as_ptr() as usize;
        let mut items = Vec::new();
        decoder.decode_all(&mut buf, false, |item| items.push(item));
        let addr = |item: &Decoded| message(item).as_ptr() as usize;
        assert_eq!((addr(&items[0]), addr(&items[1])), (start, start + 4));
    }

    #[test]
    fn a_parse_failure_is_a_bad_frame_with_the_raw_bytes_and_the_stream_goes_on() {
        let input = b"{\"a\":1}\nnot json\n{\"b\":2}\n";
        let items = decode(FramingConfig::default(), DecodingConfig::Json, input);
        assert_eq!(items.len(), 3);
        assert!(
            matches!(&items[0], Decoded::Fields { fields, truncated: false } if fields.get("a") == Some(&Value::Integer(1)))
        );
        let Decoded::Bad(bad) = &items[1] else {
            panic!("expected a bad frame, got {:?}", items[1]);
        };
        assert_eq!(bad.reason_label(), "parse_error");
        assert_eq!(&bad.raw()[..], b"not json");
        assert!(bad.reason().to_string().starts_with("invalid json frame: "));
        assert!(
            matches!(&items[2], Decoded::Fields { fields, .. } if fields.get("b") == Some(&Value::Integer(2)))
        );
    }

    #[test]
    fn truncated_frames_are_marked() {
        let framing = FramingConfig::Newline(FrameLimits {
            max_frame_bytes: 4,
            oversize: OversizePolicy::Truncate,
        });
        let items = decode(framing.clone(), DecodingConfig::Bytes, b"abcdefgh\nab\n");
        assert!(matches!(
            items[0],
            Decoded::Fields {
                truncated: true,
                ..
            }
        ));
        assert_eq!(message(&items[0]), b"abcd");
        assert!(matches!(
            items[1],
            Decoded::Fields {
                truncated: false,
                ..
            }
        ));

        let items = decode(framing, DecodingConfig::Json, b"{\"a\": 1}\n");
        let Decoded::Bad(bad) = &items[0] else {
            panic!("expected a bad frame, got {:?}", items[0]);
        };
        assert!(matches!(
            bad.reason(),
            BadFrameReason::Parse {
                truncated: true,
                ..
            }
        ));
    }

    #[test]
    fn a_stream_that_ends_mid_frame_yields_a_bad_frame_and_an_empty_buffer() {
        let framing = FramingConfig::LengthDelimited(FrameLimits::default());
        let items = decode(framing, DecodingConfig::Bytes, b"\0\0\0\x02ok\0\0\0\x09cut");
        assert_eq!(message(&items[0]), b"ok");
        let Decoded::Bad(bad) = &items[1] else {
            panic!("expected a bad frame, got {:?}", items[1]);
        };
        assert_eq!(
            (bad.reason_label(), &bad.raw()[..]),
            ("truncated", &b"cut"[..])
        );
    }

    #[test]
    fn implements_the_tokio_util_decoder_contract() {
        use tokio_util::codec::Decoder as _;
        let mut decoder = decoder(FramingConfig::default(), DecodingConfig::Auto);
        let mut buf = BytesMut::from(&b"a\nb"[..]);
        assert!(matches!(
            decoder.decode(&mut buf),
            Ok(Some(Decoded::Fields { .. }))
        ));
        assert!(matches!(decoder.decode(&mut buf), Ok(None)));
        assert!(matches!(
            decoder.decode_eof(&mut buf),
            Ok(Some(Decoded::Fields { .. }))
        ));
        assert!(matches!(decoder.decode_eof(&mut buf), Ok(None)));
        assert!(buf.is_empty());
    }

    #[test]
    fn decoding_is_a_plain_string_in_config() {
        #[derive(Debug, Deserialize)]
        struct Source {
            #[serde(default)]
            decoding: DecodingConfig,
        }
        let parse = |text: &str| toml::from_str::<Source>(text).map(|s| s.decoding);
        assert_eq!(parse("").ok(), Some(DecodingConfig::Bytes));
        assert_eq!(
            parse(r#"decoding = "syslog""#).ok(),
            Some(DecodingConfig::Syslog)
        );
        let err = parse(r#"decoding = "xml""#).expect_err("xml is not a decoding");
        assert!(err.message().contains("unknown variant `xml`"), "{err}");
    }
}
