//! `sluice parse-check`: what the `parse` transform makes of a sample of a file, so a user
//! sees at once which layouts Sluice recognises in their logs and which lines it reads
//! nothing from.
//!
//! Each sampled line goes through the same [`Parse`] transform a pipeline runs (with
//! `detected_format` on), stamped with the current time as its arrival, as a line read by
//! a source would be. Nothing is sent anywhere.

use std::collections::BTreeMap;
use std::fmt;
use std::io::BufRead;

use bytes::Bytes;

use crate::event::Event;
use crate::field_error::FieldError;
use crate::parse::{Level, TimestampSource};
use crate::transforms::parse::{Parse, ParseConfig, ParseFormat};
use crate::transforms::TransformContext;

/// How many lines are sampled unless told otherwise.
pub const DEFAULT_LINES: usize = 10_000;

/// How many lines that gave no level or no timestamp are shown.
const EXAMPLES: usize = 10;

/// A line longer than this is cut here (the rest of it is skipped), so one huge line cannot
/// take unbounded memory.
const MAX_LINE_BYTES: usize = 1 << 20;

/// How much of an example line is printed.
const EXAMPLE_CHARS: usize = 160;

/// Why a check could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("invalid parse settings: {0}")]
    Config(#[from] FieldError),
    #[error("cannot read the sample")]
    Read(#[from] std::io::Error),
}

/// A line of the sample that gave no level, no timestamp, or neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// 1-based line number in the sample.
    pub number: usize,
    pub level: bool,
    pub timestamp: bool,
    /// The start of the line, printable.
    pub text: String,
}

/// What the parse transform made of a sample.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub lines: usize,
    /// Per format or text layout (`detected_format`'s names), how many lines.
    pub layouts: BTreeMap<&'static str, usize>,
    pub with_level: usize,
    /// Lines whose time came from the line itself (a field or its text), not arrival.
    pub with_timestamp: usize,
    /// Lines whose text held a time too implausible to take.
    pub implausible_timestamps: usize,
    /// Lines the configured format could not parse (never with `auto`).
    pub failed: usize,
    pub levels: BTreeMap<Level, usize>,
    /// How many lines gave no level or no timestamp; the first few are in `examples`.
    pub unmatched: usize,
    pub examples: Vec<Example>,
    /// Lines cut at [`MAX_LINE_BYTES`].
    pub cut_lines: usize,
}

/// The parse settings a check runs with: `format` and `timezone`, the rest as a
/// pipeline's default `parse` transform, plus `detected_format`.
pub fn config(format: ParseFormat, timezone: &str) -> ParseConfig {
    ParseConfig {
        format,
        timezone: timezone.to_string(),
        detected_format: true,
        ..ParseConfig::default()
    }
}

/// Reads up to `max_lines` lines of `input` and runs each through a parse transform built
/// from `config`; `now` is every line's arrival time.
pub fn check(
    input: impl BufRead,
    config: &ParseConfig,
    max_lines: usize,
    now: i64,
) -> Result<Report, CheckError> {
    let parse = config.build(&TransformContext {
        id: "parse_check".into(),
    })?;
    let format_name = format_name(config.format);
    let mut report = Report::default();
    let mut lines = Lines::new(input);
    while report.lines < max_lines {
        let Some((line, cut)) = lines.next_line()? else {
            break;
        };
        report.lines += 1;
        report.cut_lines += usize::from(cut);
        observe(&parse, format_name, line, now, &mut report);
    }
    Ok(report)
}

