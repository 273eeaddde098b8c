//! Running a compiled program over an event's fields.
//!
//! Every change to the fields (an assignment, a `del`) pushes an [`Undo`] holding what it
//! replaced, so a run that aborts or fails is rolled back by replaying the log backwards:
//! the event reaches `dropped` or `failed` as it came in, without copying it up front.
//! Variables live in the scratch's slots and are reset per run.

use compact_str::CompactString;

use super::functions::enrichment::{table_record, TABLE_RECORD};
use super::functions::{type_name, MAX_ARGS};
use super::tree::{ArithmeticOp, Expr, Node, Statement, Target};
use super::{Outcome, Program, Scratch, MAX_WORK_BYTES};
use crate::condition::{compare_values, FieldPath};
use crate::event::{Map, Value};

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

/// A run-time failure: the offset of the failing expression and why.
#[derive(Debug)]
pub(super) struct Fail {
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

fn fail(offset: usize, message: impl Into<String>) -> Fail {
    Fail {
        offset,
        message: message.into(),
    }
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
                match (self.eval(value), error) {
                    (Ok(v), None) => self.assign(*target, v, value.offset)?,
                    (Ok(v), Some(error)) => {
                        self.assign(*target, v, value.offset)?;
                        self.assign(*error, Value::Null, value.offset)?;
                    }
                    (Err(f), Some(error)) => {
                        // A field keeps its value; a variable is reset so that a stale
                        // value cannot pass for a result.
                        if let Target::Variable(_) = target {
                            self.assign(*target, Value::Null, value.offset)?;
                        }
                        self.assign(*error, Value::from(f.message), value.offset)?;
                    }
                    (Err(f), None) => return Err(f),
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
                let (depth, old) = set_field(self.fields, path, value)
                    .map_err(|m| fail(offset, format!("cannot set `.{path}`: {m}")))?;
                self.undo.push(Undo {
                    path: index,
                    depth,
                    old,
                });
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
        self.work = self.work.saturating_add(bytes);
        if self.work > MAX_WORK_BYTES {
            return Err(fail(
                offset,
                format!("the program built more than {MAX_WORK_BYTES} bytes of values"),
            ));
        }
        Ok(())
    }

    /// A copied value's cost: strings are shared, not copied; containers are copied.
    fn charge_copy(&mut self, value: &Value, offset: usize) -> Result<(), Fail> {
        match value {
            Value::Array(_) | Value::Object(_) => self.charge(value.size_estimate(), offset),
            _ => Ok(()),
        }
    }

    /// The value of a field or a literal, without copying it; `None` for anything else.
    fn peek<'s>(&'s self, node: &'s Node) -> Option<&'s Value> {
        const NULL: &Value = &Value::Null;
        match &node.expr {
            Expr::Literal(v) => Some(v),
            Expr::Field(index) => {
                Some(self.paths[*index as usize].get(self.fields).unwrap_or(NULL))
            }
            _ => None,
        }
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
            Expr::Arithmetic(op, left, right) => {
                let l = self.eval(left)?;
                let r = self.eval(right)?;
                if let (ArithmeticOp::Add, Value::Bytes(a), Value::Bytes(b)) = (op, &l, &r) {
                    self.charge(a.len() + b.len(), offset)?;
                }
                arithmetic(*op, l, r).map_err(|m| fail(offset, m))
            }
            Expr::Compare {
                op,
                severity,
                left,
                right,
            } => {
                // Fields and literals are compared where they are, not copied (a copy of a
                // string is a reference count taken and given back).
                if let (Some(l), Some(r)) = (self.peek(left), self.peek(right)) {
                    if !timestamp_and_text(l, r) {
                        return Ok(Value::Bool(compare_values(*op, l, r, *severity)));
                    }
                }
                let l = self.eval(left)?;
                let r = self.eval(right)?;
                let (l, r) = timestamps_compared_with_text(l, r);
                Ok(Value::Bool(compare_values(*op, &l, &r, *severity)))
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
                let mut args: [Value; MAX_ARGS] = Default::default();
                for (slot, arg) in args.iter_mut().zip(call.args.iter()) {
                    *slot = self.eval(arg)?;
                }
                let name = call.function.name();
                let value = call
                    .function
                    .call(&mut args[..call.args.len()], call.regex.as_ref())
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
}

/// Whether [`timestamps_compared_with_text`] would change anything.
fn timestamp_and_text(l: &Value, r: &Value) -> bool {
    matches!(
        (l, r),
        (Value::Timestamp(_), Value::Bytes(_)) | (Value::Bytes(_), Value::Timestamp(_))
    )
}

/// A timestamp compared with text reads the text as a time, as a condition reads an
/// RFC 3339 literal (`.timestamp >= "2024-05-01T00:00:00Z"`); text that is no time stays
/// text, unequal to the timestamp.
fn timestamps_compared_with_text(l: Value, r: Value) -> (Value, Value) {
    let as_time = |v: Value| match &v {
        Value::Bytes(b) => crate::parse::parse_timestamp(b, 0).map_or(v, Value::Timestamp),
        _ => v,
    };
    match (&l, &r) {
        (Value::Timestamp(_), Value::Bytes(_)) => (l, as_time(r)),
        (Value::Bytes(_), Value::Timestamp(_)) => (as_time(l), r),
        _ => (l, r),
    }
}

/// `l op r`. Integers stay integers (overflow fails) except in `/`, which always gives a
/// float as in VRL; a float on either side makes a float; `+` joins two strings.
fn arithmetic(op: ArithmeticOp, l: Value, r: Value) -> Result<Value, String> {
    use ArithmeticOp as Op;
    let overflow = || "integer overflow".to_string();
    match (op, l, r) {
        (Op::Add, Value::Bytes(a), Value::Bytes(b)) => {
            if a.is_empty() {
                return Ok(Value::Bytes(b));
            }
            let mut joined = Vec::with_capacity(a.len() + b.len());
            joined.extend_from_slice(&a);
            joined.extend_from_slice(&b);
            Ok(Value::Bytes(joined.into()))
        }
        (_, Value::Integer(_) | Value::Float(_), Value::Integer(0))
            if matches!(op, Op::Divide | Op::Remainder) =>
        {
            Err("division by zero".into())
        }
        (_, Value::Integer(_) | Value::Float(_), Value::Float(f))
            if f == 0.0 && matches!(op, Op::Divide | Op::Remainder) =>
        {
            Err("division by zero".into())
        }
        (op, Value::Integer(a), Value::Integer(b)) => match op {
            Op::Add => a.checked_add(b).map(Value::Integer).ok_or_else(overflow),
            Op::Subtract => a.checked_sub(b).map(Value::Integer).ok_or_else(overflow),
            Op::Multiply => a.checked_mul(b).map(Value::Integer).ok_or_else(overflow),
            Op::Divide => Ok(Value::Float(a as f64 / b as f64)),
            Op::Remainder => a.checked_rem(b).map(Value::Integer).ok_or_else(overflow),
        },
        (
            op,
            l @ (Value::Integer(_) | Value::Float(_)),
            r @ (Value::Integer(_) | Value::Float(_)),
        ) => {
            let (a, b) = (as_float(&l), as_float(&r));
            let result = match op {
                Op::Add => a + b,
                Op::Subtract => a - b,
                Op::Multiply => a * b,
                Op::Divide => a / b,
                Op::Remainder => a % b,
            };
            if result.is_finite() {
                Ok(Value::Float(result))
            } else {
                Err("the result is too large for a float".into())
            }
        }
        (op, l, r) => Err(format!(
            "cannot apply `{}` to {} and {}",
            op.symbol(),
            type_name(&l),
            type_name(&r)
        )),
    }
}

fn as_float(v: &Value) -> f64 {
    match v {
        Value::Integer(i) => *i as f64,
        Value::Float(f) => *f,
        _ => 0.0,
    }
}

/// Sets `path` to `value`, creating the objects on the way, and returns what the undo log
/// needs: the depth of the key it changed and that key's old value. A path whose flat
/// dotted key exists at the top (`"http.status"`) sets that key, as reading it would.
fn set_field(
    map: &mut Map,
    path: &FieldPath,
    value: Value,
) -> Result<(usize, Option<Value>), String> {
    if let Some(exact) = path.exact_key() {
        if let Some(slot) = map.get_mut(exact) {
            return Ok((0, Some(std::mem::replace(slot, value))));
        }
    }
    set_in(map, path.segments(), value, 1)
}

fn set_in(
    map: &mut Map,
    segments: &[CompactString],
    value: Value,
    depth: usize,
) -> Result<(usize, Option<Value>), String> {
    let Some((first, rest)) = segments.split_first() else {
        return Err("empty path".into());
    };
    if rest.is_empty() {
        return Ok((depth, map.insert(first.clone(), value)));
    }
    match map.get_mut(first) {
        Some(Value::Object(inner)) => set_in(inner, rest, value, depth + 1),
        Some(other) => Err(format!("`{first}` is {}, not an object", type_name(other))),
        None => {
            let mut nested = value;
            for segment in rest.iter().rev() {
                let mut object = Map::with_capacity(1);
                object.push_unchecked(segment.clone(), nested);
                nested = Value::Object(object);
            }
            map.insert(first.clone(), nested);
            Ok((depth, None))
        }
    }
}

/// Removes `path`; returns the depth of the removed key and its value.
fn delete_field(map: &mut Map, path: &FieldPath) -> Option<(usize, Value)> {
    if let Some(exact) = path.exact_key() {
        if let Some(old) = map.remove(exact) {
            return Some((0, old));
        }
    }
    let segments = path.segments();
    let (last, parents) = segments.split_last()?;
    let parent = object_at(map, parents)?;
    parent.remove(last).map(|old| (segments.len(), old))
}

fn object_at<'m>(map: &'m mut Map, segments: &[CompactString]) -> Option<&'m mut Map> {
    let mut current = map;
    for segment in segments {
        match current.get_mut(segment) {
            Some(Value::Object(inner)) => current = inner,
            _ => return None,
        }
    }
    Some(current)
}

/// Puts back what a change replaced: `old` at the key `depth` segments down `path`, or
/// no key there when `old` is `None`.
fn restore(map: &mut Map, path: &FieldPath, depth: usize, old: Option<Value>) {
    let (parent, key): (Option<&mut Map>, &str) = if depth == 0 {
        (Some(map), path.exact_key().unwrap_or_default())
    } else {
        let segments = &path.segments()[..depth];
        let Some((last, parents)) = segments.split_last() else {
            return;
        };
        (object_at(map, parents), last.as_str())
    };
    let Some(parent) = parent else {
        return;
    };
    match old {
        Some(value) => {
            parent.insert(key, value);
        }
        None => {
            parent.remove(key);
        }
    }
}
