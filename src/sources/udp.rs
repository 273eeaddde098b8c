//! The `udp` source: one datagram is one or more frames (syslog senders put one message in
//! each datagram; some agents pack several newline-separated lines).
//!
//! Datagrams that arrive together are gathered into one batch (up to a limit) so that a
//! flood of small datagrams still moves as few, large batches. UDP has no flow control: when
//! the pipeline is slower than the senders the kernel drops datagrams, which shows up in the
//! host's `RcvbufErrors`, not here.

use serde::Deserialize;
use tokio::net::UdpSocket;

use super::{FrameIngest, SourceContext, SourceError};
use crate::codec::{DecodingConfig, FramingConfig};
use crate::field_error::FieldError;

/// Largest UDP payload.
const MAX_DATAGRAM_BYTES: usize = 65_535;
/// Datagrams gathered into one batch at most.
const MAX_DATAGRAMS_PER_BATCH: usize = 1024;

/// `[sources.ID] type = "udp"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpConfig {
    /// Address to listen on, e.g. `0.0.0.0:5140`.
    pub address: String,
    #[serde(default)]
    pub framing: FramingConfig,
    #[serde(default)]
    pub decoding: DecodingConfig,
}

impl UdpConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        super::tcp::parse_address(&self.address)?;
        self.framing.validate()
    }

    pub async fn bind(&self) -> Result<UdpSocket, SourceError> {
        UdpSocket::bind(&self.address)
            .await
            .map_err(|source| SourceError::Bind {
                address: self.address.clone(),
                source,
            })
    }

    pub async fn run(self, socket: UdpSocket, mut ctx: SourceContext) -> Result<(), SourceError> {
        let mut ingest = FrameIngest::new(ctx.id.clone(), &self.framing, self.decoding);
        let mut datagram = vec![0u8; MAX_DATAGRAM_BYTES];
        loop {
            let (n, peer) = tokio::select! {
                _ = ctx.shutdown.cancelled() => return Ok(()),
                r = socket.recv_from(&mut datagram) => r?,
            };
            let mut decoded = super::Decoded::default();
            let mut received = Some((n, peer));
            let mut count = 0;
            while let Some((n, peer)) = received.take() {
                ingest.count_bytes(n);
                let mut buf = bytes::BytesMut::from(&datagram[..n]);
                ingest.decode(&mut buf, true, Some(peer), &mut decoded);
                count += 1;
                if count < MAX_DATAGRAMS_PER_BATCH {
                    received = socket.try_recv_from(&mut datagram).ok();
                }
            }
            if decoded.send(&mut ctx).await.is_err() {
                return Ok(());
            }
        }
    }
}
