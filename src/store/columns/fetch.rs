//! Chosen rows of a block read back whole, decoding of each field column only the pages
//! ([`PAGE_ROWS`] rows each) that hold them: a page of search results costs a few pages per
//! block instead of every column of it.

use compact_str::CompactString;

use super::block::{BlockError, BlockMeta, PAGE_ROWS};
use super::column::Column;
use super::rows::{read_shapes, shape_ids, Times};
use crate::event::Map;

/// A column being read forward: which page is open, and the first row whose values it has
/// not reached.
struct Cursor {
    column: Column,
    /// `None` when the column is stored in one page.
    page: Option<usize>,
    next_row: usize,
    /// Per shape, how many values of this column a row of it holds.
    held: Vec<u32>,
}

/// The fields of each row in `wanted` (ascending, no repeats), in that order.
pub(super) fn rows_at(block: &BlockMeta, wanted: &[usize]) -> Result<Vec<Map>, BlockError> {
    let mut times = Times::new(block);
    let shapes = read_shapes(block, block.section(2)?)?;
    let shape_of = shape_ids(block, block.section(1)?, shapes.len())?;
    let columns = block.columns();
    if shapes
        .iter()
        .flatten()
        .any(|&c| c as usize >= columns.len())
    {
        return Err(block.damaged("shapes"));
    }
    let names: Vec<CompactString> = columns.iter().map(|s| s.name.as_str().into()).collect();
    let mut cursors: Vec<Option<Cursor>> = (0..columns.len()).map(|_| None).collect();
    let bad = || block.damaged("column");
    let mut out = Vec::with_capacity(wanted.len());
    let mut previous = None;
    for &row in wanted {
        if row >= shape_of.len() || previous.is_some_and(|p| p >= row) {
            return Err(block.damaged("rows"));
        }
        previous = Some(row);
        let shape = &shapes[shape_of[row] as usize];
        let mut map = Map::with_capacity(shape.len());
        for &c in shape {
            let slot = &mut cursors[c as usize];
            let page = row / PAGE_ROWS;
            let reopen = match slot {
                None => true,
                Some(cursor) => cursor.page.is_some_and(|p| p < page) && cursor.next_row <= row,
            };
            if reopen {
                let held = match slot.take() {
                    Some(cursor) => cursor.held,
                    None => shapes
                        .iter()
                        .map(|s| s.iter().filter(|&&x| x == c).count() as u32)
                        .collect(),
                };
                let (data, pages) = block.read_page(&columns[c as usize], page)?;
                if pages > 1 && pages != (block.rows as usize).div_ceil(PAGE_ROWS) {
                    return Err(block.damaged("page table"));
                }
                let (column, page, first_row) = if pages == 1 {
                    (Column::open(data).map_err(|_| bad())?, None, 0)
                } else if page == 0 {
                    (Column::open(data).map_err(|_| bad())?, Some(0), 0)
                } else {
                    (Column::plain_page(data), Some(page), page * PAGE_ROWS)
                };
                *slot = Some(Cursor {
                    column,
                    page,
                    next_row: first_row,
                    held,
                });
            }
            let Some(cursor) = slot.as_mut() else {
                return Err(bad());
            };
            // Past the values of the rows between, unless this row's are being read
            // already (a key the row holds twice).
            if cursor.next_row <= row {
                for &shape in &shape_of[cursor.next_row..row] {
                    for _ in 0..cursor.held[shape as usize] {
                        cursor.column.skip().map_err(|_| bad())?;
                    }
                }
                cursor.next_row = row + 1;
            }
            let value = cursor.column.value(times.get(row)?).map_err(|_| bad())?;
            map.push_unchecked(names[c as usize].clone(), value);
        }
        out.push(map);
    }
    Ok(out)
}
