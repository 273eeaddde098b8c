//! What a file's lines go through between framing and decoding when the source has
//! `container` or `multiline`: the runtime's wrapping taken off and its partial lines
//! joined (`codec::container`), then the lines of one message joined (`codec::multiline`),
//! per file and, for container logs, per stream.
//!
//! Both hold lines back, so the reader must not record a restart offset past them: the
//! offset where the earliest held line began is [`Stages::pending_start`], and a restart
//! reads from there (what follows it in the file and was sent already comes again: at
//! least once). A stream idle for `multiline.timeout_ms` has its group sent on the next
//! round; when the file is closed everything held is sent; at shutdown what is held stays
//! unread, for the next start.
//!
//! The `stdin` source's `multiline` runs its lines through these stages too
//! ([`Stages::decode`]).

use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::ack::AckToken;
use crate::codec::container::{ContainerDecoder, ContainerFormat};
use crate::codec::multiline::{
    Flush, Joined, LineAggregator, MultilineConfig, MultilineRules, Parts,
};
use crate::codec::{BadFrame, Frame};
use crate::event::{fields, now_nanos, Value};
use crate::field_error::FieldError;
use crate::sources::{Decoded, FrameIngest};
use crate::telemetry::{self, Counter};

/// A source's `multiline` option checked and compiled (no IO): the transform's options but
/// `group_by`, since a source joins the lines of each of its streams apart. Errors name
/// the field under `multiline.`.
pub(in crate::sources) fn compile_multiline(
    config: Option<&MultilineConfig>,
) -> Result<Option<MultilineRules>, FieldError> {
    let Some(config) = config else {
        return Ok(None);
    };
    if config.group_by.is_some() {
        return Err(FieldError::new(
            "multiline.group_by",
            "is not an option of a source, which joins the lines of each file (and stream) apart",
        ));
    }
    config
        .build()
        .map(Some)
        .map_err(|e| FieldError::new(format!("multiline.{}", e.field), e.message))
}

/// A message ready for decoding, with what the runtime said about it.
#[derive(Debug)]
pub(in crate::sources) struct Message {
    pub(super) bytes: Bytes,
    pub(super) stream: Option<&'static str>,
    pub(super) time_nanos: Option<i64>,
    pub(super) truncated: bool,
}

/// What a pending multiline group keeps of its first line; `truncated` if any line was.
struct First {
    start: u64,
    stream: Option<&'static str>,
    time_nanos: Option<i64>,
    truncated: bool,
}

impl Parts for First {
    fn absorb(&mut self, next: Self) {
        self.truncated |= next.truncated;
    }
}

fn message(joined: Joined<First>) -> Message {
    Message {
        bytes: joined.message,
        stream: joined.parts.stream,
        time_nanos: joined.parts.time_nanos,
        truncated: joined.parts.truncated,
    }
}

pub(in crate::sources) struct Stages {
    container: Option<ContainerDecoder>,
    /// Keyed by stream: 0 (stdout, or a plain file), 1 (stderr).
    multiline: Option<LineAggregator<u8, First>>,
    cut: Counter,
}

impl Stages {
    /// The stages of one file; `None` when the source has neither option.
    pub(in crate::sources) fn new(
        id: &str,
        container: Option<ContainerFormat>,
        multiline: Option<&MultilineRules>,
        max_line_bytes: usize,
    ) -> Option<Self> {
        if container.is_none() && multiline.is_none() {
            return None;
        }
        Some(Self {
            container: container.map(|format| ContainerDecoder::new(format, max_line_bytes)),
            multiline: multiline.map(|rules| LineAggregator::new(rules.clone())),
            cut: telemetry::counter(
                "component_multiline_cut_events_total",
                &[("component_id", id)],
            ),
        })
    }

