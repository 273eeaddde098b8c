//! Joining the lines of one message (a stack trace, a statement continued with `\`) into one,
//! per stream: what the `multiline` transform and the file source's `multiline` option run.
//!
//! The rules are Vector's (`start_pattern`, `condition_pattern`, `mode`), so a Vector config
//! carries over. A stream with nothing pending starts a group with a line matching
//! `start_pattern` (any other line passes alone); while a group is pending, each line is
//! checked against `condition_pattern` and `mode` decides:
//!
//! | mode               | line matches                | line does not match          |
//! |--------------------|-----------------------------|------------------------------|
//! | `continue_through` | joins the group             | group ends; line starts anew |
//! | `continue_past`    | joins the group             | joins the group, which ends  |
//! | `halt_before`      | group ends; line starts anew| joins the group              |
//! | `halt_with`        | joins the group, which ends | joins the group              |
//!
//! A group also ends when its stream is idle for `timeout_ms`, and is cut at `max_lines` or
//! `max_bytes` (the rest starts a new group, whatever it looks like, so a never-ending trace
//! becomes a few large events rather than thousands of one-line ones). The state per stream
//! is in [`aggregator`]; the presets for stack traces in [`presets`].

mod aggregator;
mod presets;

use std::time::Duration;

use regex::bytes::Regex;
use serde::Deserialize;

use crate::field_error::{at_least_one, between_one_and, FieldError};

pub use aggregator::{Flush, Joined, LineAggregator, Parts};
pub use presets::Preset;

/// What a line matching `condition_pattern` does to a pending group (table in the module
/// documentation). Vector's names and meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Consecutive matching lines join; the first other line ends the group and is looked at
    /// anew (indented `at ...` lines of a Java trace).
    ContinueThrough,
    /// Consecutive matching lines join, plus the first other line (a line ending in `\`
    /// continues onto the next).
    ContinuePast,
    /// Lines join until one matches, which starts the next group (a marker that begins
    /// every message).
    HaltBefore,
    /// Lines join up to and including the first matching one (a terminator such as `;`).
    HaltWith,
}

/// `multiline = { ... }` on a source, or `[transforms.ID] type = "multiline"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// Ready-made rules for a language's stack traces; `start_pattern`, `condition_pattern`
    /// and `mode` given beside it replace the preset's.
    pub preset: Option<Preset>,
    /// A line matching this starts a group when its stream has none pending.
    pub start_pattern: Option<String>,
    /// Checked against every line while a group is pending; `mode` says what a match means.
    pub condition_pattern: Option<String>,
    pub mode: Option<Mode>,
    /// A stream that got no line for this long has its pending group sent as it is.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// A group reaching this many lines is sent; the rest starts a new group.
    #[serde(default = "default_max_lines")]
    pub max_lines: usize,
    /// A line that would take a group's message past this many bytes starts a new group.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Streams with a group pending, at most: past it, the one idle longest is sent.
    #[serde(default = "default_max_streams")]
    pub max_streams: usize,
    /// The `multiline` transform's stream key: these fields' values (default: the event's
    /// stream, `path` with `stream` when it has a path, else `app`, `instance` and
    /// `stream`). Not an option of a source, which joins per file.
    pub group_by: Option<Vec<String>>,
}

fn default_timeout_ms() -> u64 {
    1_000
}

fn default_max_lines() -> usize {
    500
}

/// Large enough for the longest traces of deep Java frameworks (~300 frames of ~150
/// bytes), small enough that 10,000 pending streams stay within memory a node agent has.
fn default_max_bytes() -> usize {
    1024 * 1024
}

fn default_max_streams() -> usize {
    10_000
}

/// The upper bounds of the limits: their product bounds the memory held.
const MAX_LINES_LIMIT: usize = 100_000;
const MAX_BYTES_LIMIT: usize = 64 * 1024 * 1024;
const MAX_STREAMS_LIMIT: usize = 1_000_000;

/// The checked rules, regexes compiled: built once at load.
#[derive(Debug, Clone)]
pub struct MultilineRules {
    pub(crate) start: Regex,
    pub(crate) condition: Regex,
    pub(crate) mode: Mode,
    pub(crate) timeout: Duration,
    pub(crate) max_lines: usize,
    pub(crate) max_bytes: usize,
    pub(crate) max_streams: usize,
}

