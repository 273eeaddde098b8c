//! Many compiled conditions evaluated together over one event.
//!
//! Alert rules check on the order of a hundred conditions per event. Checked one by one,
//! each condition walks its own tree and looks its fields up by a linear scan of the event's
//! [`Map`]; most of that work repeats across conditions (`status >= 500`, `status >= 503`,
//! ... look `status` up again each time and compare it with one literal each).
//!
//! A [`ConditionSet`] instead flattens every condition into *atoms* (its leaves) and a small
//! boolean program over atom ids. Per event:
//!
//! 1. each distinct field path is looked up once;
//! 2. comparisons of one field against literals of one kind with one operator form a
//!    *group* whose literals are sorted, with contiguous atom ids in sorted order, so that
//!    the atoms true for the event's value are one contiguous range (or the complement of
//!    one, for `!=`), found by binary search and written with two slice fills;
//! 3. other atoms (`contains`, `matches`, `in`, `exists`, field-against-field) are evaluated
//!    by the condition tree's own code;
//! 4. each condition combines its atoms: conditions that are one (possibly negated) atom,
//!    or an `and`/`or` of such, in loops of their own without dispatch (a recursive call
//!    per condition cost more than all the comparisons); others by a small program.
//!
//! Exactness: the fast path only handles value/literal pairs whose outcome is a plain
//! ordering of one kind of key (i64, f64, bytes, severity rank) or "unequal to every
//! literal"; anything else (a number against string literals, timestamps, booleans, ...)
//! falls back to [`eval::compare_with_literal`], the very function the tree uses, one atom
//! at a time. The proptest in `set_tests.rs` checks the set against
//! [`Condition::check_fields`] on random conditions and events.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use bytes::Bytes;

use super::eval::{self, Literal, Node, Num, Operand};
use super::lexer::CmpOp;
use super::path::FieldPath;
use super::{severity_rank, Condition};
use crate::event::{Map, Value};

/// Many conditions compiled together: fields looked up once per event, comparisons of one
/// field against many literals answered by binary search.
#[derive(Debug, Clone)]
pub struct ConditionSet {
    /// Distinct field paths of indexable comparisons, each with its groups.
    paths: Box<[PathEntry]>,
    /// Groups, ordered by path so that each path's groups are one contiguous run.
    groups: Box<[Group]>,
    /// Atoms evaluated by the tree's own code, and their ids.
    generic: Box<[(u32, Node)]>,
    /// Conditions that are one atom, possibly negated (most alert conditions): one array
    /// read each, in a loop without dispatch.
    singles: Box<[Single]>,
    /// Conditions that are an `and` or an `or` of (possibly negated) atoms.
    clauses: Box<[Clause]>,
    /// The atoms of `clauses`, as `(atom id, negated)`.
    clause_atoms: Box<[(u32, bool)]>,
    /// Every other condition, as a program over atom ids.
    trees: Box<[(u32, Program)]>,
    condition_count: usize,
    atom_count: usize,
}

/// Per-event scratch and results, reusable across events: after the first evaluation with a
/// given set, evaluating again allocates nothing.
#[derive(Debug, Default, Clone)]
pub struct SetResults {
    atoms: Vec<bool>,
    results: Vec<bool>,
}

impl SetResults {
    /// Whether condition `i` matched the last evaluated event (`false` when out of range).
    pub fn get(&self, i: usize) -> bool {
        self.results.get(i).copied().unwrap_or(false)
    }

    /// Every condition's result, in the order the conditions were given.
    pub fn as_slice(&self) -> &[bool] {
        &self.results
    }
}

#[derive(Debug, Clone)]
struct PathEntry {
    path: FieldPath,
    /// Some group of this path compares by severity, so the value's rank is needed.
    needs_rank: bool,
    /// Some group of this path has numeric literals, so a string value is parsed once.
    needs_num: bool,
    groups: std::ops::Range<usize>,
}

/// Condition `condition` is atom `atom`, negated if `negate`.
#[derive(Debug, Clone, Copy)]
struct Single {
    condition: u32,
    atom: u32,
    negate: bool,
}

/// Condition `condition` is the `and` (or, if `any`, the `or`) of `clause_atoms[atoms]`.
#[derive(Debug, Clone)]
struct Clause {
    condition: u32,
    any: bool,
    atoms: std::ops::Range<usize>,
}

/// Comparisons `path op literal` with one operator, one literal class and one severity
/// flag; atom ids `start..start + len` in ascending literal order.
#[derive(Debug, Clone)]
struct Group {
    op: CmpOp,
    severity: bool,
    start: usize,
    keys: Keys,
    /// The literals in the same (sorted) order, for the per-atom fallback.
    lits: Box<[Literal]>,
}

