//! The `framing` option of a source.

use std::fmt;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::{DelimitedFramer, Framer, LengthDelimitedFramer, OctetCountingFramer};
use crate::field_error::{at_least_one, FieldError};

/// 100 KiB: far above an ordinary log line, small enough that a thousand connections that
/// each hold one partial frame stay within about 100 MB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 100 * 1024;

/// The largest `max_frame_bytes` accepted. A frame is buffered whole before it becomes an
/// event, so this bounds the memory one connection can pin.
pub const MAX_FRAME_BYTES_LIMIT: usize = 1024 * 1024 * 1024;

/// How a byte stream is cut into frames.
///
/// In TOML either a method name with all defaults, `framing = "newline"`, or a table,
/// `framing = { method = "octet_counting", max_frame_bytes = 65536 }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum FramingConfig {
    /// Lines ended by `\n`; a `\r` before it stays in the frame.
    Newline(FrameLimits),
    /// Frames ended by one ASCII character, e.g. `\0` or a record separator.
    CharacterDelimited(CharacterDelimitedConfig),
    /// RFC 6587 octet counting (`LEN SP MSG`), falling back to a line per frame for input that
    /// is not octet-counted.
    OctetCounting(FrameLimits),
    /// A 4-byte big-endian length prefix before each frame.
    LengthDelimited(FrameLimits),
}

/// Options every framing method has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FrameLimits {
    /// Frames longer than this are oversized (the delimiter or length prefix not counted).
    pub max_frame_bytes: usize,
    /// What happens to an oversized frame.
    pub oversize: OversizePolicy,
}

/// `character_delimited` options: the delimiter next to the usual limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CharacterDelimitedConfig {
    /// One ASCII character.
    pub delimiter: char,
    pub max_frame_bytes: usize,
    pub oversize: OversizePolicy,
}

/// What happens to a frame longer than `max_frame_bytes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OversizePolicy {
    /// Drop the frame and count it as bad (`oversized`).
    #[default]
    Skip,
    /// Keep its first `max_frame_bytes` as a frame marked truncated and drop the rest.
    Truncate,
}

fn default_max_frame_bytes() -> usize {
    DEFAULT_MAX_FRAME_BYTES
}

// === impl FramingConfig ===

impl Default for FramingConfig {
    fn default() -> Self {
        Self::Newline(FrameLimits::default())
    }
}

impl FramingConfig {
    /// The method name as written in config.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Newline(_) => "newline",
            Self::CharacterDelimited(_) => "character_delimited",
            Self::OctetCounting(_) => "octet_counting",
            Self::LengthDelimited(_) => "length_delimited",
        }
    }

    pub fn limits(&self) -> FrameLimits {
        match self {
            Self::Newline(limits) | Self::OctetCounting(limits) | Self::LengthDelimited(limits) => {
                *limits
            }
            Self::CharacterDelimited(c) => FrameLimits {
                max_frame_bytes: c.max_frame_bytes,
                oversize: c.oversize,
            },
        }
    }

    /// Checks the values serde cannot. Does no IO. Field names are relative to the source,
    /// which embeds this as `framing`.
    pub fn validate(&self) -> Result<(), FieldError> {
        let max = self.limits().max_frame_bytes;
        at_least_one(&[("framing.max_frame_bytes", max as u64)])?;
        if max > MAX_FRAME_BYTES_LIMIT {
            return Err(FieldError::new(
                "framing.max_frame_bytes",
                format!("must be at most {MAX_FRAME_BYTES_LIMIT} (1 GiB), got {max}"),
            ));
        }
        if let Self::CharacterDelimited(c) = self {
            if !c.delimiter.is_ascii() {
                return Err(FieldError::new(
                    "framing.delimiter",
                    format!("must be one ascii character, got {:?}", c.delimiter),
                ));
            }
        }
        Ok(())
    }

    /// Builds the runtime framer. Call [`validate`](Self::validate) first (the config phase
    /// does); so that this never panics, values `validate` rejects are clamped into range
    /// and a non-ASCII delimiter falls back to `\n`.
    pub fn build(&self) -> Framer {
        let limits = self.limits();
        let limits = FrameLimits {
            max_frame_bytes: limits.max_frame_bytes.clamp(1, MAX_FRAME_BYTES_LIMIT),
            ..limits
        };
        match self {
            Self::Newline(_) => Framer::Delimited(DelimitedFramer::newline(limits)),
            Self::CharacterDelimited(c) => {
                let delimiter = u8::try_from(c.delimiter)
                    .ok()
                    .filter(u8::is_ascii)
                    .unwrap_or(b'\n');
                Framer::Delimited(DelimitedFramer::new(delimiter, limits))
            }
            Self::OctetCounting(_) => Framer::OctetCounting(OctetCountingFramer::new(limits)),
            Self::LengthDelimited(_) => Framer::LengthDelimited(LengthDelimitedFramer::new(limits)),
        }
    }
}

