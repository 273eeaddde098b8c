//! A sliding window of event counts in time buckets, with a running sum.
//!
//! The window is cut into [`BUCKETS`] buckets of `window / BUCKETS` each. Adding an event
//! moves the head to the event's bucket (clearing buckets that fell out of the window, at
//! most [`BUCKETS`] of them whatever the gap) and bumps one counter and the running sum, so
//! every event costs O(1) and reading the count is a field read. The count covers the
//! current, partly elapsed bucket and the `BUCKETS - 1` before it: the window's start is
//! accurate to one bucket (1/30 of the window).
//!
//! Times are nanoseconds on the caller's clock; a clock that steps back simply counts into
//! the current head bucket.

/// Buckets per window. More buckets make the edge sharper and cost memory per group.
pub(super) const BUCKETS: usize = 30;

/// Counts of one group over the window.
#[derive(Debug, Clone)]
pub struct Window {
    /// Absolute bucket number (time / bucket width) of the newest bucket.
    head: i64,
    counts: [u32; BUCKETS],
    sum: u64,
}

impl Window {
    pub fn new(bucket: i64) -> Self {
        Self {
            head: bucket,
            counts: [0; BUCKETS],
            sum: 0,
        }
    }

    /// Moves the head to `bucket`, dropping the counts that fell out of the window.
    pub fn advance(&mut self, bucket: i64) {
        if bucket <= self.head {
            return;
        }
        let steps = (bucket - self.head).min(BUCKETS as i64);
        for step in 1..=steps {
            let slot = (self.head + step).rem_euclid(BUCKETS as i64) as usize;
            self.sum -= u64::from(self.counts[slot]);
            self.counts[slot] = 0;
        }
        self.head = bucket;
    }

    /// Counts `n` events at `bucket`.
    pub fn add(&mut self, bucket: i64, n: u32) {
        self.advance(bucket);
        let slot = self.head.rem_euclid(BUCKETS as i64) as usize;
        self.counts[slot] = self.counts[slot].saturating_add(n);
        self.sum += u64::from(n);
    }

    /// Events in the window ending at the head bucket.
    pub fn sum(&self) -> u64 {
        self.sum
    }
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
        let mut window = Window::new(0);
        for (i, (op, bucket, expected)) in table.iter().enumerate() {
            match *op {
                ">" => window.advance(*bucket),
                add => window.add(*bucket, add[1..].parse().unwrap()),
            }
            assert_eq!(window.sum(), *expected, "step {i}: {op} at {bucket}");
        }
    }

    #[test]
    fn sum_matches_a_naive_count() {
        // A deterministic pseudo-random walk, checked against counting a list of events.
        let mut rng = fastrand::Rng::with_seed(7);
        let mut window = Window::new(0);
        let mut events: Vec<i64> = Vec::new();
        let mut bucket = 0i64;
        for _ in 0..5000 {
            bucket += rng.i64(0..4);
            if rng.bool() {
                window.add(bucket, 1);
                events.push(bucket);
            } else {
                window.advance(bucket);
            }
            let naive = events
                .iter()
                .filter(|b| **b > bucket - BUCKETS as i64)
                .count() as u64;
            assert_eq!(window.sum(), naive, "at bucket {bucket}");
        }
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
