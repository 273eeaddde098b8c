//! The `redact` transform: masks secrets and personal data inside field values.
//!
//! ```toml
//! [transforms.scrub]
//! type = "redact"
//! inputs = ["parsed"]
//! fields = ["message", "http.url"]   # default: every string field, nested ones included
//! detectors = ["credit_card", "email", "jwt"]   # default: every built-in detector
//! patterns = { order_ref = 'ORD-[0-9]{8}' }    # custom detectors (regex)
//! replacement = "hash"               # mask (default) | partial | hash
//! hash_key = "${REDACT_KEY}"         # for `hash`: equal values give equal digests
//! ```
//!
//! A filter can only drop a whole event; this keeps the event and removes what must not be
//! stored. Replacements: `mask` writes `[REDACTED:detector]`; `partial` keeps the last four
//! characters (`****1234`); `hash` writes `[detector:` and the first 16 hex digits of
//! HMAC-SHA256 under `hash_key` `]`, stable across events and routers with one key, so a
//! value stays joinable without being readable.
//!
//! Detectors are chosen to be right more than to be eager: a card number must have a known
//! issuer prefix, 13–19 digits and a valid Luhn check; an IPv4 address must not be part of a
//! longer dotted number (`1.2.3.4.5`) or a version (`v1.2.3.4`); an IPv6 address must parse.
//! All detectors run first as one `RegexSet` pass; only those it finds are run for spans. Matches are
//! counted per detector as `component_redactions_total{detector}`.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use regex::bytes::Regex;
use serde::Deserialize;

use super::{FunctionTransform, Outputs, TransformContext};
use crate::condition::FieldPath;
use crate::event::{Event, Value};
use crate::field_error::FieldError;
use crate::telemetry::{self, Counter};

/// Configuration of the `redact` transform.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactConfig {
    /// Fields to scan; without it, every string value in the event.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    /// Built-in detectors to use; without it, all of them.
    #[serde(default)]
    pub detectors: Option<Vec<String>>,
    /// Custom detectors: a name and a regex.
    #[serde(default)]
    pub patterns: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub replacement: Replacement,
    /// The HMAC key for `replacement = "hash"`.
    #[serde(default)]
    pub hash_key: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Replacement {
    #[default]
    Mask,
    Partial,
    Hash,
}

/// The built-in detectors' names, in the order they are tried.
pub const DETECTORS: &[&str] = &[
    "private_key",
    "jwt",
    "bearer_token",
    "basic_auth_url",
    "aws_access_key",
    "email",
    "credit_card",
    "ipv6",
    "ipv4",
];

/// What must be true of a match beyond its regex.
#[derive(Debug, Clone, Copy)]
enum Check {
    None,
    Card,
    Ipv4,
    Ipv6,
}

#[derive(Debug)]
struct Detector {
    name: String,
    regex: Regex,
    /// The capture group to replace (0: the whole match).
    group: usize,
    check: Check,
    matched: Counter,
}

/// The regex, group and check of a built-in detector.
fn builtin(name: &str) -> Option<(&'static str, usize, Check)> {
    Some(match name {
        "private_key" => (
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?s:.*?)-----END [A-Z ]*PRIVATE KEY-----",
            0,
            Check::None,
        ),
        "jwt" => (
            r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+",
            0,
            Check::None,
        ),
        "bearer_token" => (r"(?i:\bbearer)\s+([A-Za-z0-9._~+/-]{8,}=*)", 1, Check::None),
        "basic_auth_url" => (
            r"\b[a-zA-Z][a-zA-Z0-9+.-]*://([^/\s:@]+:[^/\s@]+)@",
            1,
            Check::None,
        ),
        "aws_access_key" => (
            r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[A-Z0-9]{16}\b",
            0,
            Check::None,
        ),
        "email" => (
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
            0,
            Check::None,
        ),
        // 13 to 19 digits in a row, or in groups of four (Amex: 4-6-5) separated by single
        // spaces or dashes; the issuer prefix and the Luhn digit are checked after.
        "credit_card" => (
            r"(?:^|[^0-9.-])([0-9]{13,19}|[0-9]{4}(?:[ -][0-9]{4}){2,3}(?:[ -][0-9]{1,3})?|[0-9]{4}[ -][0-9]{6}[ -][0-9]{5})",
            1,
            Check::Card,
        ),
        "ipv6" => (
            r"(?i)(?:^|[^0-9a-z:.])((?:[0-9a-f]{0,4}:){2,7}(?:[0-9a-f]{1,4}|:|[0-9]{1,3}(?:\.[0-9]{1,3}){3})?)",
            1,
            Check::Ipv6,
        ),
        "ipv4" => (
            r"(?:^|[^0-9A-Za-z.])([0-9]{1,3}(?:\.[0-9]{1,3}){3})",
            1,
            Check::Ipv4,
        ),
        _ => return None,
    })
}

