//! One file being read: its open descriptor, how far it was read, its unfinished line, and
//! the batches sent from it that await acknowledgement.
//!
//! Reads go through the descriptor opened when the file was found, so a file renamed or
//! deleted meanwhile is still read to its end. Each read takes at most one chunk, and the
//! source reads every file once per round: a busy file cannot starve a quiet one.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::annotate::{Annotate, FileAnnotator};
use super::compressed::FromStart;
use super::encoding::Transcoder;
use super::fingerprint::Fingerprint;
use super::stages::{Message, Stages};
use crate::ack::{AckStatus, AckToken};
use crate::codec::container::ContainerFormat;
use crate::codec::multiline::MultilineRules;
use crate::codec::{BadFrame, DecodingConfig, FramingConfig};
use crate::event::{fields, Value};
use crate::sources::checkpoint::PendingAcks;
use crate::sources::{Decoded, FrameIngest, READ_CHUNK_BYTES};
use crate::telemetry::{Counter, Histogram};

/// The field holding the path a line was read from.
pub(super) const PATH: &str = "path";

/// How a reader's events are made: shared by every file of the source.
pub(super) struct Codec {
    pub(super) id: Arc<str>,
    pub(super) framing: FramingConfig,
    pub(super) decoding: DecodingConfig,
    pub(super) host: Value,
    pub(super) ack_latency: Histogram,
    pub(super) container: Option<ContainerFormat>,
    pub(super) multiline: Option<MultilineRules>,
    /// The longest line (a joined partial line is cut there).
    pub(super) max_line_bytes: usize,
    /// What a source built on this one adds to each file's events.
    pub(super) annotate: Option<Arc<dyn Annotate>>,
    /// The files' `encoding`, unless UTF-8 (passed on as it is).
    pub(super) encoding: Option<&'static encoding_rs::Encoding>,
    /// Sequences `encoding` could not decode (replaced).
    pub(super) invalid_encoding: Counter,
    /// Compressed files that could not be read to their end.
    pub(super) corrupt_gzip: Counter,
}

impl Codec {
    fn transcoder(&self, file: &File, start: u64) -> Option<Transcoder> {
        self.encoding
            .map(|e| Transcoder::resume(e, file, start, self.invalid_encoding.clone()))
    }

    fn ingest(&self) -> FrameIngest {
        FrameIngest::new(self.id.clone(), &self.framing, self.decoding)
    }

    fn stages(&self) -> Option<Stages> {
        Stages::new(
            &self.id,
            self.container,
            self.multiline.as_ref(),
            self.max_line_bytes,
        )
    }
}

pub(super) struct FileReader {
    /// Where the file was found (the `path` field of its events).
    pub(super) path: PathBuf,
    path_value: Value,
    file: File,
    /// A compressed file (`.gz`): read once through its decompressed stream, whose offsets
    /// are those of `read_to` and the checkpoint; never tailed.
    gzip: Option<GzipInput>,
    /// The file's `encoding` turned into UTF-8 before framing: `buf` then holds text, and
    /// offsets in the file come from the transcoder.
    transcoder: Option<Transcoder>,
    /// Raw bytes read before transcoding.
    raw: Vec<u8>,
    pub(super) fingerprint: Fingerprint,
    /// Bytes of the file read so far (the unfinished line included).
    read_to: u64,
    /// The offset recorded with the last batch: where a restart may resume.
    resume_at: u64,
    buf: BytesMut,
    ingest: FrameIngest,
    /// `container` and `multiline`, when the source has them.
    stages: Option<Stages>,
    /// What the stages held when the file's content was replaced, sent with the next read.
    carried: Vec<Result<Message, BadFrame>>,
    annotator: Option<Box<dyn FileAnnotator>>,
    pub(super) pending: PendingAcks,
    /// Since when the globs no longer find this file (renamed away or deleted).
    pub(super) gone_since: Option<Instant>,
    /// The last read found nothing new.
    pub(super) at_eof: bool,
    /// Since when reads have found nothing new.
    eof_since: Option<Instant>,
    /// For a copy of earlier content (logrotate's `copytruncate` copy): the path of its
    /// original, whose new lines wait until this one is read to its end.
    pub(super) blocks: Option<PathBuf>,
    /// Truncated or rewritten since the last scan: its new content waits for the next
    /// scan, which finds a copy of the old content (if the globs match it) to read first.
    pub(super) awaiting_scan: bool,
}

