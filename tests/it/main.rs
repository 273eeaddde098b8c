//! The integration test binary (one binary, as ripgrep does: faster to build and link).

mod alerts;
mod api;
mod bad_input;
mod browser;
mod config;
mod corpus;
mod durability;
mod e2e;
mod file_sink;
mod http;
mod http_sink;
mod query;
mod ship;
mod store;
mod syslog;
mod tcp_auth;
mod tls;
mod util;
