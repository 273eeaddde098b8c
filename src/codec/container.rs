//! Container runtimes' log files: unwrapping each line and joining the lines a runtime
//! split, per stream. What the file source's `container` option runs.
//!
//! Docker's `json-file` driver writes one JSON object per line, and splits a line longer
//! than 16 KiB into several whose `log` does not end in `\n`:
//!
//! ```text
//! {"log":"first 16 KiB of a long line","stream":"stdout","time":"2026-12-06T10:00:00.000000001Z"}
//! {"log":"its end\n","stream":"stdout","time":"2026-12-06T10:00:00.000000002Z"}
//! ```
//!
//! The CRI runtimes (containerd, CRI-O) write `<RFC 3339 time> <stream> <tag> <message>`,
//! the tag `P` for a partial line continued by the next one of the stream, `F` for the last
//! part:
//!
//! ```text
//! 2026-12-06T10:00:00.000000001Z stdout P first part of a long line
//! 2026-12-06T10:00:00.000000002Z stdout F its end
//! ```
//!
//! Partial lines wait, per stream (stdout and stderr interleave in one file), for their
//! end; the joined message is bounded by the source's maximum line length (the rest is cut
//! and the line marked truncated). The message keeps the runtime's time (of its first
//! part) and stream. Unlike the stateless [`super::Deserializer`], this is state per file,
//! so the source owns one decoder per file it reads.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;

use super::{BadFrame, BadFrameReason};

/// `container = "docker" | "cri" | "auto"` on the file source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerFormat {
    /// Docker's `json-file` logging driver.
    Docker,
    /// The CRI log format of containerd and CRI-O (Kubernetes' `/var/log/pods`).
    Cri,
    /// Either, told apart per line (a JSON object is Docker's).
    Auto,
}

/// One line a container wrote, unwrapped and joined.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerLine {
    /// Without the line's final newline.
    pub message: Bytes,
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    /// The runtime's time of the line's first part, nanoseconds since the Unix epoch.
    pub time_nanos: i64,
    /// Longer than the maximum: the rest was cut.
    pub truncated: bool,
    /// Where the line's first part began in the file (given with each part).
    pub start: u64,
}

const STREAMS: [&str; 2] = ["stdout", "stderr"];

/// A line whose end has not come yet.
#[derive(Debug)]
struct Partial {
    message: BytesMut,
    time_nanos: i64,
    truncated: bool,
    start: u64,
}

/// The state of one file: the partial line of each stream.
#[derive(Debug)]
pub struct ContainerDecoder {
    format: ContainerFormat,
    max_bytes: usize,
    partial: [Option<Partial>; 2],
}

/// One part of a line, as its runtime wrote it.
struct Part<'a> {
    message: Cow<'a, [u8]>,
    stream: usize,
    time_nanos: i64,
    last: bool,
}

impl ContainerDecoder {
    pub fn new(format: ContainerFormat, max_bytes: usize) -> Self {
        Self {
            format,
            max_bytes,
            partial: [None, None],
        }
    }

    /// Takes one line of the file, beginning at offset `start`: the container's line when
    /// it is complete, `None` while it waits for its end, or the bad line and why.
    pub fn push(&mut self, frame: Bytes, start: u64) -> Result<Option<ContainerLine>, BadFrame> {
        let docker = match self.format {
            ContainerFormat::Docker => true,
            ContainerFormat::Cri => false,
            ContainerFormat::Auto => frame.first() == Some(&b'{'),
        };
        let parsed = if docker {
            docker_part(&frame).map_err(|e| ("docker json-file", e))
        } else {
            cri_part(&frame).map_err(|e| ("cri", e))
        };
        let part = match parsed {
            Ok(part) => part,
            Err((format, error)) => {
                return Err(BadFrame::new(
                    BadFrameReason::Container { format, error },
                    frame,
                ))
            }
        };
        let stream = part.stream;
        let (message, time_nanos, truncated, start) = match self.partial[stream].take() {
            None if part.last && part.message.len() <= self.max_bytes => {
                // The common case: a whole line, its message a slice of the frame.
                let message = match part.message {
                    Cow::Borrowed(slice) => frame.slice_ref(slice),
                    Cow::Owned(bytes) => Bytes::from(bytes),
                };
                return Ok(Some(ContainerLine {
                    message,
                    stream: STREAMS[stream],
                    time_nanos: part.time_nanos,
                    truncated: false,
                    start,
                }));
            }
            None => {
                let mut partial = Partial {
                    message: BytesMut::new(),
                    time_nanos: part.time_nanos,
                    truncated: false,
                    start,
                };
                self.append(&mut partial, &part.message);
                if !part.last {
                    self.partial[stream] = Some(partial);
                    return Ok(None);
                }
                (
                    partial.message,
                    partial.time_nanos,
                    partial.truncated,
                    start,
                )
            }
            Some(mut partial) => {
                self.append(&mut partial, &part.message);
                if !part.last {
                    self.partial[stream] = Some(partial);
                    return Ok(None);
                }
                (
                    partial.message,
                    partial.time_nanos,
                    partial.truncated,
                    partial.start,
                )
            }
        };
        Ok(Some(ContainerLine {
            message: message.freeze(),
            stream: STREAMS[stream],
            time_nanos,
            truncated,
            start,
        }))
    }

