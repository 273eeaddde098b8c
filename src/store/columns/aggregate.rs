//! Histograms and top values on the column engine. A split or top field stored as a
//! dictionary is counted per code and turned into text once per block, not per row; top
//! values over every event of a block come from the dictionary's counts in its header.

use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;

use super::block::BlockMeta;
use super::filter::BlockView;
use super::rows::Rows;
use super::scan::{blocks_in, dictionary_of, matching_rows, wholly_inside};
use super::Partition;
use crate::event::Value;
use crate::store::query::Query;
use crate::store::search::{Budget, HistogramRequest, TopRequest};
use crate::store::StoreError;

/// Longest text a value counts as in top values and histogram splits (as the tantivy
/// engine's keyword column keeps it).
const MAX_VALUE_BYTES: usize = 256;

/// Counts per bucket of `request`, per split value (`"all"` without a split, `""` for rows
/// without the field). Blocks are read on every core, each thread into series of its own.
pub fn histogram_series(
    partitions: &[Arc<Partition>],
    request: &HistogramRequest,
    buckets: usize,
    budget: &Budget,
) -> Result<Series, StoreError> {
    blocks_in(partitions, Some(request.from), Some(request.to))
        .par_iter()
        .try_fold(Series::new, |mut series, (_, block)| {
            add_block_series(&mut series, block, request, buckets, budget).map(|()| series)
        })
        .try_reduce(Series::new, |mut into, from| {
            for (text, counts) in from {
                add_counts(&mut into, text, &counts);
            }
            Ok(into)
        })
}

/// Counts per bucket, per split value.
type Series = HashMap<String, Vec<u64>>;

fn add_counts(series: &mut Series, text: String, counts: &[u64]) {
    let total = series.entry(text).or_insert_with(|| vec![0; counts.len()]);
    total.iter_mut().zip(counts).for_each(|(t, n)| *t += n);
}

/// Adds `block`'s matches to `series`.
fn add_block_series(
    series: &mut Series,
    block: &BlockMeta,
    request: &HistogramRequest,
    buckets: usize,
    budget: &Budget,
) -> Result<(), StoreError> {
    let (from, to) = (Some(request.from), Some(request.to));
    // A matching row's time is in [from, to), so its distance from `from` fits a u64, and
    // the caller has checked the interval is above 0.
    let interval = request.interval.max(1) as u64;
    let bucket_of = |ts: i64| (ts.wrapping_sub(request.from) as u64 / interval) as usize;
    let matching = matching_rows(block, &request.query, from, to, budget)?;
    if matching.is_empty() {
        return Ok(());
    }
    let Some(split) = &request.split else {
        let counts = series
            .entry("all".to_string())
            .or_insert_with(|| vec![0; buckets]);
        for &(_, ts) in &matching {
            if let Some(slot) = counts.get_mut(bucket_of(ts)) {
                *slot += 1;
            }
        }
        return Ok(());
    };
    let labels = RowLabels::read(block, split, &matching)?;
    // Per label, its counts in this block, made when a row first needs them.
    let mut local: Vec<Option<Vec<u64>>> = vec![None; labels.texts.len()];
    for &(row, ts) in &matching {
        let counts = local[labels.of_row[row] as usize].get_or_insert_with(|| vec![0; buckets]);
        if let Some(slot) = counts.get_mut(bucket_of(ts)) {
            *slot += 1;
        }
    }
    for (text, counts) in labels.texts.into_iter().zip(local) {
        if let Some(counts) = counts {
            add_counts(series, text, &counts);
        }
    }
    Ok(())
}

/// Each matching row's split value, as an index into texts read once per block: label 0 is
/// `""`, for rows without the field.
struct RowLabels {
    texts: Vec<String>,
    of_row: Vec<u32>,
}

impl RowLabels {
    /// The labels of the rows in `matching`: the least of a row's texts of field `name`.
    fn read(
        block: &BlockMeta,
        name: &str,
        matching: &[(usize, i64)],
    ) -> Result<RowLabels, StoreError> {
        let mut texts = vec![String::new()];
        let mut of_row = vec![0u32; block.rows as usize];
        if let Some((values, codes)) = row_codes(block, name)? {
            let mut scratch = Vec::new();
            for value in &values {
                value_texts(value, &mut scratch);
                texts.push(scratch.iter().min().cloned().unwrap_or_default());
            }
            for (label, code) in of_row.iter_mut().zip(codes) {
                *label = code.map_or(0, |c| u32::from(c) + 1);
            }
            return Ok(RowLabels { texts, of_row });
        }
        let wanted = wanted_rows(block, matching);
        let mut known: HashMap<String, u32> = HashMap::new();
        each_field_texts(block, name, &wanted, |row, found| {
            let Some(least) = found.iter().min() else {
                return;
            };
            of_row[row] = match known.get(least.as_str()) {
                Some(&label) => label,
                None => {
                    let label = texts.len() as u32;
                    known.insert(least.clone(), label);
                    texts.push(least.clone());
                    label
                }
            };
        })?;
        Ok(RowLabels { texts, of_row })
    }
}

