//! The pending group of every stream, and the decision each line makes (the table in the
//! module above).
//!
//! Generic over the stream key and over what a line carries besides its bytes ([`Parts`]):
//! the transform carries the first event and every line's acknowledgement token, the file
//! source the offset where the group began. Time is passed in, so the timeout is tested
//! without sleeping.

use std::hash::Hash;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use lru::LruCache;

use super::{Mode, MultilineRules};

/// What a line brings to its group besides its bytes.
pub trait Parts {
    /// Takes in what a later line of the same group brings.
    fn absorb(&mut self, next: Self);
}

/// Why a group was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// The rules ended it (or the line joined nothing).
    Complete,
    /// It reached `max_lines` or `max_bytes`; the next line starts a new group.
    Cut,
    /// Its stream was idle for `timeout_ms`.
    Timeout,
    /// More than `max_streams` streams had a group pending; this one was idle longest.
    Evicted,
    /// Sent on request: the input ended (shutdown, a file closed).
    End,
}

/// A group sent on: the lines joined with `\n`.
#[derive(Debug)]
pub struct Joined<P> {
    pub message: Bytes,
    pub parts: P,
    pub lines: usize,
    pub flush: Flush,
}

struct Group<P> {
    /// The first line, kept as it came (no copy) until a second one joins.
    first: Bytes,
    /// The joined lines once there are two or more.
    joined: BytesMut,
    lines: usize,
    parts: P,
    last_at: Instant,
}

impl<P> Group<P> {
    fn new(line: Bytes, parts: P, now: Instant) -> Self {
        Self {
            first: line,
            joined: BytesMut::new(),
            lines: 1,
            parts,
            last_at: now,
        }
    }

    fn len(&self) -> usize {
        if self.lines == 1 {
            self.first.len()
        } else {
            self.joined.len()
        }
    }

    fn fits(&self, line: &[u8], rules: &MultilineRules) -> bool {
        self.lines < rules.max_lines && self.len() + 1 + line.len() <= rules.max_bytes
    }

    fn add(&mut self, line: &[u8], parts: P, now: Instant)
    where
        P: Parts,
    {
        if self.lines == 1 {
            self.joined.reserve(self.first.len() + 1 + line.len());
            self.joined.extend_from_slice(&self.first);
            self.first = Bytes::new();
        }
        self.joined.extend_from_slice(b"\n");
        self.joined.extend_from_slice(line);
        self.lines += 1;
        self.parts.absorb(parts);
        self.last_at = now;
    }

    fn finish(self, flush: Flush) -> Joined<P> {
        let message = if self.lines == 1 {
            self.first
        } else {
            self.joined.freeze()
        };
        Joined {
            message,
            parts: self.parts,
            lines: self.lines,
            flush,
        }
    }
}

/// What a line seen while its stream has a group pending does.
enum Decision {
    Continue,
    EndInclude,
    EndExclude,
}

fn decide(mode: Mode, matched: bool) -> Decision {
    match (mode, matched) {
        (Mode::ContinueThrough, true) | (Mode::ContinuePast, true) => Decision::Continue,
        (Mode::ContinueThrough, false) | (Mode::HaltBefore, true) => Decision::EndExclude,
        (Mode::ContinuePast, false) | (Mode::HaltWith, true) => Decision::EndInclude,
        (Mode::HaltBefore, false) | (Mode::HaltWith, false) => Decision::Continue,
    }
}

/// The groups pending per stream, least recently extended first (so the idle ones are found
/// at one end, and `max_streams` sends the one idle longest).
pub struct LineAggregator<K: Hash + Eq, P> {
    rules: MultilineRules,
    groups: LruCache<K, Group<P>>,
}

impl<K: Hash + Eq + Clone, P: Parts> LineAggregator<K, P> {
    pub fn new(rules: MultilineRules) -> Self {
        Self {
            rules,
            groups: LruCache::unbounded(),
        }
    }

    pub fn rules(&self) -> &MultilineRules {
        &self.rules
    }

