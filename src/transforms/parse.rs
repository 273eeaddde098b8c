//! The `parse` transform: turns a text field into structured fields and normalises them.
//!
//! ```toml
//! [transforms.app_logs]
//! type = "parse"
//! inputs = ["stdin"]
//! format = "auto"          # or json, logfmt, syslog, access_log, regex
//! reroute_failed = true    # unparsable events go to `app_logs.failed`
//! timezone = "Europe/Berlin" # times written without an offset are local (default UTC)
//! ```
//!
//! A parse failure never drops an event: it keeps its raw text, gains a `parse_error` field
//! saying why, is counted in `component_errors_total{reason="parse_failed"}`, and goes on to
//! the default output, or to the `failed` output when `reroute_failed` is set (typically
//! wired to a dead-letter sink).

use bytes::Bytes;
use serde::Deserialize;

use crate::event::{fields, Event, Map, Value};
use crate::field_error::FieldError;
use crate::parse::{self, LocalZone, ParseError, RegexParser};
use crate::telemetry::{self, Counter, LogLimiter};
use crate::transforms::{FunctionTransform, Outputs, TransformContext};

/// Field that holds the reason of a failed parse.
pub const PARSE_ERROR_FIELD: &str = "parse_error";

/// Counts lines whose text held a time too implausible to take (before 1990, or more than
/// a day after arrival); such an event keeps its arrival time.
pub const IMPLAUSIBLE_TIMESTAMPS: &str = "parse_implausible_timestamps_total";

/// Field naming what `format = "auto"` recognised, with `detected_format = true`.
pub const DETECTED_FORMAT_FIELD: &str = "detected_format";

/// Index of the `failed` output among [`ParseConfig::outputs`].
const FAILED_OUTPUT: usize = 0;

/// Configuration of the `parse` transform.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseConfig {
    /// The format of the field. `auto` detects it per event (JSON, syslog, access log,
    /// logfmt) and treats anything else as plain text, which is not a failure.
    #[serde(default)]
    pub format: ParseFormat,
    /// The field that holds the text to parse.
    #[serde(default = "default_field")]
    pub field: String,
    /// A regular expression whose named captures become fields. Required with
    /// `format = "regex"`, not allowed otherwise.
    #[serde(default)]
    pub pattern: Option<String>,
    /// Map timestamps onto `timestamp`, severities onto `level`, and `msg` onto `message`.
    #[serde(default = "default_true")]
    pub normalize: bool,
    /// Send events that fail to parse to the `failed` output instead of the default one.
    #[serde(default)]
    pub reroute_failed: bool,
    /// With `format = "auto"`: add a `detected_format` field naming what was recognised
    /// (`json`, `logfmt`, `syslog`, `access_log`, a plain-text layout such as `glog` or
    /// `timestamp_level`, or `text`). See docs/parsing.md.
    #[serde(default)]
    pub detected_format: bool,
    /// The zone a time written without an offset is in: an IANA name (`Europe/Berlin`),
    /// a fixed offset (`+02:00`) or `UTC` (the default). Times with an offset keep theirs.
    #[serde(default = "default_timezone")]
    pub timezone: String,
}

/// The formats the `parse` transform understands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParseFormat {
    #[default]
    Auto,
    Json,
    Logfmt,
    Syslog,
    Regex,
    AccessLog,
}

fn default_field() -> String {
    fields::MESSAGE.to_string()
}

fn default_true() -> bool {
    true
}

fn default_timezone() -> String {
    "UTC".to_string()
}

impl Default for ParseConfig {
    fn default() -> Self {
        Self {
            format: ParseFormat::default(),
            field: default_field(),
            pattern: None,
            normalize: true,
            reroute_failed: false,
            detected_format: false,
            timezone: default_timezone(),
        }
    }
}

