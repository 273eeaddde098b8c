//! The `stdin` source: reads the router's standard input until EOF.
//!
//! `myapp | sluice up` is the Twelve-Factor way to ship one process's stdout; when stdin
//! ends the source ends, and once every source has ended the router drains and exits.

use serde::Deserialize;

use super::{read_stream, FrameIngest, SourceContext, SourceError};
use crate::codec::{DecodingConfig, FramingConfig};
use crate::config::FieldError;

/// `[sources.ID] type = "stdin"`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinConfig {
    /// How the byte stream is cut into frames (default: newline, 100 KiB max).
    #[serde(default)]
    pub framing: FramingConfig,
    /// How each frame becomes fields (default: bytes, the whole line as `message`).
    #[serde(default)]
    pub decoding: DecodingConfig,
}

impl StdinConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        self.framing.validate()
    }

    pub async fn run(self, mut ctx: SourceContext) -> Result<(), SourceError> {
        let mut ingest = FrameIngest::new(ctx.id.clone(), &self.framing, self.decoding);
        read_stream(tokio::io::stdin(), &mut ingest, &mut ctx, None).await
    }
}
