//! `[sources.ID] type = "file"`: the options and their check (no IO).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::stages::compile_multiline;
use crate::codec::container::ContainerFormat;
use crate::codec::multiline::{MultilineConfig, MultilineRules};
use crate::codec::{
    CharacterDelimitedConfig, DecodingConfig, FrameLimits, FramingConfig, MAX_FRAME_BYTES_LIMIT,
};
use crate::field_error::{at_least_one, between_one_and, FieldError};

/// Where to start in a file seen for the first time at start-up (and with no checkpoint).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    #[default]
    Beginning,
    End,
}

/// Tails files matched by globs, following rotation, with checkpoints that move only over
/// acknowledged lines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// Glob patterns of files to read (`/var/log/app/*.log`); symlinks are followed.
    pub include: Vec<String>,
    /// Glob patterns of matched files to leave out (`*.gz`, `/var/log/app/debug.log`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Where a file seen at start-up without a checkpoint is read from. Files that appear
    /// later (a rotation's new file) are always read from their beginning.
    #[serde(default)]
    pub read_from: ReadFrom,
    /// How often the globs are evaluated again to find new, rotated and deleted files.
    #[serde(default = "default_glob_interval_ms")]
    pub glob_interval_ms: u64,
    /// Lines longer than this are oversized: counted (`component_errors_total{reason =
    /// "oversized"}`) and sent to `ID.dead_letter` (or cut, with `framing.oversize =
    /// "truncate"`). Overrides the framing's `max_frame_bytes`.
    pub max_line_bytes: Option<usize>,
    /// How a file's bytes are cut into frames (default: newline).
    #[serde(default)]
    pub framing: FramingConfig,
    /// How each frame becomes fields (default: bytes, the whole line as `message`). With
    /// `container`, the container's line is decoded, not the runtime's wrapping.
    #[serde(default)]
    pub decoding: DecodingConfig,
    /// The files' character encoding, by its WHATWG label (`utf-16le`, `utf-16be`, `latin1`
    /// (windows-1252, as browsers read it), `shift_jis`, `gbk`…; default `utf-8`, passed on
    /// as it is): the bytes are turned into UTF-8 before framing, a byte-order mark is
    /// honoured, and sequences that cannot be decoded are replaced by U+FFFD and counted
    /// (`component_errors_total{reason = "invalid_encoding"}`). Checkpoints stay offsets in
    /// the file's own bytes. Needs the newline framing.
    pub encoding: Option<String>,
    /// `encoding` resolved when the pipeline was built (`None`: UTF-8).
    #[serde(skip)]
    pub(super) transcode: Option<&'static encoding_rs::Encoding>,
    /// The files are a container runtime's logs (`docker` json-file, `cri` as under
    /// `/var/log/pods`, or `auto`): each line is unwrapped, partial lines are joined per
    /// stream, and the event gets `stream` and the runtime's `timestamp`.
    pub container: Option<ContainerFormat>,
    /// Joins the lines of one message (stack traces) per file (and per stream with
    /// `container`) before decoding: the `multiline` transform's options but `group_by`.
    pub multiline: Option<MultilineConfig>,
    /// `multiline` compiled when the pipeline was built.
    #[serde(skip)]
    pub(super) multiline_rules: Option<MultilineRules>,
    /// Files not modified for this long are not opened (they are looked at again on each
    /// scan, and read from their beginning once they are written).
    pub ignore_older_secs: Option<u64>,
    /// How long a file that was renamed away or deleted is still read after the globs
    /// stopped finding it, for what its writer appends before reopening.
    #[serde(default = "default_rotate_wait_ms")]
    pub rotate_wait_ms: u64,
    /// The directory where checkpoints are kept (`ID/checkpoints.json` inside it). Without
    /// it nothing is remembered: every start is a first sight of every file.
    pub data_dir: Option<PathBuf>,
    /// Files open at once, at most. Files the globs find beyond it wait, counted in
    /// `file_source_waiting_files`, and are opened as open ones are closed (read to their end
    /// after a rotation or deletion), oldest found first.
    #[serde(default = "default_max_open_files")]
    pub max_open_files: usize,
}

