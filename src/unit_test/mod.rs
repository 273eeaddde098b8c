//! `sluice test`: unit tests of a pipeline's transforms, written as `[[tests]]` tables in
//! the pipeline file or in a file beside it (docs/testing-pipelines.md).
//!
//! One concern per file: `files.rs` (which tests run against which pipeline), `spec.rs`
//! (a test's tables read and checked against its pipeline), `harness.rs` (the test's events
//! pushed through the transforms the router would build, synchronously, without sockets
//! or files) and `report.rs` (the lines printed). Above `pipeline`, which it builds, and
//! below `main.rs`.

mod files;
mod harness;
mod report;
mod spec;

use std::io::Write;
use std::path::PathBuf;

pub use report::Summary;

use crate::config::ConfigError;
use crate::error_chain::ErrorLines;
use crate::pipeline::Pipeline;

/// A problem with a pipeline or its tests: no test runs.
#[derive(Debug, thiserror::Error)]
pub enum TestConfigError {
    #[error(transparent)]
    Pipeline(#[from] ConfigError),
    #[error("{file}: test `{test}`: field `{field}`: {message}")]
    Test {
        file: String,
        test: String,
        field: String,
        message: String,
    },
}

/// Every configuration problem found, one per line.
pub type TestConfigErrors = ErrorLines<TestConfigError>;

#[derive(Debug, thiserror::Error)]
pub enum TestRunError {
    #[error("{0}")]
    Config(TestConfigErrors),
    #[error("cannot write the report: {0}")]
    Output(#[from] std::io::Error),
}

/// Loads every file and checks every test, then runs them in order, writing one line per
/// test (and what failed) and a summary to `out`. A configuration problem anywhere runs
/// nothing.
pub fn run(
    paths: &[PathBuf],
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut impl Write,
) -> Result<Summary, TestRunError> {
    let suites = files::load(paths, env).map_err(|e| TestRunError::Config(ErrorLines(e)))?;
    let mut summary = Summary::default();
    for suite in suites {
        let count = suite.tests.len();
        let plural = if count == 1 { "test" } else { "tests" };
        if suite.file == suite.pipeline_file {
            writeln!(out, "{}: {count} {plural}", suite.file)?;
        } else {
            writeln!(
                out,
                "{}: {count} {plural} of {}",
                suite.file, suite.pipeline_file
            )?;
        }
        for test in &suite.tests {
            // Built afresh for each test: transforms keep state (dedupe, throttle, sample).
            let pipeline = Pipeline::from_str(&suite.pipeline_file, &suite.pipeline_text, env)
                .map_err(|e| {
                    TestRunError::Config(ErrorLines(
                        e.into_iter().map(TestConfigError::Pipeline).collect(),
                    ))
                })?;
            let outcome = harness::run(pipeline, test);
            summary.add(&outcome);
            report::write_outcome(out, &test.name, &outcome)?;
        }
    }
    report::write_summary(out, summary)?;
    Ok(summary)
}

#[cfg(test)]
mod tests;
