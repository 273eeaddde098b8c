//! Protobuf written straight into one buffer, as prost would write the same message.
//!
//! A nested message's length comes before it, and is known only once it is written: the
//! writer keeps one byte for it, writes the message after it, then puts the length in
//! and, for a message of 128 bytes or more, moves the message along by the length's extra
//! bytes. Each byte is thus moved about once per level it is nested in, a memmove, where
//! prost asks every message for its length once per level above it (a walk of the whole
//! subtree each time) and needs the message as a tree of owned values first.

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LENGTH_DELIMITED: u32 = 2;
const FIXED32: u32 = 5;

#[derive(Default)]
pub(super) struct Writer {
    pub(super) buf: Vec<u8>,
}

impl Writer {
    fn key(&mut self, field: u32, wire_type: u32) {
        self.varint(u64::from(field << 3 | wire_type));
    }

    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.buf.push(value as u8 | 0x80);
            value >>= 7;
        }
        self.buf.push(value as u8);
    }

    /// A message in `field`, its fields written by `fields`.
    pub(super) fn message(&mut self, field: u32, fields: impl FnOnce(&mut Self)) {
        self.key(field, LENGTH_DELIMITED);
        let start = self.buf.len();
        self.buf.push(0);
        fields(self);
        let end = self.buf.len();
        let len = end - start - 1;
        if len < 0x80 {
            self.buf[start] = len as u8;
            return;
        }
        let width = varint_width(len as u64);
        self.buf.resize(end + width - 1, 0);
        self.buf.copy_within(start + 1..end, start + width);
        let mut rest = len as u64;
        for byte in &mut self.buf[start..start + width] {
            *byte = rest as u8 & 0x7f | if rest >= 0x80 { 0x80 } else { 0 };
            rest >>= 7;
        }
    }

    /// Bytes or a string, written even when empty (as a oneof's member is).
    pub(super) fn bytes(&mut self, field: u32, bytes: &[u8]) {
        self.key(field, LENGTH_DELIMITED);
        self.varint(bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes of `len` written by `write` (which must write exactly `len`).
    pub(super) fn bytes_with(&mut self, field: u32, len: usize, write: impl FnOnce(&mut Vec<u8>)) {
        self.key(field, LENGTH_DELIMITED);
        self.varint(len as u64);
        write(&mut self.buf);
    }

    /// A proto3 string field: left out when empty.
    pub(super) fn string(&mut self, field: u32, text: &str) {
        if !text.is_empty() {
            self.bytes(field, text.as_bytes());
        }
    }

    /// A proto3 `uint32`, `int32` or enum field: left out when 0. Negative numbers take ten
    /// bytes, as protobuf's `int32` does.
    pub(super) fn int(&mut self, field: u32, value: i64) {
        if value != 0 {
            self.int_always(field, value);
        }
    }

    /// An `int64` or `bool` written even when 0 (a oneof's member).
    pub(super) fn int_always(&mut self, field: u32, value: i64) {
        self.key(field, VARINT);
        self.varint(value as u64);
    }

    /// A proto3 `fixed64` field: left out when 0.
    pub(super) fn fixed64(&mut self, field: u32, value: u64) {
        if value != 0 {
            self.fixed64_always(field, value);
        }
    }

    /// A `fixed64` or `double` written even when 0 (a oneof's member).
    pub(super) fn fixed64_always(&mut self, field: u32, value: u64) {
        self.key(field, FIXED64);
        self.buf.extend_from_slice(&value.to_le_bytes());
    }

    /// A proto3 `fixed32` field: left out when 0.
    pub(super) fn fixed32(&mut self, field: u32, value: u32) {
        if value != 0 {
            self.key(field, FIXED32);
            self.buf.extend_from_slice(&value.to_le_bytes());
        }
    }
}

fn varint_width(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_length_takes_as_many_bytes_as_it_needs() {
        for (len, width) in [(0, 1), (127, 1), (128, 2), (16_383, 2), (16_384, 3)] {
            let mut writer = Writer::default();
            writer.message(1, |w| w.buf.extend(std::iter::repeat_n(7u8, len)));
            assert_eq!(writer.buf.len(), 1 + width + len, "{len}");
            assert_eq!(varint_width(len as u64), width);
            let mut expected = Writer::default();
            expected.varint(len as u64);
            assert_eq!(&writer.buf[1..1 + width], &expected.buf[..], "{len}");
            assert!(writer.buf[1 + width..].iter().all(|&b| b == 7));
        }
    }
}
