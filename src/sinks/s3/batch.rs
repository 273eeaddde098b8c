//! Open objects: events encoded per rendered key prefix, compressed as they come, until an
//! object is full, old enough, displaced by a new prefix, or the input ends.
//!
//! An open object keeps its events' bytes, compressed, and their acknowledgement tokens,
//! not the events: what waits for the store is a few bytes per event. Encoded lines are
//! staged and compressed 256 KiB at a time into one gzip member or zstd frame each;
//! concatenated members and frames are valid gzip and zstd streams (every reader, `zcat`
//! and `zstdcat` included, reads them as one), and one compressor serves every open object,
//! so an open object costs its compressed bytes plus at most one staging buffer, never a
//! compressor's state. Each event's encoded length is kept too (four bytes), so that the
//! events of an object S3 refused can be read back from it for the dead-letter output.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use super::config::Compression;
use super::key::{safe_prefix, KeyTemplate};
use crate::ack::{AckToken, Obligation};
use crate::event::{fields, Event, Map, Value};
use crate::sinks::Encoding;

/// Encoded bytes compressed at a time into one gzip member or zstd frame.
const STAGING_BYTES: usize = 256 * 1024;

/// zstd's default level: several times faster than gzip for a better ratio.
const ZSTD_LEVEL: i32 = 3;

/// Why an object was closed (the `reason` of `s3_objects_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Closed {
    MaxBytes,
    Timeout,
    MaxOpenObjects,
    Shutdown,
}

impl Closed {
    pub(super) const ALL: [Closed; 4] = [
        Closed::MaxBytes,
        Closed::Timeout,
        Closed::MaxOpenObjects,
        Closed::Shutdown,
    ];

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Closed::MaxBytes => "max_bytes",
            Closed::Timeout => "timeout",
            Closed::MaxOpenObjects => "max_open_objects",
            Closed::Shutdown => "shutdown",
        }
    }
}

/// An object being filled.
struct OpenObject {
    /// The key prefix, made safe.
    prefix: String,
    /// Encoded lines not yet compressed.
    staging: Vec<u8>,
    /// The object's content so far: compressed members or frames.
    body: Vec<u8>,
    /// Encoded (uncompressed) bytes, staged or compressed.
    encoded_bytes: usize,
    /// Each event's encoded length, in order.
    lengths: Vec<u32>,
    /// Each event's token, run-length encoded (events of one source batch share a token).
    tokens: Vec<(Option<AckToken>, u32)>,
    /// Reports the events errored if the object is dropped before its outcome is stated.
    obligation: Obligation,
    opened: Instant,
    /// A compression failure (not expected: it writes to memory): the object's events go
    /// to dead-letter with it rather than being stored damaged.
    failed: Option<String>,
}

/// A closed object, ready to store.
pub(super) struct Sealed {
    pub(super) prefix: String,
    pub(super) body: Vec<u8>,
    /// How many events it holds.
    pub(super) count: usize,
    pub(super) closed: Closed,
    pub(super) failed: Option<String>,
    pub(super) obligation: Obligation,
    lengths: Vec<u32>,
    tokens: Vec<(Option<AckToken>, u32)>,
}

pub(super) struct Batcher {
    key: KeyTemplate,
    encoding: Encoding,
    compression: Compression,
    max_bytes: usize,
    max_open: usize,
    timeout: Duration,
    /// Keyed by the rendered prefix (before `safe_prefix`, which runs once per object).
    open: HashMap<String, OpenObject, foldhash::fast::RandomState>,
    zstd: Option<zstd::bulk::Compressor<'static>>,
    rendered: String,
}

impl Batcher {
    pub(super) fn new(
        key: KeyTemplate,
        encoding: Encoding,
        compression: Compression,
        max_bytes: usize,
        max_open: usize,
        timeout: Duration,
    ) -> std::io::Result<Batcher> {
        let zstd = match compression {
            Compression::Zstd => Some(zstd::bulk::Compressor::new(ZSTD_LEVEL)?),
            _ => None,
        };
        Ok(Batcher {
            key,
            encoding,
            compression,
            max_bytes,
            max_open,
            timeout,
            open: HashMap::default(),
            zstd,
            rendered: String::new(),
        })
    }

    /// Adds `event` to its object. Objects closed on the way (the oldest, to make room for
    /// a new prefix; this one, when full) are pushed to `ready`, to be stored before the
    /// next event is added.
    pub(super) fn add(&mut self, event: &Event, ready: &mut Vec<Sealed>) {
        // A static prefix is rendered once, for the first event.
        if !self.key.is_static() || self.open.is_empty() {
            self.rendered.clear();
            self.key.render(event, &mut self.rendered);
        }
        if !self.open.contains_key(&self.rendered) {
            if self.open.len() >= self.max_open {
                if let Some(oldest) = self.oldest() {
                    ready.push(self.seal(&oldest, Closed::MaxOpenObjects));
                }
            }
            self.open.insert(
                self.rendered.clone(),
                OpenObject {
                    prefix: safe_prefix(&self.rendered),
                    staging: Vec::new(),
                    body: Vec::new(),
                    encoded_bytes: 0,
                    lengths: Vec::new(),
                    tokens: Vec::new(),
                    obligation: Obligation::default(),
                    opened: Instant::now(),
                    failed: None,
                },
            );
        }
        let object = self
            .open
            .get_mut(&self.rendered)
            .expect("inserted above when missing");
        let before = object.staging.len();
        self.encoding.encode(event, &mut object.staging);
        let length = object.staging.len() - before;
        object.encoded_bytes += length;
        object
            .lengths
            .push(u32::try_from(length).unwrap_or(u32::MAX));
        let token = event.meta.ack.as_ref();
        match object.tokens.last_mut() {
            Some((last, n)) if same_token(last.as_ref(), token) => *n += 1,
            _ => object.tokens.push((token.cloned(), 1)),
        }
        object.obligation.push(token);
        if object.staging.len() >= STAGING_BYTES {
            compress(self.compression, self.zstd.as_mut(), object);
        }
        if object.encoded_bytes >= self.max_bytes {
            let key = self.rendered.clone();
            ready.push(self.seal(&key, Closed::MaxBytes));
        }
    }

