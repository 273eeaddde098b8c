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
//! at a time. Compiling is in `build.rs`. The proptest in `tests.rs` checks the set against
//! [`Condition::check_fields`](crate::condition::Condition::check_fields) on random
//! conditions and events.

use std::cmp::Ordering;

use bytes::Bytes;

use super::eval::{self, Literal, Node, Num};
use super::lexer::CmpOp;
use super::path::FieldPath;
use super::severity_rank;
use crate::event::{Map, Value};

mod build;
#[cfg(test)]
mod tests;

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

impl ConditionSet {
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