/// Sorted literal keys of a group.
#[derive(Debug, Clone)]
enum Keys {
    Int(Box<[i64]>),
    /// Never NaN (a NaN literal is in [`Keys::Other`]).
    Float(Box<[f64]>),
    Str(Box<[Bytes]>),
    /// Severity names in a `level` comparison.
    Rank(Box<[u8]>),
    /// Booleans, null, NaN: always evaluated one by one (rare in practice).
    Other,
}

/// The kind of a group's literals, which decides how its keys are sorted and searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Int,
    Float,
    Str,
    Rank,
    Other,
}

impl Class {
    fn of(lit: &Literal, severity: bool) -> Class {
        match &lit.value {
            Value::Bytes(_) if severity && lit.rank().is_some() => Class::Rank,
            Value::Integer(_) => Class::Int,
            Value::Float(f) if !f.is_nan() => Class::Float,
            Value::Bytes(_) => Class::Str,
            _ => Class::Other,
        }
    }

    /// Sorts a group's atoms by literal and returns their keys in that order.
    fn sort_and_key(self, atoms: &mut [Indexed]) -> Keys {
        match self {
            Class::Int => {
                atoms.sort_by_key(|a| int_of(&a.lit));
                Keys::Int(atoms.iter().filter_map(|a| int_of(&a.lit)).collect())
            }
            Class::Float => {
                let key = |a: &Indexed| float_of(&a.lit).unwrap_or(0.0);
                atoms.sort_by(|a, b| key(a).total_cmp(&key(b)));
                Keys::Float(atoms.iter().filter_map(|a| float_of(&a.lit)).collect())
            }
            Class::Str => {
                atoms.sort_by_key(|a| bytes_of(&a.lit));
                Keys::Str(atoms.iter().filter_map(|a| bytes_of(&a.lit)).collect())
            }
            Class::Rank => {
                atoms.sort_by_key(|a| a.lit.rank());
                Keys::Rank(atoms.iter().filter_map(|a| a.lit.rank()).collect())
            }
            Class::Other => Keys::Other,
        }
    }
}

/// How an event value relates to a whole group.
enum Probe<'a> {
    /// The field is missing: every comparison is false, `!=` included.
    Missing,
    /// Present but comparable with none of the literals: only `!=` is true.
    Unequal,
    /// Evaluate each atom with the tree's semantics.
    Fallback,
    Int(i64),
    Float(f64),
    Str(&'a [u8]),
    Rank(u8),
}

/// A condition's boolean structure over atom ids.
#[derive(Debug, Clone)]
enum Program {
    Atom(u32),
    Const(bool),
    Not(Box<Program>),
    And(Box<[Program]>),
    Or(Box<[Program]>),
}

impl Program {
    fn eval(&self, atoms: &[bool]) -> bool {
        match self {
            Program::Atom(i) => atoms.get(*i as usize).copied().unwrap_or(false),
            Program::Const(b) => *b,
            Program::Not(p) => !p.eval(atoms),
            Program::And(ps) => ps.iter().all(|p| p.eval(atoms)),
            Program::Or(ps) => ps.iter().any(|p| p.eval(atoms)),
        }
    }

    /// The atom and whether it is negated, when the program is one atom or `not` of one.
    fn literal(&self) -> Option<(u32, bool)> {
        match self {
            Program::Atom(i) => Some((*i, false)),
            Program::Not(p) => match **p {
                Program::Atom(i) => Some((i, true)),
                _ => None,
            },
            _ => None,
        }
    }

    fn remap(&mut self, map: &[u32]) {
        match self {
            Program::Atom(i) => *i = map[*i as usize],
            Program::Const(_) => {}
            Program::Not(p) => p.remap(map),
            Program::And(ps) | Program::Or(ps) => ps.iter_mut().for_each(|p| p.remap(map)),
        }
    }
}

/// `a op b` written as `b flip(op) a`.
fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        other => other,
    }
}

fn op_code(op: CmpOp) -> u8 {
    match op {
        CmpOp::Eq => 0,
        CmpOp::Ne => 1,
        CmpOp::Lt => 2,
        CmpOp::Le => 3,
        CmpOp::Gt => 4,
        CmpOp::Ge => 5,
    }
}

/// An indexable comparison before grouping: `paths[path] op lit`, temporary atom id `tmp`.
struct Indexed {
    path: usize,
    op: CmpOp,
    severity: bool,
    lit: Literal,
    tmp: u32,
}

#[derive(Default)]
struct Builder {
    paths: Vec<FieldPath>,
    indexed: Vec<Indexed>,
    generic: Vec<(u32, Node)>,
    next_tmp: u32,
}

