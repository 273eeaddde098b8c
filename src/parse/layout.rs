//! Plain-text layouts: the level, timestamp and source fields of a line as the programs that
//! write most stdout lay them out.
//!
//! A level is read from **its own position** in a layout, never from a level-like word found
//! somewhere in the message ("retrying after ERROR from upstream" carries no level). The
//! positions, in the order they are tried:
//!
//! | where                          | layouts                                                       |
//! |--------------------------------|---------------------------------------------------------------|
//! | a letter glued to the header   | glog/klog `I1206 01:29:59.626547  123 file.go:24] msg`, logcat `brief` `I/Tag( 123): msg`, Ruby Logger `E, [2026-… #1] ERROR -- :` |
//! | the tokens after the timestamp | log4j/logback/log4net, Python `asctime - name - LEVEL -`, supervisord, Zookeeper, HDFS, Spark, nginx `[error]`, Apache `[error]` / `[core:error]`, Serilog `[12:00:00 INF]`, Elixir `[error]`, MySQL/MariaDB `[Note]`, PostgreSQL `[123] LOG:  `, MongoDB `I  NETWORK`, logcat `threadtime` `123 456 I Tag:` and `time` `I/Tag( 123):`, Windows CBS `, Info  CBS`, zap's tab-separated `info` |
//! | after a Redis `pid:role` prefix | Redis `.` `-` `*` `#`                                        |
//! | the first token of the line    | Python `WARNING:root:msg`, `error: …`, `[ERROR] …`, `<crit> …`, PostgreSQL `FATAL:  …`, java.util.logging's second line `SEVERE: …` |
//! | an explicit key                | `level=error` anywhere in the first bytes                     |
//!
//! "The tokens after the timestamp" means: skipping blanks, separators (`-`, `|`, `,`, `:`),
//! numbers (pids, thread ids), bracketed words that are not levels (`[main]`, `[1234]`) and
//! at most one logger name between ` - ` separators, the first word must be a level, in
//! capitals, Capitalised, bracketed, or lower case before `:` or a tab. Anything else ends
//! the search: the message has begun.

use std::ops::Range;

use super::level::Level;
use super::timestamp_search::{find_timestamp, Search, SEARCH_BYTES};
use super::zone::{LocalZone, UTC};

/// A timestamp must start this close to the line's start for the tokens after it to be
/// read as a header (Redis' `12345:M ` and Ruby's `E, [` are the longest prefixes known).
const HEADER_BYTES: usize = 32;

/// How many header tokens after the timestamp are read before giving up.
const MAX_TOKENS: usize = 6;

/// A bracketed group longer than this is content, not a header field.
const MAX_BRACKET: usize = 96;

/// Fields a layout carries besides its level and time, as byte ranges of the line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Source {
    pub(crate) pid: Option<Range<usize>>,
    pub(crate) tid: Option<Range<usize>>,
    /// logcat's tag.
    pub(crate) component: Option<Range<usize>>,
    /// glog's `file.go:24`.
    pub(crate) file: Option<Range<usize>>,
    pub(crate) line: Option<Range<usize>>,
    /// Java's logger and thread.
    pub(crate) logger: Option<Range<usize>>,
    pub(crate) thread: Option<Range<usize>>,
}

impl Source {
    /// How many fields were found.
    pub(crate) fn count(&self) -> usize {
        [
            &self.pid,
            &self.tid,
            &self.component,
            &self.file,
            &self.line,
            &self.logger,
            &self.thread,
        ]
        .iter()
        .filter(|range| range.is_some())
        .count()
    }
}

/// What a plain-text line says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TextScan {
    pub(crate) time: Search,
    pub(crate) level: Option<Level>,
    /// The layout recognised (see [`Normalized::layout`](super::Normalized::layout)).
    pub(crate) layout: Option<&'static str>,
    pub(crate) source: Source,
}

