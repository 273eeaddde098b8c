//! The `console` sink: writes events to stdout or stderr.

use std::io::Write;

use serde::Deserialize;

use super::{Encoding, SinkContext, SinkError};
use crate::ack::AckStatus;
use crate::channel::BatchReceiver;

/// `[sinks.ID] type = "console"`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    #[serde(default)]
    pub encoding: Encoding,
    #[serde(default)]
    pub target: ConsoleTarget,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsoleTarget {
    #[default]
    Stdout,
    Stderr,
}

impl ConsoleConfig {
    pub async fn run(self, rx: BatchReceiver, ctx: SinkContext) -> Result<(), SinkError> {
        tokio::task::spawn_blocking(move || self.run_blocking(rx, ctx)).await?
    }

    fn run_blocking(self, mut rx: BatchReceiver, ctx: SinkContext) -> Result<(), SinkError> {
        let mut buf = Vec::with_capacity(256 * 1024);
        while let Some(batch) = rx.blocking_recv() {
            buf.clear();
            for event in &batch.events {
                self.encoding.encode(event, &mut buf);
            }
            let written = match self.target {
                ConsoleTarget::Stdout => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&buf).and_then(|()| out.flush())
                }
                ConsoleTarget::Stderr => std::io::stderr().lock().write_all(&buf),
            };
            match written {
                Ok(()) => {
                    ctx.metrics.sent_events.inc(batch.len() as u64);
                    ctx.metrics.sent_bytes.inc(buf.len() as u64);
                    batch.finish(AckStatus::Delivered);
                }
                Err(error) => {
                    // A closed stdout (`sluice up | head`) ends the sink; the events it
                    // could not write are counted, not silently lost.
                    ctx.metrics.write_errors.inc(1);
                    ctx.metrics.discarded.inc(batch.len() as u64);
                    batch.finish(AckStatus::Errored);
                    tracing::error!(component_id = %ctx.id, %error, "console write failed");
                    return Err(error.into());
                }
            }
        }
        Ok(())
    }
}