    /// Takes one line of stream `key`; `out` gets every group (or lone line) it completes,
    /// in the stream's order.
    pub fn push(
        &mut self,
        key: K,
        line: Bytes,
        parts: P,
        now: Instant,
        out: &mut impl FnMut(Joined<P>),
    ) {
        let Some(group) = self.groups.get_mut(&key) else {
            return self.start_or_pass(key, line, parts, now, out);
        };
        let matched = self.rules.condition.is_match(&line);
        match decide(self.rules.mode, matched) {
            Decision::EndExclude => {
                if let Some(group) = self.groups.pop(&key) {
                    out(group.finish(Flush::Complete));
                }
                self.start_or_pass(key, line, parts, now, out);
            }
            decision if group.fits(&line, &self.rules) => {
                group.add(&line, parts, now);
                if matches!(decision, Decision::EndInclude) {
                    if let Some(group) = self.groups.pop(&key) {
                        out(group.finish(Flush::Complete));
                    }
                }
            }
            decision => {
                if let Some(group) = self.groups.pop(&key) {
                    out(group.finish(Flush::Cut));
                }
                match decision {
                    // The rest of an overlong group starts a new one whatever the line
                    // looks like, so it stays together.
                    Decision::Continue => self.open(key, line, parts, now, out),
                    // The line that ends the group ends it alone.
                    _ => out(Group::new(line, parts, now).finish(Flush::Complete)),
                }
            }
        }
    }

    fn start_or_pass(
        &mut self,
        key: K,
        line: Bytes,
        parts: P,
        now: Instant,
        out: &mut impl FnMut(Joined<P>),
    ) {
        if self.rules.start.is_match(&line) {
            self.open(key, line, parts, now, out);
        } else {
            out(Group::new(line, parts, now).finish(Flush::Complete));
        }
    }

    fn open(
        &mut self,
        key: K,
        line: Bytes,
        parts: P,
        now: Instant,
        out: &mut impl FnMut(Joined<P>),
    ) {
        self.groups.push(key, Group::new(line, parts, now));
        if self.groups.len() > self.rules.max_streams {
            if let Some((_, oldest)) = self.groups.pop_lru() {
                out(oldest.finish(Flush::Evicted));
            }
        }
    }

    /// Sends the groups of streams idle for the timeout by `now`.
    pub fn flush_idle(&mut self, now: Instant, out: &mut impl FnMut(Joined<P>)) {
        while let Some((_, group)) = self.groups.peek_lru() {
            if now.saturating_duration_since(group.last_at) < self.rules.timeout {
                break;
            }
            if let Some((_, group)) = self.groups.pop_lru() {
                out(group.finish(Flush::Timeout));
            }
        }
    }

