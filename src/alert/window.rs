//! Sliding windows of event counts in time buckets, with running sums, for many counters
//! per group at once.
//!
//! A window is cut into [`BUCKETS`] buckets of `window / BUCKETS` each. Every slot (group)
//! has one head bucket and, per column (counter), a ring of bucket counts and a running sum.
//! Counting moves the slot's head to the event's bucket (clearing buckets that fell out of
//! the window, at most [`BUCKETS`] of them whatever the gap) and bumps a count and its sum,
//! so every event costs O(1) per column and reading a count is a field read. A count covers
//! the current, partly elapsed bucket and the `BUCKETS - 1` before it: the window's start is
//! accurate to one bucket (1/30 of the window).
//!
//! The layout is what makes 100 rules over one stream cheap: the columns are the rules that
//! share a group key and window, and the counts one event bumps (one bucket of one slot,
//! every column) are adjacent in memory, a few cache lines rather than one table per rule.
//!
//! Times are nanoseconds on the caller's clock; a clock that steps back simply counts into
//! the current head bucket.

/// Buckets per window. More buckets make the edge sharper and cost memory per group.
pub(super) const BUCKETS: usize = 30;

/// Most events one bucket counts: the window's sum then fits a `u32` (4.29 billion), which
/// halves the memory an event touches against `u64` sums. A bucket holding more (7,000
/// events/s from one group for a week-long window's 5.6-hour bucket) stops counting.
const BUCKET_CAP: u32 = u32::MAX / BUCKETS as u32;

/// The windows of `columns` counters for each of a growing number of slots.
///
/// Counts are stored bucket-major: one plane per bucket position, holding that bucket of
/// every slot. Slots' heads move together with the clock, so the rows events bump (the
/// current bucket of every group) are one plane of `slots × columns` counts that stays in
/// cache, where a slot-major layout spread them over the whole table.
#[derive(Debug, Clone)]
pub(super) struct Windows {
    columns: usize,
    /// Slots each plane has room for.
    capacity: usize,
    /// Most slots there will ever be (`max_groups`): planes grow by doubling, but never
    /// past this, so memory stays what the cap promises.
    max_slots: usize,
    /// Absolute bucket number (time / bucket width) of each slot's newest bucket.
    heads: Vec<i64>,
    /// `slot * columns + column`.
    sums: Vec<u32>,
    /// `((bucket % BUCKETS) * capacity + slot) * columns + column`.
    counts: Vec<u32>,
}

impl Windows {
    pub(super) fn new(columns: usize, max_slots: usize) -> Self {
        Self {
            columns,
            capacity: 0,
            max_slots,
            heads: Vec::new(),
            sums: Vec::new(),
            counts: Vec::new(),
        }
    }

    /// Empties `slot` (growing the table to hold it) and puts its head at `bucket`.
    pub(super) fn reset(&mut self, slot: usize, bucket: i64) {
        if slot >= self.heads.len() {
            self.heads.resize(slot + 1, bucket);
            self.sums.resize((slot + 1) * self.columns, 0);
        }
        if slot >= self.capacity {
            let doubled = (self.capacity * 2).max(16).min(self.max_slots);
            self.grow(doubled.max(slot + 1));
        }
        self.heads[slot] = bucket;
        self.sums[slot * self.columns..(slot + 1) * self.columns].fill(0);
        for plane in 0..BUCKETS as i64 {
            let row = self.row(slot, plane);
            self.counts[row].fill(0);
        }
    }

    /// Makes room for `capacity` slots per plane, keeping the counts.
    fn grow(&mut self, capacity: usize) {
        let old = self.capacity * self.columns;
        let new = capacity * self.columns;
        let mut counts = vec![0; BUCKETS * new];
        for plane in 0..BUCKETS {
            counts[plane * new..plane * new + old]
                .copy_from_slice(&self.counts[plane * old..(plane + 1) * old]);
        }
        self.counts = counts;
        self.capacity = capacity;
    }

    /// Moves `slot`'s head to `bucket`, dropping the counts that fell out of the window.
    pub(super) fn advance(&mut self, slot: usize, bucket: i64) {
        let head = self.heads[slot];
        if bucket <= head {
            return;
        }
        let (columns, capacity) = (self.columns, self.capacity);
        let steps = (bucket - head).min(BUCKETS as i64);
        let sums = &mut self.sums[slot * columns..(slot + 1) * columns];
        for step in 1..=steps {
            let row = row(columns, capacity, slot, head + step);
            for (sum, count) in sums.iter_mut().zip(&mut self.counts[row]) {
                *sum -= *count;
                *count = 0;
            }
        }
        self.heads[slot] = bucket;
    }

