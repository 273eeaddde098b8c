//! Accuracy of `format = "auto"` on the text layouts real programs write: the corpus in
//! `tests/corpus/formats/` (see its README) and the loghub sets with labels.
//!
//! Each line goes through the default parse transform (auto + normalisation) with the
//! file's arrival time as its receive time. Per layout: the level must match the expected
//! one (absent included) on ≥ 98% of lines, the timestamp on ≥ 98% (to the second;
//! year-less layouts on month, day and time), and no line without a level may get one.
//! Run with `--nocapture` for the table (kept in benches/RESULTS.md).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use sluice::event::{format_timestamp, Event, Value};
use sluice::transforms::parse::{Parse, ParseConfig};
use sluice::transforms::{FunctionTransform, Outputs, TransformContext};

const MIN_RATE: f64 = 0.98;

fn corpus_dir() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/formats")).to_path_buf()
}

fn loghub_dir() -> PathBuf {
    let beside = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/loghub"
    ));
    if beside.is_dir() {
        beside.to_path_buf()
    } else {
        PathBuf::from("/work/shared/corpus/loghub")
    }
}

/// One line and what it should yield: a level name or `None`, and a timestamp as
/// `YYYY-MM-DDTHH:MM:SS`, `--MM-DDTHH:MM:SS` (no year in the layout), or `None`.
struct Case {
    line: String,
    level: Option<String>,
    timestamp: Option<String>,
}

#[derive(Default)]
struct Score {
    lines: usize,
    level_ok: usize,
    /// Lines expected to carry a level (for the table).
    with_level: usize,
    timestamp_ok: usize,
    with_timestamp: usize,
    false_levels: usize,
    misses: Vec<String>,
}

impl Score {
    fn level_rate(&self) -> f64 {
        self.level_ok as f64 / self.lines.max(1) as f64
    }
    fn timestamp_rate(&self) -> f64 {
        self.timestamp_ok as f64 / self.lines.max(1) as f64
    }
}

fn transform() -> Parse {
    ParseConfig::default()
        .build(&TransformContext {
            id: "formats".into(),
        })
        .expect("the default parse config builds")
}

fn run(cases: &[Case], arrival: i64) -> Score {
    let mut transform = transform();
    let mut score = Score::default();
    for case in cases {
        let mut event = Event::from_message(Bytes::copy_from_slice(case.line.as_bytes()));
        event.meta.received_at = arrival;
        let mut out = Outputs::new(ParseConfig::outputs().len());
        transform.transform(event, &mut out);
        let event = &out.default_output()[0];
        let level = event.get("level").and_then(Value::as_str);
        // The receive time is not the line's own: only a different value counts.
        let timestamp = match event.get("timestamp") {
            Some(Value::Timestamp(t)) if *t != arrival => {
                Some(format_timestamp(*t)[..19].to_string())
            }
            _ => None,
        };
        score.lines += 1;
        score.with_level += usize::from(case.level.is_some());
        score.with_timestamp += usize::from(case.timestamp.is_some());
        let level_ok = level == case.level.as_deref();
        if case.level.is_none() && level.is_some() {
            score.false_levels += 1;
        }
        let timestamp_ok = match (&case.timestamp, &timestamp) {
            (Some(want), Some(got)) if want.starts_with("--") => got[4..] == want[1..],
            (want, got) => want == got,
        };
        score.level_ok += usize::from(level_ok);
        score.timestamp_ok += usize::from(timestamp_ok);
        if (!level_ok || !timestamp_ok) && score.misses.len() < 4 {
            score.misses.push(format!(
                "want {:?} {:?}, got {level:?} {timestamp:?}: {}",
                case.level, case.timestamp, case.line
            ));
        }
    }
    score
}

/// Reads `<layout>.tsv`: `# arrival: …` and other comments, then `level\ttimestamp\tline`.
fn read_tsv(path: &Path) -> (i64, Vec<Case>) {
    let text = std::fs::read_to_string(path).expect("corpus file is readable");
    let mut arrival = None;
    let mut cases = Vec::new();
    for row in text.lines() {
        if let Some(comment) = row.strip_prefix('#') {
            if let Some(at) = comment.trim().strip_prefix("arrival:") {
                arrival = sluice::parse::parse_timestamp(at.trim().as_bytes(), 0);
            }
            continue;
        }
        let mut cols = row.splitn(3, '\t');
        let (Some(level), Some(ts), Some(line)) = (cols.next(), cols.next(), cols.next()) else {
            panic!("{}: bad row {row:?}", path.display());
        };
        let opt = |s: &str| (s != "-").then(|| s.to_string());
        cases.push(Case {
            line: line.to_string(),
            level: opt(level),
            timestamp: opt(ts),
        });
    }
    let arrival = arrival.unwrap_or_else(|| panic!("{}: no `# arrival:` line", path.display()));
    (arrival, cases)
}

// === loghub: expected values from its structured CSV columns ===

fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

fn month_number(name: &str) -> usize {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS
        .iter()
        .position(|m| *m == name)
        .expect("a month name")
        + 1
}