fn observe(parse: &Parse, format_name: &'static str, line: Bytes, now: i64, report: &mut Report) {
    let mut event = Event::from_message(line.clone());
    event.meta.received_at = now;
    let (layout, normalized) = match parse.apply(&mut event) {
        Ok(applied) => (applied.detected.unwrap_or(format_name), applied.normalized),
        Err(_) => {
            report.failed += 1;
            ("parse_failed", None)
        }
    };
    *report.layouts.entry(layout).or_default() += 1;
    let level = normalized.and_then(|n| n.level);
    let timestamp = normalized.is_some_and(|n| {
        matches!(
            n.timestamp,
            TimestampSource::Field | TimestampSource::Message
        )
    });
    if let Some(level) = level {
        report.with_level += 1;
        *report.levels.entry(level).or_default() += 1;
    }
    if timestamp {
        report.with_timestamp += 1;
    }
    if normalized.is_some_and(|n| n.rejected_timestamp) {
        report.implausible_timestamps += 1;
    }
    if level.is_none() || !timestamp {
        report.unmatched += 1;
        if report.examples.len() < EXAMPLES {
            report.examples.push(Example {
                number: report.lines,
                level: level.is_some(),
                timestamp,
                text: printable(&line),
            });
        }
    }
}

fn format_name(format: ParseFormat) -> &'static str {
    match format {
        ParseFormat::Auto => "text",
        ParseFormat::Json => "json",
        ParseFormat::Logfmt => "logfmt",
        ParseFormat::Syslog => "syslog",
        ParseFormat::Regex => "regex",
        ParseFormat::AccessLog => "access_log",
    }
}