fn default_max_open_files() -> usize {
    1024
}

fn default_glob_interval_ms() -> u64 {
    1_000
}

fn default_rotate_wait_ms() -> u64 {
    10_000
}

impl FileSourceConfig {
    /// The options' defaults with `include`: the start of a source built on this one
    /// (`kubernetes_logs`), which sets the options it passes on, then calls `build`.
    pub fn with_include(include: Vec<String>) -> Self {
        Self {
            include,
            exclude: Vec::new(),
            read_from: ReadFrom::default(),
            glob_interval_ms: default_glob_interval_ms(),
            max_line_bytes: None,
            framing: FramingConfig::default(),
            decoding: DecodingConfig::default(),
            encoding: None,
            transcode: None,
            container: None,
            multiline: None,
            multiline_rules: None,
            ignore_older_secs: None,
            rotate_wait_ms: default_rotate_wait_ms(),
            max_open_files: default_max_open_files(),
            data_dir: None,
        }
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        if self.include.is_empty() {
            return Err(FieldError::new("include", "must name at least one glob"));
        }
        for (field, patterns) in [("include", &self.include), ("exclude", &self.exclude)] {
            for (i, pattern) in patterns.iter().enumerate() {
                if let Err(e) = glob::Pattern::new(pattern) {
                    return Err(FieldError::new(
                        format!("{field}[{i}]"),
                        format!("invalid glob `{pattern}`: {e}"),
                    ));
                }
            }
        }
        at_least_one(&[
            ("glob_interval_ms", self.glob_interval_ms),
            ("max_open_files", self.max_open_files as u64),
        ])?;
        if let Some(max) = self.max_line_bytes {
            between_one_and("max_line_bytes", max, MAX_FRAME_BYTES_LIMIT)?;
        }
        if self
            .data_dir
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(FieldError::new("data_dir", "must not be empty"));
        }
        if self
            .multiline
            .as_ref()
            .is_some_and(|m| m.group_by.is_some())
        {
            compile_multiline(self.multiline.as_ref())?;
        }
        if let Some(label) = &self.encoding {
            super::encoding::for_label(label).map_err(|e| FieldError::new("encoding", e))?;
            if !matches!(self.framing, FramingConfig::Newline(_)) {
                return Err(FieldError::new(
                    "encoding",
                    "needs the newline framing (checkpoints are kept at line ends in the file's own bytes)",
                ));
            }
        }
        self.framing.validate()
    }

    /// Checks the options and compiles `multiline`'s patterns, kept for the run. Does no IO.
    pub fn build(mut self) -> Result<Self, FieldError> {
        self.validate()?;
        self.transcode = match &self.encoding {
            Some(label) => {
                super::encoding::for_label(label).map_err(|e| FieldError::new("encoding", e))?
            }
            None => None,
        };
        self.multiline_rules = compile_multiline(self.multiline.as_ref())?;
        Ok(self)
    }

    /// The longest line: `max_line_bytes`, else the framing's maximum frame.
    pub(super) fn line_limit(&self) -> usize {
        match self.effective_framing() {
            FramingConfig::Newline(l)
            | FramingConfig::OctetCounting(l)
            | FramingConfig::LengthDelimited(l) => l.max_frame_bytes,
            FramingConfig::CharacterDelimited(c) => c.max_frame_bytes,
        }
    }

    /// The framing with `max_line_bytes` applied.
    pub(super) fn effective_framing(&self) -> FramingConfig {
        let Some(max) = self.max_line_bytes else {
            return self.framing.clone();
        };
        let limits = |l: &FrameLimits| FrameLimits {
            max_frame_bytes: max,
            oversize: l.oversize,
        };
        match &self.framing {
            FramingConfig::Newline(l) => FramingConfig::Newline(limits(l)),
            FramingConfig::OctetCounting(l) => FramingConfig::OctetCounting(limits(l)),
            FramingConfig::LengthDelimited(l) => FramingConfig::LengthDelimited(limits(l)),
            FramingConfig::CharacterDelimited(c) => {
                FramingConfig::CharacterDelimited(CharacterDelimitedConfig {
                    max_frame_bytes: max,
                    ..*c
                })
            }
        }
    }

    pub(super) fn glob_interval(&self) -> Duration {
        Duration::from_millis(self.glob_interval_ms)
    }

    pub(super) fn rotate_wait(&self) -> Duration {
        Duration::from_millis(self.rotate_wait_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<FileSourceConfig, FieldError> {
        let config: FileSourceConfig =
            toml::from_str(toml).map_err(|e| FieldError::new("toml", e.to_string()))?;
        config.build()
    }

    #[test]
    fn checks_globs_limits_and_defaults() {
        let ok = parse(r#"include = ["/var/log/*.log"]"#).unwrap();
        assert_eq!(ok.read_from, ReadFrom::Beginning);
        assert_eq!(ok.glob_interval_ms, 1_000);
        for (toml, field) in [
            (r#"include = []"#, "include"),
            (r#"include = ["/a/[b"]"#, "include[0]"),
            (
                r#"include = ["/a"]
exclude = ["x", "[" ]"#,
                "exclude[1]",
            ),
            (
                r#"include = ["/a"]
max_line_bytes = 0"#,
                "max_line_bytes",
            ),
            (
                r#"include = ["/a"]
glob_interval_ms = 0"#,
                "glob_interval_ms",
            ),
            (
                r#"include = ["/a"]
data_dir = """#,
                "data_dir",
            ),
        ] {
            let err = parse(toml).unwrap_err();
            assert!(err.to_string().contains(field), "{toml}: {err}");
        }
        assert!(parse(
            r#"include = ["/a"]
read_from = "middle""#
        )
        .is_err());
        for (toml, field) in [
            (
                r#"include = ["/a"]
multiline = { preset = "java", max_lines = 0 }"#,
                "multiline.max_lines",
            ),
            (
                r#"include = ["/a"]
multiline = { start_pattern = "(", condition_pattern = "x", mode = "halt_with" }"#,
                "multiline.start_pattern",
            ),
            (
                r#"include = ["/a"]
multiline = { preset = "java", group_by = ["app"] }"#,
                "multiline.group_by",
            ),
        ] {
            let err = parse(toml).unwrap_err();
            assert_eq!(err.field, field, "{toml}: {err}");
        }
        let built = parse(
            r#"include = ["/a"]
container = "cri"
multiline = { preset = "go" }"#,
        )
        .unwrap();
        assert_eq!(built.container, Some(ContainerFormat::Cri));
        assert!(built.multiline_rules.is_some(), "compiled once, at build");
        assert!(parse(
            r#"include = ["/a"]
container = "podman""#
        )
        .is_err());
        let utf16 = parse(
            r#"include = ["/a"]
encoding = "UTF-16LE""#,
        )
        .unwrap();
        assert_eq!(utf16.transcode, Some(encoding_rs::UTF_16LE));
        assert_eq!(
            parse(
                r#"include = ["/a"]
encoding = "utf8""#
            )
            .unwrap()
            .transcode,
            None,
            "UTF-8 is passed on as it is"
        );
        for toml in [
            r#"include = ["/a"]
encoding = "klingon""#,
            r#"include = ["/a"]
encoding = "latin1"
framing = { method = "octet_counting" }"#,
        ] {
            assert_eq!(parse(toml).unwrap_err().field, "encoding", "{toml}");
        }
    }

    #[test]
    fn max_line_bytes_overrides_the_framing_limit() {
        let c = parse(
            r#"include = ["/a"]
max_line_bytes = 64
framing = { method = "character_delimited", delimiter = "\u0000" }"#,
        )
        .unwrap();
        match c.effective_framing() {
            FramingConfig::CharacterDelimited(c) => assert_eq!(c.max_frame_bytes, 64),
            other => panic!("{other:?}"),
        }
    }
}
