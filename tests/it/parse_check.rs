//! `sluice parse-check` as a user runs it: the real binary on lines of the format corpus
//! (tests/corpus/formats), its printed figures checked against the corpus's own expected
//! levels and timestamps.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use crate::util::{repo_root, sluice_bin};

/// The expected level and whether a timestamp is expected, per line of a corpus file.
fn corpus_rows(layout: &str) -> Vec<(Option<String>, bool, String)> {
    let path = repo_root().join(format!("tests/corpus/formats/{layout}.tsv"));
    let text = std::fs::read_to_string(&path).expect("corpus file is readable");
    text.lines()
        .filter(|row| !row.starts_with('#'))
        .map(|row| {
            let mut cols = row.splitn(3, '\t');
            let (Some(level), Some(ts), Some(line)) = (cols.next(), cols.next(), cols.next())
            else {
                panic!("{}: bad row {row:?}", path.display());
            };
            (
                (level != "-").then(|| level.to_string()),
                ts != "-",
                line.to_string(),
            )
        })
        .collect()
}

fn row(label: &str, count: usize, total: usize) -> String {
    format!(
        "{label:<21}{count:>7} {:>6.1} %\n",
        count as f64 * 100.0 / total as f64
    )
}

#[test]
fn parse_check_prints_the_shares_the_corpus_expects() {
    let glog = corpus_rows("glog");
    let log4j = corpus_rows("log4j");
    let no_level = corpus_rows("no_level");
    // Interleaved, as lines of several programs in one file would be.
    let mut rows = Vec::new();
    for i in 0..glog.len().max(log4j.len()).max(no_level.len()) {
        for set in [&glog, &log4j, &no_level] {
            if let Some(r) = set.get(i) {
                rows.push(r.clone());
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sample.log");
    let body: String = rows.iter().map(|r| format!("{}\n", r.2)).collect();
    std::fs::write(&file, body).unwrap();

    let output = Command::new(sluice_bin())
        .arg("parse-check")
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let total = rows.len();
    let with_level = rows.iter().filter(|r| r.0.is_some()).count();
    let with_time = rows.iter().filter(|r| r.1).count();
    // no_level's lines: a time without a level is the `timestamp` layout, neither is `text`.
    let time_only = no_level.iter().filter(|r| r.1).count();
    let expected = [
        format!("lines sampled: {total}\n"),
        row("  glog", glog.len(), total),
        row("  timestamp_level", log4j.len(), total),
        row("  timestamp", time_only, total),
        row("  text", no_level.len() - time_only, total),
        row("with a level:", with_level, total),
        row("with a timestamp:", with_time, total),
    ];
    for line in &expected {
        assert!(text.contains(line.as_str()), "missing {line:?} in:\n{text}");
    }
    let mut levels: BTreeMap<usize, (&str, usize)> = BTreeMap::new();
    for name in [
        "emergency",
        "alert",
        "critical",
        "error",
        "warn",
        "notice",
        "info",
        "debug",
        "trace",
    ] {
        let count = rows.iter().filter(|r| r.0.as_deref() == Some(name)).count();
        if count > 0 {
            levels.insert(levels.len(), (name, count));
        }
    }
    let levels: Vec<String> = levels.values().map(|(n, c)| format!("{n} {c}")).collect();
    let levels = format!("levels: {}\n", levels.join(", "));
    assert!(text.contains(&levels), "missing {levels:?} in:\n{text}");

    // The first ten lines without a level or a time are shown, numbered.
    let unmatched: Vec<(usize, &str)> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.0.is_none() || !r.1)
        .map(|(i, r)| (i + 1, r.2.as_str()))
        .collect();
    assert!(text.contains(&format!(
        "lines with no level or no timestamp: {} (first 10):\n",
        unmatched.len()
    )));
    for (number, line) in unmatched.iter().take(10) {
        let shown: String = line.chars().take(160).collect();
        assert!(
            text.contains(&format!("{number:>6} (")) && text.contains(&shown),
            "line {number} {line:?} not shown in:\n{text}"
        );
    }
}

#[test]
fn parse_check_samples_stdin_and_reports_bad_arguments() {
    let mut child = Command::new(sluice_bin())
        .args(["parse-check", "--lines", "2", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"[ERROR] one\n[WARN] two\n[INFO] three\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(text.contains("lines sampled: 2\n"), "{text}");
    assert!(text.contains("levels: error 1, warn 1\n"), "{text}");

    for (args, message) in [
        (
            &["parse-check", "/nonexistent/sluice.log"][..],
            "error: cannot open /nonexistent/sluice.log",
        ),
        (
            &["parse-check", "--format", "xml", "-"][..],
            "error: invalid --format \"xml\"",
        ),
    ] {
        let output = Command::new(sluice_bin())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}");
        assert!(stderr.starts_with(message), "{args:?}: {stderr}");
    }
}
