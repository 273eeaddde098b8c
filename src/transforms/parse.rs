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
        let raw: &Bytes = match event.fields.get(&self.field) {
            Some(Value::Bytes(b)) => b,
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
        // The parsers read the field where it is: their maps hold slices of it, so no
        // reference to it need be taken while the event changes.
        let parsed = match &self.parser {
            Parser::Auto => {
                let detected = parse::detect_structured_in(raw, &self.zone);
                if self.detected_format {
                    format = Some(detected.as_ref().map_or(parse::Format::Text, |d| d.0));
                }
                match detected {
                    Some((_, map)) => map,
                    // Plain text, and the event is nothing but the line: it stays the
                    // message where it is, which merging `{message: line}` would give too,
                    // at the price of a new map and the old one's release.
                    None if self.field == fields::MESSAGE && event.fields.len() == 1 => {
                        if let Some(Value::Bytes(message)) = event.fields.get_mut(fields::MESSAGE) {
                            parse::trim_text_line(message);
                        }
                        return Ok(self.finish(event, format));
                    }
                    None => parse::text_fields(raw.clone()),
                }
            }
            Parser::Json => parse::json_bytes(raw)?,
            Parser::Logfmt => parse::logfmt_bytes(raw)?,
            Parser::Syslog => parse::syslog_bytes_in(raw, &self.zone)?,
            Parser::AccessLog => parse::access_log_bytes(raw)?,
            Parser::Regex(regex) => regex.parse(raw)?,
        };
        self.merge(&mut event.fields, parsed);
        Ok(self.finish(event, format))
    }

    /// Normalises a parsed event and names what `auto` recognised.
    fn finish(&self, event: &mut Event, format: Option<parse::Format>) -> Applied {
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
        Applied {
            normalized,
            detected,
        }
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
#[path = "parse_tests.rs"]
mod tests;
