//! The loghub corpus (real system logs, see its LICENSE) through `auto` + normalisation,
//! the path a `format = "auto"` parse transform takes.
//!
//! For each `<name>.log` under `shared/corpus/loghub/*/`: no line may fail or panic; the
//! timestamp must come from the line itself (not the receive-time fallback) for ≥ 95% of
//! lines; and where `<name>_structured.csv` labels each line with a `Level`, our `level` must
//! agree with it for ≥ 95% of lines. Run with `--nocapture` to see the per-file numbers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sluice::event::{Event, Value};
use sluice::parse::Level;
use sluice::transforms::parse::ParseConfig;
use sluice::transforms::{FunctionTransform, Outputs, TransformContext};

const MIN_RATE: f64 = 0.95;

/// The corpus sits beside the repository (`../shared`); a scratch checkout elsewhere falls
/// back to the shared workspace copy.
fn corpus_dir() -> PathBuf {
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

/// Every `*.log` file one level below the corpus root, sorted for stable output.
fn log_files() -> Vec<PathBuf> {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus at {} is missing: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|entry| entry.path().is_dir())
        .flat_map(|entry| std::fs::read_dir(entry.path()).into_iter().flatten())
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    files.sort();
    files
}

/// Splits one CSV record (RFC 4180: quoted fields may hold commas and doubled quotes). The
/// loghub files hold no newlines inside fields, so records are lines.
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

/// The `Level` column of `<log>_structured.csv`, by line number (LineId, from 1), mapped
/// into our vocabulary; `None` where the file or the column does not exist.
fn expected_levels(log: &Path) -> Option<HashMap<usize, String>> {
    let csv_path = PathBuf::from(format!("{}_structured.csv", log.display()));
    let text = std::fs::read_to_string(csv_path).ok()?;
    let mut lines = text.lines();
    let header = csv_fields(lines.next()?);
    let level_col = header.iter().position(|h| h == "Level")?;
    let id_col = header.iter().position(|h| h == "LineId")?;
    Some(
        lines
            .filter_map(|line| {
                let row = csv_fields(line);
                Some((row.get(id_col)?.parse().ok()?, row.get(level_col)?.clone()))
            })
            .collect(),
    )
}

/// loghub's labels in our vocabulary, written out here rather than through the code under
/// test so that a mapping bug cannot grade itself.
fn label_to_level(label: &str) -> Option<&'static str> {
    Some(match label.to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" => "info",
        "notice" => "notice",
        "warn" | "warning" => "warn",
        "error" | "err" => "error",
        "fatal" | "critical" | "crit" => "critical",
        "alert" => "alert",
        "emerg" | "emergency" => "emergency",
        _ => return None,
    })
}

struct FileResult {
    lines: usize,
    timestamp_in_line: usize,
    levels_checked: usize,
    levels_agreeing: usize,
    mismatches: Vec<String>,
}

fn run_file(path: &Path) -> FileResult {
    let config = ParseConfig::default();
    let mut transform = config
        .build(&TransformContext {
            id: "corpus".into(),
        })
        .expect("the default parse config builds");
    let raw = std::fs::read(path).expect("corpus file is readable");
    let expected = expected_levels(path);
    let mut result = FileResult {
        lines: 0,
        timestamp_in_line: 0,
        levels_checked: 0,
        levels_agreeing: 0,
        mismatches: Vec::new(),
    };
    for (index, line) in raw.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        result.lines += 1;
        // received_at stays 0, so a timestamp present afterwards came from the line itself.
        let event = Event::from_message(Bytes::copy_from_slice(line));
        let mut out = Outputs::new(ParseConfig::outputs().len());
        transform.transform(event, &mut out);
        let events = out.default_output();
        assert_eq!(
            events.len(),
            1,
            "{}:{}: not on the default output",
            path.display(),
            index + 1
        );
        let event = &events[0];
        assert!(
            event.get("parse_error").is_none(),
            "{}:{}: {:?}",
            path.display(),
            index + 1,
            event.get("parse_error")
        );
        if matches!(event.get("timestamp"), Some(Value::Timestamp(_))) {
            result.timestamp_in_line += 1;
        }
        let label = expected
            .as_ref()
            .and_then(|rows| rows.get(&(index + 1)))
            .and_then(|label| label_to_level(label));
        if let Some(want) = label {
            result.levels_checked += 1;
            let got = event.get("level").and_then(Value::as_str);
            if got == Some(want) {
                result.levels_agreeing += 1;
            } else if result.mismatches.len() < 5 {
                result.mismatches.push(format!(
                    "line {}: want {want}, got {got:?}: {}",
                    index + 1,
                    String::from_utf8_lossy(line)
                ));
            }
        }
    }
    result
}

#[test]
fn loghub_corpus_parses_with_timestamps_and_levels() {
    let files = log_files();
    assert!(
        !files.is_empty(),
        "no .log files under {}",
        corpus_dir().display()
    );
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let r = run_file(path);
        let ts_rate = r.timestamp_in_line as f64 / r.lines.max(1) as f64;
        println!(
            "{name}: {} lines, timestamp from the line {:.1}%",
            r.lines,
            ts_rate * 100.0
        );
        if ts_rate < MIN_RATE {
            failures.push(format!(
                "{name}: timestamp found in {:.1}% of lines",
                ts_rate * 100.0
            ));
        }
        // A Level column whose values are not levels (loghub's Linux file labels the host
        // `combo` as Level) cannot grade us; say so instead of passing silently.
        if r.levels_checked * 2 < r.lines {
            println!(
                "{name}: level not graded ({} lines carry a usable Level label)",
                r.levels_checked
            );
            continue;
        }
        let accuracy = r.levels_agreeing as f64 / r.levels_checked as f64;
        println!(
            "{name}: level accuracy {:.2}% over {} labelled lines",
            accuracy * 100.0,
            r.levels_checked
        );
        for m in &r.mismatches {
            println!("  {m}");
        }
        if accuracy < MIN_RATE {
            failures.push(format!("{name}: level accuracy {:.1}%", accuracy * 100.0));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn level_vocabulary_matches_the_labels_used_here() {
    for level in Level::ALL {
        assert_eq!(label_to_level(level.as_str()), Some(level.as_str()));
    }
}