impl Builder {
    fn tmp(&mut self) -> u32 {
        let id = self.next_tmp;
        self.next_tmp += 1;
        id
    }

    fn path_index(&mut self, path: &FieldPath) -> usize {
        match self.paths.iter().position(|p| p == path) {
            Some(i) => i,
            None => {
                self.paths.push(path.clone());
                self.paths.len() - 1
            }
        }
    }

    fn flatten(&mut self, node: &Node) -> Program {
        match node {
            Node::Const(b) => Program::Const(*b),
            Node::Not(inner) => Program::Not(Box::new(self.flatten(inner))),
            Node::And(items) => Program::And(items.iter().map(|n| self.flatten(n)).collect()),
            Node::Or(items) => Program::Or(items.iter().map(|n| self.flatten(n)).collect()),
            Node::Compare {
                op,
                left,
                right,
                severity,
            } => {
                // The relation is antisymmetric (`relation(a, b)` is the reverse of
                // `relation(b, a)` in every case), so a literal on the left is the same
                // comparison with the operator flipped.
                let (path, op, lit) = match (left, right) {
                    (Operand::Field(p), Operand::Lit(l)) => (p, *op, l),
                    (Operand::Lit(l), Operand::Field(p)) => (p, flip(*op), l),
                    _ => return self.push_generic(node),
                };
                let path = self.path_index(path);
                let tmp = self.tmp();
                self.indexed.push(Indexed {
                    path,
                    op,
                    severity: *severity,
                    lit: lit.clone(),
                    tmp,
                });
                Program::Atom(tmp)
            }
            Node::In { .. } | Node::Contains { .. } | Node::Matches { .. } | Node::Exists(_) => {
                self.push_generic(node)
            }
        }
    }

    fn push_generic(&mut self, node: &Node) -> Program {
        let tmp = self.tmp();
        self.generic.push((tmp, node.clone()));
        Program::Atom(tmp)
    }
}

impl ConditionSet {
    pub fn new(conditions: &[Condition]) -> Self {
        let mut b = Builder::default();
        let programs: Vec<Program> = conditions.iter().map(|c| b.flatten(&c.root)).collect();

        // Group indexable atoms by (path, severity, class, op); the BTreeMap orders groups by
        // path, so each path's groups are contiguous.
        let mut grouped: BTreeMap<(usize, bool, Class, u8), Vec<Indexed>> = BTreeMap::new();
        for atom in std::mem::take(&mut b.indexed) {
            let key = (
                atom.path,
                atom.severity,
                Class::of(&atom.lit, atom.severity),
                op_code(atom.op),
            );
            grouped.entry(key).or_default().push(atom);
        }

        let mut remap = vec![0u32; b.next_tmp as usize];
        let mut next = 0u32;
        let mut groups = Vec::with_capacity(grouped.len());
        let mut paths: Vec<PathEntry> = b
            .paths
            .iter()
            .map(|p| PathEntry {
                path: p.clone(),
                needs_rank: false,
                needs_num: false,
                groups: 0..0,
            })
            .collect();
        for ((path, severity, class, _), mut atoms) in grouped {
            let keys = class.sort_and_key(&mut atoms);
            let start = next as usize;
            for a in &atoms {
                remap[a.tmp as usize] = next;
                next += 1;
            }
            let entry = &mut paths[path];
            if entry.groups.is_empty() {
                entry.groups = groups.len()..groups.len();
            }
            entry.groups.end = groups.len() + 1;
            entry.needs_rank |= severity;
            entry.needs_num |= matches!(keys, Keys::Int(_) | Keys::Float(_));
            groups.push(Group {
                op: atoms.first().map_or(CmpOp::Eq, |a| a.op),
                severity,
                start,
                keys,
                lits: atoms.into_iter().map(|a| a.lit).collect(),
            });
        }
        let mut generic = b.generic;
        for (id, _) in &mut generic {
            remap[*id as usize] = next;
            *id = next;
            next += 1;
        }
        // Calling `Program::eval` per condition costs more than all the comparisons (a
        // call and a dispatch each): the common shapes get loops of their own.
        let mut singles = Vec::new();
        let mut clauses = Vec::new();
        let mut clause_atoms = Vec::new();
        let mut trees = Vec::new();
        for (condition, mut p) in programs.into_iter().enumerate() {
            p.remap(&remap);
            let condition = condition as u32;
            if let Some((atom, negate)) = p.literal() {
                singles.push(Single {
                    condition,
                    atom,
                    negate,
                });
                continue;
            }
            if let Program::And(items) | Program::Or(items) = &p {
                let lits: Option<Vec<(u32, bool)>> = items.iter().map(Program::literal).collect();
                if let Some(lits) = lits {
                    let start = clause_atoms.len();
                    clause_atoms.extend(lits);
                    clauses.push(Clause {
                        condition,
                        any: matches!(p, Program::Or(_)),
                        atoms: start..clause_atoms.len(),
                    });
                    continue;
                }
            }
            trees.push((condition, p));
        }
        ConditionSet {
            paths: paths.into_boxed_slice(),
            groups: groups.into_boxed_slice(),
            generic: generic.into_boxed_slice(),
            singles: singles.into_boxed_slice(),
            clauses: clauses.into_boxed_slice(),
            clause_atoms: clause_atoms.into_boxed_slice(),
            trees: trees.into_boxed_slice(),
            condition_count: conditions.len(),
            atom_count: next as usize,
        }
    }