/// The table form as written. Deserialising into this flat struct rather than through an
/// internally tagged enum keeps serde from buffering the table, so a wrong value is reported
/// at its own path (`framing.max_frame_bytes`), not at `framing`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FramingTable {
    method: Method,
    delimiter: Option<char>,
    #[serde(default = "default_max_frame_bytes")]
    max_frame_bytes: usize,
    #[serde(default)]
    oversize: OversizePolicy,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Method {
    Newline,
    CharacterDelimited,
    OctetCounting,
    LengthDelimited,
}

impl FramingTable {
    fn into_config<E: de::Error>(self) -> Result<FramingConfig, E> {
        let limits = FrameLimits {
            max_frame_bytes: self.max_frame_bytes,
            oversize: self.oversize,
        };
        match (self.method, self.delimiter) {
            (Method::CharacterDelimited, Some(delimiter)) => Ok(FramingConfig::CharacterDelimited(
                CharacterDelimitedConfig {
                    delimiter,
                    max_frame_bytes: limits.max_frame_bytes,
                    oversize: limits.oversize,
                },
            )),
            (Method::CharacterDelimited, None) => Err(E::missing_field("delimiter")),
            (_, Some(_)) => Err(E::unknown_field(
                "delimiter",
                &["method", "max_frame_bytes", "oversize"],
            )),
            (Method::Newline, None) => Ok(FramingConfig::Newline(limits)),
            (Method::OctetCounting, None) => Ok(FramingConfig::OctetCounting(limits)),
            (Method::LengthDelimited, None) => Ok(FramingConfig::LengthDelimited(limits)),
        }
    }
}

impl<'de> Deserialize<'de> for FramingConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameOrTable;

        impl<'de> Visitor<'de> for NameOrTable {
            type Value = FramingConfig;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a framing method name or a table with a `method` key")
            }

            // A bare name is the table `{ method = NAME }`, so an unknown name or a method
            // with a required option (`character_delimited`) fails with the usual message.
            fn visit_str<E: de::Error>(self, name: &str) -> Result<FramingConfig, E> {
                FramingTable {
                    method: Method::deserialize(name.into_deserializer())?,
                    delimiter: None,
                    max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
                    oversize: OversizePolicy::default(),
                }
                .into_config()
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FramingConfig, A::Error> {
                FramingTable::deserialize(MapAccessDeserializer::new(map))?.into_config()
            }
        }

        deserializer.deserialize_any(NameOrTable)
    }
}

// === impl FrameLimits ===

