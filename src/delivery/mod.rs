//! Delivery, below the sinks and the shipper and importing neither: the one retry driver
//! (`retry.rs`) and the one HTTP delivery client (`http.rs`).

pub mod http;
pub mod retry;
