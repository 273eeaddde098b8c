//! Sluice: a log aggregation router.
//!
//! Data flows source → transforms → sinks as batches of [`event::Event`]s over bounded
//! channels; see ARCHITECTURE.md for the map.

pub mod ack;
pub mod alert;
pub mod api;
pub mod buffer;
pub mod channel;
pub mod codec;
pub mod condition;
pub mod config;
pub mod delivery;
pub mod enrichment;
pub mod error_chain;
pub mod event;
#[cfg(feature = "store")]
pub mod federation;
pub mod field_error;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod listen;
pub mod parse;
pub mod pipeline;
pub mod remap;
pub mod router_url;
pub mod ship;
pub mod sinks;
pub mod sources;
#[cfg(feature = "store")]
pub mod store;
/// Without the store (the fuzz crate's build), its query language alone: it needs no
/// tantivy, and `fuzz/` checks its parser and matcher.
#[cfg(not(feature = "store"))]
pub mod store {
    pub mod query;
}
#[cfg(feature = "store")]
pub mod tap;
pub mod telemetry;
pub mod template;
pub mod tls;
pub mod topology;
pub mod transforms;
pub mod unit_test;