    /// Counts one event in `column` of `slot` at the head bucket (call [`Windows::advance`]
    /// first).
    pub(super) fn add(&mut self, slot: usize, column: usize) {
        let row = self.row(slot, self.heads[slot]);
        let count = &mut self.counts[row][column];
        if *count < BUCKET_CAP {
            *count += 1;
            self.sums[slot * self.columns + column] += 1;
        }
    }

    /// Counts one event in every column from `first` whose entry in `matched` is true, at
    /// the head bucket (call [`Windows::advance`] first). Branch-free, so a row of 100
    /// columns costs a few vector instructions.
    pub(super) fn add_matched(&mut self, slot: usize, first: usize, matched: &[bool]) {
        let row = self.row(slot, self.heads[slot]);
        let columns = self.columns;
        let counts = &mut self.counts[row][first..first + matched.len()];
        let sums = &mut self.sums[slot * columns + first..slot * columns + first + matched.len()];
        for ((count, sum), m) in counts.iter_mut().zip(sums.iter_mut()).zip(matched) {
            let add = u32::from(*m & (*count < BUCKET_CAP));
            *count += add;
            *sum += add;
        }
    }

    /// Events in `column` of `slot`, in the window ending at its head bucket.
    pub(super) fn sum(&self, slot: usize, column: usize) -> u64 {
        u64::from(self.sums[slot * self.columns + column])
    }

    /// Every column's events of `slot` in the window.
    pub(super) fn sums(&self, slot: usize) -> &[u32] {
        &self.sums[slot * self.columns..(slot + 1) * self.columns]
    }

    /// The counts of `slot` at absolute bucket `bucket`, one per column.
    fn row(&self, slot: usize, bucket: i64) -> std::ops::Range<usize> {
        row(self.columns, self.capacity, slot, bucket)
    }
}

/// Where the counts of `slot` at absolute bucket `bucket` are, with `columns` per row and
/// `capacity` slots per plane.
fn row(columns: usize, capacity: usize, slot: usize, bucket: i64) -> std::ops::Range<usize> {
    let plane = bucket.rem_euclid(BUCKETS as i64) as usize;
    let start = (plane * capacity + slot) * columns;
    start..start + columns
}

/// Maps clock time to bucket numbers for one window length.
#[derive(Debug, Clone, Copy)]
pub(super) struct Buckets {
    width: i64,
}

impl Buckets {
    pub(super) fn new(window_nanos: i64) -> Self {
        Self {
            width: (window_nanos / BUCKETS as i64).max(1),
        }
    }

