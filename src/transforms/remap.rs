//! The `remap` transform: runs a remap program (docs/remap.md) on each event.
//!
//! ```toml
//! [transforms.shape]
//! type = "remap"
//! inputs = ["parsed"]
//! source = '''
//! .service = downcase(.app)
//! .duration_s = (to_float(.duration_ms) ?? 0.0) / 1000
//! if .level == "debug" { abort }
//! '''
//! # or: file = "/etc/sluice/shape.remap"
//! ```
//!
//! Outputs: the default output (`shape`) gets events the program ran through; `shape.dropped`
//! gets the events it reached `abort` on, and `shape.failed` those on which it failed at run
//! time (a type error, a division by zero, an unhandled failure), unchanged but for a
//! `remap_error` field saying where and why. Failures are counted in
//! `component_errors_total{reason="remap_failed"}` and logged at a limited rate; either
//! output left unconnected counts its events as discarded (`unconsumed_output`).
//!
//! The program is compiled when the pipeline is loaded, so `sluice validate` reports its
//! mistakes with their line and column (and names an enrichment table that
//! `get_enrichment_table_record` asks for and the pipeline does not define). `file` is read then too: it is the program itself,
//! the one thing a transform reads at build.

use std::path::PathBuf;

use serde::Deserialize;

use super::{FunctionTransform, Outputs, TransformContext};
use crate::enrichment::Tables;
use crate::event::{Event, Value};
use crate::field_error::FieldError;
use crate::remap::{Outcome, Program, Scratch, MAX_PROGRAM_BYTES};
use crate::telemetry::{self, Counter, LogLimiter};

/// The field a failed event carries the reason in.
pub const REMAP_ERROR_FIELD: &str = "remap_error";

const DROPPED_OUTPUT: usize = 0;
const FAILED_OUTPUT: usize = 1;

/// Configuration of the `remap` transform: the program, inline or in a file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemapConfig {
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl RemapConfig {
    /// Named outputs, in the order `Outputs::push_named` indexes them.
    pub fn outputs() -> &'static [&'static str] {
        &["dropped", "failed"]
    }

    /// [`RemapConfig::build_with_tables`] for a pipeline without enrichment tables.
    pub fn build(&self, ctx: &TransformContext) -> Result<Remap, FieldError> {
        self.build_with_tables(ctx, &Tables::default())
    }

    /// Compiles the program (reading `file` when given) against the pipeline's enrichment
    /// tables, which `get_enrichment_table_record` names. Errors name `source` or `file`
    /// and the line and column in the program.
    pub fn build_with_tables(
        &self,
        ctx: &TransformContext,
        tables: &Tables,
    ) -> Result<Remap, FieldError> {
        let program =
            match (&self.source, &self.file) {
                (Some(_), Some(_)) => return Err(FieldError::new(
                    "file",
                    "give either `source` (the program) or `file` (a file holding it), not both",
                )),
                (None, None) => {
                    return Err(FieldError::new(
                        "source",
                        "is required: the program (or give `file`)",
                    ))
                }
                (Some(source), None) => Program::compile_with_tables(source, tables)
                    .map_err(|e| FieldError::new("source", e.message).at(e.line, e.column))?,
                (None, Some(path)) => {
                    let source = read_program(path)?;
                    Program::compile_with_tables(&source, tables)
                        .map_err(|e| FieldError::new("file", format!("{}: {e}", path.display())))?
                }
            };
        let scratch = Scratch::default();
        Ok(Remap {
            program,
            scratch,
            failures: telemetry::counter(
                "component_errors_total",
                &[("component_id", &ctx.id), ("reason", "remap_failed")],
            ),
            id: ctx.id.clone(),
            warn_limiter: LogLimiter::default(),
        })
    }
}

/// Reads a program file, refusing one larger than the program limit before reading it.
fn read_program(path: &PathBuf) -> Result<String, FieldError> {
    let error = |m: String| FieldError::new("file", format!("cannot read {}: {m}", path.display()));
    let metadata = std::fs::metadata(path).map_err(|e| error(e.to_string().to_lowercase()))?;
    if metadata.len() > MAX_PROGRAM_BYTES as u64 {
        return Err(error(format!(
            "{} bytes, more than the program limit of {MAX_PROGRAM_BYTES}",
            metadata.len()
        )));
    }
    std::fs::read_to_string(path).map_err(|e| error(e.to_string().to_lowercase()))
}

/// The running `remap` transform.
#[derive(Debug)]
pub struct Remap {
    program: Program,
    scratch: Scratch,
    failures: Counter,
    id: String,
    warn_limiter: LogLimiter,
}

impl FunctionTransform for Remap {
    fn transform(&mut self, mut event: Event, out: &mut Outputs) {
        match self.program.run(&mut event.fields, &mut self.scratch) {
            Ok(Outcome::Done) => out.push(event),
            Ok(Outcome::Aborted) => out.push_named(DROPPED_OUTPUT, event),
            Err(error) => {
                self.failures.inc(1);
                if let Some(suppressed) = self.warn_limiter.check() {
                    tracing::warn!(component_id = %self.id, reason = %error, suppressed, "remap failed");
                }
                event
                    .fields
                    .insert(REMAP_ERROR_FIELD, Value::from(error.to_string()));
                out.push_named(FAILED_OUTPUT, event);
            }
        }
    }
}

#[cfg(test)]
#[path = "remap_tests.rs"]
mod tests;
