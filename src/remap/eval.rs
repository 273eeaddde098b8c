//! Running a compiled program over an event's fields.
//!
//! Every change to the fields (an assignment, a `del`) pushes an [`Undo`] holding what it
//! replaced, so a run that aborts or fails is rolled back by replaying the log backwards:
//! the event reaches `dropped` or `failed` as it came in, without copying it up front.
//! Variables live in the scratch's slots and are reset per run.
//!
//! Operands are read where they lie when they can be: a field, a variable or a literal
//! given to an operator or a function is borrowed, not copied (a copy of a string is a
//! reference count taken and given back, of an object a deep copy). See [`places`].
//! `fields` changes the fields by path, `arithmetic` holds the operators' value rules,
//! `sum` joins a chain of `+` with one allocation.

mod arithmetic;
mod fields;
mod places;
mod sum;

use std::borrow::Cow;

use super::functions::enrichment::{table_record, TABLE_RECORD};
use super::functions::{type_name, Arg, MAX_ARGS};
use super::tree::{ArithmeticOp, Expr, Node, Statement, Target};
use super::{Outcome, Program, Scratch, MAX_WORK_BYTES};
use crate::condition::{compare_values, FieldPath};
use crate::event::{Map, Value};
use arithmetic::{arithmetic, timestamp_and_text, timestamps_compared_with_text};
use fields::{delete_field, restore, set_field};
use places::{is_place, trailing_places, Places};

/// What one change to the fields replaced.
#[derive(Debug)]
pub(super) struct Undo {
    path: u32,
    /// How many segments of the path lead to the changed key; 0 for the path's exact
    /// (flat, dotted) top-level key.
    depth: usize,
    /// The value the key held, `None` when it did not exist.
    old: Option<Value>,
}

/// A run-time failure, boxed: failing is the rare path, and a one-pointer error keeps
/// `Result<(), Fail>` in a register and `Result<Value, Fail>` no larger than a value.
pub(super) type Fail = Box<Failure>;

/// The offset of the failing expression and why.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) offset: usize,
    pub(super) message: String,
}

enum Flow {
    Continue,
    Abort,
}

struct Run<'a> {
    paths: &'a [FieldPath],
    fields: &'a mut Map,
    variables: &'a mut [Value],
    undo: &'a mut Vec<Undo>,
    work: usize,
}

pub(super) fn run(
    program: &Program,
    fields: &mut Map,
    scratch: &mut Scratch,
) -> Result<Outcome, Fail> {
    scratch.variables.clear();
    scratch.variables.resize(program.variables, Value::Null);
    scratch.undo.clear();
    let mut run = Run {
        paths: &program.paths,
        fields,
        variables: &mut scratch.variables,
        undo: &mut scratch.undo,
        work: 0,
    };
    let result = run.block(&program.statements);
    if !matches!(result, Ok(Flow::Continue)) {
        run.roll_back();
    }
    run.undo.clear();
    match result {
        Ok(Flow::Continue) => Ok(Outcome::Done),
        Ok(Flow::Abort) => Ok(Outcome::Aborted),
        Err(fail) => Err(fail),
    }
}

#[cold]
fn fail(offset: usize, message: impl Into<String>) -> Fail {
    Box::new(Failure {
        offset,
        message: message.into(),
    })
}

