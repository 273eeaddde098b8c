//! Lines read from a child's pipe, each bounded: a longer line is skipped to its end and
//! reported once, so journalctl cannot make the router hold an unbounded line.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::sources::READ_CHUNK_BYTES;

/// What the next call found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line {
    /// A whole line, without its newline.
    Text(Bytes),
    /// A line longer than the bound, dropped.
    Oversized,
}

pub(super) struct BoundedLines<R> {
    reader: R,
    buf: BytesMut,
    max_bytes: usize,
    /// Inside an oversized line: bytes up to the next newline are dropped.
    discarding: bool,
}

impl<R: AsyncRead + Unpin> BoundedLines<R> {
    pub(super) fn new(reader: R, max_bytes: usize) -> Self {
        Self {
            reader,
            buf: BytesMut::with_capacity(READ_CHUNK_BYTES),
            max_bytes,
            discarding: false,
        }
    }

    /// The next line already read, without reading more.
    pub(super) fn buffered(&mut self) -> Option<Line> {
        loop {
            match memchr::memchr(b'\n', &self.buf) {
                Some(end) => {
                    let line = self.buf.split_to(end + 1);
                    if std::mem::take(&mut self.discarding) {
                        // The tail of the oversized line, already reported.
                        continue;
                    }
                    if end > self.max_bytes {
                        return Some(Line::Oversized);
                    }
                    return Some(Line::Text(line.freeze().slice(..end)));
                }
                None if self.buf.len() > self.max_bytes => {
                    self.buf.clear();
                    if !self.discarding {
                        self.discarding = true;
                        return Some(Line::Oversized);
                    }
                    return None;
                }
                None => return None,
            }
        }
    }

    /// Reads more; `Ok(false)` at the end of the stream (a last unterminated line is
    /// dropped: journalctl ends every entry with a newline, so it is a killed child's
    /// half-written entry, read again after the restart).
    pub(super) async fn fill(&mut self) -> std::io::Result<bool> {
        self.buf.reserve(READ_CHUNK_BYTES);
        Ok(self.reader.read_buf(&mut self.buf).await? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounds_lines() {
        let input: &[u8] = b"short\nthis one is too long\nok\n0123456789abcdefghij";
        let mut lines = BoundedLines::new(input, 8);
        let mut seen = Vec::new();
        loop {
            while let Some(line) = lines.buffered() {
                seen.push(line);
            }
            if !lines.fill().await.unwrap() {
                break;
            }
        }
        assert_eq!(
            seen,
            vec![
                Line::Text(Bytes::from_static(b"short")),
                Line::Oversized,
                Line::Text(Bytes::from_static(b"ok")),
                Line::Oversized,
            ]
        );
    }
}
