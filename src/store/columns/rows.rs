//! Reading a block back: its event times alone, or whole rows as field maps.

use bytes::Bytes;
use compact_str::CompactString;

use super::block::{BlockError, BlockMeta, FIXED_SECTIONS};
use super::codec::{unzigzag, varint_at, Reader};
use super::column::Column;
use crate::event::Map;

/// The rows' event times, in row order.
pub(super) fn times(block: &BlockMeta) -> Result<Vec<i64>, BlockError> {
    let raw = block.section(0)?;
    let mut out = Vec::with_capacity(block.rows as usize);
    let mut prev = 0i64;
    let mut at = 0;
    for _ in 0..block.rows {
        let delta = varint_at(&raw, &mut at).map_err(|_| block.damaged("times"))?;
        prev = prev.wrapping_add(unzigzag(delta));
        out.push(prev);
    }
    Ok(out)
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
