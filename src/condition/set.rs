//! Many compiled conditions evaluated together over one event.
//!
//! Alert rules check on the order of a hundred conditions per event. Checked one by one,
//! each condition walks its own tree and looks its fields up by a linear scan of the event's
//! [`Map`]; most of that work repeats across conditions (`status >= 500`, `status >= 503`,
//! ... look `status` up again each time and compare it with one literal each).
//!
//! A [`ConditionSet`] instead flattens every condition into *atoms* (its leaves), each with
//! a bit of its own (its *slot*), and evaluates the set with word operations. Per event:
//!
//! 1. each distinct field path is looked up once;
//! 2. comparisons of one field against literals of one kind with one operator form a
//!    *group* whose literals are sorted, so that the atoms true for the event's value are one
//!    contiguous run in that order (or all but one run, for `!=`), found by binary search.
//!    The group keeps, for every prefix of its sorted atoms, the union of their slot bits,
//!    so a run's bits are the difference of two prefixes: a few word operations whatever
//!    the number of atoms;
//! 3. other atoms (`contains`, `matches`, `in`, `exists`, field-against-field) are evaluated
//!    by the condition tree's own code, and set their bit;
//! 4. the conditions that are one (possibly negated) atom, or an `and`/`or` of at most
//!    [`MAX_PLANES`] such (nearly all alert conditions), are computed 64 at a time: their
//!    `p`-th atom's slot is bit `c` of *plane* `p`, `c` being the condition's number, so
//!    condition `c`'s result is bit `c` of the `and` (or `or`) of the planes, after
//!    negation masks. Other conditions run a small program over their atoms' slots.
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

/// The most atoms a condition may `and` (or `or`) together and still be computed by word
/// operations; longer ones run as programs. Each plane costs a word per 64 conditions.
const MAX_PLANES: usize = 4;

/// A group keeps prefix unions of its slot bits (see the module doc) only while they take at
/// most this many words (32 KiB); a larger group sets its true atoms' bits one by one.
const PREFIX_BUDGET_WORDS: usize = 4096;

/// Many conditions compiled together: fields looked up once per event, comparisons of one
/// field against many literals answered by binary search, results computed 64 at a time.
#[derive(Debug, Clone)]
pub struct ConditionSet {
    /// Distinct field paths of indexable comparisons, each with its groups.
    paths: Box<[PathEntry]>,
    /// Groups, ordered by path so that each path's groups are one contiguous run.
    groups: Box<[Group]>,
    /// Atoms evaluated by the tree's own code, with their slots.
    generic: Box<[(u32, Node)]>,
    /// Words per plane: one bit per condition, rounded up to a word.
    plane_words: usize,
    /// Planes in use: the most atoms of any condition computed by word operations.
    planes: usize,
    /// Per plane (`plane_words` each): the atoms that are negated in their condition.
    negated: Box<[u64]>,
    /// Per plane: conditions that ignore the plane when `and`-ing (no atom there, or not an
    /// `and`), so that their bit stays set.
    and_pad: Box<[u64]>,
    /// Conditions that are the `and` (`or`) of their planes' atoms.
    and_conditions: Box<[u64]>,
    or_conditions: Box<[u64]>,
    /// Every other condition, as a program over its atoms' slots.
    trees: Box<[(u32, Program)]>,
    /// Words of slot bits: the planes, then the slots of the programs' atoms.
    slot_words: usize,
    condition_count: usize,
}