    /// When the oldest open object times out.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.open.values().map(|o| o.opened + self.timeout).min()
    }

    /// Closes the objects open for `batch.timeout_secs` or longer.
    pub(super) fn expired(&mut self, now: Instant) -> Vec<Sealed> {
        let keys: Vec<String> = self
            .open
            .iter()
            .filter(|(_, o)| o.opened + self.timeout <= now)
            .map(|(k, _)| k.clone())
            .collect();
        keys.iter().map(|k| self.seal(k, Closed::Timeout)).collect()
    }

    /// Closes every open object (the input ended), oldest first.
    pub(super) fn drain(&mut self) -> Vec<Sealed> {
        let mut sealed = Vec::with_capacity(self.open.len());
        while let Some(oldest) = self.oldest() {
            sealed.push(self.seal(&oldest, Closed::Shutdown));
        }
        sealed
    }

    pub(super) fn open_objects(&self) -> usize {
        self.open.len()
    }

    fn oldest(&self) -> Option<String> {
        self.open
            .iter()
            .min_by_key(|(_, o)| o.opened)
            .map(|(k, _)| k.clone())
    }

    fn seal(&mut self, key: &str, closed: Closed) -> Sealed {
        let mut object = self.open.remove(key).expect("sealed objects are open");
        compress(self.compression, self.zstd.as_mut(), &mut object);
        Sealed {
            prefix: object.prefix,
            body: object.body,
            count: object.lengths.len(),
            closed,
            failed: object.failed,
            obligation: object.obligation,
            lengths: object.lengths,
            tokens: object.tokens,
        }
    }
}

fn same_token(a: Option<&AckToken>, b: Option<&AckToken>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.same_as(b),
        (None, None) => true,
        _ => false,
    }
}

/// Compresses the staged lines onto the object's body.
fn compress(
    compression: Compression,
    zstd: Option<&mut zstd::bulk::Compressor<'static>>,
    object: &mut OpenObject,
) {
    if object.staging.is_empty() || object.failed.is_some() {
        object.staging.clear();
        return;
    }
    let result = match (compression, zstd) {
        (Compression::None, _) => {
            object.body.extend_from_slice(&object.staging);
            Ok(())
        }
        (Compression::Gzip, _) => {
            // Level 1: three times faster than the default for a few percent of size.
            let mut gz =
                flate2::write::GzEncoder::new(&mut object.body, flate2::Compression::fast());
            gz.write_all(&object.staging)
                .and_then(|()| gz.finish().map(drop))
        }
        (Compression::Zstd, Some(zstd)) => zstd
            .compress(&object.staging)
            .map(|frame| object.body.extend_from_slice(&frame)),
        (Compression::Zstd, None) => Err(std::io::Error::other("no zstd compressor")),
    };
    if let Err(error) = result {
        object.failed = Some(format!("compression failed: {error}"));
    }
    object.staging.clear();
    // Staging buffers of many open objects would add up: let each go between chunks.
    object.staging.shrink_to(STAGING_BYTES / 16);
}

impl Sealed {
    /// The object's events read back from its content (`body`, taken out to be stored), each with its own token, for the
    /// dead-letter output: the JSON encoding's fields, or (text) the line as `message`.
    /// Types JSON cannot carry come back as JSON has them (a timestamp as its text).
    pub(super) fn events(
        &self,
        body: &[u8],
        encoding: Encoding,
        compression: Compression,
    ) -> Vec<Event> {
        let mut content = Vec::new();
        let read = match compression {
            Compression::None => {
                content.extend_from_slice(body);
                Ok(0)
            }
            Compression::Gzip => flate2::read::MultiGzDecoder::new(body).read_to_end(&mut content),
            Compression::Zstd => {
                zstd::stream::read::Decoder::new(body).and_then(|mut d| d.read_to_end(&mut content))
            }
        };
        if let Err(error) = read {
            // Not expected (the sink wrote these bytes): say so in each event instead.
            tracing::warn!(%error, "cannot read an object's events back for dead-letter");
        }
        let mut tokens = self
            .tokens
            .iter()
            .flat_map(|(token, n)| std::iter::repeat_n(token, *n as usize));
        let mut offset = 0;
        let mut events = Vec::with_capacity(self.lengths.len());
        for &length in &self.lengths {
            let end = (offset + length as usize).min(content.len());
            let line = &content[offset.min(end)..end];
            offset = end;
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            let mut event = match (encoding, serde_json::from_slice::<Value>(line)) {
                (Encoding::Json, Ok(Value::Object(fields))) => Event::new(fields),
                _ => {
                    let mut fields = Map::with_capacity(1);
                    fields.insert(fields::MESSAGE, Value::Bytes(line.to_vec().into()));
                    Event::new(fields)
                }
            };
            event.meta.ack = tokens.next().cloned().flatten();
            events.push(event);
        }
        events
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
