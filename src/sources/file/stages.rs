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

use std::time::Instant;

use bytes::Bytes;

use crate::codec::container::{ContainerDecoder, ContainerFormat};
use crate::codec::multiline::{Flush, Joined, LineAggregator, MultilineRules, Parts};
use crate::codec::BadFrame;
use crate::telemetry::{self, Counter};

/// A message ready for decoding, with what the runtime said about it.
#[derive(Debug)]
pub(super) struct Message {
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

pub(super) struct Stages {
    container: Option<ContainerDecoder>,
    /// Keyed by stream: 0 (stdout, or a plain file), 1 (stderr).
    multiline: Option<LineAggregator<u8, First>>,
    cut: Counter,
}

impl Stages {
    /// The stages of one file; `None` when the source has neither option.
    pub(super) fn new(
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

    /// Takes one frame that began at offset `start`; what it completes goes to `out`.
    pub(super) fn push(
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

    /// True when a held group has waited its timeout by `now`.
    pub(super) fn due(&self, now: Instant) -> bool {
        self.multiline
            .as_ref()
            .and_then(LineAggregator::next_deadline)
            .is_some_and(|deadline| deadline <= now)
    }

    /// Sends the groups whose stream was idle for the timeout.
    pub(super) fn flush_idle(&mut self, now: Instant, out: &mut Vec<Result<Message, BadFrame>>) {
        if let Some(multiline) = &mut self.multiline {
            multiline.flush_idle(now, &mut |joined| out.push(Ok(message(joined))));
        }
    }

    /// True when anything is held.
    pub(super) fn holds(&self) -> bool {
        self.pending_start().is_some()
    }

    /// Sends everything held (the file is closed, or its content replaced): partial lines as
    /// they are, then the groups.
    pub(super) fn flush_all(&mut self, now: Instant, out: &mut Vec<Result<Message, BadFrame>>) {
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
    pub(super) fn pending_start(&self) -> Option<u64> {
        let partial = self.container.as_ref().and_then(|c| c.pending_start());
        let grouped = self
            .multiline
            .as_ref()
            .and_then(|m| m.pending().map(|first| first.start).min());
        partial.into_iter().chain(grouped).min()
    }
}