fn printable(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut out: String = text
        .chars()
        .take(EXAMPLE_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().nth(EXAMPLE_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Lines of a reader without their terminator, each cut at [`MAX_LINE_BYTES`].
struct Lines<R> {
    input: R,
    buf: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    fn new(input: R) -> Self {
        Self {
            input,
            buf: Vec::new(),
        }
    }

    /// The next line and whether it was cut; `None` at the end of the input.
    fn next_line(&mut self) -> std::io::Result<Option<(Bytes, bool)>> {
        self.buf.clear();
        let limit = MAX_LINE_BYTES as u64 + 1;
        let read = std::io::Read::take(&mut self.input, limit).read_until(b'\n', &mut self.buf)?;
        if read == 0 {
            return Ok(None);
        }
        let mut cut = false;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        } else if self.buf.len() > MAX_LINE_BYTES {
            cut = true;
            self.buf.truncate(MAX_LINE_BYTES);
            self.skip_rest()?;
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Ok(Some((Bytes::copy_from_slice(&self.buf), cut)))
    }

    /// Discards the rest of a cut line, up to and including its newline.
    fn skip_rest(&mut self) -> std::io::Result<()> {
        loop {
            let available = self.input.fill_buf()?;
            if available.is_empty() {
                return Ok(());
            }
            match memchr::memchr(b'\n', available) {
                Some(i) => {
                    self.input.consume(i + 1);
                    return Ok(());
                }
                None => {
                    let n = available.len();
                    self.input.consume(n);
                }
            }
        }
    }
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.lines;
        writeln!(f, "lines sampled: {n}")?;
        if self.cut_lines > 0 {
            writeln!(f, "lines cut at {MAX_LINE_BYTES} bytes: {}", self.cut_lines)?;
        }
        writeln!(f, "layouts:")?;
        let mut layouts: Vec<_> = self.layouts.iter().collect();
        layouts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (name, count) in layouts {
            writeln!(f, "  {name:<18} {count:>7} {:>6.1} %", percent(*count, n))?;
        }
        writeln!(
            f,
            "with a level:        {:>7} {:>6.1} %",
            self.with_level,
            percent(self.with_level, n)
        )?;
        writeln!(
            f,
            "with a timestamp:    {:>7} {:>6.1} %",
            self.with_timestamp,
            percent(self.with_timestamp, n)
        )?;
        if self.implausible_timestamps > 0 {
            writeln!(
                f,
                "implausible timestamps (arrival time kept): {}",
                self.implausible_timestamps
            )?;
        }
        if self.failed > 0 {
            writeln!(f, "failed to parse: {}", self.failed)?;
        }
        let levels: Vec<String> = self
            .levels
            .iter()
            .rev()
            .map(|(level, count)| format!("{} {count}", level.as_str()))
            .collect();
        let levels = if levels.is_empty() {
            "none".to_string()
        } else {
            levels.join(", ")
        };
        writeln!(f, "levels: {levels}")?;
        if self.unmatched > 0 {
            writeln!(
                f,
                "lines with no level or no timestamp: {} (first {}):",
                self.unmatched,
                self.examples.len()
            )?;
            for example in &self.examples {
                let missing = match (example.level, example.timestamp) {
                    (false, false) => "no level, no timestamp",
                    (false, true) => "no level",
                    _ => "no timestamp",
                };
                writeln!(f, "  {:>6} ({missing}): {}", example.number, example.text)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-06T12:00:00Z.
    const NOW: i64 = 1_796_558_400_000_000_000;

    fn run(input: &str, max_lines: usize) -> Report {
        check(
            input.as_bytes(),
            &config(ParseFormat::Auto, "UTC"),
            max_lines,
            NOW,
        )
        .unwrap()
    }

    #[test]
    fn counts_layouts_levels_and_timestamps() {
        let input = "E1206 01:29:59.626547    12 main.go:24] boom\n\
                     I1206 01:30:00.000001    12 main.go:25] fine\n\
                     2026-12-06 01:29:59,626 WARN [main] c.e.App - slow\n\
                     just words\r\n\
                     {\"level\":\"info\",\"msg\":\"hi\"}\n";
        let report = run(input, 100);
        assert_eq!(report.lines, 5);
        assert_eq!(
            report.layouts,
            BTreeMap::from([
                ("glog", 2),
                ("json", 1),
                ("text", 1),
                ("timestamp_level", 1)
            ])
        );
        assert_eq!(report.with_level, 4);
        // The JSON line has no time of its own: it keeps its arrival time.
        assert_eq!(report.with_timestamp, 3);
        assert_eq!(
            report.levels,
            BTreeMap::from([(Level::Info, 2), (Level::Warn, 1), (Level::Error, 1)])
        );
        assert_eq!(report.unmatched, 2);
        let shown: Vec<_> = report
            .examples
            .iter()
            .map(|e| (e.number, e.level, e.timestamp, e.text.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                (4, false, false, "just words"),
                (5, true, false, "{\"level\":\"info\",\"msg\":\"hi\"}")
            ]
        );
        let text = report.to_string();
        assert!(
            text.contains("  glog                     2   40.0 %\n"),
            "{text}"
        );
        assert!(
            text.contains("with a level:              4   80.0 %\n"),
            "{text}"
        );
        assert!(
            text.contains("with a timestamp:          3   60.0 %\n"),
            "{text}"
        );
        assert!(text.contains("levels: error 1, warn 1, info 2\n"), "{text}");
        assert!(
            text.contains("      4 (no level, no timestamp): just words\n"),
            "{text}"
        );
    }

    #[test]
    fn the_sample_is_bounded_in_lines_examples_and_line_length() {
        let input = "x\n".repeat(50);
        let report = run(&input, 20);
        assert_eq!((report.lines, report.unmatched), (20, 20));
        assert_eq!(report.examples.len(), EXAMPLES);

        let long = format!("{}\nnext\n", "y".repeat(MAX_LINE_BYTES + 10));
        let report = run(&long, 100);
        assert_eq!((report.lines, report.cut_lines), (2, 1));
        assert!(report.examples[0].text.ends_with('…'));
        assert_eq!(report.examples[1].text, "next");
    }

    #[test]
    fn another_format_counts_failures() {
        let report = check(
            "{\"msg\":\"a\"}\nnot json\n".as_bytes(),
            &config(ParseFormat::Json, "UTC"),
            100,
            NOW,
        )
        .unwrap();
        assert_eq!(
            report.layouts,
            BTreeMap::from([("json", 1), ("parse_failed", 1)])
        );
        assert_eq!(report.failed, 1);
    }
}
