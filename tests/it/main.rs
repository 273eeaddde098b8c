//! The integration test binary (one binary, as ripgrep does: faster to build and link).

mod api;
mod bad_input;
mod config;
mod corpus;
mod durability;
mod e2e;
mod file_sink;
mod http;
mod http_sink;
#[cfg(feature = "kafka")]
mod kafka;
mod ship;
mod syslog;
mod tls;
mod util;