    /// Frames `buf` and passes each frame through the stages, then decodes the messages
    /// they complete (after `carried`, what an earlier content left) into `decoded`.
    /// `offset(held)` is the input's offset where a buffer holding `held` bytes begins.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::sources) fn decode(
        &mut self,
        ingest: &mut FrameIngest,
        buf: &mut BytesMut,
        offset: &dyn Fn(usize) -> u64,
        closing: bool,
        now: Instant,
        carried: Vec<Result<Message, BadFrame>>,
        token: Option<&AckToken>,
        decoded: &mut Decoded,
    ) {
        let received_at = now_nanos();
        let mut messages = carried;
        let mut frame_start = offset(buf.len());
        while let Some(frame) = ingest.next_frame(buf, closing) {
            let frame_end = offset(buf.len());
            match frame {
                Frame::Complete(bytes) => self.push(bytes, false, frame_start, now, &mut messages),
                Frame::Truncated(bytes) => self.push(bytes, true, frame_start, now, &mut messages),
                Frame::Bad(bad) => {
                    decoded
                        .dead
                        .push(ingest.bad_frame(bad, received_at, None, token))
                }
            }
            frame_start = frame_end;
        }
        self.flush_idle(now, &mut messages);
        if closing {
            self.flush_all(now, &mut messages);
        }
        for message in messages {
            let decoded_message = match message {
                Ok(message) => ingest
                    .decode_message(message.bytes, message.truncated, received_at, token)
                    .map(|mut event| {
                        // The runtime's stream and time, unless the message has its own.
                        if let Some(stream) = message.stream {
                            if event.fields.get(fields::STREAM).is_none() {
                                event.fields.insert(fields::STREAM, Value::from(stream));
                            }
                        }
                        if let Some(nanos) = message.time_nanos {
                            if event.fields.get(fields::TIMESTAMP).is_none() {
                                event
                                    .fields
                                    .insert(fields::TIMESTAMP, Value::Timestamp(nanos));
                            }
                        }
                        event
                    }),
                Err(bad) => Err(ingest.bad_frame(bad, received_at, None, token)),
            };
            match decoded_message {
                Ok(event) => decoded.events.push(event),
                Err(dead) => decoded.dead.push(dead),
            }
        }
    }

    /// Takes one frame that began at offset `start`; what it completes goes to `out`.
    pub(in crate::sources) fn push(
        &mut self,
        frame: Bytes,
        truncated: bool,
        start: u64,
        now: Instant,
        out: &mut Vec<Result<Message, BadFrame>>,
    ) {
        let Some(container) = &mut self.container else {
            let first = First {
                start,
                stream: None,
                time_nanos: None,
                truncated,
            };
            return self.join(frame, first, now, out);
        };
        match container.push(frame, start) {
            Ok(Some(line)) => {
                let first = First {
                    start: line.start,
                    stream: Some(line.stream),
                    time_nanos: Some(line.time_nanos),
                    truncated: truncated || line.truncated,
                };
                self.join(line.message, first, now, out);
            }
            Ok(None) => {}
            Err(bad) => out.push(Err(bad)),
        }
    }

    fn join(
        &mut self,
        bytes: Bytes,
        first: First,
        now: Instant,
        out: &mut Vec<Result<Message, BadFrame>>,
    ) {
        let Some(multiline) = &mut self.multiline else {
            return out.push(Ok(Message {
                bytes,
                stream: first.stream,
                time_nanos: first.time_nanos,
                truncated: first.truncated,
            }));
        };
        let key = u8::from(first.stream == Some("stderr"));
        let cut = &self.cut;
        multiline.push(key, bytes, first, now, &mut |joined| {
            if joined.flush == Flush::Cut {
                cut.inc(1);
            }
            out.push(Ok(message(joined)));
        });
    }

    /// When the next held group's timeout ends, if any is held.
    pub(in crate::sources) fn next_deadline(&self) -> Option<Instant> {
        self.multiline
            .as_ref()
            .and_then(LineAggregator::next_deadline)
    }

    /// True when a held group has waited its timeout by `now`.
    pub(in crate::sources) fn due(&self, now: Instant) -> bool {
        self.multiline
            .as_ref()
            .and_then(LineAggregator::next_deadline)
            .is_some_and(|deadline| deadline <= now)
    }

    /// Sends the groups whose stream was idle for the timeout.
    pub(in crate::sources) fn flush_idle(
        &mut self,
        now: Instant,
        out: &mut Vec<Result<Message, BadFrame>>,
    ) {
        if let Some(multiline) = &mut self.multiline {
            multiline.flush_idle(now, &mut |joined| out.push(Ok(message(joined))));
        }
    }

    /// True when anything is held.
    pub(in crate::sources) fn holds(&self) -> bool {
        self.pending_start().is_some()
    }

    /// Sends everything held (the file is closed, or its content replaced): partial lines as
    /// they are, then the groups.
    pub(in crate::sources) fn flush_all(
        &mut self,
        now: Instant,
        out: &mut Vec<Result<Message, BadFrame>>,
    ) {
        let partial = self
            .container
            .as_mut()
            .map(ContainerDecoder::flush)
            .unwrap_or_default();
        for line in partial {
            let first = First {
                start: line.start,
                stream: Some(line.stream),
                time_nanos: Some(line.time_nanos),
                truncated: line.truncated,
            };
            self.join(line.message, first, now, out);
        }
        if let Some(multiline) = &mut self.multiline {
            multiline.flush_all(&mut |joined| out.push(Ok(message(joined))));
        }
    }

    /// Where the earliest line held began: a restart must read from there.
    pub(in crate::sources) fn pending_start(&self) -> Option<u64> {
        let partial = self.container.as_ref().and_then(|c| c.pending_start());
        let grouped = self
            .multiline
            .as_ref()
            .and_then(|m| m.pending().map(|first| first.start).min());
        partial.into_iter().chain(grouped).min()
    }
}
