//! The compiled form of a program: statements and expressions with every name resolved
//! (fields to paths, variables to slots, functions to [`Function`]s, regexes compiled),
//! so evaluation never looks at program text.

use compact_str::CompactString;

use super::functions::Function;
use crate::condition::{CmpOp, FieldPath};
use crate::enrichment::TableHandle;
use crate::event::Value;

/// An expression and the byte offset in the program it starts at, for run-time errors.
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub(super) expr: Expr,
    pub(super) offset: usize,
}

#[derive(Debug, Clone)]
pub(super) enum Expr {
    Literal(Value),
    /// An event field, by index into [`super::Program`]'s paths.
    Field(u32),
    Variable(u32),
    /// A path inside a variable's value (`parsed.status`).
    VariablePath(u32, FieldPath),
    Array(Box<[Node]>),
    Object(Box<[(CompactString, Node)]>),
    Not(Box<Node>),
    Negate(Box<Node>),
    Arithmetic(ArithmeticOp, Box<Node>, Box<Node>),
    Compare {
        op: CmpOp,
        /// One side is the field `level`: severity names compare by rank, as in conditions.
        severity: bool,
        left: Box<Node>,
        right: Box<Node>,
    },
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    /// `left ?? right`: `right` when `left` fails.
    Coalesce(Box<Node>, Box<Node>),
    Call(Box<Call>),
    /// `get_enrichment_table_record("table", conditions)`.
    TableRecord(Box<TableRecord>),
    Delete(u32),
    Exists(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ArithmeticOp {
    Add,
    Subtract,
    Multiply,
    Divide,
    Remainder,
}

impl ArithmeticOp {
    pub(super) fn symbol(self) -> &'static str {
        match self {
            ArithmeticOp::Add => "+",
            ArithmeticOp::Subtract => "-",
            ArithmeticOp::Multiply => "*",
            ArithmeticOp::Divide => "/",
            ArithmeticOp::Remainder => "%",
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Call {
    pub(super) function: Function,
    pub(super) args: Box<[Node]>,
    /// A regex literal argument, compiled at load; its slot in `args` is a `null`.
    pub(super) regex: Option<regex::bytes::Regex>,
}

/// A lookup in an enrichment table, resolved when the program compiled. The handle is
/// read at each call, so a table reloaded since is seen by the next event.
#[derive(Debug, Clone)]
pub(super) struct TableRecord {
    pub(super) table: TableHandle,
    /// Evaluates to an object of `field: value` conditions.
    pub(super) conditions: Node,
}

#[derive(Debug, Clone)]
pub(super) enum Statement {
    Assign {
        target: Target,
        /// `target, error = value`: the error's text lands here and `target` gets `null`
        /// when `value` fails; without it a failure fails the event.
        error: Option<Target>,
        value: Node,
    },
    If {
        branches: Box<[(Node, Box<[Statement]>)]>,
        otherwise: Box<[Statement]>,
    },
    Abort,
    Expression(Node),
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Target {
    Field(u32),
    Variable(u32),
    /// `_`: the value is thrown away.
    Discard,
}
