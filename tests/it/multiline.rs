//! Joining stack traces: real traces of each preset's language (tests/corpus/multiline/,
//! with the programs that printed them), written line by line to two files at once, between
//! ordinary log lines, while a `sluice up` tails them. Each trace must come out as exactly
//! one event, every line exactly once and in order per stream; a never-ending trace is cut
//! at `max_lines`. Run once through the `multiline` transform and once through the file
//! source's `multiline` option. Waits poll the output with a deadline.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::util::{read_lines, repo_root, sluice_up, spawn_router, tempdir, TIMEOUT};

const PRESETS: &[&str] = &["java", "python", "go", "ruby", "dotnet", "nodejs"];

/// Lines of the never-ending trace, and the cut configured for it.
const ENDLESS_LINES: usize = 1_200;
const ENDLESS_MAX_LINES: usize = 500;

/// The traces of `preset`, in file order, without their final newline.
fn traces(preset: &str) -> Vec<String> {
    let dir = repo_root().join("tests/corpus/multiline").join(preset);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no traces in {}", dir.display());
    files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .trim_end_matches('\n')
                .to_string()
        })
        .collect()
}

/// Stream `n` of `preset`: each trace after an ordinary log line (stream 1 takes the
/// traces in reverse order, so the two streams are never in the same trace), then a last
/// line.
fn stream(preset: &str, n: usize) -> Vec<String> {
    let mut traces = traces(preset);
    if n == 1 {
        traces.reverse();
    }
    let mut lines = Vec::new();
    for (i, trace) in traces.iter().enumerate() {
        lines.push(format!(
            "2026-12-06T10:00:{i:02}Z INFO stream{n} request {i} served"
        ));
        lines.extend(trace.lines().map(str::to_string));
    }
    lines.push(format!("2026-12-06T10:59:59Z INFO stream{n} done"));
    lines
}

fn endless() -> Vec<String> {
    let mut lines = vec!["Exception in thread \"main\" java.lang.StackOverflowError".to_string()];
    lines.extend((1..ENDLESS_LINES).map(|n| format!("\tat Recursion.down(Recursion.java:{n})")));
    lines
}

/// Where the joining happens.
#[derive(Clone, Copy)]
enum Joining {
    Transform,
    SourceOption,
}