/// Per-event scratch and results, reusable across events: after the first evaluation with a
/// given set, evaluating again allocates nothing.
#[derive(Debug, Default, Clone)]
pub struct SetResults {
    slots: Vec<u64>,
    words: Vec<u64>,
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

/// Comparisons `path op literal` with one operator, one literal class and one severity
/// flag, in ascending literal order.
#[derive(Debug, Clone)]
struct Group {
    op: CmpOp,
    severity: bool,
    keys: Keys,
    /// The literals in the same (sorted) order, for the per-atom fallback.
    lits: Box<[Literal]>,
    /// The slot of each atom, in the same order.
    slots: Box<[u32]>,
    /// Unions of the slot bits of each prefix of the atoms, unless over budget.
    prefixes: Option<Prefixes>,
}

/// `words[j * width..(j + 1) * width]` holds the bits of the first `j` slots of a group
/// (`j` in `0..=len`), over slot words `first..first + width`.
#[derive(Debug, Clone)]
struct Prefixes {
    first: usize,
    width: usize,
    words: Box<[u64]>,
}

impl Prefixes {
    fn new(slots: &[u32], budget: usize) -> Option<Self> {
        let first = slots.iter().map(|s| *s as usize / 64).min()?;
        let last = slots.iter().map(|s| *s as usize / 64).max()?;
        let width = last - first + 1;
        if (slots.len() + 1).saturating_mul(width) > budget {
            return None;
        }
        let mut words = vec![0u64; (slots.len() + 1) * width];
        for (j, slot) in slots.iter().enumerate() {
            let (done, next) = words.split_at_mut((j + 1) * width);
            next[..width].copy_from_slice(&done[j * width..]);
            next[*slot as usize / 64 - first] |= 1 << (slot % 64);
        }
        Some(Self {
            first,
            width,
            words: words.into_boxed_slice(),
        })
    }
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
    /// The program's value, its atoms read from slot bits.
    fn eval(&self, slots: &[u64]) -> bool {
        match self {
            Program::Atom(i) => bit(slots, *i),
            Program::Const(b) => *b,
            Program::Not(p) => !p.eval(slots),
            Program::And(ps) => ps.iter().all(|p| p.eval(slots)),
            Program::Or(ps) => ps.iter().any(|p| p.eval(slots)),
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

/// A condition that is an `and` (or, if `any`, an `or`) of (possibly negated) atoms, as
/// `(atom, negated)`.
struct Flat {
    any: bool,
    literals: Vec<(u32, bool)>,
}

fn bit(words: &[u64], i: u32) -> bool {
    words
        .get(i as usize / 64)
        .is_some_and(|w| w >> (i % 64) & 1 == 1)
}

/// Writes bits `0..n` of `words` as bools, eight at a time: the bit-by-bit loop cost as
/// much as the rest of the evaluation.
fn expand(words: &[u64], n: usize, out: &mut Vec<bool>) {
    out.clear();
    out.resize(n, false);
    let mut chunks = out.chunks_exact_mut(8);
    let bytes = words.iter().flat_map(|w| w.to_le_bytes());
    for (chunk, byte) in (&mut chunks).zip(bytes) {
        // Copies of `byte` 9 bits apart put its bit 7 - k at the top of byte k; the byte
        // swap puts bit k in byte k (the multiply wraps: bits past 63 are not wanted).
        let spread = ((u64::from(byte).wrapping_mul(0x8040_2010_0804_0201))
            & 0x8080_8080_8080_8080)
            .swap_bytes()
            .to_le_bytes();
        for (out, b) in chunk.iter_mut().zip(spread) {
            *out = b != 0;
        }
    }
    let done = n - n % 8;
    for (k, out) in chunks.into_remainder().iter_mut().enumerate() {
        *out = bit(words, (done + k) as u32);
    }
}

fn set_bit(words: &mut [u64], i: u32) {
    if let Some(w) = words.get_mut(i as usize / 64) {
        *w |= 1 << (i % 64);
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

    /// The number of conditions.
    pub fn len(&self) -> usize {
        self.condition_count
    }

    pub fn is_empty(&self) -> bool {
        self.condition_count == 0
    }

    /// Evaluates every condition: afterwards `results.get(i) == conditions[i].check_fields(fields)`.
    pub fn eval(&self, fields: &Map, results: &mut SetResults) {
        let SetResults {
            slots,
            words,
            results,
        } = results;
        // Atoms only ever set their bits, so every slot starts false.
        slots.clear();
        slots.resize(self.slot_words, 0);

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
                match true_atoms(group, probe(group, value, rank, num)) {
                    Some((run, inverted)) => set_run(slots, group, run, inverted),
                    None => fallback(slots, group, value),
                }
            }
        }

        for (slot, node) in self.generic.iter() {
            if node.eval(fields) {
                set_bit(slots, *slot);
            }
        }

        // Flat conditions, 64 at a time: `and` every plane's literals (padded with ones where
        // a condition has no atom, or is an `or`), `or` them (a missing atom's bit is zero),
        // and keep for each condition the outcome of its own kind.
        let width = self.plane_words;
        words.clear();
        words.extend((0..width).map(|i| {
            let (mut all, mut any) = (!0u64, 0u64);
            for p in 0..self.planes {
                let at = p * width + i;
                let literal = slots[at] ^ self.negated[at];
                all &= literal | self.and_pad[at];
                any |= literal;
            }
            (all & self.and_conditions[i]) | (any & self.or_conditions[i])
        }));
        expand(words, self.condition_count, results);
        for (condition, program) in self.trees.iter() {
            if let Some(out) = results.get_mut(*condition as usize) {
                *out = program.eval(slots);
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

/// Evaluates each atom of `group` with the tree's own semantics.
fn fallback(slots: &mut [u64], group: &Group, value: Option<&Value>) {
    let Some(value) = value else { return };
    for (slot, lit) in group.slots.iter().zip(group.lits.iter()) {
        if eval::compare_with_literal(group.op, value, lit, group.severity) {
            set_bit(slots, *slot);
        }
    }
}

/// The atoms of `group` that hold for a value, as [`true_run`] gives them; `None` when they
/// must be evaluated one by one ([`fallback`]). `probe` never pairs a probe with keys of
/// another kind, so the last arm is only a safety net.
fn true_atoms(group: &Group, probe: Probe<'_>) -> Option<(std::ops::Range<usize>, bool)> {
    let op = group.op;
    Some(match (probe, &group.keys) {
        (Probe::Missing, _) => (0..0, false),
        (Probe::Unequal, _) if op == CmpOp::Ne => (0..group.slots.len(), false),
        (Probe::Unequal, _) => (0..0, false),
        (Probe::Int(x), Keys::Int(k)) => true_run(op, k, |l| l.cmp(&x)),
        // An integer against a float compares as f64 (`compare_nums`).
        (Probe::Int(x), Keys::Float(k)) => true_run(op, k, |l| f_cmp(*l, x as f64)),
        // `i64 as f64` is monotone, so integer keys stay sorted as floats.
        (Probe::Float(f), Keys::Int(k)) => true_run(op, k, |l| f_cmp(*l as f64, f)),
        (Probe::Float(f), Keys::Float(k)) => true_run(op, k, |l| f_cmp(*l, f)),
        (Probe::Str(v), Keys::Str(k)) => true_run(op, k, |l| l.as_ref().cmp(v)),
        (Probe::Rank(r), Keys::Rank(k)) => true_run(op, k, |l| l.cmp(&r)),
        _ => return None,
    })
}

/// The atoms of `value op key` that hold, for ascending `keys`, `order` giving the order of
/// a key against the value (monotone over `keys`): a run of atoms, or all but that run when
/// the flag is set. Keys `..lo` are below the value, `lo..hi` equal to it and `hi..` above
/// it; only the bounds the operator needs are searched for.
fn true_run<K>(
    op: CmpOp,
    keys: &[K],
    order: impl Fn(&K) -> Ordering,
) -> (std::ops::Range<usize>, bool) {
    let lo = || keys.partition_point(|k| order(k) == Ordering::Less);
    let hi = || keys.partition_point(|k| order(k) != Ordering::Greater);
    let n = keys.len();
    match op {
        CmpOp::Eq => (lo()..hi(), false),
        CmpOp::Ne => (lo()..hi(), true),
        CmpOp::Gt => (0..lo(), false),
        CmpOp::Ge => (0..hi(), false),
        CmpOp::Lt => (hi()..n, false),
        CmpOp::Le => (lo()..n, false),
    }
}

/// Sets the slot bits of the atoms of `group` in `run` (every other atom's, if `inverted`).
fn set_run(slots: &mut [u64], group: &Group, run: std::ops::Range<usize>, inverted: bool) {
    if run.is_empty() && !inverted {
        return;
    }
    let n = group.slots.len();
    let Some(prefixes) = &group.prefixes else {
        let (before, after) = if inverted {
            (0..run.start, run.end..n)
        } else {
            (run.clone(), n..n)
        };
        for i in before.chain(after) {
            set_bit(slots, group.slots[i]);
        }
        return;
    };
    let Prefixes {
        first,
        width,
        words,
    } = prefixes;
    let prefix = |j: usize| &words[j * width..(j + 1) * width];
    let (start, end, every) = (prefix(run.start), prefix(run.end), prefix(n));
    // Prefixes are nested and each atom has its own slot, so the run's bits are the end
    // prefix without the start prefix; the complement is taken within the group's bits.
    let invert = if inverted { !0u64 } else { 0 };
    for (i, out) in slots[*first..*first + *width].iter_mut().enumerate() {
        let run_bits = end[i] ^ start[i];
        *out |= run_bits ^ (every[i] & invert);
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