impl RedactConfig {
    /// Compiles the detectors and parses the field paths. Does no IO.
    pub fn build(&self, ctx: &TransformContext) -> Result<Redact, FieldError> {
        let counter = |name: &str| {
            telemetry::counter(
                "component_redactions_total",
                &[("component_id", &ctx.id), ("detector", name)],
            )
        };
        let mut detectors = Vec::new();
        let names: Vec<&str> = match &self.detectors {
            Some(list) => list.iter().map(String::as_str).collect(),
            None => DETECTORS.to_vec(),
        };
        for name in names {
            let (pattern, group, check) = builtin(name).ok_or_else(|| {
                FieldError::new(
                    "detectors",
                    format!(
                        "unknown detector `{name}` (expected one of: {}; custom ones go in `patterns`)",
                        DETECTORS.join(", ")
                    ),
                )
            })?;
            detectors.push(Detector {
                name: name.to_string(),
                regex: Regex::new(pattern).expect("built-in detector regexes compile"),
                group,
                check,
                matched: counter(name),
            });
        }
        for (name, pattern) in &self.patterns {
            if builtin(name).is_some() {
                return Err(FieldError::new(
                    format!("patterns.{name}"),
                    "is the name of a built-in detector; choose another",
                ));
            }
            let regex = regex::bytes::RegexBuilder::new(pattern)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| FieldError::new(format!("patterns.{name}"), e.to_string()))?;
            detectors.push(Detector {
                name: name.clone(),
                regex,
                group: 0,
                check: Check::None,
                matched: counter(name),
            });
        }
        if detectors.is_empty() {
            return Err(FieldError::new(
                "detectors",
                "must name at least one detector, or `patterns` must hold one",
            ));
        }
        let key =
            match (self.replacement, &self.hash_key) {
                (Replacement::Hash, None) => {
                    return Err(FieldError::new(
                        "hash_key",
                        "is required with replacement = \"hash\" (e.g. \"${REDACT_KEY}\")",
                    ))
                }
                (Replacement::Hash, Some(k)) if k.len() < 16 => return Err(FieldError::new(
                    "hash_key",
                    "must be at least 16 characters, or the digests can be reversed by guessing",
                )),
                (Replacement::Hash, Some(k)) => {
                    Some(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, k.as_bytes()))
                }
                (_, Some(_)) => {
                    return Err(FieldError::new(
                        "hash_key",
                        "is used only with replacement = \"hash\"",
                    ))
                }
                (_, None) => None,
            };
        let fields = self
            .fields
            .as_ref()
            .map(|list| {
                list.iter()
                    .map(|f| FieldPath::parse(f))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .map_err(|m| FieldError::new("fields", m))?;
        let any = regex::bytes::RegexSet::new(detectors.iter().map(|d| d.regex.as_str()))
            .map_err(|e| FieldError::new("patterns", e.to_string()))?;
        Ok(Redact {
            fields,
            any,
            detectors,
            replacement: self.replacement,
            key,
        })
    }
}

/// The running `redact` transform.
pub struct Redact {
    fields: Option<Vec<FieldPath>>,
    /// Every detector's regex in one automaton: one pass says which detectors can match
    /// at all, so a value with nothing to hide costs one scan, not one per detector.
    any: regex::bytes::RegexSet,
    detectors: Vec<Detector>,
    replacement: Replacement,
    key: Option<ring::hmac::Key>,
}

impl std::fmt::Debug for Redact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redact")
            .field("fields", &self.fields)
            .field("detectors", &self.detectors)
            .field("replacement", &self.replacement)
            .finish()
    }
}

impl Redact {
    /// `text` with every detected span replaced, or `None` when nothing was found.
    fn redact(&self, text: &[u8]) -> Option<Vec<u8>> {
        // Spans found so far, by start; a later detector's match inside one is ignored.
        let mut spans: Vec<(usize, usize, usize)> = Vec::new();
        let candidates = self.any.matches(text);
        if !candidates.matched_any() {
            return None;
        }
        for index in candidates.iter() {
            let detector = &self.detectors[index];
            for captures in detector.regex.captures_iter(text) {
                let Some(m) = captures.get(detector.group) else {
                    continue;
                };
                let (start, end) = (m.start(), m.end());
                if start >= end || !check(detector.check, text, start, end) {
                    continue;
                }
                if spans.iter().any(|&(s, e, _)| start < e && s < end) {
                    continue;
                }
                spans.push((start, end, index));
            }
        }
        if spans.is_empty() {
            return None;
        }
        spans.sort_unstable();
        let mut out = Vec::with_capacity(text.len());
        let mut at = 0;
        for (start, end, index) in spans {
            let detector = &self.detectors[index];
            detector.matched.inc(1);
            out.extend_from_slice(&text[at..start]);
            self.replace(&detector.name, &text[start..end], &mut out);
            at = end;
        }
        out.extend_from_slice(&text[at..]);
        Some(out)
    }

