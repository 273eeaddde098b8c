//! `parse_url`: `scheme://user:password@host:port/path?query#fragment` into an object.
//!
//! Written for the URLs logs carry (request targets, referrers, webhook addresses) rather
//! than with a full WHATWG URL parser: components are split, the query is decoded into an
//! object, and nothing is normalised (no IDNA, no path resolution).

use compact_str::CompactString;

use super::{string_arg, Arg, CallResult};
use crate::event::{Map, Value};

/// Fails when the text has no `scheme://` or no host.
pub(super) fn parse_url(args: &mut [Arg<'_>]) -> CallResult {
    let s = string_arg(args, 0)?;
    let s = String::from_utf8_lossy(s);
    let s = s.trim();
    let (scheme, rest) = s
        .split_once("://")
        .filter(|(scheme, _)| {
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        })
        .ok_or_else(|| format!("{s:?} is not a url (expected `scheme://`)"))?;
    let (rest, fragment) = match rest.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (rest, None),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, ""),
    };
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = split_port(host_port)?;
    if host.is_empty() {
        return Err(format!("{s:?} has no host"));
    }
    let (username, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((name, pass)) => (decode(name), Some(decode(pass))),
            None => (decode(u), None),
        },
        None => (String::new(), None),
    };
    let mut map = Map::with_capacity(8);
    map.insert("scheme", Value::from(scheme.to_ascii_lowercase()));
    map.insert("username", Value::from(username));
    map.insert("password", password.map_or(Value::Null, Value::from));
    map.insert("host", Value::from(host.to_ascii_lowercase()));
    map.insert("port", port.map_or(Value::Null, Value::Integer));
    map.insert("path", Value::from(decode(path)));
    let mut query_map = Map::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query_map.insert(
            CompactString::from(decode_query(k)),
            Value::from(decode_query(v)),
        );
    }
    map.insert("query", Value::Object(query_map));
    map.insert(
        "fragment",
        fragment.map_or(Value::Null, |f| Value::from(decode(f))),
    );
    Ok(Value::Object(map))
}

/// `host:port` or `[v6]:port` into the host and the port number.
fn split_port(host_port: &str) -> Result<(&str, Option<i64>), String> {
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (inside, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("unclosed `[` in {host_port:?}"))?;
        (inside, after.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(
            p.parse::<u16>()
                .map(i64::from)
                .map_err(|_| format!("invalid port {p:?}"))?,
        ),
    };
    Ok((host, port))
}

/// Percent-decoding; in a query, `+` is a space too (as forms encode it). Invalid escapes
/// are kept as written, invalid UTF-8 replaced.
fn decode_with(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(high), Some(low)) => {
                    // Two hex digits make at most 255.
                    out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn decode(s: &str) -> String {
    decode_with(s, false)
}

fn decode_query(s: &str) -> String {
    decode_with(s, true)
}