    pub(super) fn at(&self, nanos: i64) -> i64 {
        nanos.div_euclid(self.width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (operation, bucket, expected sum afterwards): `+n` adds n, `>` only advances.
    #[test]
    fn window_arithmetic() {
        let n = BUCKETS as i64;
        let table: &[(&str, i64, u64)] = &[
            ("+3", 0, 3),
            ("+2", 1, 5),
            (">", 5, 5),
            // Bucket 0 is still inside the window at head n-1 ...
            (">", n - 1, 5),
            // ... and leaves it at head n; bucket 1 leaves at n + 1.
            (">", n, 2),
            ("+1", n + 1, 1),
            // The clock stepping back counts into the head bucket.
            ("+4", 2, 5),
            // A gap longer than the window clears everything, in BUCKETS steps at most.
            (">", 10 * n, 0),
            ("+1", 10 * n, 1),
            (">", i64::MAX / 2, 0),
        ];
        let mut windows = Windows::new(2, 100);
        windows.reset(0, 0);
        for (i, (op, bucket, expected)) in table.iter().enumerate() {
            windows.advance(0, *bucket);
            if let Some(n) = op.strip_prefix('+') {
                for _ in 0..n.parse::<u32>().unwrap() {
                    windows.add(0, 1);
                }
            }
            assert_eq!(windows.sum(0, 1), *expected, "step {i}: {op} at {bucket}");
            assert_eq!(
                windows.sum(0, 0),
                0,
                "step {i}: the other column is untouched"
            );
        }
    }

    #[test]
    fn sums_match_a_naive_count_per_column_and_slot() {
        // A deterministic pseudo-random walk over 40 slots × 4 columns, checked against
        // counting a list of events. Slots appear as the walk first meets them, so the
        // table grows (16 → 32 → 64 slots per plane) while it holds counts.
        let mut rng = fastrand::Rng::with_seed(7);
        let mut windows = Windows::new(4, 1000);
        let mut events: Vec<(usize, usize, i64)> = Vec::new();
        let mut bucket = 0i64;
        let mut known = 0;
        for _ in 0..20_000 {
            bucket += rng.i64(0..3);
            let slot = rng.usize(0..(known + 2).min(40));
            while known <= slot {
                windows.reset(known, bucket);
                known += 1;
            }
            windows.advance(slot, bucket);
            if rng.bool() {
                let matched: Vec<bool> = (0..3).map(|_| rng.bool()).collect();
                windows.add_matched(slot, 1, &matched);
                for (i, m) in matched.iter().enumerate() {
                    if *m {
                        events.push((slot, i + 1, bucket));
                    }
                }
            }
            for column in 0..4 {
                let naive = events
                    .iter()
                    .filter(|(s, c, b)| *s == slot && *c == column && *b > bucket - BUCKETS as i64)
                    .count() as u64;
                assert_eq!(
                    windows.sum(slot, column),
                    naive,
                    "slot {slot} column {column} at {bucket}"
                );
            }
        }
        assert_eq!(known, 40);
        assert_eq!(windows.capacity, 64);
    }

    #[test]
    fn planes_grow_by_doubling_but_not_past_the_cap() {
        let mut windows = Windows::new(3, 40);
        windows.reset(0, 0);
        assert_eq!(windows.capacity, 16);
        windows.reset(16, 0);
        assert_eq!(windows.capacity, 32);
        // Doubling would make 64; the cap is 40.
        windows.reset(32, 0);
        assert_eq!(windows.capacity, 40);
        assert_eq!(windows.counts.len(), BUCKETS * 40 * 3);
        windows.reset(39, 0);
        windows.add(39, 2);
        assert_eq!(windows.sum(39, 2), 1);
    }

    #[test]
    fn a_full_bucket_stops_counting_and_the_sum_stays_exact() {
        let mut windows = Windows::new(2, 100);
        windows.reset(0, 0);
        // Fill bucket 0 of column 0 to one below the cap without 143 million adds.
        let row = windows.row(0, 0);
        windows.counts[row.start] = BUCKET_CAP - 1;
        windows.sums[0] = BUCKET_CAP - 1;
        windows.add(0, 0);
        windows.add(0, 0);
        windows.add_matched(0, 0, &[true, true]);
        assert_eq!(windows.sum(0, 0), u64::from(BUCKET_CAP));
        assert_eq!(windows.sum(0, 1), 1);
        // Every bucket full: the window's sum still fits.
        for bucket in 1..BUCKETS as i64 {
            windows.advance(0, bucket);
            let row = windows.row(0, bucket);
            windows.counts[row.start] = BUCKET_CAP;
            windows.sums[0] += BUCKET_CAP;
            windows.add(0, 0);
        }
        assert_eq!(windows.sum(0, 0), u64::from(BUCKET_CAP) * BUCKETS as u64);
        windows.advance(0, 10 * BUCKETS as i64);
        assert_eq!((windows.sum(0, 0), windows.sum(0, 1)), (0, 0));
    }

    #[test]
    fn reset_reuses_a_slot_empty() {
        let mut windows = Windows::new(1, 100);
        windows.reset(0, 0);
        windows.reset(1, 0);
        windows.add(1, 0);
        windows.reset(1, 40);
        assert_eq!(windows.sum(1, 0), 0);
        windows.advance(1, 41);
        windows.add(1, 0);
        assert_eq!(windows.sum(1, 0), 1);
    }

    #[test]
    fn buckets_divide_the_window() {
        let b = Buckets::new(3_000_000_000);
        assert_eq!(b.at(0), 0);
        assert_eq!(b.at(99_999_999), 0);
        assert_eq!(b.at(100_000_000), 1);
        assert_eq!(b.at(-1), -1);
        assert_eq!(Buckets::new(1).at(5), 5);
    }
}