/// One file source per preset (`in/PRESET/*.log`), joined with the preset, into
/// `out/PRESET.json`; and `in/endless/*.log` joined with `max_lines`.
fn write_config(dir: &Path, joining: Joining) -> PathBuf {
    let mut toml = String::new();
    let sets = PRESETS
        .iter()
        .map(|p| (p.to_string(), format!(r#"preset = "{p}""#)))
        .chain([(
            "endless".to_string(),
            format!(r#"preset = "java", max_lines = {ENDLESS_MAX_LINES}"#),
        )]);
    for (name, options) in sets {
        let include = dir.join("in").join(&name).join("*.log");
        let out = dir.join("out").join(format!("{name}.json"));
        let (source_option, input) = match joining {
            Joining::Transform => {
                toml.push_str(&format!(
                    "[transforms.{name}_joined]\ntype = \"multiline\"\ninputs = [\"{name}\"]\n{}\n\n",
                    options.replace(", ", "\n")
                ));
                (String::new(), format!("{name}_joined"))
            }
            Joining::SourceOption => (format!("multiline = {{ {options} }}"), name.clone()),
        };
        toml.push_str(&format!(
            r#"[sources.{name}]
type = "file"
include = ["{include}"]
glob_interval_ms = 50
{source_option}

[sinks.out_{name}]
type = "file"
inputs = ["{input}"]
path = "{out}"
encoding = "json"

"#,
            include = include.display(),
            out = out.display(),
        ));
    }
    let config = dir.join("pipeline.toml");
    std::fs::write(&config, toml).unwrap();
    config
}

/// The messages written to `out/NAME.json`, per file they were read from.
fn events(dir: &Path, name: &str) -> Vec<(String, String)> {
    read_lines(&dir.join("out").join(format!("{name}.json")))
        .iter()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                event["path"].as_str().unwrap().to_string(),
                event["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(joining: Joining) {
    let dir = tempdir();
    let dir = dir.path();
    let mut files = Vec::new();
    for name in PRESETS.iter().copied().chain(["endless"]) {
        std::fs::create_dir_all(dir.join("in").join(name)).unwrap();
        for n in 0..2 {
            let path = dir.join("in").join(name).join(format!("s{n}.log"));
            let lines = match name {
                "endless" if n == 0 => endless(),
                "endless" => continue,
                preset => stream(preset, n),
            };
            files.push((std::fs::File::create(&path).unwrap(), lines));
        }
    }
    std::fs::create_dir_all(dir.join("out")).unwrap();
    let router = spawn_router(sluice_up(&write_config(dir, joining)));

    // Every stream gets its next line in turn, so the router reads the streams of a preset
    // interleaved, a trace often split between two reads.
    let longest = files.iter().map(|(_, l)| l.len()).max().unwrap();
    for i in 0..longest {
        for (file, lines) in &mut files {
            if let Some(line) = lines.get(i) {
                writeln!(file, "{line}").unwrap();
            }
        }
        if i % 16 == 0 {
            // Pacing, so that reads land mid-trace; not synchronisation.
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    // The last line of each stream waits for a next line that never comes: it arrives
    // once its stream has been idle for the timeout.
    for preset in PRESETS {
        wait_for(&format!("{preset}'s last lines"), || {
            let events = events(dir, preset);
            (0..2).all(|n| {
                events
                    .iter()
                    .any(|(_, m)| m.ends_with(&format!("stream{n} done")))
            })
        });
    }
    wait_for("the end of the never-ending trace", || {
        events(dir, "endless").len() == ENDLESS_LINES.div_ceil(ENDLESS_MAX_LINES)
    });
    router.signal("-TERM");
    let (status, log) = router.finish();
    assert!(status.success(), "{log}");

    for preset in PRESETS {
        let events = events(dir, preset);
        for n in 0..2 {
            let path = dir.join("in").join(preset).join(format!("s{n}.log"));
            let got: Vec<&str> = events
                .iter()
                .filter(|(p, _)| Path::new(p) == path)
                .map(|(_, m)| m.as_str())
                .collect();
            assert_eq!(
                got.join("\n"),
                stream(preset, n).join("\n"),
                "{preset} stream {n}: every line once, in order"
            );
            // With every line there once and in order, a trace whole in exactly one event
            // and no event holding two make each trace exactly one event.
            let traces = traces(preset);
            for trace in &traces {
                let holding = got.iter().filter(|m| m.contains(trace.as_str())).count();
                assert_eq!(
                    holding, 1,
                    "{preset} stream {n}: a trace must be whole in one event:\n{trace}\n\nevents:\n{got:#?}"
                );
            }
            for event in &got {
                let held = traces.iter().filter(|t| event.contains(t.as_str())).count();
                assert!(
                    held <= 1,
                    "{preset} stream {n}: two traces in one event: {event}"
                );
            }
        }
    }

    let cut: Vec<usize> = events(dir, "endless")
        .iter()
        .map(|(_, m)| m.lines().count())
        .collect();
    assert_eq!(
        cut,
        [500, 500, 200],
        "cut at max_lines, the rest kept together"
    );
    assert_eq!(
        events(dir, "endless")
            .iter()
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        endless().join("\n")
    );
}

#[test]
fn the_transform_joins_each_real_trace_into_one_event() {
    run(Joining::Transform);
}

#[test]
fn the_file_sources_option_joins_each_real_trace_into_one_event() {
    run(Joining::SourceOption);
}

#[test]
fn groups_pending_at_shutdown_are_sent_before_the_router_exits() {
    let dir = tempdir();
    let dir = dir.path();
    std::fs::create_dir_all(dir.join("in/java")).unwrap();
    std::fs::create_dir_all(dir.join("out")).unwrap();
    let log = dir.join("in/java/app.log");
    // A timeout far longer than the test: only the end of the input can send the trace.
    let config = dir.join("pipeline.toml");
    std::fs::write(
        &config,
        format!(
            r#"[sources.java]
type = "file"
include = ["{}"]
glob_interval_ms = 50

[transforms.joined]
type = "multiline"
inputs = ["java"]
preset = "java"
timeout_ms = 600000

[sinks.out]
type = "file"
inputs = ["joined"]
path = "{}"
encoding = "json"
"#,
            log.display(),
            dir.join("out/java.json").display()
        ),
    )
    .unwrap();
    // "Exception in thread ...": a trace that does not continue the line before it.
    let trace = &traces("java")[4];
    std::fs::write(&log, format!("started\n{trace}\n")).unwrap();
    let router = spawn_router(sluice_up(&config));
    // `started` is sent once the trace's first line ends its group: the file was read.
    wait_for("the line before the trace", || {
        events(dir, "java").iter().any(|(_, m)| m == "started")
    });
    router.signal("-TERM");
    let (status, log) = router.finish();
    assert!(status.success(), "{log}");
    let messages: Vec<String> = events(dir, "java").into_iter().map(|(_, m)| m).collect();
    assert_eq!(messages, ["started".to_string(), trace.clone()]);
}