    /// The number of conditions.
    pub fn len(&self) -> usize {
        self.condition_count
    }

    pub fn is_empty(&self) -> bool {
        self.condition_count == 0
    }

    /// Evaluates every condition: afterwards `results.get(i) == conditions[i].check_fields(fields)`.
    pub fn eval(&self, fields: &Map, results: &mut SetResults) {
        // No clearing: every atom and every result is written below.
        results.atoms.resize(self.atom_count, false);
        let atoms = &mut results.atoms[..];

        for entry in self.paths.iter() {
            let value = entry.path.get(fields);
            // Worked out once per path, not once per group.
            let rank = match value {
                Some(Value::Bytes(b)) if entry.needs_rank => severity_rank(b),
                _ => None,
            };
            let num = match value {
                Some(Value::Bytes(b)) if entry.needs_num => eval::parse_num(b),
                _ => None,
            };
            for group in self.groups.get(entry.groups.clone()).unwrap_or(&[]) {
                let Some(slice) = atoms.get_mut(group.start..group.start + group.lits.len()) else {
                    continue;
                };
                match probe(group, value, rank, num) {
                    Probe::Missing => slice.fill(false),
                    Probe::Unequal => slice.fill(group.op == CmpOp::Ne),
                    Probe::Fallback => fallback(slice, group, value),
                    Probe::Int(x) => match &group.keys {
                        Keys::Int(k) => fill_ordered(slice, group.op, k, |l| l.cmp(&x)),
                        // An integer against a float compares as f64 (`compare_nums`).
                        Keys::Float(k) => fill_ordered(slice, group.op, k, |l| f_cmp(*l, x as f64)),
                        _ => fallback(slice, group, value),
                    },
                    // `i64 as f64` is monotone, so integer keys stay sorted as floats.
                    Probe::Float(f) => match &group.keys {
                        Keys::Int(k) => fill_ordered(slice, group.op, k, |l| f_cmp(*l as f64, f)),
                        Keys::Float(k) => fill_ordered(slice, group.op, k, |l| f_cmp(*l, f)),
                        _ => fallback(slice, group, value),
                    },
                    Probe::Str(v) => match &group.keys {
                        Keys::Str(k) => fill_ordered(slice, group.op, k, |l| l.as_ref().cmp(v)),
                        _ => fallback(slice, group, value),
                    },
                    Probe::Rank(r) => match &group.keys {
                        Keys::Rank(k) => fill_ordered(slice, group.op, k, |l| l.cmp(&r)),
                        _ => fallback(slice, group, value),
                    },
                }
            }
        }

        for (id, node) in self.generic.iter() {
            if let Some(out) = atoms.get_mut(*id as usize) {
                *out = node.eval(fields);
            }
        }

        let SetResults { atoms, results } = results;
        results.resize(self.condition_count, false);
        let atom = |i: u32| atoms.get(i as usize).copied().unwrap_or(false);
        for s in self.singles.iter() {
            if let Some(out) = results.get_mut(s.condition as usize) {
                *out = atom(s.atom) != s.negate;
            }
        }
        for c in self.clauses.iter() {
            let lits = self.clause_atoms.get(c.atoms.clone()).unwrap_or(&[]);
            // Folds rather than `any`/`all`: clauses are short, and an early exit is a
            // branch that mispredicts whenever the first atom's outcome changes between
            // events (measured: a third of this function's time).
            let value = if c.any {
                lits.iter()
                    .fold(false, |value, &(a, negate)| value | (atom(a) != negate))
            } else {
                lits.iter()
                    .fold(true, |value, &(a, negate)| value & (atom(a) != negate))
            };
            if let Some(out) = results.get_mut(c.condition as usize) {
                *out = value;
            }
        }
        for (condition, p) in self.trees.iter() {
            if let Some(out) = results.get_mut(*condition as usize) {
                *out = p.eval(atoms);
            }
        }
    }
}

