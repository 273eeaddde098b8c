//! Reading operands where they lie.
//!
//! A field, a variable or a literal that is an operand of an operator or an argument of a
//! call is read in place rather than evaluated into a copy. Only a *trailing* run of such
//! operands is: the operands before it are evaluated first, in order, so by the time the
//! run is read nothing else is evaluated and a field cannot be read after a `del` in a
//! later operand removed it (`.a + del(.a)` reads `.a` first, as written).

use crate::condition::FieldPath;
use crate::event::{Map, Value};
use crate::remap::tree::{Expr, Node};

pub(super) const NULL: &Value = &Value::Null;

/// What operands are read from: the event's fields and the variables (a literal is read
/// from the program).
#[derive(Clone, Copy)]
pub(super) struct Places<'v> {
    pub(super) paths: &'v [FieldPath],
    pub(super) fields: &'v Map,
    pub(super) variables: &'v [Value],
}

impl<'v> Places<'v> {
    /// The value a field, a variable or a literal reads (`null` for a missing field); `null`
    /// too for any other expression, which callers evaluate instead ([`is_place`]).
    pub(super) fn read(self, node: &'v Node) -> &'v Value {
        match &node.expr {
            Expr::Literal(value) => value,
            Expr::Field(index) => self.paths[*index as usize].get(self.fields).unwrap_or(NULL),
            Expr::Variable(slot) => &self.variables[*slot as usize],
            Expr::VariablePath(slot, path) => match &self.variables[*slot as usize] {
                Value::Object(map) => path.get(map).unwrap_or(NULL),
                _ => NULL,
            },
            _ => NULL,
        }
    }
}

/// Whether `node` is read rather than evaluated: reading it has no effect and cannot fail.
pub(super) fn is_place(node: &Node) -> bool {
    matches!(
        node.expr,
        Expr::Literal(_) | Expr::Field(_) | Expr::Variable(_) | Expr::VariablePath(..)
    )
}

/// Where the trailing run of places among `operands` starts (their number when there is
/// none).
pub(super) fn trailing_places<'n, I>(operands: I) -> usize
where
    I: IntoIterator<Item = &'n Node>,
    I::IntoIter: DoubleEndedIterator + ExactSizeIterator,
{
    let operands = operands.into_iter();
    let len = operands.len();
    len - operands.rev().take_while(|node| is_place(node)).count()
}
