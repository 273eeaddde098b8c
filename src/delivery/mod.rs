//! Delivery, below the sinks and the shipper and importing neither: retries (`retry.rs`).

pub mod retry;