/// What became of a file's earlier content when it was truncated or replaced in place: its
/// identity and the batches still awaiting acknowledgement, for the checkpoint.
pub(super) struct Retired {
    pub(super) fingerprint: Fingerprint,
    pub(super) path: PathBuf,
    pub(super) pending: PendingAcks,
    /// False when the earlier content had the same identity as the file has now (a short
    /// file, known by device and inode, truncated): its late acknowledgements must not move
    /// the checkpoint of the new content.
    pub(super) checkpoint: bool,
    /// Where the last complete line read from it ended: a copy of this content found later
    /// (logrotate's `copytruncate` copy, if the globs match it) is read from there.
    pub(super) read_to: u64,
    /// A compressed file read to its end: once `read_to` is acknowledged it is done, never
    /// read again.
    pub(super) compressed: bool,
}

/// A compressed file's decompressed stream, and how much of it a checkpoint says was read
/// already (skipped a chunk per round, so a long skip does not stall the other files).
pub(super) struct GzipInput {
    stream: flate2::read::MultiGzDecoder<FromStart>,
    skip: u64,
}

impl GzipInput {
    /// The stream of `file` (a second descriptor of it), `skip` bytes in.
    pub(super) fn new(file: &File, skip: u64) -> std::io::Result<Self> {
        Ok(Self {
            stream: flate2::read::MultiGzDecoder::new(FromStart::new(file)?),
            skip,
        })
    }
}

/// Reads at offset `at` of `file`, or the next bytes of its decompressed stream.
fn read_some(
    file: &File,
    gzip: Option<&mut GzipInput>,
    at: u64,
    dst: &mut [u8],
) -> std::io::Result<usize> {
    match (gzip, dst.len()) {
        (_, 0) => Ok(0),
        (Some(gzip), _) => gzip.stream.read(dst),
        (None, _) => file.read_at(dst, at),
    }
}

/// How much of a skip is done per read: decompressing it costs about as much as reading.
const SKIP_PER_READ: u64 = 16 * READ_CHUNK_BYTES as u64;

impl FileReader {
    pub(super) fn new(
        path: PathBuf,
        file: File,
        fingerprint: Fingerprint,
        start: u64,
        codec: &Codec,
        gzip: Option<GzipInput>,
    ) -> Self {
        let path_value = Value::from(path.to_string_lossy().into_owned());
        let annotator = codec.annotate.as_ref().map(|a| a.file(&path));
        Self {
            path,
            path_value,
            transcoder: codec.transcoder(&file, start),
            raw: Vec::new(),
            file,
            gzip,
            fingerprint,
            read_to: start,
            resume_at: start,
            buf: BytesMut::new(),
            ingest: codec.ingest(),
            stages: codec.stages(),
            carried: Vec::new(),
            annotator,
            pending: PendingAcks::new(start),
            gone_since: None,
            at_eof: false,
            eof_since: None,
            blocks: None,
            awaiting_scan: false,
        }
    }

    /// Reads the next chunk and decodes the complete lines in it (with `flush`, the
    /// unfinished last line too: the file is being closed). The events carry one
    /// acknowledgement token, recorded in `pending` with the offset just past them.
    pub(super) fn read(&mut self, codec: &Codec, flush: bool) -> std::io::Result<Decoded> {
        let Some(n) = self.fill(codec, flush)? else {
            return Ok(Decoded::default()); // a compressed file's skip goes on
        };
        self.at_eof = n == 0;
        if self.at_eof {
            self.eof_since.get_or_insert_with(Instant::now);
        } else {
            self.eof_since = None;
        }
        self.ingest.count_bytes(n);
        let mut decoded = Decoded::default();
        let now = Instant::now();
        let closing = flush && n == 0;
        let stages_due = !self.carried.is_empty()
            || self
                .stages
                .as_ref()
                .is_some_and(|s| s.due(now) || (closing && s.holds()));
        // Nothing new, no unfinished line to flush, nothing held to send.
        if n == 0 && (!flush || self.buf.is_empty()) && !stages_due {
            return Ok(decoded);
        }
        let (token, rx) = AckToken::timed(&codec.ack_latency);
        if self.stages.is_some() {
            self.read_through_stages(closing, now, &token, &mut decoded);
        } else {
            self.ingest
                .decode_with_ack(&mut self.buf, closing, None, Some(&token), &mut decoded);
        }
        drop(token);
        for event in &mut decoded.events {
            if event.fields.get(PATH).is_none() {
                event.fields.insert(PATH, self.path_value.clone());
            }
            if event.fields.get(fields::HOST).is_none() {
                event.fields.insert(fields::HOST, codec.host.clone());
            }
        }
        if let Some(annotator) = &mut self.annotator {
            annotator.annotate(&mut decoded.events);
        }
        // Inside an oversized line being dropped, a restart must start before it, not in
        // its middle (where its tail would read as a line): the recorded offset waits. So it
        // does before lines the stages hold.
        let mut resume_at = self.resume_at;
        if !self.ingest.is_discarding() {
            resume_at = self.complete_to();
        }
        if let Some(held) = self.stages.as_ref().and_then(Stages::pending_start) {
            resume_at = resume_at.min(held);
        }
        self.resume_at = self.resume_at.max(resume_at);
        self.pending.push(self.resume_at, rx);
        if let Some(t) = &mut self.transcoder {
            t.forget_before(t.fed() - self.buf.len() as u64);
        }
        Ok(decoded)
    }

