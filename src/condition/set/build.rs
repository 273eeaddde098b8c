//! Compiling a [`ConditionSet`]: conditions flattened into atoms and boolean programs,
//! slots assigned (planes for flat conditions), comparisons grouped by field, kind and
//! operator, and their literals sorted.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::*;
use crate::condition::eval::{Literal, Node, Operand};
use crate::condition::lexer::CmpOp;
use crate::condition::path::FieldPath;
use crate::condition::Condition;
use crate::event::Value;

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

/// A condition that is an `and` (or, if `any`, an `or`) of (possibly negated) atoms, as
/// `(atom, negated)`.
struct Flat {
    any: bool,
    literals: Vec<(u32, bool)>,
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
        Self::with_prefix_budget(conditions, PREFIX_BUDGET_WORDS)
    }

    /// [`ConditionSet::new`] with groups keeping prefix unions only within `budget` words
    /// (tests take both paths with budget 0).
    pub(super) fn with_prefix_budget(conditions: &[Condition], budget: usize) -> Self {
        let mut b = Builder::default();
        let mut programs: Vec<Program> = conditions.iter().map(|c| b.flatten(&c.root)).collect();

        // Slots: atom `p` of flat condition `c` is bit `c` of plane `p`; the atoms of the
        // other conditions follow the planes. Every temporary atom id occurs in exactly one
        // program, so each gets exactly one slot.
        let count = conditions.len();
        let plane_words = count.div_ceil(64);
        let flats: Vec<Option<Flat>> = programs.iter().map(Program::flat).collect();
        let planes = flats
            .iter()
            .flatten()
            .map(|flat| flat.literals.len())
            .max()
            .unwrap_or(0);
        let plane_bits = planes * plane_words * 64;
        let mut slot_of = vec![0u32; b.next_tmp as usize];
        let mut negated = vec![0u64; planes * plane_words];
        let mut and_atoms = vec![0u64; planes * plane_words];
        let mut and_conditions = vec![0u64; plane_words];
        let mut or_conditions = vec![0u64; plane_words];
        let mut next_slot = plane_bits as u32;
        let mut tree_atoms = Vec::new();
        for (c, flat) in flats.iter().enumerate() {
            match flat {
                Some(Flat { any, literals }) => {
                    set_bit(
                        if *any {
                            &mut or_conditions
                        } else {
                            &mut and_conditions
                        },
                        c as u32,
                    );
                    for (p, (tmp, negate)) in literals.iter().enumerate() {
                        let slot = (p * plane_words * 64 + c) as u32;
                        slot_of[*tmp as usize] = slot;
                        if *negate {
                            set_bit(&mut negated, slot);
                        }
                        if !*any {
                            set_bit(&mut and_atoms, slot);
                        }
                    }
                }
                None => {
                    tree_atoms.clear();
                    programs[c].atoms(&mut tree_atoms);
                    for tmp in &tree_atoms {
                        slot_of[*tmp as usize] = next_slot;
                        next_slot += 1;
                    }
                }
            }
        }
        let and_pad = and_atoms.iter().map(|w| !w).collect();

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
            let entry = &mut paths[path];
            if entry.groups.is_empty() {
                entry.groups = groups.len()..groups.len();
            }
            entry.groups.end = groups.len() + 1;
            entry.needs_rank |= severity;
            entry.needs_num |= matches!(keys, Keys::Int(_) | Keys::Float(_));
            let slots: Box<[u32]> = atoms.iter().map(|a| slot_of[a.tmp as usize]).collect();
            groups.push(Group {
                op: atoms.first().map_or(CmpOp::Eq, |a| a.op),
                severity,
                keys,
                lits: atoms.into_iter().map(|a| a.lit).collect(),
                prefixes: Prefixes::new(&slots, budget),
                slots,
            });
        }
        let generic = b
            .generic
            .into_iter()
            .map(|(tmp, node)| (slot_of[tmp as usize], node))
            .collect();
        let trees = programs
            .iter_mut()
            .zip(&flats)
            .enumerate()
            .filter(|(_, (_, flat))| flat.is_none())
            .map(|(c, (program, _))| {
                program.remap(&slot_of);
                (c as u32, std::mem::replace(program, Program::Const(false)))
            })
            .collect();
        ConditionSet {
            paths: paths.into_boxed_slice(),
            groups: groups.into_boxed_slice(),
            generic,
            plane_words,
            planes,
            negated: negated.into_boxed_slice(),
            and_pad,
            and_conditions: and_conditions.into_boxed_slice(),
            or_conditions: or_conditions.into_boxed_slice(),
            trees,
            slot_words: (next_slot as usize).div_ceil(64),
            condition_count: count,
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

/// What compiling needs of a program: its shape and its atoms.
impl Program {
    /// As an `and` (`any == false`) or an `or` of at most [`MAX_PLANES`] (possibly negated)
    /// atoms, if it is one; a lone atom is an `and` of one.
    fn flat(&self) -> Option<Flat> {
        if let Some(literal) = self.literal() {
            return Some(Flat {
                any: false,
                literals: vec![literal],
            });
        }
        let (any, items) = match self {
            Program::And(items) => (false, items),
            Program::Or(items) => (true, items),
            _ => return None,
        };
        if items.len() > MAX_PLANES {
            return None;
        }
        let literals = items.iter().map(Program::literal).collect::<Option<_>>()?;
        Some(Flat { any, literals })
    }

    fn atoms(&self, out: &mut Vec<u32>) {
        match self {
            Program::Atom(i) => out.push(*i),
            Program::Const(_) => {}
            Program::Not(p) => p.atoms(out),
            Program::And(ps) | Program::Or(ps) => ps.iter().for_each(|p| p.atoms(out)),
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