    /// Adds a part to a partial line, up to the maximum; the rest is cut.
    fn append(&self, partial: &mut Partial, part: &[u8]) {
        let room = self.max_bytes.saturating_sub(partial.message.len());
        if part.len() > room {
            partial.truncated = true;
        }
        partial
            .message
            .extend_from_slice(&part[..part.len().min(room)]);
    }

    /// Where the earliest line still waiting for its end began.
    pub fn pending_start(&self) -> Option<u64> {
        self.partial.iter().flatten().map(|p| p.start).min()
    }

    /// The lines still waiting for their end, as they are (the file is closed: the end will
    /// not come).
    pub fn flush(&mut self) -> Vec<ContainerLine> {
        let mut lines: Vec<ContainerLine> = self
            .partial
            .iter_mut()
            .zip(STREAMS)
            .filter_map(|(partial, stream)| {
                partial.take().map(|p| ContainerLine {
                    message: p.message.freeze(),
                    stream,
                    time_nanos: p.time_nanos,
                    truncated: p.truncated,
                    start: p.start,
                })
            })
            .collect();
        lines.sort_by_key(|l| l.start);
        lines
    }
}

fn stream_index(name: &[u8]) -> Result<usize, &'static str> {
    match name {
        b"stdout" => Ok(0),
        b"stderr" => Ok(1),
        _ => Err("the stream is neither stdout nor stderr"),
    }
}

fn time_nanos(text: &[u8]) -> Result<i64, &'static str> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .and_then(|t| t.timestamp_nanos_opt())
        .ok_or("the time is not an RFC 3339 time")
}

fn docker_part(frame: &[u8]) -> Result<Part<'_>, &'static str> {
    #[derive(Deserialize)]
    struct Line<'a> {
        #[serde(borrow)]
        log: Cow<'a, str>,
        #[serde(borrow)]
        stream: Cow<'a, str>,
        #[serde(borrow)]
        time: Cow<'a, str>,
    }
    let line: Line<'_> = serde_json::from_slice(frame)
        .map_err(|_| "not a JSON object with string fields log, stream and time")?;
    let stream = stream_index(line.stream.as_bytes())?;
    let time_nanos = time_nanos(line.time.as_bytes())?;
    let (message, last) = match line.log {
        Cow::Borrowed(log) => match log.strip_suffix('\n') {
            Some(log) => (Cow::Borrowed(log.as_bytes()), true),
            None => (Cow::Borrowed(log.as_bytes()), false),
        },
        Cow::Owned(mut log) => {
            let last = log.ends_with('\n');
            if last {
                log.pop();
            }
            (Cow::Owned(log.into_bytes()), last)
        }
    };
    Ok(Part {
        message,
        stream,
        time_nanos,
        last,
    })
}