/// Reads the timestamp, level and source fields of `line`. `now` is the reference time for
/// layouts without a year or a date (0: the current time); `anywhere` lets the timestamp be
/// found past the first token (see [`find_timestamp`]); a time without an offset is read in
/// `zone`.
pub(crate) fn scan(line: &[u8], now: i64, anywhere: bool, zone: &LocalZone) -> TextScan {
    let time = find_timestamp(line, now, anywhere, zone);
    let mut source = Source::default();
    let (level, layout) = level(line, time, &mut source);
    TextScan {
        time,
        level,
        layout,
        source,
    }
}

/// The level of a line, read from its position in the layout (see the module docs).
pub(crate) fn level_of(line: &[u8]) -> Option<Level> {
    let time = find_timestamp(line, 0, true, &UTC);
    level(line, time, &mut Source::default()).0
}

/// The level of a line and the name of the layout it was read from (`timestamp` when the
/// line has a time but no level, `None` when nothing was recognised).
fn level(line: &[u8], time: Search, source: &mut Source) -> (Option<Level>, Option<&'static str>) {
    if let Some((level, name)) = letter_prefix(line, source) {
        return (Some(level), Some(name));
    }
    let found = match time {
        Search::Found(f) | Search::Implausible(f) => Some(f),
        Search::None => None,
    };
    let from_header = match found {
        Some(f) if f.start <= HEADER_BYTES => {
            if let Some(level) = redis(line, f.start, f.end) {
                return (Some(level), Some("redis"));
            }
            match Header::new(line, f.end, true, source).run() {
                // `[ERROR] 2026-12-06 …`: the level before the time.
                Outcome::Nothing if f.start > 0 => {
                    Header::new(&line[..f.start], 0, false, source).run()
                }
                outcome => outcome,
            }
        }
        _ => Header::new(line, 0, false, source).run(),
    };
    if !matches!(from_header, Outcome::Level(..)) {
        // A bracketed word before no level is not known to be a thread.
        source.thread = None;
    }
    // A time found past the first token that led to no level: read the header as a line
    // without a time would be read, so a level is never found only when less of the line
    // is searched for a time (normalising the event again must find the same).
    let from_header = match (from_header, found) {
        (Outcome::Nothing, Some(f)) if f.start > 0 => {
            let again = Header::new(line, 0, false, source).run();
            if !matches!(again, Outcome::Level(..)) {
                source.thread = None;
            }
            again
        }
        (outcome, _) => outcome,
    };
    match from_header {
        Outcome::Level(level, name) => (Some(level), Some(name)),
        // A PostgreSQL `DETAIL:` line belongs to the message before it and has no level.
        Outcome::Continuation => (None, Some("postgresql")),
        Outcome::Nothing => match level_key(line) {
            Some(level) => (Some(level), Some("level_key")),
            None => (None, found.map(|_| "timestamp")),
        },
    }
}

// === a level letter glued to the header ===

fn letter_prefix(line: &[u8], source: &mut Source) -> Option<(Level, &'static str)> {
    let first = *line.first()?;
    match line.get(1)? {
        // glog/klog: `E1206 01:29:59.626547    12 main.go:24] msg`.
        b'0'..=b'9' => glog(line, source).map(|level| (level, "glog")),
        // logcat brief: `I/Tag( 1234): msg`.
        b'/' => logcat_tag(line, 0, source).map(|level| (level, "logcat")),
        // Ruby Logger: `E, [2026-12-06T01:29:59.626547 #1234] ERROR -- : msg`.
        b',' if line.get(2..4) == Some(b" [") => {
            ruby_letter(first).map(|level| (level, "ruby_logger"))
        }
        _ => None,
    }
}

