//! The remap language: small programs that reshape an event, such as
//!
//! ```text
//! .service = downcase(.app) + "-" + .env
//! parsed, err = parse_json(.message)
//! if err == null { .status = parsed.status }
//! if .status >= 500 { .alert = true } else if .level == "debug" { abort }
//! del(.password)
//! ```
//!
//! Modelled on Vector's VRL: assignments to fields (`.a.b = expr`) and local variables,
//! arithmetic, comparisons (the condition language's, so `==` and `<` mean the same in a
//! `filter` and a `remap`), `&&`/`||`/`!`, `if`/`else`, `abort`, `del`, `exists` and the
//! functions in [`functions`]. A function whose failure depends on the data (`parse_json`,
//! `to_int`, ...) must be handled where it is called (`x, err = f(...)` or
//! `f(...) ?? default`), or the program does not compile. The language has no loops and a
//! program is at most [`MAX_PROGRAM_BYTES`], so each run is bounded; values a run builds
//! are bounded by [`MAX_WORK_BYTES`].
//!
//! A program is compiled once ([`Program::compile`]) into a tree that [`Program::run`]
//! evaluates over an event's fields. A run that aborts or fails leaves the fields as they
//! were: every change is recorded in an undo log and rolled back.
//!
//! Module map: `lexer` (text → tokens, reusing the condition language's scanners),
//! `parser` (tokens → tree, names resolved and fallible calls checked; expressions in
//! `parser/expression.rs`), `tree` (the compiled form), `eval` (running it),
//! `functions/` (the functions, one file per family). Users' documentation: docs/remap.md.

mod eval;
mod functions;
mod lexer;
mod parser;
mod tree;

#[cfg(test)]
mod compile_tests;
#[cfg(test)]
mod enrichment_tests;
#[cfg(test)]
mod eval_tests;
#[cfg(test)]
mod parser_proptests;

use crate::condition::FieldPath;
use crate::enrichment::Tables;
use crate::event::{Map, Value};

/// The largest program accepted, in bytes of source.
pub const MAX_PROGRAM_BYTES: usize = 64 * 1024;

/// Deepest nesting of blocks, parentheses, calls, literals and operator chains (`a + b +
/// c` nests as deep as it has operands) accepted: evaluation recurses this deep.
pub const MAX_DEPTH: usize = 128;

/// How many bytes of values one run may copy or build (fields read whole, strings
/// concatenated or produced by functions) before it fails: without loops a program cannot
/// run long, but `.a = .a + .a` written 40 times could still double a value 40 times.
pub const MAX_WORK_BYTES: usize = 16 * 1024 * 1024;

/// The names of every function, `del` and `exists` included (docs are checked against it).
pub fn function_names() -> impl Iterator<Item = &'static str> {
    functions::NAMES
        .iter()
        .copied()
        .chain(["del", "exists", functions::enrichment::TABLE_RECORD])
}

/// A compiled program.
#[derive(Clone)]
pub struct Program {
    source: String,
    statements: Box<[tree::Statement]>,
    /// Every field path the program names; the tree refers to them by index.
    paths: Box<[FieldPath]>,
    variables: usize,
}

/// Why a program did not compile, at a 1-based line and column (in characters) of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at line {line}, column {column}: {message}")]
pub struct CompileError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl CompileError {
    fn at(src: &str, offset: usize, message: String) -> Self {
        let (line, column) = line_column(src, offset);
        Self {
            line,
            column,
            message,
        }
    }
}

/// Why a run failed, at the line and column of the expression that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at line {line}, column {column}: {message}")]
pub struct RuntimeError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// How a run that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The program ran to its end; the fields hold its changes.
    Done,
    /// The program reached `abort`; the fields are as they were.
    Aborted,
}

/// A run's working memory, kept between runs so that a run allocates only for the values
/// it builds.
#[derive(Debug, Default)]
pub struct Scratch {
    variables: Vec<Value>,
    undo: Vec<eval::Undo>,
}

/// 1-based line and column (in characters) of byte `offset` in `src`.
fn line_column(src: &str, offset: usize) -> (usize, usize) {
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

impl Program {
    /// [`Program::compile_with_tables`] for a pipeline without enrichment tables.
    pub fn compile(src: &str) -> Result<Program, CompileError> {
        Self::compile_with_tables(src, &Tables::default())
    }

    /// Compiles `src`: parses it, resolves fields, variables, functions and the
    /// enrichment tables it names (in `tables`), compiles regexes, and checks that every
    /// fallible call is handled.
    pub fn compile_with_tables(src: &str, tables: &Tables) -> Result<Program, CompileError> {
        if src.len() > MAX_PROGRAM_BYTES {
            return Err(CompileError {
                line: 1,
                column: 1,
                message: format!(
                    "the program is {} bytes, more than the limit of {MAX_PROGRAM_BYTES}",
                    src.len()
                ),
            });
        }
        let tokens = lexer::lex(src)?;
        let parsed = parser::Parser::new(src, tokens, tables).parse()?;
        Ok(Program {
            source: src.to_string(),
            statements: parsed.statements,
            paths: parsed.paths,
            variables: parsed.variables,
        })
    }

    /// Runs the program over `fields`. On [`Outcome::Aborted`] and on an error, `fields`
    /// are as they were before the run (a field the run deleted comes back last).
    pub fn run(&self, fields: &mut Map, scratch: &mut Scratch) -> Result<Outcome, RuntimeError> {
        eval::run(self, fields, scratch).map_err(|fail| {
            let (line, column) = line_column(&self.source, fail.offset);
            RuntimeError {
                line,
                column,
                message: fail.message,
            }
        })
    }

    /// The program as written.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("statements", &self.statements.len())
            .field("paths", &self.paths.len())
            .field("variables", &self.variables)
            .finish()
    }
}
