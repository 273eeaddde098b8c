//! Per-sink buffers: what sits between a sink and the components that feed it.
//!
//! - `memory` (the default): the sink's bounded input queue. Fast; lost on a crash.
//! - `disk`: a durable queue on local disk (`disk/`). Events are acknowledged to their source
//!   once they are written (and fsync'd), so a sink that is down or slow neither loses events
//!   across a crash nor holds up the other sinks fed by the same source.
//!
//! `when_full` decides what happens when the buffer is full: `block` (the default) makes the
//! producer wait, which is backpressure all the way to the source; `drop_newest` discards the
//! incoming batch and counts it (`component_discarded_events_total{reason="buffer_full"}`).

pub mod disk;
mod pump;
pub mod record;

pub(crate) use pump::spawn as spawn_disk_buffer;

use std::path::PathBuf;

use serde::Deserialize;

use crate::field_error::FieldError;

/// Default bound of a memory buffer (and of every transform's input queue). A read produces
/// batches of tens to hundreds of KiB, so this holds a few batches: enough to keep both ends
/// busy, small enough that a pipeline of several components stays within tens of MiB under
/// any load.
pub const DEFAULT_MEMORY_BYTES: u64 = 1024 * 1024;
/// Default bound of a disk buffer: unacknowledged bytes on disk.
pub const DEFAULT_DISK_BYTES: u64 = 256 * 1024 * 1024;
/// The smallest disk buffer accepted: room for a few batches.
const MIN_DISK_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferType {
    #[default]
    Memory,
    Disk,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait for room: backpressure reaches the source, nothing is lost.
    #[default]
    Block,
    /// Discard the incoming batch, counted: keeps the source flowing at the cost of events.
    DropNewest,
}

/// `buffer = { type = "memory" | "disk", max_bytes, when_full, path, fsync }` on a sink.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    #[serde(rename = "type", default)]
    pub kind: BufferType,
    /// Bound in bytes (memory: estimated event size; disk: unacknowledged bytes on disk).
    pub max_bytes: Option<u64>,
    #[serde(default)]
    pub when_full: WhenFull,
    /// Directory of the disk buffer (one directory per sink); required for `disk`.
    pub path: Option<PathBuf>,
    /// Disk only: fsync every appended batch before acknowledging it (default true). With
    /// false, a crash of the process still loses nothing, but a crash of the machine may.
    pub fsync: Option<bool>,
}

impl BufferConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        match self.kind {
            BufferType::Memory => {
                if self.path.is_some() {
                    return Err(FieldError::new(
                        "buffer.path",
                        "only a disk buffer has a path",
                    ));
                }
                if self.fsync.is_some() {
                    return Err(FieldError::new(
                        "buffer.fsync",
                        "only a disk buffer has fsync",
                    ));
                }
                if self.max_bytes.unwrap_or(DEFAULT_MEMORY_BYTES) < 1024 {
                    return Err(FieldError::new("buffer.max_bytes", "must be at least 1024"));
                }
            }
            BufferType::Disk => {
                if self.path.as_ref().is_none_or(|p| p.as_os_str().is_empty()) {
                    return Err(FieldError::new(
                        "buffer.path",
                        "a disk buffer needs a directory, e.g. path = \"/var/lib/sluice/buffers/my_sink\"",
                    ));
                }
                if self.disk_bytes() < MIN_DISK_BYTES {
                    return Err(FieldError::new(
                        "buffer.max_bytes",
                        format!("must be at least {MIN_DISK_BYTES} for a disk buffer"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Bound of the in-memory queue in front of the sink (for a disk buffer, the small
    /// staging queue in front of the disk writer). `in_flight_bytes`: the room the sink's
    /// requests in flight hold (`Sink::in_flight_bytes`), added to the default size; a
    /// `max_bytes` written in the config is taken as it is.
    pub fn memory_bytes(&self, in_flight_bytes: u64) -> usize {
        match self.kind {
            BufferType::Memory => {
                self.max_bytes
                    .unwrap_or(DEFAULT_MEMORY_BYTES + in_flight_bytes) as usize
            }
            BufferType::Disk => DEFAULT_MEMORY_BYTES as usize,
        }
    }

    /// Bound of the queue a disk buffer feeds the sink from: the default, plus the room its
    /// requests in flight hold, as for a memory buffer.
    pub fn disk_to_sink_bytes(in_flight_bytes: u64) -> usize {
        (DEFAULT_MEMORY_BYTES + in_flight_bytes) as usize
    }

    pub fn disk_bytes(&self) -> u64 {
        self.max_bytes.unwrap_or(DEFAULT_DISK_BYTES)
    }
}