fn glog(line: &[u8], source: &mut Source) -> Option<Level> {
    let level = match line[0] {
        b'I' => Level::Info,
        b'W' => Level::Warn,
        b'E' => Level::Error,
        b'F' => Level::Critical,
        _ => return None,
    };
    let head = line.get(..16)?;
    let is_header = head[1..5].iter().all(u8::is_ascii_digit)
        && head[5] == b' '
        && head[6..8].iter().all(u8::is_ascii_digit)
        && head[8] == b':';
    if !is_header {
        return None;
    }
    // `HH:MM:SS.ffffff  threadid file:line]`
    let mut pos = 14;
    while line
        .get(pos)
        .is_some_and(|b| b.is_ascii_digit() || *b == b'.')
    {
        pos += 1;
    }
    let tid = word_at(line, skip_blanks(line, pos), |b| b.is_ascii_digit());
    if let Some(tid) = tid {
        let file_start = skip_blanks(line, tid.end);
        if let Some(close) = find_within(line, file_start, b']', MAX_BRACKET) {
            if let Some(colon) = line[file_start..close].iter().rposition(|b| *b == b':') {
                let colon = file_start + colon;
                if colon > file_start && line[colon + 1..close].iter().all(u8::is_ascii_digit) {
                    source.file = Some(file_start..colon);
                    source.line = Some(colon + 1..close);
                }
            }
        }
        source.tid = Some(tid);
    }
    Some(level)
}

fn ruby_letter(letter: u8) -> Option<Level> {
    Some(match letter {
        b'D' => Level::Debug,
        b'I' => Level::Info,
        b'W' => Level::Warn,
        b'E' => Level::Error,
        b'F' => Level::Critical,
        _ => return None,
    })
}

/// logcat's priority letters (Android's `V D I W E F A`; `A` is assert, above error).
fn logcat_letter(letter: u8) -> Option<Level> {
    Some(match letter {
        b'V' => Level::Trace,
        b'D' => Level::Debug,
        b'I' => Level::Info,
        b'W' => Level::Warn,
        b'E' => Level::Error,
        b'F' | b'A' => Level::Critical,
        _ => return None,
    })
}

/// `I/Tag( 1234): msg` from the letter at `at`; the tag and pid are recorded.
fn logcat_tag(line: &[u8], at: usize, source: &mut Source) -> Option<Level> {
    let level = logcat_letter(*line.get(at)?)?;
    let tag_start = at + 2;
    let open = find_within(line, tag_start, b'(', MAX_BRACKET)?;
    let close = find_within(line, open, b')', 16)?;
    if line.get(close + 1) != Some(&b':') {
        return None;
    }
    let pid = trim_range(line, open + 1..close);
    if pid.is_empty() || !line[pid.clone()].iter().all(u8::is_ascii_digit) {
        return None;
    }
    source.component = Some(trim_range(line, tag_start..open));
    source.pid = Some(pid);
    Some(level)
}

/// Redis: `1234:M 06 Dec 2026 01:29:59.626 * Ready`; the marker after the time is the
/// level (`.` debug, `-` verbose, `*` notice, `#` warning).
fn redis(line: &[u8], start: usize, end: usize) -> Option<Level> {
    let prefix = &line[..start];
    let colon = prefix.iter().position(|b| *b == b':')?;
    let is_redis = colon > 0
        && prefix[..colon].iter().all(u8::is_ascii_digit)
        && prefix.len() == colon + 3
        && matches!(prefix[colon + 1], b'M' | b'S' | b'C' | b'X')
        && prefix[colon + 2] == b' ';
    if !is_redis || line.get(end) != Some(&b' ') || line.get(end + 2) != Some(&b' ') {
        return None;
    }
    Some(match line[end + 1] {
        b'.' => Level::Debug,
        b'-' => Level::Info,
        b'*' => Level::Notice,
        b'#' => Level::Warn,
        _ => return None,
    })
}

// === the tokens after the timestamp ===

enum Outcome {
    /// A level, and the name of the layout it was read from.
    Level(Level, &'static str),
    Continuation,
    Nothing,
}

struct Header<'a, 's> {
    // `run` and `word` call each other; `tokens` bounds the recursion by MAX_TOKENS.
    line: &'a [u8],
    pos: usize,
    after_time: bool,
    tokens: usize,
    numbers: usize,
    /// The first two numbers: logcat's pid and tid, named only once the layout is known.
    number_spans: [Option<Range<usize>>; 2],
    /// The separator before the current token was ` - `.
    dash_before: bool,
    name_skipped: bool,
    source: &'s mut Source,
}

impl<'a, 's> Header<'a, 's> {
    fn new(line: &'a [u8], pos: usize, after_time: bool, source: &'s mut Source) -> Self {
        Self {
            line,
            pos,
            after_time,
            tokens: 0,
            numbers: 0,
            number_spans: [None, None],
            dash_before: false,
            name_skipped: false,
            source,
        }
    }