impl Default for FrameLimits {
    fn default() -> Self {
        Self {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            oversize: OversizePolicy::Skip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Source {
        #[serde(default)]
        framing: FramingConfig,
    }

    fn parse(toml_text: &str) -> Result<FramingConfig, String> {
        toml::from_str::<Source>(toml_text)
            .map(|s| s.framing)
            .map_err(|e| e.message().to_string())
    }

    fn limits(max_frame_bytes: usize, oversize: OversizePolicy) -> FrameLimits {
        FrameLimits {
            max_frame_bytes,
            oversize,
        }
    }

    #[test]
    fn accepts_a_name_or_a_table() {
        let default = FrameLimits::default();
        let cases = [
            ("", FramingConfig::Newline(default)),
            (r#"framing = "newline""#, FramingConfig::Newline(default)),
            (
                r#"framing = "octet_counting""#,
                FramingConfig::OctetCounting(default),
            ),
            (
                r#"framing = "length_delimited""#,
                FramingConfig::LengthDelimited(default),
            ),
            (
                r#"framing = { method = "octet_counting", max_frame_bytes = 65536 }"#,
                FramingConfig::OctetCounting(limits(65536, OversizePolicy::Skip)),
            ),
            (
                r#"framing = { method = "newline", oversize = "truncate" }"#,
                FramingConfig::Newline(limits(DEFAULT_MAX_FRAME_BYTES, OversizePolicy::Truncate)),
            ),
            (
                r#"framing = { method = "character_delimited", delimiter = "\u0000" }"#,
                FramingConfig::CharacterDelimited(CharacterDelimitedConfig {
                    delimiter: '\0',
                    max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
                    oversize: OversizePolicy::Skip,
                }),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn rejects_unknown_methods_and_fields_by_name() {
        let cases = [
            (r#"framing = "lines""#, "unknown variant `lines`"),
            (
                r#"framing = { method = "lines" }"#,
                "unknown variant `lines`",
            ),
            (
                r#"framing = { max_frame_bytes = 1 }"#,
                "missing field `method`",
            ),
            (
                r#"framing = "character_delimited""#,
                "missing field `delimiter`",
            ),
            (
                r#"framing = { method = "newline", max_frame_byte = 10 }"#,
                "unknown field `max_frame_byte`",
            ),
            (
                r#"framing = { method = "newline", delimiter = "," }"#,
                "unknown field `delimiter`",
            ),
            (
                r#"framing = { method = "newline", oversize = "drop" }"#,
                "unknown variant `drop`",
            ),
            (
                r#"framing = { method = "character_delimited", delimiter = "ab" }"#,
                "expected a character",
            ),
            (r#"framing = 3"#, "a framing method name or a table"),
        ];
        for (text, expected) in cases {
            let err = parse(text).expect_err(text);
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn a_wrong_value_is_reported_at_its_own_path() {
        let cases = [
            (
                r#"framing = { method = "newline", max_frame_bytes = "big" }"#,
                "framing.max_frame_bytes",
            ),
            (
                r#"framing = { method = "newline", oversize = 1 }"#,
                "framing.oversize",
            ),
            (r#"framing = { method = "nope" }"#, "framing.method"),
        ];
        for (text, path) in cases {
            let value: toml::Value = toml::from_str(text).expect("valid toml");
            let err = serde_path_to_error::deserialize::<_, Source>(value).expect_err(text);
            assert_eq!(err.path().to_string(), path, "{text}: {}", err.inner());
        }
    }

    #[test]
    fn validate_names_the_field() {
        let cases = [
            (
                FramingConfig::Newline(limits(0, OversizePolicy::Skip)),
                "framing.max_frame_bytes",
            ),
            (
                FramingConfig::LengthDelimited(limits(
                    MAX_FRAME_BYTES_LIMIT + 1,
                    OversizePolicy::Skip,
                )),
                "framing.max_frame_bytes",
            ),
            (
                FramingConfig::CharacterDelimited(CharacterDelimitedConfig {
                    delimiter: 'é',
                    max_frame_bytes: 10,
                    oversize: OversizePolicy::Skip,
                }),
                "framing.delimiter",
            ),
        ];
        for (config, field) in cases {
            let err = config.validate().expect_err(field);
            assert_eq!(err.field, field);
            // Building anyway must not panic.
            let _ = config.build();
        }
        assert!(FramingConfig::default().validate().is_ok());
    }

    #[test]
    fn serializes_back_to_a_table_that_parses() {
        let config = FramingConfig::OctetCounting(limits(4096, OversizePolicy::Truncate));
        let text = toml::to_string(&Wrapper {
            framing: config.clone(),
        })
        .expect("serializes");
        assert_eq!(parse(&text), Ok(config));

        #[derive(Serialize)]
        struct Wrapper {
            framing: FramingConfig,
        }
    }
}