    /// Reads the next chunk onto `buf` (as text, with an `encoding`); the raw bytes read,
    /// or `None` while a compressed file's skip is still under way.
    fn fill(&mut self, codec: &Codec, flush: bool) -> std::io::Result<Option<usize>> {
        if let Some(gzip) = &mut self.gzip {
            if gzip.skip > 0 {
                let step = gzip.skip.min(SKIP_PER_READ);
                let skipped =
                    std::io::copy(&mut (&mut gzip.stream).take(step), &mut std::io::sink())
                        .map_err(|e| {
                            codec.corrupt_gzip.inc(1);
                            std::io::Error::new(e.kind(), format!("corrupt or truncated gzip: {e}"))
                        })?;
                // `read_to` is already past what is skipped; a stream shorter than that has
                // nothing left to read.
                gzip.skip = if skipped < step { 0 } else { gzip.skip - step };
                if gzip.skip > 0 {
                    return Ok(None);
                }
            }
        }
        // Only what the file holds beyond what was read is asked for (a file at its end
        // costs one fstat per round, not a read into a zeroed chunk).
        let want = match self.gzip {
            Some(_) => READ_CHUNK_BYTES,
            None => {
                let len = self.file.metadata()?.len();
                len.saturating_sub(self.read_to)
                    .min(READ_CHUNK_BYTES as u64) as usize
            }
        };
        let want = match &self.transcoder {
            Some(t) => t.align(want),
            None => want,
        };
        let at = self.read_to;
        let n = if self.transcoder.is_some() {
            self.raw.resize(want, 0);
            read_some(&self.file, self.gzip.as_mut(), at, &mut self.raw)
        } else {
            let start = self.buf.len();
            self.buf.resize(start + want, 0);
            let read = read_some(&self.file, self.gzip.as_mut(), at, &mut self.buf[start..]);
            self.buf.truncate(start + *read.as_ref().unwrap_or(&0));
            read
        };
        let n = n.map_err(|e| match self.gzip {
            Some(_) => {
                codec.corrupt_gzip.inc(1);
                std::io::Error::new(e.kind(), format!("corrupt or truncated gzip: {e}"))
            }
            None => e,
        })?;
        self.read_to += n as u64;
        if let Some(t) = &mut self.transcoder {
            t.decode(&self.raw[..n], at, flush && n == 0, &mut self.buf);
        }
        Ok(Some(n))
    }

    /// Frames the buffer and passes each frame through the stages (with the offset where it
    /// began); decodes the messages they complete.
    fn read_through_stages(
        &mut self,
        closing: bool,
        now: Instant,
        token: &AckToken,
        decoded: &mut Decoded,
    ) {
        let Some(stages) = &mut self.stages else {
            return;
        };
        let messages = std::mem::take(&mut self.carried);
        let (read_to, transcoder) = (self.read_to, self.transcoder.as_ref());
        let offset = |held: usize| offset_of(read_to, held, transcoder);
        stages.decode(
            &mut self.ingest,
            &mut self.buf,
            &offset,
            closing,
            now,
            messages,
            Some(token),
            decoded,
        );
        if decoded.events.is_empty() && decoded.dead.is_empty() {
            // Nothing to deliver from this read (lines held, or half a line): the offset
            // recorded with it stops before what is held.
            token.update(AckStatus::Delivered);
        }
    }