    fn run(&mut self) -> Outcome {
        let line = self.line;
        while self.tokens < MAX_TOKENS {
            let before = self.pos;
            self.pos = skip_blanks(line, self.pos);
            let Some(&b) = line.get(self.pos) else {
                return Outcome::Nothing;
            };
            let next = line.get(self.pos + 1).copied();
            let ends_token = next.is_none_or(|n| n == b' ' || n == b'\t');
            match b {
                b'-' | b'|' | b',' | b':' | b']' if ends_token || b == b',' || b == b']' => {
                    self.dash_before = b == b'-' && self.pos > before;
                    self.pos += 1;
                    continue;
                }
                b'[' | b'(' | b'<' => {
                    let close = match b {
                        b'[' => b']',
                        b'(' => b')',
                        _ => b'>',
                    };
                    let Some(end) = find_within(line, self.pos + 1, close, MAX_BRACKET) else {
                        return Outcome::Nothing;
                    };
                    let inner = self.pos + 1..end;
                    if let Some(level) = bracket_level(&line[inner.clone()]) {
                        return Outcome::Level(level, "bracketed_level");
                    }
                    let first = line.get(inner.start).copied();
                    if b == b'[' && first.is_some_and(|f| f.is_ascii_alphabetic()) {
                        self.source.thread.get_or_insert(inner);
                    }
                    self.pos = end + 1;
                }
                b'0'..=b'9' | b'#' => {
                    let end = token_end(line, self.pos);
                    let word = &line[self.pos..end];
                    let numeric = word
                        .iter()
                        .all(|b| b.is_ascii_digit() || matches!(b, b'#' | b':' | b'.'));
                    if !numeric {
                        return Outcome::Nothing;
                    }
                    self.numbers += 1;
                    self.number_spans[self.numbers.min(2) - 1] = Some(self.pos..end);
                    self.pos = end;
                }
                b if b.is_ascii_alphabetic() || b == b'_' => return self.word(),
                _ => return Outcome::Nothing,
            }
            self.tokens += 1;
            self.dash_before = false;
        }
        Outcome::Nothing
    }

    fn word(&mut self) -> Outcome {
        let line = self.line;
        let start = self.pos;
        let end = start
            + line[start..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .count();
        let word = &line[start..end];
        let after = line.get(end).copied();
        if word.len() == 1 {
            return self.letter(word[0], after, end);
        }
        if after == Some(b':') {
            if let Some(outcome) = postgres(word, line.get(end + 1..).unwrap_or_default()) {
                return outcome;
            }
        }
        let upper = word
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        let capitalised =
            word[0].is_ascii_uppercase() && word[1..].iter().all(u8::is_ascii_lowercase);
        let lower_marked = matches!(after, Some(b':' | b'\t' | b']'));
        let delimited = matches!(
            after,
            None | Some(b' ' | b'\t' | b':' | b']' | b'|' | b',' | b';')
        );
        // `Error loading config` at the start of a line is prose; after a timestamp,
        // `Info` is Windows CBS's level.
        let capitalised = capitalised && (self.after_time || after == Some(b':'));
        if delimited && (upper || capitalised || lower_marked) {
            // Words that are also common English need a timestamp before them or a colon
            // after them (java.util.logging's `FINE: msg`).
            let trusted = self.after_time || after == Some(b':') || !is_weak_word(word);
            if let Some(level) = layout_word(word).filter(|_| trusted) {
                self.java_logger(end);
                let name = if self.after_time {
                    "timestamp_level"
                } else {
                    "level_first"
                };
                return Outcome::Level(level, name);
            }
        }
        // A zone abbreviation after the time (`CET`, `PST`), or one logger name between
        // ` - ` separators (Python's `asctime - name - levelname - message`).
        if self.after_time && self.tokens == 0 && upper && (3..=4).contains(&word.len()) {
            self.pos = end;
            self.tokens += 1;
            return self.run_on();
        }
        if self.after_time && self.dash_before && !self.name_skipped {
            let name_end = start
                + line[start..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'$'))
                    .count();
            if line.get(name_end..name_end + 3) == Some(b" - ") {
                self.name_skipped = true;
                self.pos = name_end;
                self.tokens += 1;
                return self.run_on();
            }
        }
        Outcome::Nothing
    }

