//! Digests and identifiers: `sha256`, `md5` (lowercase hex), `uuid_v4`.

use md5::Digest;

use super::{string_arg, text, Arg, CallResult};
use crate::event::Value;

pub(super) fn sha256(args: &mut [Arg<'_>]) -> CallResult {
    let s = string_arg(args, 0)?;
    Ok(text(hex(
        ring::digest::digest(&ring::digest::SHA256, s).as_ref()
    )))
}

/// MD5 is broken for security; it is here to match identifiers other systems compute.
pub(super) fn md5(args: &mut [Arg<'_>]) -> CallResult {
    let s = string_arg(args, 0)?;
    Ok(text(hex(&md5::Md5::digest(s))))
}

/// A random (version 4) UUID in its hyphenated lowercase form.
pub(super) fn uuid_v4() -> Value {
    text(uuid::Uuid::new_v4().to_string())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}