/// The line's time from loghub's own columns, per dataset.
fn loghub_time(set: &str, col: &dyn Fn(&str) -> String) -> Option<String> {
    Some(match set {
        "Apache" => {
            // `Sun Dec 04 04:47:44 2005`
            let t = col("Time");
            let p: Vec<&str> = t.split_whitespace().collect();
            format!("{}-{:02}-{}T{}", p[4], month_number(p[1]), p[2], p[3])
        }
        "HDFS" => {
            let (d, t) = (col("Date"), col("Time"));
            let t = format!("{t:0>6}");
            let d = format!("{d:0>6}");
            format!(
                "20{}-{}-{}T{}:{}:{}",
                &d[..2],
                &d[2..4],
                &d[4..],
                &t[..2],
                &t[2..4],
                &t[4..]
            )
        }
        "Linux" => format!(
            "--{:02}-{:02}T{}",
            month_number(&col("Month")),
            col("Date").parse::<u32>().ok()?,
            col("Time")
        ),
        "OpenSSH" => format!(
            "--{:02}-{:02}T{}",
            month_number(&col("Date")),
            col("Day").parse::<u32>().ok()?,
            col("Time")
        ),
        "Spark" => {
            let d = col("Date");
            format!("20{}-{}-{}T{}", &d[..2], &d[3..5], &d[6..], col("Time"))
        }
        "Zookeeper" => format!("{}T{}", col("Date"), &col("Time")[..8]),
        _ => return None,
    })
}

fn loghub_level(label: &str) -> Option<String> {
    Some(
        match label.to_ascii_lowercase().as_str() {
            "trace" => "trace",
            "debug" => "debug",
            "info" => "info",
            "notice" => "notice",
            "warn" | "warning" => "warn",
            "error" | "err" => "error",
            "fatal" | "critical" | "crit" => "critical",
            _ => return None,
        }
        .to_string(),
    )
}

/// The loghub sets, with levels where their CSV has a usable `Level` column (graded
/// `None` otherwise: Linux labels a host as Level, OpenSSH has none).
fn loghub_cases() -> Vec<(String, Vec<Case>, bool)> {
    let mut sets = Vec::new();
    for set in ["Apache", "HDFS", "Linux", "OpenSSH", "Spark", "Zookeeper"] {
        let dir = loghub_dir().join(set);
        let log = std::fs::read_to_string(dir.join(format!("{set}_2k.log"))).expect("loghub log");
        let csv = std::fs::read_to_string(dir.join(format!("{set}_2k.log_structured.csv")))
            .expect("loghub csv");
        let mut rows = csv.lines();
        let header = csv_fields(rows.next().expect("a header"));
        let has_levels = matches!(set, "Apache" | "HDFS" | "Spark" | "Zookeeper");
        let cases = rows
            .zip(log.lines())
            .map(|(row, line)| {
                let row = csv_fields(row);
                let col = |name: &str| {
                    header
                        .iter()
                        .position(|h| h == name)
                        .and_then(|i| row.get(i).cloned())
                        .unwrap_or_default()
                };
                Case {
                    line: line.to_string(),
                    level: if has_levels {
                        loghub_level(&col("Level"))
                    } else {
                        None
                    },
                    timestamp: loghub_time(set, &col),
                }
            })
            .collect();
        sets.push((format!("loghub {set}"), cases, has_levels));
    }
    sets
}

fn pct(rate: f64) -> String {
    format!("{:.1}", rate * 100.0)
}

#[test]
fn text_layouts_meet_the_accuracy_targets() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/corpus/formats exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tsv"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "only {} corpus files", files.len());

    println!("| layout | lines | with level | level % | with time | timestamp % | false levels |");
    println!("|---|---|---|---|---|---|---|");
    let mut failures = Vec::new();
    let mut report = |name: &str, score: &Score, graded_level: bool| {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} |",
            score.lines,
            score.with_level,
            if graded_level {
                pct(score.level_rate())
            } else {
                "not graded".into()
            },
            score.with_timestamp,
            pct(score.timestamp_rate()),
            if graded_level {
                score.false_levels.to_string()
            } else {
                "-".into()
            },
        );
        let level_bad = graded_level && (score.level_rate() < MIN_RATE || score.false_levels > 0);
        if level_bad || score.timestamp_rate() < MIN_RATE {
            failures.push(format!("{name}: {:#?}", score.misses));
        }
    };
    for path in &files {
        let name = path.file_stem().unwrap_or_default().to_string_lossy();
        let (arrival, cases) = read_tsv(path);
        // A millisecond past the arrival second, so a line stamped that very second is
        // still told apart from the receive-time fallback.
        let score = run(&cases, arrival + 1_000_000);
        report(&name, &score, true);
    }
    // loghub's year-less sets are judged on month, day and time, so any arrival will do.
    let arrival = sluice::event::now_nanos();
    for (name, cases, graded_level) in loghub_cases() {
        let mut score = run(&cases, arrival);
        if !graded_level {
            score.level_ok = score.lines;
        }
        report(&name, &score, graded_level);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