impl ParseConfig {
    /// Named outputs, in the order `Outputs::push_named` indexes them.
    pub fn outputs() -> &'static [&'static str] {
        &["failed"]
    }

    /// Checks the settings and builds the runtime transform. Does no IO.
    pub fn build(&self, ctx: &TransformContext) -> Result<Parse, FieldError> {
        if self.field.is_empty() {
            return Err(FieldError::new("field", "must name a field"));
        }
        let parser = match (self.format, &self.pattern) {
            (ParseFormat::Regex, None) => {
                return Err(FieldError::new(
                    "pattern",
                    "is required when format is \"regex\"",
                ))
            }
            (ParseFormat::Regex, Some(pattern)) => {
                Parser::Regex(RegexParser::new(pattern).map_err(|m| FieldError::new("pattern", m))?)
            }
            (_, Some(_)) => {
                return Err(FieldError::new(
                    "pattern",
                    "is only allowed when format is \"regex\"",
                ))
            }
            (ParseFormat::Auto, None) => Parser::Auto,
            (ParseFormat::Json, None) => Parser::Json,
            (ParseFormat::Logfmt, None) => Parser::Logfmt,
            (ParseFormat::Syslog, None) => Parser::Syslog,
            (ParseFormat::AccessLog, None) => Parser::AccessLog,
        };
        let zone = LocalZone::parse(&self.timezone).map_err(|m| FieldError::new("timezone", m))?;
        Ok(Parse {
            parser,
            zone,
            field: self.field.clone(),
            normalize: self.normalize,
            reroute_failed: self.reroute_failed,
            detected_format: self.detected_format && self.format == ParseFormat::Auto,
            errors: telemetry::counter(
                "component_errors_total",
                &[("component_id", &ctx.id), ("reason", "parse_failed")],
            ),
            implausible_timestamps: telemetry::counter(
                IMPLAUSIBLE_TIMESTAMPS,
                &[("component_id", &ctx.id)],
            ),
            id: ctx.id.clone(),
            warn_limiter: LogLimiter::default(),
        })
    }
}

/// The runtime `parse` transform.
#[derive(Debug)]
pub struct Parse {
    parser: Parser,
    zone: LocalZone,
    field: String,
    normalize: bool,
    reroute_failed: bool,
    detected_format: bool,
    errors: Counter,
    implausible_timestamps: Counter,
    id: String,
    warn_limiter: LogLimiter,
}

#[derive(Debug)]
enum Parser {
    Auto,
    Json,
    Logfmt,
    Syslog,
    AccessLog,
    Regex(RegexParser),
}

impl FunctionTransform for Parse {
    fn transform(&mut self, mut event: Event, out: &mut Outputs) {
        match self.apply(&mut event) {
            Ok(_) => out.push(event),
            Err(err) => {
                self.errors.inc(1);
                if let Some(suppressed) = self.warn_limiter.check() {
                    tracing::warn!(component_id = %self.id, reason = %err, suppressed, "parse failed");
                }
                event
                    .fields
                    .insert(PARSE_ERROR_FIELD, Value::from(err.reason));
                if self.reroute_failed {
                    out.push_named(FAILED_OUTPUT, event);
                } else {
                    out.push(event);
                }
            }
        }
    }
}

/// What [`Parse::apply`] made of one event.
#[derive(Debug, Clone, Copy, Default)]
pub struct Applied {
    /// What normalisation found (`None` with `normalize = false`).
    pub normalized: Option<parse::Normalized>,
    /// With `format = "auto"` and `detected_format = true`: the format or text layout
    /// recognised, as written to the `detected_format` field.
    pub detected: Option<&'static str>,
}

impl Parse {
    /// Parses and merges in place; on error the event is untouched.
    pub fn apply(&self, event: &mut Event) -> Result<Applied, ParseError> {
        let raw: Bytes = match event.fields.get(&self.field) {
            Some(Value::Bytes(b)) => b.clone(),
            // `auto` accepts whatever comes: an event some codec already structured has
            // nothing to parse, but still gets normalised.
            _ if matches!(self.parser, Parser::Auto) => {
                return Ok(Applied {
                    normalized: self.normalize_event(event),
                    detected: None,
                });
            }
            Some(_) => {
                return Err(ParseError::new(format!(
                    "field `{}` is not a string",
                    self.field
                )))
            }
            None => {
                return Err(ParseError::new(format!(
                    "field `{}` is missing",
                    self.field
                )))
            }
        };
        let mut format = None;
        let parsed = match &self.parser {
            Parser::Auto if self.detected_format => {
                let (detected, map) = parse::detect_in(raw, &self.zone);
                format = Some(detected);
                map
            }
            Parser::Auto => parse::detect_in(raw, &self.zone).1,
            Parser::Json => parse::json_bytes(&raw)?,
            Parser::Logfmt => parse::logfmt_bytes(&raw)?,
            Parser::Syslog => parse::syslog_bytes_in(&raw, &self.zone)?,
            Parser::AccessLog => parse::access_log_bytes(&raw)?,
            Parser::Regex(regex) => regex.parse(&raw)?,
        };
        self.merge(&mut event.fields, parsed);
        let normalized = self.normalize_event(event);
        // Added after normalisation, which reads a text event's other fields to decide
        // whether its message is a whole log line.
        let detected = format.map(|format| match format {
            parse::Format::Text => normalized.and_then(|n| n.layout).unwrap_or("text"),
            other => other.as_str(),
        });
        if let Some(name) = detected {
            event.fields.insert(
                DETECTED_FORMAT_FIELD,
                Value::Bytes(Bytes::from_static(name.as_bytes())),
            );
        }
        Ok(Applied {
            normalized,
            detected,
        })
    }