fn int_of(lit: &Literal) -> Option<i64> {
    match lit.value {
        Value::Integer(i) => Some(i),
        _ => None,
    }
}

fn float_of(lit: &Literal) -> Option<f64> {
    match lit.value {
        Value::Float(f) => Some(f),
        _ => None,
    }
}

fn bytes_of(lit: &Literal) -> Option<Bytes> {
    match &lit.value {
        Value::Bytes(b) => Some(b.clone()),
        _ => None,
    }
}

/// Two non-NaN floats (the probe excludes NaN values, the groups NaN literals). `-0.0` and
/// `0.0` compare equal here as in the tree, and are adjacent in `total_cmp` order, so equal
/// runs stay contiguous.
fn f_cmp(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or(Ordering::Equal)
}

/// Evaluates each atom of `group` with the tree's own semantics (`probe` never pairs a
/// probe with keys of another kind, so the `_` arms that call this are only a safety net).
fn fallback(slice: &mut [bool], group: &Group, value: Option<&Value>) {
    for (out, lit) in slice.iter_mut().zip(group.lits.iter()) {
        *out = value.is_some_and(|v| eval::compare_with_literal(group.op, v, lit, group.severity));
    }
}

/// Writes the results of `value op key` for each of the ascending `keys`, `order` giving
/// the order of a key against the value (monotone over `keys`). Keys `..lo` are below the
/// value, `lo..hi` equal to it and `hi..` above it, so the true atoms are one range or, for
/// `!=`, all but one; only the bounds the operator needs are searched for.
fn fill_ordered<K>(slice: &mut [bool], op: CmpOp, keys: &[K], order: impl Fn(&K) -> Ordering) {
    let lo = || keys.partition_point(|k| order(k) == Ordering::Less);
    let hi = || keys.partition_point(|k| order(k) != Ordering::Greater);
    let n = slice.len();
    let (range, inverted) = match op {
        CmpOp::Eq => (lo()..hi(), false),
        CmpOp::Ne => (lo()..hi(), true),
        CmpOp::Gt => (0..lo(), false),
        CmpOp::Ge => (0..hi(), false),
        CmpOp::Lt => (hi()..n, false),
        CmpOp::Le => (lo()..n, false),
    };
    slice.fill(inverted);
    if let Some(s) = slice.get_mut(range) {
        s.fill(!inverted);
    }
}

/// How `value` relates to the literals of `group`, following `eval::relation` case by case.
/// `rank` and `num` are the value's severity rank and parsed number when it is a string.
fn probe<'a>(
    group: &Group,
    value: Option<&'a Value>,
    rank: Option<u8>,
    num: Option<Num>,
) -> Probe<'a> {
    let Some(value) = value else {
        return Probe::Missing;
    };
    if let Keys::Rank(_) = group.keys {
        // Severity literal: ranks compare; a value that is no severity name is unequal.
        return match rank {
            Some(r) => Probe::Rank(r),
            None => Probe::Unequal,
        };
    }
    if group.severity && rank.is_some() {
        // A severity name against a literal that is not one.
        return Probe::Unequal;
    }
    let numeric = |n: Num| match n {
        Num::Int(i) => Probe::Int(i),
        Num::Float(f) => Probe::Float(f),
    };
    match (&group.keys, value) {
        (Keys::Other, _) => Probe::Fallback,
        (Keys::Int(_) | Keys::Float(_), Value::Integer(i)) => Probe::Int(*i),
        // NaN is unordered and unequal to every number.
        (Keys::Int(_) | Keys::Float(_), Value::Float(f)) if f.is_nan() => Probe::Unequal,
        (Keys::Int(_) | Keys::Float(_), Value::Float(f)) => Probe::Float(*f),
        // `parse_num` only yields finite floats.
        (Keys::Int(_) | Keys::Float(_), Value::Bytes(_)) => num.map_or(Probe::Unequal, numeric),
        (Keys::Int(_) | Keys::Float(_), _) => Probe::Unequal,
        (Keys::Str(_), Value::Bytes(b)) => Probe::Str(b),
        (Keys::Str(_), Value::Null | Value::Array(_) | Value::Object(_)) => Probe::Unequal,
        // Numbers (numeric against numeric-string literals), timestamps (RFC 3339 literals)
        // and booleans ("true"/"false" literals) depend on each literal's parsed views.
        (Keys::Str(_), _) => Probe::Fallback,
        (Keys::Rank(_), _) => Probe::Unequal,
    }
}
