//! User-defined formats: a regular expression whose named captures become fields.
//!
//! Matching runs on bytes (`regex::bytes`), so lines that are not valid UTF-8 still match,
//! and the regex crate's automata guarantee time linear in the line for any pattern.

use bytes::Bytes;
use compact_str::CompactString;
use regex::bytes::Regex;

use super::{trim_line_end_bytes, ParseError};
use crate::event::{Map, Value};

/// A compiled pattern with at least one named capture group.
#[derive(Debug, Clone)]
pub struct RegexParser {
    regex: Regex,
    /// Capture group index and field name of each named group, resolved once at build.
    names: Vec<(usize, CompactString)>,
}

impl RegexParser {
    /// Compiles `pattern`. The error text is suitable for a config error on `pattern`.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let regex = Regex::new(pattern).map_err(|err| match err {
            regex::Error::Syntax(text) => format!("invalid regex: {}", text.trim_end()),
            regex::Error::CompiledTooBig(limit) => {
                format!("invalid regex: compiled pattern exceeds {limit} bytes")
            }
            other => format!("invalid regex: {other}"),
        })?;
        let names: Vec<_> = regex
            .capture_names()
            .enumerate()
            .filter_map(|(i, name)| Some((i, CompactString::from(name?))))
            .collect();
        if names.is_empty() {
            return Err("pattern has no named capture groups like `(?P<name>…)`".to_string());
        }
        Ok(Self { regex, names })
    }

    /// Matches one line. Groups that did not take part in the match are left out.
    pub fn parse(&self, input: &Bytes) -> Result<Map, ParseError> {
        let line = trim_line_end_bytes(input);
        let caps = self
            .regex
            .captures(&line)
            .ok_or_else(|| ParseError::new("pattern did not match"))?;
        let mut map = Map::with_capacity(self.names.len());
        for (index, name) in &self.names {
            if let Some(m) = caps.get(*index) {
                map.push_unchecked(name.clone(), Value::Bytes(line.slice(m.range())));
            }
        }
        // The same name may not appear twice in one pattern, but keep the map's invariant
        // explicit rather than relying on that.
        map.dedup_keep_last();
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: &str, input: &[u8], expected: Result<&str, &str>) {
        let parser = RegexParser::new(pattern).unwrap();
        let got = parser
            .parse(&Bytes::copy_from_slice(input))
            .map(|m| serde_json::to_string(&m).unwrap())
            .map_err(|e| e.reason);
        let expected = expected.map(str::to_string).map_err(str::to_string);
        assert_eq!(
            got,
            expected,
            "pattern {pattern:?} on {:?}",
            String::from_utf8_lossy(input)
        );
    }

    #[test]
    fn named_captures_become_fields() {
        let pattern = r"^(?P<date>\d{6}) (?P<time>\d{6}) (?P<pid>\d+) (?P<level>[A-Z]+) (?P<component>[^:]+): (?P<message>.*)$";
        check(
            pattern,
            b"081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 terminating\n",
            Ok(
                r#"{"date":"081109","time":"203615","pid":"148","level":"INFO","component":"dfs.DataNode$PacketResponder","message":"PacketResponder 1 terminating"}"#,
            ),
        );
        check(pattern, b"nothing like it", Err("pattern did not match"));
        // Optional groups that did not match are absent; unnamed groups are ignored.
        check(r"(?P<a>x)(y)?(?P<b>z)?", b"x", Ok(r#"{"a":"x"}"#));
        // Bytes that are not UTF-8 still match `.` under `(?-u)`.
        check(
            r"(?-u)k=(?P<v>.+)",
            b"k=\xff\xfe",
            Ok("{\"v\":\"\u{fffd}\u{fffd}\"}"),
        );
    }

    #[test]
    fn bad_patterns_are_reported() {
        assert_eq!(
            RegexParser::new("(a)").unwrap_err(),
            "pattern has no named capture groups like `(?P<name>…)`"
        );
        let err = RegexParser::new("(?P<a>[").unwrap_err();
        assert!(err.starts_with("invalid regex: regex parse error"), "{err}");
    }
}