    /// Checks whether the file was truncated (`copytruncate`: it is shorter than what was
    /// read) or rewritten in place (it has new bytes and its leading bytes changed: a
    /// truncated file written past the old read position before this look); if so, starts
    /// it again from its beginning and returns what was pending for its earlier content.
    /// Checked before every read of new bytes, so no byte of new content is read at an
    /// old content's offset.
    pub(super) fn check_replaced(&mut self, codec: &Codec) -> Option<Retired> {
        if self.gzip.is_some() {
            return None; // its offsets are the decompressed stream's
        }
        let len = self.file.metadata().ok()?.len();
        let shrank = len < self.read_to;
        let rewritten = len > self.read_to
            && self.fingerprint.is_checksum()
            && Fingerprint::of(&self.file).is_ok_and(|now| now != self.fingerprint);
        if !shrank && !rewritten {
            return None;
        }
        tracing::info!(component_id = %codec.id, path = %self.path.display(), len, read_to = self.read_to, "file truncated or rewritten; reading it again from its start");
        let fingerprint = Fingerprint::of(&self.file).ok()?;
        let retired = Retired {
            checkpoint: fingerprint != self.fingerprint,
            read_to: self.complete_to(),
            fingerprint: std::mem::replace(&mut self.fingerprint, fingerprint),
            path: self.path.clone(),
            pending: std::mem::replace(&mut self.pending, PendingAcks::new(0)),
            compressed: false,
        };
        self.read_to = 0;
        self.resume_at = 0;
        self.awaiting_scan = true;
        self.buf.clear();
        self.ingest = codec.ingest();
        if let Some(stages) = &mut self.stages {
            // What the earlier content held goes out with the next read.
            stages.flush_all(Instant::now(), &mut self.carried);
        }
        self.stages = codec.stages();
        self.transcoder = codec.transcoder(&self.file, 0);
        Some(retired)
    }

    /// A file known by device and inode that has grown long enough gets its checksum
    /// identity: returns the old and the new one.
    pub(super) fn upgrade_fingerprint(&mut self) -> Option<(Fingerprint, Fingerprint)> {
        if self.fingerprint.is_checksum() || self.gzip.is_some() {
            return None;
        }
        let new = Fingerprint::of(&self.file)
            .ok()
            .filter(Fingerprint::is_checksum)?;
        Some((std::mem::replace(&mut self.fingerprint, new), new))
    }

    /// Device and inode of the open file (the same after a rename).
    pub(super) fn dev_inode(&self) -> Option<(u64, u64)> {
        self.file.metadata().ok().map(|m| (m.dev(), m.ino()))
    }

    /// Nothing read for `idle` and nothing owed: every line sent was acknowledged (the
    /// checkpoint is where reading would go on), no earlier content or rotation is pending.
    /// Such a file can be closed and opened again from its checkpoint.
    pub(super) fn idle_for(&self, idle: Duration) -> bool {
        self.at_eof
            && self.eof_since.is_some_and(|t| t.elapsed() >= idle)
            && self.pending.is_empty()
            && self.gone_since.is_none()
            && self.blocks.is_none()
            && !self.awaiting_scan
            && self.gzip.is_none()
            && self.carried.is_empty()
    }

    /// Bytes of the file read so far: its length when the last read found nothing new.
    pub(super) fn read_to(&self) -> u64 {
        self.read_to
    }

    pub(super) fn into_retired(self) -> Retired {
        Retired {
            read_to: self.complete_to(),
            fingerprint: self.fingerprint,
            path: self.path,
            compressed: self.gzip.is_some() && self.at_eof,
            pending: self.pending,
            checkpoint: true,
        }
    }

    /// The offset just past the last line decoded (the unfinished one not included).
    fn complete_to(&self) -> u64 {
        offset_of(self.read_to, self.buf.len(), self.transcoder.as_ref())
    }

    /// A compressed file, read once.
    pub(super) fn is_compressed(&self) -> bool {
        self.gzip.is_some()
    }
}

