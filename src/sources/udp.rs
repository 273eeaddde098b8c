//! The `udp` source: one datagram is one or more frames (syslog senders put one message in
//! each datagram; some agents pack several newline-separated lines).
//!
//! Datagrams that arrive together are gathered into one batch (up to a limit) so that a
//! flood of small datagrams still moves as few, large batches. UDP has no flow control: when
//! the pipeline is slower than the senders the kernel drops datagrams, which shows up in the
//! host's `RcvbufErrors`, not here.
//!
//! An instance replaced by a reload (its address the same) stops reading, and the new one
//! reads the same socket once it has ended: datagrams wait in the socket's buffer meanwhile.

use std::sync::Arc;

use serde::Deserialize;
use tokio::net::UdpSocket;

use super::sockets::{Bound, Sockets};
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

    /// Binds the socket, or takes the one the instance this one replaces holds at the same
    /// address (that instance stops reading before this one starts: `sockets.rs`).
    pub async fn bind(
        &self,
        sockets: &Sockets,
        source: &str,
    ) -> Result<(Arc<UdpSocket>, Bound), SourceError> {
        super::sockets::datagram(sockets, source, &self.address).await
    }

    pub async fn run(
        self,
        socket: Arc<UdpSocket>,
        mut ctx: SourceContext,
    ) -> Result<(), SourceError> {
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
