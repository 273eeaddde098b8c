//! The logplex target: a Heroku drain body (`application/logplex-1`) as the http source
//! reads it, octet-counted frames (`LEN <PRI>1 TIMESTAMP HOST APP PROC - MSG`) decoded as
//! syslog, through one `Decoder`.
//!
//! Invariants:
//! - the decoder yields one item per frame of the octet-counting model (`framing.rs`), so
//!   every byte of the body is accounted for, and leaves nothing in the buffer at the end;
//! - a complete frame's item is exactly what the syslog parser returns for that frame: its
//!   fields, or a bad frame carrying the frame; a frame the framer refused (oversized, cut
//!   short) is a bad frame;
//! - a logplex line (no structured data) keeps its dyno as `instance` and its message as the
//!   end of the frame.

use bytes::{Bytes, BytesMut};
use sluice::codec::{
    Decoded, Decoder, DecodingConfig, Frame, FrameLimits, FramingConfig, OversizePolicy,
};
use sluice::parse;

/// The http source's frame limit is configurable; a small one makes oversized frames common.
const MAX_FRAME_BYTES: usize = 512;

pub fn logplex(data: &[u8]) {
    // What the http source uses for a logplex body: oversized frames skipped, not cut.
    let limits = FrameLimits {
        max_frame_bytes: MAX_FRAME_BYTES,
        oversize: OversizePolicy::Skip,
    };
    let mut frames = Vec::new();
    crate::framing::model_octet(data, limits, &mut frames);
    let mut decoder = Decoder::new(
        FramingConfig::OctetCounting(limits).build(),
        DecodingConfig::Syslog.build(),
    );
    let mut buf = BytesMut::from(data);
    let mut items = Vec::new();
    decoder.decode_all(&mut buf, true, |item| items.push(item));
    assert!(buf.is_empty(), "bytes left after the end of the body");
    assert_eq!(items.len(), frames.len(), "one item per frame");
    for (item, frame) in items.iter().zip(&frames) {
        match frame {
            Frame::Complete(bytes) => check_complete(item, bytes),
            Frame::Bad(_) => assert!(matches!(item, Decoded::Bad(_)), "{item:?}"),
            Frame::Truncated(_) => panic!("oversized frames are skipped, never truncated"),
        }
    }
}

fn check_complete(item: &Decoded, frame: &Bytes) {
    match (item, parse::syslog_bytes(frame)) {
        (Decoded::Fields { fields, truncated }, Ok(map)) => {
            assert!(!truncated);
            assert_eq!(fields, &map);
            if let (Some(message), Some(_)) = (map.get("message"), map.get("instance")) {
                let message = message.as_bytes().expect("message is bytes");
                assert!(frame.trim_ascii_end().ends_with(message.trim_ascii_end()));
            }
        }
        (Decoded::Bad(bad), Err(_)) => assert_eq!(bad.raw(), frame),
        (item, direct) => panic!("decoder gave {item:?}, the parser {direct:?}"),
    }
}