/// The offset in the file of the first byte of a buffer holding `held` bytes, read up to
/// `read_to` (text bytes, with a transcoder).
fn offset_of(read_to: u64, held: usize, transcoder: Option<&Transcoder>) -> u64 {
    match transcoder {
        None => read_to - held as u64,
        Some(t) => t.raw_offset(t.fed() - held as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::AckStatus;
    use crate::codec::{FrameLimits, OversizePolicy};

    /// A file source's codec with the given framing, multiline stage and line limit.
    fn test_codec(
        framing: FramingConfig,
        multiline: Option<MultilineRules>,
        max_line_bytes: usize,
    ) -> Codec {
        Codec {
            id: "t".into(),
            framing,
            decoding: DecodingConfig::default(),
            container: None,
            multiline,
            max_line_bytes,
            host: Value::from("h"),
            annotate: None,
            encoding: None,
            invalid_encoding: Counter::default(),
            corrupt_gzip: Counter::default(),
            ack_latency: crate::telemetry::histogram(
                "acknowledgement_latency_seconds",
                &[("component_id", "reader_test")],
            ),
        }
    }

    #[tokio::test]
    async fn never_records_a_resume_offset_inside_an_oversized_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut content = b"ok\n".to_vec();
        content.extend(std::iter::repeat_n(b'x', 100));
        std::fs::write(&path, &content).unwrap();
        let framing = FramingConfig::Newline(FrameLimits {
            max_frame_bytes: 10,
            oversize: OversizePolicy::Skip,
        });
        let codec = test_codec(framing, None, 10);
        let file = File::open(&path).unwrap();
        let fingerprint = Fingerprint::of(&file).unwrap();
        let mut reader = FileReader::new(path.clone(), file, fingerprint, 0, &codec, None);
        let decoded = reader.read(&codec, false).unwrap();
        assert_eq!(decoded.events.len(), 1);
        for event in &decoded.events {
            event.ack(AckStatus::Delivered);
        }
        drop(decoded);
        reader.pending.settle(true, "t").await;
        assert_eq!(
            reader.pending.acked(),
            0,
            "the read ends inside an oversized line: a restart starts before it"
        );

        let mut more = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut more, b"xx\nnext\n").unwrap();
        let decoded = reader.read(&codec, false).unwrap();
        assert_eq!(decoded.events.len(), 1, "the line after the oversized one");
        assert_eq!(decoded.dead.len(), 1, "the oversized line");
        for event in decoded.events.iter().chain(&decoded.dead) {
            event.ack(AckStatus::Delivered);
        }
        drop(decoded);
        reader.pending.settle(true, "t").await;
        assert_eq!(reader.pending.acked(), content.len() as u64 + 8);
    }

    #[tokio::test]
    async fn never_records_a_resume_offset_past_lines_held_by_multiline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let content =
            "started\nException in thread \"main\" java.lang.IllegalStateException: boom\n\tat A.b(A.java:1)\n";
        std::fs::write(&path, content).unwrap();
        let multiline: crate::codec::multiline::MultilineConfig =
            toml::from_str(r#"preset = "java""#).unwrap();
        let multiline = Some(multiline.build().unwrap());
        let codec = test_codec(FramingConfig::default(), multiline, 1024);
        let file = File::open(&path).unwrap();
        let fingerprint = Fingerprint::of(&file).unwrap();
        let mut reader = FileReader::new(path.clone(), file, fingerprint, 0, &codec, None);
        let messages = |decoded: &Decoded| -> Vec<String> {
            decoded
                .events
                .iter()
                .map(|e| e.message().unwrap().to_text())
                .collect()
        };
        let decoded = reader.read(&codec, false).unwrap();
        assert_eq!(messages(&decoded), ["started"]);
        decoded.events[0].ack(AckStatus::Delivered);
        drop(decoded);
        reader.pending.settle(true, "t").await;
        assert_eq!(
            reader.pending.acked(),
            "started\n".len() as u64,
            "a restart reads the held trace again"
        );

        let mut more = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut more, b"next\n").unwrap();
        let decoded = reader.read(&codec, false).unwrap();
        assert_eq!(
            messages(&decoded),
            ["Exception in thread \"main\" java.lang.IllegalStateException: boom\n\tat A.b(A.java:1)"]
        );
        decoded.events[0].ack(AckStatus::Delivered);
        drop(decoded);
        reader.pending.settle(true, "t").await;
        assert_eq!(
            reader.pending.acked(),
            content.len() as u64,
            "`next` is held"
        );

        // Closing the file sends what is held.
        let decoded = reader.read(&codec, true).unwrap();
        assert_eq!(messages(&decoded), ["next"]);
        decoded.events[0].ack(AckStatus::Delivered);
        drop(decoded);
        reader.pending.settle(true, "t").await;
        assert_eq!(reader.pending.acked(), content.len() as u64 + 5);
    }
}