    /// Merges parsed fields into the event; parsed values win. A parsed message (or a
    /// `msg` that normalisation will rename) replaces the raw text; otherwise the raw text
    /// stays where it was.
    fn merge(&self, event_fields: &mut Map, parsed: Map) {
        let replaces_raw =
            parsed.contains_key(fields::MESSAGE) || (self.normalize && parsed.contains_key("msg"));
        if replaces_raw {
            event_fields.remove(&self.field);
        }
        if event_fields.is_empty() {
            // The common case (a codec produced only `message`): no per-key merging at all.
            *event_fields = parsed;
        } else if event_fields.len() == 1
            && event_fields.contains_key(&self.field)
            && !parsed.contains_key(&self.field)
        {
            let mut merged = Map::with_capacity(parsed.len() + 1);
            for (key, value) in std::mem::take(event_fields).into_iter().chain(parsed) {
                merged.push_unchecked(key, value);
            }
            *event_fields = merged;
        } else {
            event_fields.extend(parsed);
        }
    }

    fn normalize_event(&self, event: &mut Event) -> Option<parse::Normalized> {
        let normalized = self
            .normalize
            .then(|| parse::normalize_in(event, &self.zone))?;
        if normalized.rejected_timestamp {
            self.implausible_timestamps.inc(1);
        }
        Some(normalized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::format_timestamp;

    fn build(toml_config: &str, id: &str) -> Parse {
        let config: ParseConfig = toml::from_str(toml_config).expect("test config parses");
        config
            .build(&TransformContext { id: id.to_string() })
            .expect("test config builds")
    }

    /// Fields rendered as JSON, timestamps in RFC 3339.
    fn render(event: &Event) -> String {
        serde_json::to_string(&event.fields).unwrap()
    }

    /// Runs one line (as the `message` field) through a transform built from `config`, and
    /// checks which output it took (`None` default, `Some(0)` failed) and its fields.
    fn check(config: &str, line: &str, output: Option<usize>, expected: &str) {
        let mut parse = build(config, "test_parse");
        let mut out = Outputs::new(ParseConfig::outputs().len());
        parse.transform(
            Event::from_message(Bytes::copy_from_slice(line.as_bytes())),
            &mut out,
        );
        let events = match output {
            None => out.default_output(),
            Some(i) => out.named_output(i),
        };
        assert_eq!(
            events.len(),
            1,
            "config {config:?}, line {line:?}: wrong output"
        );
        assert_eq!(
            render(&events[0]),
            expected,
            "config {config:?}, line {line:?}"
        );
    }

    #[test]
    fn implausible_timestamps_are_counted_and_arrival_kept() {
        let mut parse = build("", "test_parse_implausible");
        let arrival = 1_796_558_400_000_000_000;
        for line in [
            "2031-01-01 00:00:00 ERROR far future",
            "2026-12-06 01:00:00 fine",
        ] {
            let mut out = Outputs::new(ParseConfig::outputs().len());
            let mut event = Event::from_message(Bytes::copy_from_slice(line.as_bytes()));
            event.meta.received_at = arrival;
            parse.transform(event, &mut out);
        }
        let count = telemetry::counter_value(
            IMPLAUSIBLE_TIMESTAMPS,
            &[("component_id", "test_parse_implausible")],
        );
        assert_eq!(count, 1);
    }

    #[test]
    fn detected_format_names_the_format_or_text_layout() {
        let table = [
            (r#"{"level":"info","msg":"hi"}"#, "json"),
            ("ts=2024-05-01T00:00:00Z level=warn msg=x", "logfmt"),
            (
                "<34>Oct 11 22:14:15 mymachine su[12]: 'su root' failed",
                "syslog",
            ),
            (
                r#"10.0.0.1 - - [23/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "c""#,
                "access_log",
            ),
            ("E1126 10:00:00.123456   12 main.go:1] boom", "glog"),
            (
                "2026-12-06 01:29:59,626 ERROR [main] c.e.App - boom",
                "timestamp_level",
            ),
            ("hello world", "text"),
        ];
        let mut parse = build("detected_format = true", "test_parse");
        for (line, want) in table {
            let mut out = Outputs::new(ParseConfig::outputs().len());
            let mut event = Event::from_message(Bytes::copy_from_slice(line.as_bytes()));
            event.meta.received_at = 1_796_558_400_000_000_000;
            parse.transform(event, &mut out);
            let event = &out.default_output()[0];
            assert_eq!(
                event.get(DETECTED_FORMAT_FIELD).and_then(Value::as_str),
                Some(want),
                "line {line:?}"
            );
        }
        // Off by default, and only with `auto`.
        for config in ["", "format = \"json\"\ndetected_format = true"] {
            let mut parse = build(config, "test_parse");
            let mut out = Outputs::new(ParseConfig::outputs().len());
            parse.transform(Event::from_message(Bytes::from_static(b"{}")), &mut out);
            assert!(out.default_output()[0].get(DETECTED_FORMAT_FIELD).is_none());
        }
    }

    #[test]
    fn every_format_success_and_failure() {
        let table: &[(&str, &str, Option<usize>, &str)] = &[
            // auto: each format, and plain text is a success.
            (
                "",
                r#"{"ts":"2024-05-01T00:00:00.123Z","level":"WARNING","msg":"cache miss","n":3}"#,
                None,
                r#"{"ts":"2024-05-01T00:00:00.123Z","level":"warn","n":3,"message":"cache miss","timestamp":"2024-05-01T00:00:00.123000Z"}"#,
            ),
            (
                "",
                "2015-07-29 17:41:44,747 - INFO  [QuorumPeer] - Notification time out: 3200",
                None,
                r#"{"message":"2015-07-29 17:41:44,747 - INFO  [QuorumPeer] - Notification time out: 3200","timestamp":"2015-07-29T17:41:44.747000Z","level":"info"}"#,
            ),
            ("", "just words", None, r#"{"message":"just words"}"#),
            // json
            (
                r#"format = "json""#,
                r#"{"message":"m","level":"E","time":1714521600}"#,
                None,
                r#"{"message":"m","level":"error","time":1714521600,"timestamp":"2024-05-01T00:00:00.000000Z"}"#,
            ),
            (
                r#"format = "json""#,
                "[1]",
                None,
                r#"{"message":"[1]","parse_error":"expected a json object, found an array"}"#,
            ),
            // logfmt: no message parsed, so the raw line stays the message.
            (
                r#"format = "logfmt""#,
                "at=info method=GET status=503",
                None,
                r#"{"message":"at=info method=GET status=503","at":"info","method":"GET","status":"503","level":"error"}"#,
            ),
            (
                r#"format = "logfmt""#,
                r#"a="open"#,
                None,
                r#"{"message":"a=\"open","parse_error":"unterminated quoted value at column 3"}"#,
            ),
            // syslog
            (
                r#"format = "syslog""#,
                "<190>1 2026-11-23T10:00:00.123+00:00 host app web.1 - State changed",
                None,
                r#"{"facility":"local7","severity":"info","timestamp":"2026-11-23T10:00:00.123000Z","host":"host","app":"app","proc_id":"web.1","instance":"web.1","message":"State changed","level":"info"}"#,
            ),
            (
                r#"format = "syslog""#,
                "plain",
                None,
                r#"{"message":"plain","parse_error":"not a syslog line: expected `<priority>` or a timestamp at `plain`"}"#,
            ),
            // access_log
            (
                r#"format = "access_log""#,
                r#"1.2.3.4 - - [23/Nov/2026:10:00:00 +0000] "GET /x HTTP/1.1" 404 7"#,
                None,
                r#"{"message":"1.2.3.4 - - [23/Nov/2026:10:00:00 +0000] \"GET /x HTTP/1.1\" 404 7","client":"1.2.3.4","timestamp":"2026-11-23T10:00:00.000000Z","method":"GET","path":"/x","protocol":"HTTP/1.1","status":404,"size":7,"level":"warn"}"#,
            ),
            (
                r#"format = "access_log""#,
                "GET /x",
                None,
                r#"{"message":"GET /x","parse_error":"not an access log line: expected the user field at column 7"}"#,
            ),
            // regex
            (
                "format = \"regex\"\npattern = '^(?P<date>\\d{6} \\d{6}) \\d+ (?P<level>[A-Z]+) (?P<message>.*)$'",
                "081109 203615 148 WARN dfs.DataNode: slow",
                None,
                r#"{"date":"081109 203615","level":"warn","message":"dfs.DataNode: slow","timestamp":"2008-11-09T20:36:15.000000Z"}"#,
            ),
            (
                "format = \"regex\"\npattern = '^(?P<n>\\d+)$'",
                "abc",
                None,
                r#"{"message":"abc","parse_error":"pattern did not match"}"#,
            ),
        ];
        for (config, line, output, expected) in table {
            check(config, line, *output, expected);
        }
    }

    #[test]
    fn reroute_and_normalize_off() {
        let table: &[(&str, &str, Option<usize>, &str)] = &[
            (
                "format = \"json\"\nreroute_failed = true",
                "not json",
                Some(0),
                r#"{"message":"not json","parse_error":"invalid json at column 2: expected ident"}"#,
            ),
            (
                "format = \"json\"\nreroute_failed = true",
                r#"{"message":"ok"}"#,
                None,
                r#"{"message":"ok"}"#,
            ),
            // auto never fails, so nothing is rerouted.
            (
                "reroute_failed = true",
                "not json",
                None,
                r#"{"message":"not json"}"#,
            ),
            (
                "format = \"json\"\nnormalize = false",
                r#"{"msg":"m","lvl":"W","ts":1714521600}"#,
                None,
                r#"{"message":"{\"msg\":\"m\",\"lvl\":\"W\",\"ts\":1714521600}","msg":"m","lvl":"W","ts":1714521600}"#,
            ),
            (
                "normalize = false",
                "2015-07-29 17:41:44,747 - INFO x",
                None,
                r#"{"message":"2015-07-29 17:41:44,747 - INFO x"}"#,
            ),
        ];
        for (config, line, output, expected) in table {
            check(config, line, *output, expected);
        }
    }

    #[test]
    fn other_fields_and_missing_fields() {
        let mut parse = build("format = \"logfmt\"\nfield = \"log\"", "t_fields");
        let mut out = Outputs::new(1);
        let mut event = Event::new(Map::new());
        event.insert("log", "a=1 msg=hi");
        event.insert("stream", "stdout");
        parse.transform(event, &mut out);
        // A parsed message replaces the source field; other fields are kept.
        assert_eq!(
            render(&out.default_output()[0]),
            r#"{"stream":"stdout","a":"1","message":"hi"}"#
        );

        let mut out = Outputs::new(1);
        parse.transform(Event::new(Map::new()), &mut out);
        assert_eq!(
            render(&out.default_output()[0]),
            r#"{"parse_error":"field `log` is missing"}"#
        );

        // auto passes events without the field through, normalised.
        let mut parse = build("", "t_auto_missing");
        let mut out = Outputs::new(1);
        let mut event = Event::new(Map::new());
        event.insert("severity", "crit");
        event.meta.received_at = 1_714_521_600_000_000_000;
        parse.transform(event, &mut out);
        let event = &out.default_output()[0];
        assert_eq!(event.fields.get("level"), Some(&Value::from("critical")));
        let ts = event.fields.get("timestamp").map(|v| match v {
            Value::Timestamp(t) => format_timestamp(*t),
            other => format!("{other:?}"),
        });
        assert_eq!(ts.as_deref(), Some("2024-05-01T00:00:00.000000Z"));
    }

    #[test]
    fn failures_are_counted() {
        let mut parse = build("format = \"json\"", "t_count");
        let mut out = Outputs::new(1);
        for line in ["{}", "x", "y"] {
            parse.transform(Event::from_message(Bytes::from(line)), &mut out);
        }
        let count = telemetry::counter_value(
            "component_errors_total",
            &[("component_id", "t_count"), ("reason", "parse_failed")],
        );
        assert_eq!(count, 2);
        assert_eq!(out.default_output().len(), 3);
    }

    #[test]
    fn times_without_an_offset_are_read_in_the_configured_zone() {
        // (line, timestamp with `timezone = "Europe/Berlin"`)
        let table = [
            // Winter (CET, +1) and summer (CEST, +2).
            (
                "2026-12-06 12:00:00,000 ERROR [main] c.e.App - boom",
                "2026-12-06T11:00:00.000000Z",
            ),
            (
                "2026-07-01 12:00:00 WARN slow",
                "2026-07-01T10:00:00.000000Z",
            ),
            // 29 March 2026, 02:00 CET → 03:00 CEST: the skipped 02:30 is read as 03:30 CEST.
            (
                "2026-03-29 01:30:00 INFO before",
                "2026-03-29T00:30:00.000000Z",
            ),
            (
                "2026-03-29 02:30:00 INFO in the gap",
                "2026-03-29T01:30:00.000000Z",
            ),
            (
                "2026-03-29 03:30:00 INFO after",
                "2026-03-29T01:30:00.000000Z",
            ),
            // 25 October 2026, 03:00 CEST → 02:00 CET: the repeated 02:30 is the first one.
            (
                "2026-10-25 02:30:00 INFO twice",
                "2026-10-25T00:30:00.000000Z",
            ),
            (
                "2026-10-25 03:30:00 INFO after",
                "2026-10-25T02:30:00.000000Z",
            ),
            // A year-less syslog time and a JSON field without an offset too.
            (
                "Jul  1 12:00:00 host app[1]: x",
                "2026-07-01T10:00:00.000000Z",
            ),
            (
                r#"{"time":"2026-07-01 12:00:00","msg":"x"}"#,
                "2026-07-01T10:00:00.000000Z",
            ),
            // An offset in the line wins.
            (
                "2026-07-01T12:00:00Z INFO utc",
                "2026-07-01T12:00:00.000000Z",
            ),
            (
                "2026-07-01T12:00:00+05:00 INFO east",
                "2026-07-01T07:00:00.000000Z",
            ),
        ];
        let berlin = build("timezone = \"Europe/Berlin\"", "t_zone");
        let utc = build("", "t_zone_utc");
        let fixed = build("timezone = \"+02:00\"", "t_zone_fixed");
        let timestamp_of = |parse: &Parse, line: &str| {
            let mut event = Event::from_message(Bytes::copy_from_slice(line.as_bytes()));
            event.meta.received_at = 1_796_558_400_000_000_000;
            parse.apply(&mut event).unwrap();
            match event.get("timestamp") {
                Some(Value::Timestamp(t)) => format_timestamp(*t),
                other => format!("{other:?}"),
            }
        };
        for (line, want) in table {
            assert_eq!(timestamp_of(&berlin, line), want, "{line}");
        }
        // Summer in Berlin is +02:00; UTC reads the wall clock as it is.
        let summer = "2026-07-01 12:00:00 WARN slow";
        assert_eq!(timestamp_of(&fixed, summer), "2026-07-01T10:00:00.000000Z");
        assert_eq!(timestamp_of(&utc, summer), "2026-07-01T12:00:00.000000Z");
    }

    #[test]
    fn config_errors() {
        let table: &[(&str, &str, &str)] = &[
            (
                "format = \"regex\"",
                "pattern",
                "is required when format is \"regex\"",
            ),
            (
                "pattern = \"(?P<a>x)\"",
                "pattern",
                "is only allowed when format is \"regex\"",
            ),
            (
                "format = \"json\"\npattern = \"x\"",
                "pattern",
                "is only allowed when format is \"regex\"",
            ),
            (
                "format = \"regex\"\npattern = \"(x)\"",
                "pattern",
                "pattern has no named capture groups like `(?P<name>…)`",
            ),
            ("field = \"\"", "field", "must name a field"),
            (
                "timezone = \"Europe/Nowhere\"",
                "timezone",
                "unknown time zone \"Europe/Nowhere\": expected an IANA name such as \"Europe/Berlin\", an offset such as \"+02:00\", or \"UTC\"",
            ),
            (
                "timezone = \"+25:00\"",
                "timezone",
                "invalid offset \"+25:00\": expected ±HH:MM, ±HHMM or ±HH, at most 23:59",
            ),
        ];
        for (config, field, message) in table {
            let config: ParseConfig = toml::from_str(config).unwrap();
            let err = config
                .build(&TransformContext { id: "t".into() })
                .unwrap_err();
            assert_eq!(
                (err.field.as_str(), err.message.as_str()),
                (*field, *message)
            );
        }
        let config: ParseConfig =
            toml::from_str("format = \"regex\"\npattern = \"(?P<a>[\"").unwrap();
        let err = config
            .build(&TransformContext { id: "t".into() })
            .unwrap_err();
        assert_eq!(err.field, "pattern");
        assert!(err.message.starts_with("invalid regex:"), "{}", err.message);

        for bad in [
            "format = \"xml\"",
            "colour = \"blue\"",
            "normalize = \"yes\"",
        ] {
            assert!(toml::from_str::<ParseConfig>(bad).is_err(), "{bad}");
        }
        assert_eq!(
            toml::from_str::<ParseConfig>("").unwrap(),
            ParseConfig::default()
        );
    }
}