    /// When the next group would time out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.groups
            .peek_lru()
            .map(|(_, group)| group.last_at + self.rules.timeout)
    }

    /// Sends every pending group (the input ended), idle longest first.
    pub fn flush_all(&mut self, out: &mut impl FnMut(Joined<P>)) {
        while let Some((_, group)) = self.groups.pop_lru() {
            out(group.finish(Flush::End));
        }
    }

    /// Sends the pending group of one stream (its input ended).
    pub fn flush_key(&mut self, key: &K, out: &mut impl FnMut(Joined<P>)) {
        if let Some(group) = self.groups.pop(key) {
            out(group.finish(Flush::End));
        }
    }

    /// What the pending groups carry (for the file source: where each began).
    pub fn pending(&self) -> impl Iterator<Item = &P> {
        self.groups.iter().map(|(_, group)| &group.parts)
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::codec::multiline::MultilineConfig;

    /// The numbers of the lines a group holds.
    impl Parts for Vec<usize> {
        fn absorb(&mut self, next: Self) {
            self.extend(next);
        }
    }

    fn rules(start: &str, condition: &str, mode: Mode) -> MultilineRules {
        MultilineConfig {
            preset: None,
            start_pattern: Some(start.into()),
            condition_pattern: Some(condition.into()),
            mode: Some(mode),
            timeout_ms: 1_000,
            max_lines: 500,
            max_bytes: 1 << 20,
            max_streams: 10,
            group_by: None,
        }
        .build()
        .unwrap()
    }

    /// The messages `lines` (all of one stream) become, the end flushing what is pending.
    fn check(rules: MultilineRules, lines: &[&str], expected: &[&str]) {
        let mut aggregator = LineAggregator::new(rules);
        let mut got = Vec::new();
        let now = Instant::now();
        for (n, line) in lines.iter().enumerate() {
            aggregator.push("s", Bytes::from(line.to_string()), vec![n], now, &mut |j| {
                got.push(j)
            });
        }
        aggregator.flush_all(&mut |j| got.push(j));
        let messages: Vec<String> = got
            .iter()
            .map(|j| String::from_utf8(j.message.to_vec()).unwrap())
            .collect();
        assert_eq!(messages, expected);
        let order: Vec<usize> = got.into_iter().flat_map(|j| j.parts).collect();
        assert_eq!(
            order,
            (0..lines.len()).collect::<Vec<_>>(),
            "every line once, in order"
        );
    }

    #[test]
    fn continue_through_joins_matching_lines_to_the_start_line() {
        check(
            rules(r"^\S", r"^\s+", Mode::ContinueThrough),
            &[
                "usual line",
                "first part",
                "  second part",
                "  last part",
                "another message",
                "  its tail",
            ],
            &[
                "usual line",
                "first part\n  second part\n  last part",
                "another message\n  its tail",
            ],
        );
    }

    #[test]
    fn continue_past_joins_matching_lines_and_one_more() {
        check(
            rules(r"\\$", r"\\$", Mode::ContinuePast),
            &["plain", "one \\", "two \\", "three", "after"],
            &["plain", "one \\\ntwo \\\nthree", "after"],
        );
    }

    #[test]
    fn halt_before_joins_until_a_line_that_starts_the_next_message() {
        check(
            rules(r"^\[", r"^\[", Mode::HaltBefore),
            &[
                "stray",
                "[1] first",
                "more of first",
                "and more",
                "[2] second",
                "[3] third",
                "tail of third",
            ],
            &[
                "stray",
                "[1] first\nmore of first\nand more",
                "[2] second",
                "[3] third\ntail of third",
            ],
        );
    }

    #[test]
    fn halt_with_joins_up_to_and_including_the_terminator() {
        check(
            rules(r"^SELECT|^INSERT", r";$", Mode::HaltWith),
            &[
                "noise",
                "SELECT *",
                "FROM t",
                "WHERE a = 1;",
                "INSERT INTO t;",
                "noise again;",
            ],
            &[
                "noise",
                "SELECT *\nFROM t\nWHERE a = 1;",
                // As in Vector, the line that starts a group is not checked against the
                // condition: the terminator is looked for from the second line on.
                "INSERT INTO t;\nnoise again;",
            ],
        );
    }

    #[test]
    fn streams_are_joined_apart() {
        let mut aggregator = LineAggregator::new(rules(r"^\S", r"^\s", Mode::ContinueThrough));
        let now = Instant::now();
        let mut got = Vec::new();
        for (key, line) in [
            ("a", "A starts"),
            ("b", "B starts"),
            ("a", " a1"),
            ("b", " b1"),
            ("a", "A next"),
            ("b", " b2"),
        ] {
            aggregator.push(key, Bytes::from(line), vec![], now, &mut |j| {
                got.push(String::from_utf8(j.message.to_vec()).unwrap())
            });
        }
        aggregator.flush_all(&mut |j| got.push(String::from_utf8(j.message.to_vec()).unwrap()));
        // `A next` waits for its stream's next line; at the end, groups idle longest go first.
        assert_eq!(got, ["A starts\n a1", "A next", "B starts\n b1\n b2"]);
    }

    #[test]
    fn an_idle_stream_is_sent_after_the_timeout_and_not_before() {
        let mut aggregator = LineAggregator::new(rules(r"^\S", r"^\s", Mode::ContinueThrough));
        let t0 = Instant::now();
        let mut got: Vec<(String, Flush)> = Vec::new();
        let mut out = |j: Joined<Vec<usize>>| {
            got.push((String::from_utf8(j.message.to_vec()).unwrap(), j.flush))
        };
        aggregator.push("a", Bytes::from("a"), vec![], t0, &mut out);
        aggregator.push("b", Bytes::from("b"), vec![], t0, &mut out);
        aggregator.push(
            "b",
            Bytes::from(" b1"),
            vec![],
            t0 + Duration::from_millis(600),
            &mut out,
        );
        assert_eq!(
            aggregator.next_deadline(),
            Some(t0 + Duration::from_secs(1))
        );
        aggregator.flush_idle(t0 + Duration::from_millis(999), &mut out);
        aggregator.flush_idle(t0 + Duration::from_millis(1_000), &mut out);
        aggregator.flush_idle(t0 + Duration::from_millis(1_500), &mut out);
        aggregator.flush_idle(t0 + Duration::from_millis(1_600), &mut out);
        assert_eq!(
            got,
            [
                ("a".to_string(), Flush::Timeout),
                ("b\n b1".to_string(), Flush::Timeout)
            ]
        );
        assert!(aggregator.is_empty());
    }

    #[test]
    fn a_never_ending_group_is_cut_at_max_lines_and_the_rest_stays_together() {
        let mut rules = rules(r"^\S", r"^\s", Mode::ContinueThrough);
        rules.max_lines = 500;
        let mut lines =
            vec!["Exception in thread \"main\" java.lang.StackOverflowError".to_string()];
        lines.extend((1..1200).map(|n| format!("\tat Main.recurse(Main.java:{n})")));
        let mut aggregator = LineAggregator::new(rules);
        let mut got = Vec::new();
        let now = Instant::now();
        for line in lines {
            aggregator.push("s", Bytes::from(line), vec![], now, &mut |j| {
                got.push((j.lines, j.flush))
            });
        }
        aggregator.flush_all(&mut |j| got.push((j.lines, j.flush)));
        assert_eq!(
            got,
            [(500, Flush::Cut), (500, Flush::Cut), (200, Flush::End)]
        );
    }

    #[test]
    fn max_bytes_cuts_before_the_line_that_would_pass_it() {
        let mut rules = rules(r"^\S", r"^\s", Mode::ContinueThrough);
        rules.max_bytes = 11;
        check(
            rules,
            &["start", " 1234", " 5678", "x"],
            &["start\n 1234", " 5678", "x"],
        );
    }

    #[test]
    fn past_max_streams_the_stream_idle_longest_is_sent() {
        let mut rules = rules(r"^\S", r"^\s", Mode::ContinueThrough);
        rules.max_streams = 2;
        let mut aggregator = LineAggregator::new(rules);
        let now = Instant::now();
        let mut got = Vec::new();
        for key in ["a", "b", "a", "c"] {
            aggregator.push(key, Bytes::from(key), vec![], now, &mut |j| {
                got.push((String::from_utf8(j.message.to_vec()).unwrap(), j.flush))
            });
        }
        // The second `a` is not indented: it ends `a`'s group and starts another; then `c`
        // makes three streams, and `b` is the one idle longest.
        assert_eq!(
            got,
            [
                ("a".to_string(), Flush::Complete),
                ("b".to_string(), Flush::Evicted)
            ]
        );
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn mode() -> impl Strategy<Value = Mode> {
            prop_oneof![
                Just(Mode::ContinueThrough),
                Just(Mode::ContinuePast),
                Just(Mode::HaltBefore),
                Just(Mode::HaltWith),
            ]
        }

        proptest! {
            /// Whatever the rules, the limits and the interleaving of streams: each stream's
            /// lines come out once, in order, in groups within `max_lines` and (for more than
            /// one line) `max_bytes`.
            #[test]
            fn every_line_once_in_order_within_the_limits(
                lines in prop::collection::vec((0u8..3, "[ a;\\\\]{0,6}"), 0..80),
                mode in mode(),
                max_lines in 1usize..6,
                max_bytes in 1usize..30,
                max_streams in 1usize..3,
                timeout_at in prop::option::of(0usize..80),
            ) {
                let mut rules = rules(r"^a", r"^ |;$|\\$", mode);
                rules.max_lines = max_lines;
                rules.max_bytes = max_bytes;
                rules.max_streams = max_streams;
                let mut aggregator: LineAggregator<u8, Vec<usize>> = LineAggregator::new(rules);
                let t0 = Instant::now();
                let mut got: Vec<(u8, Joined<Vec<usize>>)> = Vec::new();
                for (n, (key, line)) in lines.iter().enumerate() {
                    if timeout_at == Some(n) {
                        aggregator.flush_idle(t0 + Duration::from_secs(5), &mut |j| {
                            let key = lines[j.parts[0]].0;
                            got.push((key, j))
                        });
                    }
                    aggregator.push(*key, Bytes::from(line.clone()), vec![n], t0, &mut |j| {
                        let key = lines[j.parts[0]].0;
                        got.push((key, j))
                    });
                }
                aggregator.flush_all(&mut |j| {
                    let key = lines[j.parts[0]].0;
                    got.push((key, j))
                });
                for key in 0..3u8 {
                    let sent: Vec<&Joined<Vec<usize>>> =
                        got.iter().filter(|(k, _)| *k == key).map(|(_, j)| j).collect();
                    let order: Vec<usize> = sent.iter().flat_map(|j| j.parts.clone()).collect();
                    let expected: Vec<usize> =
                        (0..lines.len()).filter(|n| lines[*n].0 == key).collect();
                    prop_assert_eq!(&order, &expected);
                    for joined in &sent {
                        let text: Vec<&str> =
                            joined.parts.iter().map(|n| lines[*n].1.as_str()).collect();
                        let text = text.join("\n");
                        prop_assert_eq!(&joined.message[..], text.as_bytes());
                        prop_assert!(joined.lines <= max_lines);
                        prop_assert!(joined.lines == 1 || joined.message.len() <= max_bytes);
                    }
                }
            }
        }
    }
}