    fn run_on(&mut self) -> Outcome {
        self.dash_before = false;
        self.run()
    }

    /// A single letter: logcat's `I/Tag(` or its threadtime `pid tid I Tag:`, or MongoDB's
    /// `I  NETWORK` right after the time.
    fn letter(&mut self, letter: u8, after: Option<u8>, end: usize) -> Outcome {
        let line = self.line;
        if after == Some(b'/') {
            return logcat_tag(line, self.pos, self.source)
                .map_or(Outcome::Nothing, |level| Outcome::Level(level, "logcat"));
        }
        if after != Some(b' ') {
            return Outcome::Nothing;
        }
        if self.after_time && self.numbers == 2 && self.tokens == 2 {
            let Some(level) = logcat_letter(letter) else {
                return Outcome::Nothing;
            };
            let tag_start = skip_blanks(line, end);
            if let Some(colon) = find_within(line, tag_start, b':', MAX_BRACKET) {
                self.source.component = Some(trim_range(line, tag_start..colon));
            }
            let [pid, tid] = std::mem::take(&mut self.number_spans);
            self.source.pid = pid;
            self.source.tid = tid;
            return Outcome::Level(level, "logcat");
        }
        if self.after_time && self.tokens == 0 {
            let next = line.get(skip_blanks(line, end)).copied();
            if next.is_some_and(|n| n.is_ascii_uppercase() || n == b'-') {
                if let Some(level) = ruby_letter(letter) {
                    return Outcome::Level(level, "mongodb");
                }
            }
        }
        Outcome::Nothing
    }

    /// `LEVEL logger - msg` (log4j/logback's `%-5level %logger{36} - %msg`): the logger.
    fn java_logger(&mut self, level_end: usize) {
        let line = self.line;
        let start = skip_blanks(line, level_end);
        let end = start
            + line[start..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'$'))
                .count();
        if end > start && line[start..end].contains(&b'.') {
            let rest = &line[skip_blanks(line, end)..];
            if rest.starts_with(b"- ") || rest.starts_with(b":") {
                self.source.logger = Some(start..end);
            }
        }
    }
}

/// PostgreSQL's `WORD:  message` (two blanks after the colon): `LOG` is its info, and the
/// `DETAIL`, `HINT`, `STATEMENT`… lines continue the message before them.
fn postgres(word: &[u8], rest: &[u8]) -> Option<Outcome> {
    if !(rest.starts_with(b"  ") || rest.is_empty()) {
        return None;
    }
    match word {
        b"LOG" => Some(Outcome::Level(Level::Info, "postgresql")),
        b"DETAIL" | b"HINT" | b"STATEMENT" | b"CONTEXT" | b"QUERY" | b"LOCATION" => {
            Some(Outcome::Continuation)
        }
        _ => None,
    }
}

/// `[error]`, `[core:error]` (Apache 2.4), `[Note]` (MySQL), `<crit>`, ` INF` (Serilog).
fn bracket_level(inner: &[u8]) -> Option<Level> {
    let inner = inner.trim_ascii();
    let word = match inner.iter().rposition(|b| *b == b':') {
        Some(colon) => &inner[colon + 1..],
        None => inner,
    };
    if word.len() < 3 || !word.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    layout_word(word)
}

