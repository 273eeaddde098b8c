//! The integration test binary (one binary, as ripgrep does: faster to build and link).

mod alertmanager;
mod alerts;
mod api;
#[cfg(feature = "store")]
mod api_auth;
#[cfg(feature = "store")]
mod api_limits;
mod bad_input;
#[cfg(feature = "store")]
mod browser;
mod browser_ingest;
mod certs;
mod clickhouse_sink;
mod config;
mod container_logs;
mod corpus;
mod deploy;
mod durability;
mod e2e;
mod elasticsearch_sink;
mod enrichment;
#[cfg(feature = "store")]
mod federation;
mod file_sink;
mod file_source;
mod file_source_formats;
mod file_source_hard;
mod formats;
mod hardening;
#[cfg(feature = "store")]
mod hardening_memory;
mod http;
mod http_sink;
#[cfg(feature = "store")]
mod https;
mod journald;
#[cfg(feature = "kafka")]
mod kafka;
mod kafka_scale_out;
mod kubernetes_logs;
mod layers;
mod log_to_metric;
mod loki_sink;
mod multiline;
mod notifiers;
mod otlp;
mod otlp_grpc;
mod otlp_restart;
mod otlp_sink;
mod otlp_sink_concurrency;
mod parse_check;
mod pipeline_tests;
#[cfg(feature = "store")]
mod query;
mod recorder;
mod reload;
mod remap;
mod s3_sink;
mod seaweedfs;
mod ship;
mod shutdown;
mod sink_concurrency;
#[cfg(feature = "store")]
mod store;
#[cfg(feature = "store")]
mod store_usage;
mod syslog;
#[cfg(feature = "store")]
mod tail;
#[cfg(feature = "kafka")]
mod tansu;
#[cfg(feature = "store")]
mod tap;
mod tcp_auth;
mod tls;
mod util;
