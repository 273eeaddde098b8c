//! The `blackhole` sink: accepts and counts events, writes nothing. For benchmarks and for
//! outputs that must be consumed but not kept.

use serde::Deserialize;

use super::{SinkContext, SinkError};
use crate::ack::AckStatus;
use crate::channel::BatchReceiver;

/// `[sinks.ID] type = "blackhole"`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlackholeConfig {}

impl BlackholeConfig {
    pub async fn run(self, mut rx: BatchReceiver, ctx: SinkContext) -> Result<(), SinkError> {
        while let Some(batch) = rx.recv().await {
            ctx.metrics.sent_events.inc(batch.len() as u64);
            batch.finish(AckStatus::Delivered);
        }
        Ok(())
    }
}