    fn replace(&self, detector: &str, secret: &[u8], out: &mut Vec<u8>) {
        match (self.replacement, &self.key) {
            (Replacement::Hash, Some(key)) => {
                let tag = ring::hmac::sign(key, secret);
                let mut text = format!("[{detector}:");
                for byte in &tag.as_ref()[..8] {
                    let _ = write!(text, "{byte:02x}");
                }
                text.push(']');
                out.extend_from_slice(text.as_bytes());
            }
            (Replacement::Partial, _) => {
                // The last four characters, not bytes, so UTF-8 stays whole.
                let text = String::from_utf8_lossy(secret);
                let kept: String = {
                    let chars: Vec<char> = text.chars().collect();
                    let keep = if chars.len() > 8 { 4 } else { 0 };
                    chars[chars.len() - keep..].iter().collect()
                };
                out.extend_from_slice(b"****");
                out.extend_from_slice(kept.as_bytes());
            }
            _ => {
                out.extend_from_slice(b"[REDACTED:");
                out.extend_from_slice(detector.as_bytes());
                out.push(b']');
            }
        }
    }

    fn redact_value(&self, value: &mut Value) {
        match value {
            Value::Bytes(bytes) => {
                if let Some(clean) = self.redact(bytes) {
                    *bytes = Bytes::from(clean);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_value(v)),
            Value::Object(map) => map.iter_mut().for_each(|(_, v)| self.redact_value(v)),
            _ => {}
        }
    }
}

/// Whether a detector's match is what it claims to be. Matches are checked here for what a
/// regex without look-ahead cannot say: what follows them.
fn check(check: Check, text: &[u8], start: usize, end: usize) -> bool {
    let span = &text[start..end];
    let next = text.get(end).copied();
    let after_next = text.get(end + 1).copied();
    let parse = |span: &[u8]| std::str::from_utf8(span).ok().map(str::to_string);
    match check {
        Check::None => true,
        Check::Card => {
            !next.is_some_and(|b| b.is_ascii_digit()) && issuer_known(span) && luhn(span)
        }
        // Not followed by another digit or by `.digit` (a longer dotted number).
        Check::Ipv4 => {
            let longer = next.is_some_and(|b| b.is_ascii_digit())
                || (next == Some(b'.') && after_next.is_some_and(|b| b.is_ascii_digit()));
            !longer && parse(span).is_some_and(|s| s.parse::<Ipv4Addr>().is_ok())
        }
        Check::Ipv6 => parse(span).is_some_and(|s| s.parse::<Ipv6Addr>().is_ok()),
    }
}

/// The number starts as some card issuer's do: Visa 4, Mastercard 51–55 and 2221–2720,
/// Amex 34 and 37, Discover 6011, 644–649 and 65, JCB 3528–3589, Diners 300–305, 36, 38.
fn issuer_known(span: &[u8]) -> bool {
    let digits: Vec<u8> = span
        .iter()
        .filter(|b| b.is_ascii_digit())
        .take(4)
        .map(|b| b - b'0')
        .collect();
    let prefix = |n: usize| {
        digits[..n.min(digits.len())]
            .iter()
            .fold(0u32, |acc, &d| acc * 10 + u32::from(d))
    };
    matches!(prefix(1), 4)
        || matches!(prefix(2), 51..=55 | 34 | 37 | 65 | 36 | 38)
        || matches!(prefix(4), 2221..=2720 | 6011 | 3528..=3589)
        || matches!(prefix(3), 644..=649 | 300..=305)
}

/// 13 to 19 digits (separators aside) with a valid Luhn check digit.
fn luhn(span: &[u8]) -> bool {
    let digits: Vec<u32> = span
        .iter()
        .filter(|b| b.is_ascii_digit())
        .map(|b| u32::from(b - b'0'))
        .collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| match (i % 2, d * 2) {
            (0, _) => d,
            (_, doubled) if doubled > 9 => doubled - 9,
            (_, doubled) => doubled,
        })
        .sum();
    sum % 10 == 0
}

impl FunctionTransform for Redact {
    fn transform(&mut self, mut event: Event, out: &mut Outputs) {
        match &self.fields {
            None => event
                .fields
                .iter_mut()
                .for_each(|(_, v)| self.redact_value(v)),
            Some(paths) => {
                for path in paths {
                    if let Some(value) = path.get_mut(&mut event.fields) {
                        self.redact_value(value);
                    }
                }
            }
        }
        out.push(event);
    }
}

#[cfg(test)]
#[path = "redact_tests.rs"]
mod tests;
