//! Fuzz target bodies for sluice, one function per target in [`targets`].
//!
//! Each target asserts invariants that the code documents, not only "no panic": a framer
//! must return exactly the frames a simple whole-input model of its layout predicts in any
//! chunking, a parser must agree with serde_json or round-trip what a writer produced, and
//! so on. The binaries in `fuzz_targets/` are one-line wrappers around these functions, so
//! `cargo test` here replays `seeds/` and `regressions/` on stable without libFuzzer.

pub mod check;
pub mod condition;
pub mod config_env;
pub mod decode;
pub mod framing;
pub mod logplex;
pub mod otlp;
pub mod pipeline;
pub mod query;
pub mod remap;
pub mod template;

/// Every target body, by the name of its binary in `fuzz_targets/`.
pub mod targets {
    pub use crate::condition::condition;
    pub use crate::config_env::config_env;
    pub use crate::decode::{
        decode_access_log, decode_auto, decode_json, decode_logfmt, decode_syslog,
        logfmt_roundtrip, timestamp,
    };
    pub use crate::framing::{
        framing_character_delimited, framing_length_delimited, framing_newline,
        framing_octet_counting,
    };
    pub use crate::logplex::logplex;
    pub use crate::otlp::otlp_protobuf;
    pub use crate::pipeline::pipeline_config;
    pub use crate::query::query;
    pub use crate::remap::remap;
    pub use crate::template::template;
}

/// A target body: one fuzz input in, a panic when an invariant breaks.
pub type Target = fn(&[u8]);

/// The targets as a table, for the replay test.
pub const TARGETS: &[(&str, Target)] = &[
    ("framing_newline", targets::framing_newline),
    (
        "framing_character_delimited",
        targets::framing_character_delimited,
    ),
    ("framing_octet_counting", targets::framing_octet_counting),
    (
        "framing_length_delimited",
        targets::framing_length_delimited,
    ),
    ("decode_json", targets::decode_json),
    ("decode_logfmt", targets::decode_logfmt),
    ("logfmt_roundtrip", targets::logfmt_roundtrip),
    ("decode_syslog", targets::decode_syslog),
    ("decode_access_log", targets::decode_access_log),
    ("decode_auto", targets::decode_auto),
    ("timestamp", targets::timestamp),
    ("pipeline_config", targets::pipeline_config),
    ("condition", targets::condition),
    ("template", targets::template),
    ("remap", targets::remap),
    ("query", targets::query),
    ("logplex", targets::logplex),
    ("config_env", targets::config_env),
    ("otlp_protobuf", targets::otlp_protobuf),
];