/// A level word in a layout's level position: the field vocabulary without single
/// letters, plus the spellings only such positions use (Apache's `trace1`–`trace8`,
/// PostgreSQL's `DEBUG1`–`DEBUG5`, MySQL's `Note` and `System`).
fn layout_word(word: &[u8]) -> Option<Level> {
    if word.len() < 3 || word[0].is_ascii_digit() {
        return None;
    }
    if let Some(level) = Level::from_word(word) {
        return Some(level);
    }
    let stem = word.trim_ascii_end();
    let letters = stem.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    let (name, digits) = stem.split_at(letters);
    if !digits.is_empty() && digits.len() == 1 && digits[0].is_ascii_digit() {
        if name.eq_ignore_ascii_case(b"trace") {
            return Some(Level::Trace);
        }
        if name.eq_ignore_ascii_case(b"debug") {
            return Some(Level::Debug);
        }
    }
    if word.eq_ignore_ascii_case(b"note") || word.eq_ignore_ascii_case(b"system") {
        return Some(Level::Info);
    }
    None
}

/// Level words that are also ordinary words in capitals (`FINE`, `CONFIG`, `VERBOSE`).
fn is_weak_word(word: &[u8]) -> bool {
    [
        &b"fine"[..],
        b"finer",
        b"finest",
        b"config",
        b"verbose",
        b"note",
        b"system",
        b"panic",
    ]
    .iter()
    .any(|w| word.eq_ignore_ascii_case(w))
}

// === an explicit key ===

/// `level=error` (or `lvl`, `severity`, `loglevel`, `log_level`) in the first bytes.
fn level_key(line: &[u8]) -> Option<Level> {
    let window = &line[..line.len().min(SEARCH_BYTES)];
    let mut from = 0;
    while let Some(eq) = memchr::memchr(b'=', &window[from..]) {
        let eq = from + eq;
        from = eq + 1;
        let key_start = window[..eq]
            .iter()
            .rposition(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
            .map_or(0, |i| i + 1);
        if !is_level_key(&window[key_start..eq]) {
            continue;
        }
        let value = &line[eq + 1..];
        let value = value.strip_prefix(b"\"").unwrap_or(value);
        let end = value
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
            .unwrap_or(value.len());
        return Level::from_word(&value[..end]);
    }
    None
}

fn is_level_key(word: &[u8]) -> bool {
    [
        &b"level"[..],
        b"lvl",
        b"severity",
        b"loglevel",
        b"log_level",
    ]
    .iter()
    .any(|k| word.eq_ignore_ascii_case(k))
}

// === bytes ===

fn skip_blanks(line: &[u8], mut pos: usize) -> usize {
    while line.get(pos).is_some_and(|b| *b == b' ' || *b == b'\t') {
        pos += 1;
    }
    pos
}

fn token_end(line: &[u8], pos: usize) -> usize {
    pos + line[pos..]
        .iter()
        .take_while(|b| !matches!(b, b' ' | b'\t'))
        .count()
}

fn word_at(line: &[u8], pos: usize, ok: impl Fn(&u8) -> bool) -> Option<Range<usize>> {
    let len = line.get(pos..)?.iter().take_while(|b| ok(b)).count();
    (len > 0).then_some(pos..pos + len)
}

/// The position of `needle` at or after `from`, within `limit` bytes. A plain loop, not
/// `memchr`: the bracket or colon sought is mostly a few bytes away, nearer than its
/// vector search pays for.
fn find_within(line: &[u8], from: usize, needle: u8, limit: usize) -> Option<usize> {
    let end = line.len().min(from.saturating_add(limit));
    let hay = line.get(from..end)?;
    hay.iter().position(|b| *b == needle).map(|i| from + i)
}

fn trim_range(line: &[u8], range: Range<usize>) -> Range<usize> {
    let mut r = range;
    while r.start < r.end && line[r.start].is_ascii_whitespace() {
        r.start += 1;
    }
    while r.end > r.start && line[r.end - 1].is_ascii_whitespace() {
        r.end -= 1;
    }
    r
}

#[cfg(test)]
#[path = "layout_tests.rs"]
mod tests;