impl MultilineRules {
    /// How long an idle stream's group waits.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl MultilineConfig {
    /// Checks the options and compiles the patterns (no IO). Errors name the field as the
    /// user wrote it; a source adds its `multiline.` prefix.
    pub fn build(&self) -> Result<MultilineRules, FieldError> {
        let preset = self.preset.map(Preset::rules);
        let pattern = |field: &str, given: &Option<String>, preset: Option<&'static str>| {
            let source =
                match (given, preset) {
                    (Some(p), _) => p.as_str(),
                    (None, Some(p)) => p,
                    (None, None) => return Err(FieldError::new(
                        field,
                        "is required (or give a `preset`: java, python, go, ruby, dotnet, nodejs)",
                    )),
                };
            regex::bytes::RegexBuilder::new(source)
                // A pattern is compiled once per component; the limit only stops a
                // pathological one from taking the memory of the node.
                .size_limit(1 << 20)
                .build()
                .map_err(|e| FieldError::new(field, format!("invalid regex: {e}")))
        };
        let start = pattern(
            "start_pattern",
            &self.start_pattern,
            preset.map(|p| p.start),
        )?;
        let condition = pattern(
            "condition_pattern",
            &self.condition_pattern,
            preset.map(|p| p.condition),
        )?;
        let mode = self.mode.or(preset.map(|p| p.mode)).ok_or_else(|| {
            FieldError::new(
                "mode",
                "is required: continue_through, continue_past, halt_before or halt_with",
            )
        })?;
        at_least_one(&[("timeout_ms", self.timeout_ms)])?;
        Ok(MultilineRules {
            start,
            condition,
            mode,
            timeout: Duration::from_millis(self.timeout_ms),
            max_lines: between_one_and("max_lines", self.max_lines, MAX_LINES_LIMIT)?,
            max_bytes: between_one_and("max_bytes", self.max_bytes, MAX_BYTES_LIMIT)?,
            max_streams: between_one_and("max_streams", self.max_streams, MAX_STREAMS_LIMIT)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(toml: &str) -> Result<MultilineRules, FieldError> {
        let config: MultilineConfig =
            toml::from_str(toml).map_err(|e| FieldError::new("toml", e.to_string()))?;
        config.build()
    }

    #[test]
    fn a_preset_fills_what_is_not_given_and_defaults_hold() {
        let rules = build(r#"preset = "java""#).unwrap();
        assert_eq!(rules.mode, Mode::ContinueThrough);
        assert_eq!(
            (rules.timeout, rules.max_lines, rules.max_streams),
            (Duration::from_secs(1), 500, 10_000)
        );
        let rules = build(
            r#"preset = "java"
mode = "halt_before""#,
        )
        .unwrap();
        assert_eq!(rules.mode, Mode::HaltBefore);
    }

    #[test]
    fn errors_name_the_field() {
        for (toml, field) in [
            (r#"mode = "halt_with""#, "start_pattern"),
            (
                r#"start_pattern = "^a"
mode = "halt_with""#,
                "condition_pattern",
            ),
            (
                r#"start_pattern = "^a"
condition_pattern = "^b""#,
                "mode",
            ),
            (
                r#"start_pattern = "(" 
condition_pattern = "^b"
mode = "halt_with""#,
                "start_pattern",
            ),
            (
                r#"preset = "java"
timeout_ms = 0"#,
                "timeout_ms",
            ),
            (
                r#"preset = "java"
max_lines = 0"#,
                "max_lines",
            ),
            (
                r#"preset = "java"
max_bytes = 0"#,
                "max_bytes",
            ),
            (
                r#"preset = "java"
max_streams = 0"#,
                "max_streams",
            ),
        ] {
            let err = build(toml).unwrap_err();
            assert_eq!(err.field, field, "{toml}: {err}");
        }
        let err = build(r#"preset = "cobol""#).unwrap_err();
        assert!(err.message.contains("unknown variant `cobol`"), "{err}");
    }
}
