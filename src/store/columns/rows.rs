//! Reading a block back: its event times alone, or whole rows as field maps.
//!
//! Times are zigzag varints of each row's difference from the row before; in a paged block
//! the differences start again from 0 at every page of [`PAGE_ROWS`] rows, so a page's
//! times decode without the pages before it.

use bytes::Bytes;
use compact_str::CompactString;

use super::block::{BlockError, BlockMeta, FIXED_SECTIONS, PAGE_ROWS};
use super::codec::{unzigzag, varint_at, Reader};
use super::column::Column;
use crate::event::Map;

/// The rows' event times, in row order.
pub(super) fn times(block: &BlockMeta) -> Result<Vec<i64>, BlockError> {
    decode_times(block, &block.section(0)?, 0, block.rows as usize)
}

/// Times of rows `first..first + count` from `raw`, which begins at row `first`.
fn decode_times(
    block: &BlockMeta,
    raw: &[u8],
    first: usize,
    count: usize,
) -> Result<Vec<i64>, BlockError> {
    let restarts = block.is_paged();
    let mut out = Vec::with_capacity(count);
    let mut prev = 0i64;
    let mut at = 0;
    for row in first..first + count {
        if restarts && row % PAGE_ROWS == 0 {
            prev = 0;
        }
        let delta = varint_at(raw, &mut at).map_err(|_| block.damaged("times"))?;
        prev = prev.wrapping_add(unzigzag(delta));
        out.push(prev);
    }
    Ok(out)
}

/// A block's row times, read a page at a time as rows ask for them (all at once in a block
/// of the first layout).
pub(super) struct Times<'a> {
    block: &'a BlockMeta,
    /// Per page of [`PAGE_ROWS`] rows, its times once read.
    pages: Vec<Option<Vec<i64>>>,
    /// Every row's, in a block of the first layout.
    all: Option<Vec<i64>>,
}

impl<'a> Times<'a> {
    pub(super) fn new(block: &'a BlockMeta) -> Times<'a> {
        Times {
            block,
            pages: vec![None; (block.rows as usize).div_ceil(PAGE_ROWS)],
            all: None,
        }
    }

    /// Row `row`'s time.
    pub(super) fn get(&mut self, row: usize) -> Result<i64, BlockError> {
        if !self.block.is_paged() {
            if self.all.is_none() {
                self.all = Some(times(self.block)?);
            }
            let all = self.all.as_deref().unwrap_or_default();
            return all
                .get(row)
                .copied()
                .ok_or_else(|| self.block.damaged("rows"));
        }
        let page = row / PAGE_ROWS;
        let Some(slot) = self.pages.get_mut(page) else {
            return Err(self.block.damaged("rows"));
        };
        if slot.is_none() {
            let (raw, pages) = self.block.read_page(&self.block.sections[0], page)?;
            let rows = self.block.rows as usize;
            *slot = Some(if pages == 1 {
                decode_times(self.block, &raw, 0, rows)?
                    .get(page * PAGE_ROWS..)
                    .map(<[i64]>::to_vec)
                    .unwrap_or_default()
            } else {
                let first = page * PAGE_ROWS;
                decode_times(self.block, &raw, first, PAGE_ROWS.min(rows - first))?
            });
        }
        slot.as_ref()
            .and_then(|times| times.get(row % PAGE_ROWS))
            .copied()
            .ok_or_else(|| self.block.damaged("times"))
    }
}

/// One row: its index in the block, its event time, its fields.
pub(super) type Row = (usize, i64, Map);

/// Every row in order: its index, event time and fields.
pub(super) struct Rows {
    times: Vec<i64>,
    shape_ids: Reader,
    shapes: Vec<Vec<u32>>,
    names: Vec<CompactString>,
    columns: Vec<Column>,
    next: usize,
}

impl Rows {
    pub(super) fn open(block: &BlockMeta) -> Result<Rows, BlockError> {
        let times = times(block)?;
        let shape_ids = Reader::new(block.section(1)?);
        let shapes = read_shapes(block, block.section(2)?)?;
        let mut names = Vec::with_capacity(block.columns().len());
        let mut columns = Vec::with_capacity(block.columns().len());
        for section in block.columns() {
            names.push(CompactString::from(section.name.as_str()));
            columns.push(Column::open(block.read(section)?).map_err(|_| block.damaged("column"))?);
        }
        if shapes
            .iter()
            .flatten()
            .any(|&c| c as usize >= columns.len())
        {
            return Err(block.damaged("shapes"));
        }
        Ok(Rows {
            times,
            shape_ids,
            shapes,
            names,
            columns,
            next: 0,
        })
    }

    /// The next row's fields, or `None` after the last.
    pub(super) fn next_row(&mut self) -> Option<Result<Row, ()>> {
        let row = self.next;
        let ts = *self.times.get(row)?;
        self.next += 1;
        let Ok(id) = self.shape_ids.varint() else {
            return Some(Err(()));
        };
        let Some(shape) = self.shapes.get(id as usize) else {
            return Some(Err(()));
        };
        let mut map = Map::with_capacity(shape.len());
        for &c in shape {
            match self.columns[c as usize].value(ts) {
                Ok(value) => map.push_unchecked(self.names[c as usize].clone(), value),
                Err(_) => return Some(Err(())),
            }
        }
        Some(Ok((row, ts, map)))
    }
}

/// Each row's shape, checked against the number of shapes.
pub(super) fn shape_ids(
    block: &BlockMeta,
    raw: Bytes,
    shapes: usize,
) -> Result<Vec<u32>, BlockError> {
    let mut at = 0;
    let mut out = Vec::with_capacity(block.rows as usize);
    for _ in 0..block.rows {
        match varint_at(&raw, &mut at) {
            Ok(id) if (id as usize) < shapes => out.push(id as u32),
            _ => return Err(block.damaged("shape ids")),
        }
    }
    Ok(out)
}

pub(super) fn read_shapes(block: &BlockMeta, raw: Bytes) -> Result<Vec<Vec<u32>>, BlockError> {
    let bad = || block.damaged("shapes");
    let mut reader = Reader::new(raw);
    let count = reader.varint().map_err(|_| bad())? as usize;
    let mut shapes = Vec::with_capacity(count.min(block.rows as usize));
    for _ in 0..count {
        let len = reader.varint().map_err(|_| bad())? as usize;
        let mut shape = Vec::with_capacity(len.min(block.sections.len() - FIXED_SECTIONS + 1));
        for _ in 0..len {
            shape.push(u32::try_from(reader.varint().map_err(|_| bad())?).map_err(|_| bad())?);
        }
        shapes.push(shape);
    }
    Ok(shapes)
}
