//! `a + b + c ...`: a chain of `+` evaluated at once, so that strings are joined with one
//! allocation of their summed length instead of one per `+` (each copying the text so
//! far), and fields and literals among them are read in place.
//!
//! The result, the failures and the budget charged are those of adding pairwise, left to
//! right: operands are evaluated in order, every `+` of two strings charges the length of
//! the text so far plus the next, and a `+` that fails fails at its own offset after the
//! operands before it and before those after it.

use super::places::{trailing_places, NULL};
use super::{arithmetic, charge, read, Fail, Run};
use crate::event::Value;
use crate::remap::tree::{ArithmeticOp, Expr, Node};

/// The most operands joined at once; the rest of a longer chain (its start) is one
/// operand, a chain of its own.
const CHAIN: usize = 8;

/// The operands so far.
enum Sum {
    /// All strings, of `len` bytes in all: joined at the end.
    Strings(usize),
    /// Their sum, once the first was not a string (numbers, or a failure to come).
    Value(Value),
}

impl Sum {
    /// The state after the chain's first operand.
    fn start(first: &Value) -> Sum {
        match first {
            Value::Bytes(b) => Sum::Strings(b.len()),
            other => Sum::Value(other.clone()),
        }
    }

    /// Adds the next operand, `value`, by the `+` at `offset`.
    fn add(&mut self, work: &mut usize, value: &Value, offset: usize) -> Result<(), Fail> {
        use ArithmeticOp::Add;
        match (&mut *self, value) {
            (Sum::Strings(len), Value::Bytes(b)) => {
                charge(work, *len + b.len(), offset)?;
                *len += b.len();
                Ok(())
            }
            // A string plus anything but a string fails, whatever the text: the message
            // is `arithmetic`'s.
            (Sum::Strings(_), _) => {
                let empty = Value::Bytes(bytes::Bytes::new());
                match arithmetic(Add, &empty, value) {
                    Err(message) => Err(super::fail(offset, message)),
                    Ok(_) => Ok(()),
                }
            }
            (Sum::Value(so_far), _) => {
                if let (Value::Bytes(a), Value::Bytes(b)) = (&*so_far, value) {
                    charge(work, a.len() + b.len(), offset)?;
                }
                *so_far = arithmetic(Add, so_far, value).map_err(|m| super::fail(offset, m))?;
                Ok(())
            }
        }
    }
}

impl Run<'_> {
    /// Evaluates the chain of `+` whose last `+` is `node`.
    pub(super) fn sum(&mut self, node: &Node) -> Result<Value, Fail> {
        // The operands, first to last, each with the offset of the `+` before it.
        let mut operands: [(&Node, usize); CHAIN] = [(node, 0); CHAIN];
        let mut n = 0;
        let mut rest = node;
        while n < CHAIN - 1 {
            let Expr::Arithmetic(ArithmeticOp::Add, left, right) = &rest.expr else {
                break;
            };
            operands[n] = (right, rest.offset);
            n += 1;
            rest = left;
        }
        operands[n] = (rest, 0);
        n += 1;
        let operands = &mut operands[..n];
        operands.reverse();

        let in_place = trailing_places(operands.iter().map(|(node, _)| *node));
        let mut sum = Sum::Strings(0);
        let mut evaluated: [Value; CHAIN] = Default::default();
        for (i, &(operand, offset)) in operands[..in_place].iter().enumerate() {
            evaluated[i] = self.eval(operand)?;
            if i == 0 {
                sum = Sum::start(&evaluated[0]);
            } else {
                sum.add(&mut self.work, &evaluated[i], offset)?;
            }
        }
        let (places, work) = self.places();
        let mut read_in_place: [&Value; CHAIN] = [NULL; CHAIN];
        for (i, &(operand, offset)) in operands.iter().enumerate().skip(in_place) {
            let value = read(places, work, operand, &None)?;
            read_in_place[i] = value;
            if i == 0 {
                sum = Sum::start(value);
            } else {
                sum.add(work, value, offset)?;
            }
        }
        Ok(match sum {
            Sum::Value(value) => value,
            Sum::Strings(len) => join(
                evaluated[..in_place]
                    .iter()
                    .chain(read_in_place[in_place..n].iter().copied()),
                len,
            ),
        })
    }
}

/// Strings of `len` bytes in all, joined with one allocation; when one of them holds all
/// the text (the others are empty) it is shared, not copied.
fn join<'v>(pieces: impl Iterator<Item = &'v Value> + Clone, len: usize) -> Value {
    let text = |piece: &'v Value| match piece {
        Value::Bytes(b) => &b[..],
        _ => &[][..],
    };
    if let Some(Value::Bytes(whole)) = pieces.clone().find(|p| text(p).len() == len) {
        return Value::Bytes(whole.clone());
    }
    let mut joined = Vec::with_capacity(len);
    for piece in pieces {
        joined.extend_from_slice(text(piece));
    }
    Value::Bytes(joined.into())
}
