//! Sluice: a log aggregation router.
pub mod ack;
pub mod config;
pub mod event;
pub mod telemetry;
pub mod transforms;