fn cri_part(frame: &[u8]) -> Result<Part<'_>, &'static str> {
    const SHAPE: &str = "not <time> <stdout|stderr> <P|F> <message>";
    let mut fields = frame.splitn(4, |b| *b == b' ');
    let (Some(time), Some(stream), Some(tag)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(SHAPE);
    };
    // An empty line is written as `<time> <stream> F` with or without the space.
    let message = fields.next().unwrap_or_default();
    let time_nanos = time_nanos(time)?;
    let stream = stream_index(stream)?;
    // The tag may carry more flags after a colon (`F:x`); the first says partial or full.
    let last = match tag.split(|b| *b == b':').next() {
        Some(b"F") => true,
        Some(b"P") => false,
        _ => return Err("the tag is neither P nor F"),
    };
    Ok(Part {
        message: Cow::Borrowed(message),
        stream,
        time_nanos,
        last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoded line as `(message, stream, truncated, start)`, or a bad line's reason.
    type Item = Result<(String, &'static str, bool, u64), String>;

    /// The messages `lines` become (the offset of each line is its index), the ends of
    /// unfinished ones flushed; bad lines as `Err(reason)`.
    fn decode(format: ContainerFormat, max_bytes: usize, lines: &[&str]) -> Vec<Item> {
        let mut decoder = ContainerDecoder::new(format, max_bytes);
        let mut got = Vec::new();
        let line = |l: ContainerLine| {
            Ok((
                String::from_utf8(l.message.to_vec()).unwrap(),
                l.stream,
                l.truncated,
                l.start,
            ))
        };
        for (n, text) in lines.iter().enumerate() {
            match decoder.push(Bytes::from(text.to_string()), n as u64) {
                Ok(Some(l)) => got.push(line(l)),
                Ok(None) => {}
                Err(bad) => got.push(Err(bad.reason().to_string())),
            }
        }
        got.extend(decoder.flush().into_iter().map(line));
        got
    }

    fn ok(message: &str, stream: &'static str, truncated: bool, start: u64) -> Item {
        Ok((message.to_string(), stream, truncated, start))
    }

    #[test]
    fn cri_joins_partial_lines_per_stream() {
        let got = decode(
            ContainerFormat::Cri,
            1024,
            &[
                "2026-12-06T10:00:00.000000001Z stdout P one ",
                "2026-12-06T10:00:00.000000002Z stderr F err line",
                "2026-12-06T10:00:00.000000003Z stdout P two ",
                "2026-12-06T10:00:00.000000004Z stdout F three",
                "2026-12-06T10:00:00.000000005Z stdout F",
                "2026-12-06T10:00:00.000000006Z stdout F:x tagged",
            ],
        );
        assert_eq!(
            got,
            [
                ok("err line", "stderr", false, 1),
                ok("one two three", "stdout", false, 0),
                ok("", "stdout", false, 4),
                ok("tagged", "stdout", false, 5),
            ]
        );
    }

    #[test]
    fn docker_joins_lines_without_a_final_newline() {
        let got = decode(
            ContainerFormat::Docker,
            1024,
            &[
                r#"{"log":"long \"quoted\" ","stream":"stdout","time":"2026-12-06T10:00:00.1Z"}"#,
                r#"{"log":"whole\n","stream":"stderr","time":"2026-12-06T10:00:00.2Z"}"#,
                r#"{"log":"end\n","stream":"stdout","time":"2026-12-06T10:00:00.3Z","attrs":{"a":"b"}}"#,
            ],
        );
        assert_eq!(
            got,
            [
                ok("whole", "stderr", false, 1),
                ok("long \"quoted\" end", "stdout", false, 0),
            ]
        );
    }

    #[test]
    fn a_joined_line_is_cut_at_the_maximum() {
        let got = decode(
            ContainerFormat::Cri,
            8,
            &[
                "2026-12-06T10:00:00Z stdout P 12345",
                "2026-12-06T10:00:00Z stdout P 67890",
                "2026-12-06T10:00:00Z stdout F abc",
                "2026-12-06T10:00:00Z stdout F 123456789",
                "2026-12-06T10:00:00Z stdout P unfinished",
            ],
        );
        assert_eq!(
            got,
            [
                ok("12345678", "stdout", true, 0),
                ok("12345678", "stdout", true, 3),
                // The file closed before the line's end: sent as it is.
                ok("unfinish", "stdout", true, 4),
            ]
        );
    }

    #[test]
    fn auto_tells_the_formats_apart_per_line_and_bad_lines_say_why() {
        let got = decode(
            ContainerFormat::Auto,
            1024,
            &[
                r#"{"log":"from docker\n","stream":"stdout","time":"2026-12-06T10:00:00Z"}"#,
                "2026-12-06T10:00:00Z stdout F from cri",
                "plain text",
                r#"{"log":"x\n","stream":"stdin","time":"2026-12-06T10:00:00Z"}"#,
                r#"{"log":"x\n","stream":"stdout","time":"yesterday"}"#,
                "2026-12-06T10:00:00Z stdout X tag",
                r#"{"message":"not docker"}"#,
            ],
        );
        assert_eq!(
            got,
            [
                ok("from docker", "stdout", false, 0),
                ok("from cri", "stdout", false, 1),
                Err("not a cri log line: not <time> <stdout|stderr> <P|F> <message>".into()),
                Err("not a docker json-file log line: the stream is neither stdout nor stderr".into()),
                Err("not a docker json-file log line: the time is not an RFC 3339 time".into()),
                Err("not a cri log line: the tag is neither P nor F".into()),
                Err("not a docker json-file log line: not a JSON object with string fields log, stream and time".into()),
            ]
        );
        assert_eq!(
            decode(ContainerFormat::Cri, 10, &["10:00 stdout F x"]),
            [Err(
                "not a cri log line: the time is not an RFC 3339 time".to_string()
            )]
        );
    }

    #[test]
    fn the_runtimes_time_is_kept_in_nanoseconds() {
        let mut decoder = ContainerDecoder::new(ContainerFormat::Cri, 100);
        let line = decoder
            .push(
                Bytes::from("2026-12-06T10:00:00.123456789+01:00 stdout F x"),
                0,
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            line.time_nanos,
            chrono::DateTime::parse_from_rfc3339("2026-12-06T09:00:00.123456789Z")
                .unwrap()
                .timestamp_nanos_opt()
                .unwrap()
        );
        assert_eq!(decoder.pending_start(), None);
        decoder
            .push(Bytes::from("2026-12-06T10:00:00Z stderr P x"), 7)
            .unwrap();
        assert_eq!(decoder.pending_start(), Some(7));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            /// Messages split into parts at random, the parts of two streams interleaved at
            /// random, in either format: each stream's messages come back whole and in
            /// order, cut at the maximum and marked so when longer.
            #[test]
            fn split_lines_come_back_whole_per_stream(
                messages in prop::collection::vec(
                    (0usize..2, prop::collection::vec("[a-z \"\\\\é]{0,8}", 1..4)),
                    0..20,
                ),
                docker in any::<bool>(),
                max in 1usize..40,
                seed in any::<u64>(),
            ) {
                let mut rng = fastrand::Rng::with_seed(seed);
                // Interleave the streams' parts, keeping each stream's order.
                let mut queues: [Vec<(String, bool)>; 2] = [Vec::new(), Vec::new()];
                for (stream, parts) in &messages {
                    for (i, part) in parts.iter().enumerate() {
                        queues[*stream].push((part.clone(), i == parts.len() - 1));
                    }
                }
                let mut lines = Vec::new();
                let (mut next, mut taken) = ([0usize, 0], 0);
                let total = queues[0].len() + queues[1].len();
                while taken < total {
                    let stream = if next[0] == queues[0].len() {
                        1
                    } else if next[1] == queues[1].len() {
                        0
                    } else {
                        rng.usize(0..2)
                    };
                    let (part, last) = &queues[stream][next[stream]];
                    next[stream] += 1;
                    taken += 1;
                    let name = STREAMS[stream];
                    lines.push(if docker {
                        let log = if *last { format!("{part}\n") } else { part.clone() };
                        serde_json::json!({"log": log, "stream": name, "time": "2026-12-06T10:00:00Z"})
                            .to_string()
                    } else {
                        let tag = if *last { "F" } else { "P" };
                        format!("2026-12-06T10:00:00Z {name} {tag} {part}")
                    });
                }
                let format = if docker { ContainerFormat::Docker } else { ContainerFormat::Auto };
                let mut decoder = ContainerDecoder::new(format, max);
                let mut got: [Vec<(Vec<u8>, bool)>; 2] = [Vec::new(), Vec::new()];
                for (n, line) in lines.into_iter().enumerate() {
                    if let Some(line) = decoder.push(Bytes::from(line), n as u64).unwrap() {
                        let stream = usize::from(line.stream == "stderr");
                        got[stream].push((line.message.to_vec(), line.truncated));
                    }
                }
                prop_assert!(decoder.flush().is_empty());
                for (stream, got) in got.iter().enumerate() {
                    let want: Vec<(Vec<u8>, bool)> = messages
                        .iter()
                        .filter(|(s, _)| *s == stream)
                        .map(|(_, parts)| {
                            let whole = parts.concat().into_bytes();
                            let cut = whole.len() > max;
                            (whole[..whole.len().min(max)].to_vec(), cut)
                        })
                        .collect();
                    prop_assert_eq!(got, &want);
                }
            }
        }
    }
}