/// Counts of each value of `request.field` among matching rows, and the matching rows.
/// Blocks are read on every core, each thread into counts of its own.
pub fn top_counts(
    partitions: &[Arc<Partition>],
    request: &TopRequest,
    budget: &Budget,
) -> Result<(HashMap<String, u64>, u64), StoreError> {
    blocks_in(partitions, request.from, request.to)
        .par_iter()
        .try_fold(
            || (HashMap::new(), 0),
            |(mut counts, total), (_, block)| {
                add_block_top(&mut counts, block, request, budget).map(|n| (counts, total + n))
            },
        )
        .try_reduce(
            || (HashMap::new(), 0),
            |(mut into, a), (from, b)| {
                for (text, n) in from {
                    *into.entry(text).or_insert(0) += n;
                }
                Ok((into, a + b))
            },
        )
}

/// Adds the values of `block`'s matches to `counts`; answers how many rows matched.
fn add_block_top(
    counts: &mut HashMap<String, u64>,
    block: &BlockMeta,
    request: &TopRequest,
    budget: &Budget,
) -> Result<u64, StoreError> {
    let mut texts = Vec::new();
    if matches!(request.query, Query::All) && wholly_inside(block, request.from, request.to) {
        let counted = dictionary_of(block, &request.field, |values, per_value| {
            // Every row matches: the header's counts are the answer.
            for (value, &n) in values.iter().zip(per_value) {
                value_texts(value, &mut texts);
                count_texts(counts, &mut texts, n);
            }
        })?;
        if counted.is_some() {
            budget.check()?;
            budget.spend(u64::from(block.rows));
            budget.check()?;
            return Ok(u64::from(block.rows));
        }
    }
    let matching = matching_rows(block, &request.query, request.from, request.to, budget)?;
    if matching.is_empty() {
        return Ok(0);
    }
    if let Some((values, codes)) = row_codes(block, &request.field)? {
        let mut per_code = vec![0u64; values.len()];
        for &(row, _) in &matching {
            if let Some(code) = codes[row] {
                per_code[code as usize] += 1;
            }
        }
        for (value, n) in values.iter().zip(per_code).filter(|&(_, n)| n > 0) {
            value_texts(value, &mut texts);
            count_texts(counts, &mut texts, n);
        }
        return Ok(matching.len() as u64);
    }
    let wanted = wanted_rows(block, &matching);
    each_field_texts(block, &request.field, &wanted, |_, found| {
        count_texts(counts, found, 1);
    })?;
    Ok(matching.len() as u64)
}

/// A dictionary's values, and each row's code (`None` for rows without the field).
type RowCodes = (Vec<Value>, Vec<Option<u8>>);

/// For field `name` stored as a dictionary in `block`: its values, and each row's code of
/// its first value (`None` for rows without the field); `None` for a plain column or a
/// dotted path.
fn row_codes(block: &BlockMeta, name: &str) -> Result<Option<RowCodes>, StoreError> {
    if name.contains('.') {
        return Ok(None);
    }
    let mut codes = vec![None; block.rows as usize];
    let values = BlockView::open(block)?.each_code_of(name, |row, code| codes[row] = Some(code))?;
    Ok(values.map(|values| (values, codes)))
}

/// One flag per row of `block`: whether it is among `matching`.
fn wanted_rows(block: &BlockMeta, matching: &[(usize, i64)]) -> Vec<bool> {
    let mut wanted = vec![false; block.rows as usize];
    matching.iter().for_each(|&(row, _)| wanted[row] = true);
    wanted
}

/// Adds `n` to the count of each distinct text in `texts`, emptying it.
fn count_texts(counts: &mut HashMap<String, u64>, texts: &mut Vec<String>, n: u64) {
    texts.sort_unstable();
    texts.dedup();
    for text in texts.drain(..) {
        match counts.get_mut(text.as_str()) {
            Some(count) => *count += n,
            None => {
                counts.insert(text, n);
            }
        }
    }
}

/// Calls `each(row, texts)` with the text values of field `name` (array items each) on
/// every row marked in `wanted` that has any.
fn each_field_texts(
    block: &BlockMeta,
    name: &str,
    wanted: &[bool],
    mut each: impl FnMut(usize, &mut Vec<String>),
) -> Result<(), StoreError> {
    let mut texts = Vec::new();
    if !name.contains('.') {
        let mut view = BlockView::open(block)?;
        view.each_value_of(name, |row, value| {
            if wanted[row] {
                value_texts(value, &mut texts);
                if !texts.is_empty() {
                    each(row, &mut texts);
                }
            }
        })?;
        return Ok(());
    }
    let mut rows = Rows::open(block)?;
    while let Some(row) = rows.next_row() {
        let (row, _, map) = row.map_err(|()| block.damaged("rows"))?;
        if wanted[row] {
            if let Some(value) = map.get_path(name) {
                value_texts(value, &mut texts);
                if !texts.is_empty() {
                    each(row, &mut texts);
                }
            }
        }
    }
    Ok(())
}

/// A value's texts as the matcher compares them (an array's items each; none for null),
/// cut to [`MAX_VALUE_BYTES`].
fn value_texts(value: &Value, out: &mut Vec<String>) {
    out.clear();
    let mut push = |value: &Value| {
        let mut text = value.to_text();
        if text.len() > MAX_VALUE_BYTES {
            let mut end = MAX_VALUE_BYTES;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        out.push(text);
    };
    match value {
        Value::Null => {}
        Value::Array(items) => items.iter().for_each(&mut push),
        value => push(value),
    }
}