impl Run<'_> {
    fn block(&mut self, statements: &[Statement]) -> Result<Flow, Fail> {
        for statement in statements {
            if let Flow::Abort = self.statement(statement)? {
                return Ok(Flow::Abort);
            }
        }
        Ok(Flow::Continue)
    }

    fn statement(&mut self, statement: &Statement) -> Result<Flow, Fail> {
        match statement {
            Statement::Assign {
                target,
                error,
                value,
            } => {
                let result = self.eval(value);
                match error {
                    None => self.assign(*target, result?, value.offset)?,
                    Some(error) => match result {
                        Ok(v) => {
                            self.assign(*target, v, value.offset)?;
                            self.assign(*error, Value::Null, value.offset)?;
                        }
                        Err(f) => {
                            // A field keeps its value; a variable is reset so that a stale
                            // value cannot pass for a result.
                            if let Target::Variable(_) = target {
                                self.assign(*target, Value::Null, value.offset)?;
                            }
                            self.assign(*error, Value::from(f.message), value.offset)?;
                        }
                    },
                }
                Ok(Flow::Continue)
            }
            Statement::If {
                branches,
                otherwise,
            } => {
                for (condition, body) in branches.iter() {
                    if self.boolean(condition, "the condition of `if`")? {
                        return self.block(body);
                    }
                }
                self.block(otherwise)
            }
            Statement::Abort => Ok(Flow::Abort),
            // `del(.x)` as a statement: its value (the removed one) is not wanted, so it is
            // moved into the undo log rather than copied out as well.
            Statement::Expression(Node {
                expr: Expr::Delete(index),
                ..
            }) => {
                self.delete(*index);
                Ok(Flow::Continue)
            }
            Statement::Expression(node) => {
                self.eval(node)?;
                Ok(Flow::Continue)
            }
        }
    }

    fn assign(&mut self, target: Target, value: Value, offset: usize) -> Result<(), Fail> {
        match target {
            Target::Field(index) => {
                let path = &self.paths[index as usize];
                // The log entry is made first and the old value written into it in place.
                self.undo.push(Undo {
                    path: index,
                    depth: 0,
                    old: None,
                });
                if let Some(entry) = self.undo.last_mut() {
                    match set_field(self.fields, path, value, &mut entry.old) {
                        Ok(depth) => entry.depth = depth,
                        Err(m) => {
                            self.undo.pop();
                            return Err(fail(offset, format!("cannot set `.{path}`: {m}")));
                        }
                    }
                }
            }
            Target::Variable(slot) => self.variables[slot as usize] = value,
            Target::Discard => {}
        }
        Ok(())
    }

    fn roll_back(&mut self) {
        while let Some(undo) = self.undo.pop() {
            let path = &self.paths[undo.path as usize];
            restore(self.fields, path, undo.depth, undo.old);
        }
    }

    /// Counts `bytes` against the run's budget.
    fn charge(&mut self, bytes: usize, offset: usize) -> Result<(), Fail> {
        charge(&mut self.work, bytes, offset)
    }

    /// A copied value's cost: strings are shared, not copied; containers are copied.
    fn charge_copy(&mut self, value: &Value, offset: usize) -> Result<(), Fail> {
        charge_copy(&mut self.work, value, offset)
    }

    /// The values operands can be read from in place, and the budget (charged as they are
    /// read), borrowed apart so that both can be used at once.
    fn places(&mut self) -> (Places<'_>, &mut usize) {
        (
            Places {
                paths: self.paths,
                fields: self.fields,
                variables: self.variables,
            },
            &mut self.work,
        )
    }

    /// Removes a field, keeping what it held in the undo log.
    fn delete(&mut self, index: u32) {
        if let Some((depth, old)) = delete_field(self.fields, &self.paths[index as usize]) {
            self.undo.push(Undo {
                path: index,
                depth,
                old: Some(old),
            });
        }
    }

    fn boolean(&mut self, node: &Node, what: &str) -> Result<bool, Fail> {
        match self.eval(node)? {
            Value::Bool(b) => Ok(b),
            other => Err(fail(
                node.offset,
                format!("{what} is {}, not a boolean", type_name(&other)),
            )),
        }
    }

    fn eval(&mut self, node: &Node) -> Result<Value, Fail> {
        let offset = node.offset;
        match &node.expr {
            Expr::Literal(v) => Ok(v.clone()),
            Expr::Field(index) => {
                let value = self.paths[*index as usize]
                    .get(self.fields)
                    .cloned()
                    .unwrap_or(Value::Null);
                self.charge_copy(&value, offset)?;
                Ok(value)
            }
            Expr::Variable(slot) => {
                let value = self.variables[*slot as usize].clone();
                self.charge_copy(&value, offset)?;
                Ok(value)
            }
            Expr::VariablePath(slot, path) => {
                let value = match &self.variables[*slot as usize] {
                    Value::Object(map) => path.get(map).cloned().unwrap_or(Value::Null),
                    _ => Value::Null,
                };
                self.charge_copy(&value, offset)?;
                Ok(value)
            }
            Expr::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items.iter() {
                    out.push(self.eval(item)?);
                }
                Ok(Value::Array(out))
            }
            Expr::Object(entries) => {
                let mut map = Map::with_capacity(entries.len());
                for (key, value) in entries.iter() {
                    let value = self.eval(value)?;
                    map.push_unchecked(key.clone(), value);
                }
                Ok(Value::Object(map))
            }
            Expr::Not(inner) => Ok(Value::Bool(!self.boolean(inner, "the operand of `!`")?)),
            Expr::Negate(inner) => match self.eval(inner)? {
                Value::Integer(i) => i
                    .checked_neg()
                    .map(Value::Integer)
                    .ok_or_else(|| fail(offset, "integer overflow")),
                Value::Float(f) => Ok(Value::Float(-f)),
                other => Err(fail(offset, format!("cannot negate {}", type_name(&other)))),
            },
            Expr::Arithmetic(ArithmeticOp::Add, ..) => self.sum(node),
            Expr::Arithmetic(op, left, right) => {
                let (l, r) = self.pair(left, right)?;
                let (places, work) = self.places();
                let l = read(places, work, left, &l)?;
                let r = read(places, work, right, &r)?;
                arithmetic(*op, l, r).map_err(|m| fail(offset, m))
            }
            Expr::Compare {
                op,
                severity,
                left,
                right,
            } => {
                let both = is_place(left) && is_place(right);
                let (l, r) = self.pair(left, right)?;
                let (places, work) = self.places();
                let (l, r) = if both {
                    // Nothing is copied, so nothing is charged.
                    (places.read(left), places.read(right))
                } else {
                    (
                        read(places, work, left, &l)?,
                        read(places, work, right, &r)?,
                    )
                };
                if timestamp_and_text(l, r) {
                    let (l, r) = timestamps_compared_with_text(l.clone(), r.clone());
                    return Ok(Value::Bool(compare_values(*op, &l, &r, *severity)));
                }
                Ok(Value::Bool(compare_values(*op, l, r, *severity)))
            }
            Expr::And(left, right) => Ok(Value::Bool(
                self.boolean(left, "the left side of `&&`")?
                    && self.boolean(right, "the right side of `&&`")?,
            )),
            Expr::Or(left, right) => Ok(Value::Bool(
                self.boolean(left, "the left side of `||`")?
                    || self.boolean(right, "the right side of `||`")?,
            )),
            Expr::Coalesce(left, right) => match self.eval(left) {
                Ok(v) => Ok(v),
                Err(_) => self.eval(right),
            },
            Expr::Call(call) => {
                let nodes = &call.args[..];
                let in_place = trailing_places(nodes);
                let mut args: [Arg<'_>; MAX_ARGS] = Default::default();
                for (slot, arg) in args.iter_mut().zip(&nodes[..in_place]) {
                    *slot = Cow::Owned(self.eval(arg)?);
                }
                let (places, work) = self.places();
                for (slot, arg) in args[in_place..].iter_mut().zip(&nodes[in_place..]) {
                    // Charged as a copy: a function may keep (copy) a borrowed argument.
                    *slot = Cow::Borrowed(read(places, work, arg, &None)?);
                }
                let name = call.function.name();
                let value = call
                    .function
                    .call(&mut args[..nodes.len()], call.regex.as_ref())
                    .map_err(|m| fail(offset, format!("`{name}` failed: {m}")))?;
                if let Value::Bytes(b) = &value {
                    self.charge(b.len(), offset)?;
                }
                Ok(value)
            }
            Expr::TableRecord(lookup) => {
                let conditions = self.eval(&lookup.conditions)?;
                let record = table_record(&lookup.table, &conditions)
                    .map_err(|m| fail(offset, format!("`{TABLE_RECORD}` failed: {m}")))?;
                self.charge_copy(&record, offset)?;
                Ok(record)
            }
            Expr::Delete(index) => {
                let path = &self.paths[*index as usize];
                match delete_field(self.fields, path) {
                    Some((depth, old)) => {
                        let value = old.clone();
                        self.charge_copy(&value, offset)?;
                        self.undo.push(Undo {
                            path: *index,
                            depth,
                            old: Some(old),
                        });
                        Ok(value)
                    }
                    None => Ok(Value::Null),
                }
            }
            Expr::Exists(index) => Ok(Value::Bool(
                self.paths[*index as usize].get(self.fields).is_some(),
            )),
        }
    }

    /// Evaluates the two operands of a binary operator in order, leaving those that can be
    /// read in place (`None`) for [`read`].
    fn pair(&mut self, left: &Node, right: &Node) -> Result<(Option<Value>, Option<Value>), Fail> {
        let (left_in_place, right_in_place) = match trailing_places([left, right]) {
            0 => (true, true),
            1 => (false, true),
            _ => (false, false),
        };
        let l = if left_in_place {
            None
        } else {
            Some(self.eval(left)?)
        };
        let r = if right_in_place {
            None
        } else {
            Some(self.eval(right)?)
        };
        Ok((l, r))
    }
}

/// An operand: the value it was evaluated to, or (`None`) the place it is read from,
/// charged as a copy as evaluating it would have been.
fn read<'v>(
    places: Places<'v>,
    work: &mut usize,
    node: &'v Node,
    evaluated: &'v Option<Value>,
) -> Result<&'v Value, Fail> {
    match evaluated {
        Some(value) => Ok(value),
        None => {
            let value = places.read(node);
            charge_copy(work, value, node.offset)?;
            Ok(value)
        }
    }
}

/// Counts `bytes` against a run's budget (`work`).
fn charge(work: &mut usize, bytes: usize, offset: usize) -> Result<(), Fail> {
    *work = work.saturating_add(bytes);
    if *work > MAX_WORK_BYTES {
        return Err(fail(
            offset,
            format!("the program built more than {MAX_WORK_BYTES} bytes of values"),
        ));
    }
    Ok(())
}

/// A copied value's cost: strings are shared, not copied; containers are copied.
fn charge_copy(work: &mut usize, value: &Value, offset: usize) -> Result<(), Fail> {
    match value {
        Value::Array(_) | Value::Object(_) => charge(work, value.size_estimate(), offset),
        _ => Ok(()),
    }
}
