//! `preset = "..."`: rules that join the stack traces a language's runtime prints.
//!
//! Each is a `continue_through` rule whose groups start at any line that is not indented
//! (a log line, the first line of a trace) and continue through the lines that the
//! language's traces are made of, so a log line written just before a trace (Python's
//! `logging.exception`, a Java logger's message) and the trace become one event. The line
//! shapes were read from real traces (tests/corpus/multiline/ holds them and the programs
//! that printed them).

use serde::Deserialize;

use super::Mode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    Java,
    Python,
    Go,
    Ruby,
    Dotnet,
    Nodejs,
}

/// A preset's rules, as the user would have written them.
#[derive(Debug, Clone, Copy)]
pub(super) struct PresetRules {
    pub(super) start: &'static str,
    pub(super) condition: &'static str,
    pub(super) mode: Mode,
}

/// A line that is not indented (nor empty): a new message, or the first line of a trace.
const NOT_INDENTED: &str = r"^\S";

impl Preset {
    pub(super) fn rules(self) -> PresetRules {
        let condition = match self {
            // `\tat ...`, `\t... 3 more`, `\tSuppressed: ...` are indented; `Caused by: `
            // is not; a bare `pkg.SomeException: ...` continues its logger's line.
            Preset::Java => {
                r"^(?:[\t ]+\S|Caused by: |[A-Za-z_$][\w$]*(?:\.[\w$]+)+(?:Exception|Error|Throwable)(?::|$))"
            }
            // `  File "...", line 3` and its source lines are indented; the header, the
            // chaining sentences and their blank lines, and the final `ValueError: ...`
            // (a dotted name ending in Error, Exception, Exit, Interrupt, Warning or
            // Iteration) are not.
            Preset::Python => {
                r"^(?:[\t ]+\S|$|Traceback \(most recent call last\):|During handling of the above exception|The above exception was the direct cause|[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Iteration)(?::|$))"
            }
            // `goroutine 1 [running]:`, the frames' function lines (`main.main()`,
            // `main.(*T).f(...)`), `created by ...`, blank lines between goroutines; the
            // file lines are indented.
            Preset::Go => {
                r"^(?:[\t ]+\S|$|goroutine \d+ \[|created by |\[signal |[\w./*()\[\]-]+\(.*\)$)"
            }
            // `\tfrom file.rb:5:in ...`; a cause is printed after its exception, from its own
            // `file.rb:12:in 'Method': message (Class)` line.
            Preset::Ruby => r"^(?:[\t ]+\S|\S+:\d+:in [`'])",
            // `   at ...`, ` ---> Inner...`, `   --- End of inner exception stack trace ---`.
            Preset::Dotnet => r"^[\t ]+\S",
            // `    at ...`; an error printed with `console.error(err)` may end with its
            // extra properties and `[cause]` in braces, closed by `}` alone.
            Preset::Nodejs => r"^(?:[\t ]+\S|\}$)",
        };
        PresetRules {
            start: NOT_INDENTED,
            condition,
            mode: Mode::ContinueThrough,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::multiline::MultilineConfig;

    /// Per preset: lines that continue a trace, and lines that do not (ordinary log lines,
    /// the first line of the next trace).
    #[test]
    fn each_preset_continues_through_its_traces_lines_only() {
        let table: &[(Preset, &[&str], &[&str])] = &[
            (
                Preset::Java,
                &[
                    "\tat Main.main(Main.java:3)",
                    "Caused by: java.io.IOException: x",
                    "\t... 2 more",
                    "java.lang.IllegalStateException: boom",
                ],
                &[
                    "Exception in thread \"main\" java.lang.Error",
                    "2026-12-06 10:00:00 INFO started",
                ],
            ),
            (
                Preset::Python,
                &[
                    "  File \"x.py\", line 1, in <module>",
                    "",
                    "Traceback (most recent call last):",
                    "ValueError: boom",
                    "json.decoder.JSONDecodeError: Expecting value",
                    "KeyboardInterrupt",
                ],
                &["INFO:root:started", "2026-12-06 10:00:00,000 ERROR x: y"],
            ),
            (
                Preset::Go,
                &[
                    "goroutine 1 [running]:",
                    "main.main()",
                    "main.(*T).f(0xc000012070)",
                    "\t/tmp/main.go:5 +0x1d",
                    "created by main.main in goroutine 1",
                    "",
                ],
                &["2026/12/06 10:00:00 listening on :8080", "panic: boom"],
            ),
            (
                Preset::Ruby,
                &[
                    "\tfrom app.rb:6:in '<main>'",
                    "/app/lib/config.rb:12:in 'File.read': gone (Errno::ENOENT)",
                ],
                &["I, [2026-12-06T10:00:00 #1]  INFO -- : started"],
            ),
            (
                Preset::Dotnet,
                &[
                    "   at Program.Main(String[] args) in /src/Program.cs:line 9",
                    " ---> System.FormatException: bad",
                    "   --- End of inner exception stack trace ---",
                ],
                &["info: Microsoft.Hosting.Lifetime[0]"],
            ),
            (
                Preset::Nodejs,
                &[
                    "    at parse (/app/x.js:8:15)",
                    "  [cause]: Error: inner",
                    "}",
                ],
                &["Error: boom", "Server listening on 3000"],
            ),
        ];
        for (preset, continuing, other) in table {
            let config = MultilineConfig {
                preset: Some(*preset),
                start_pattern: None,
                condition_pattern: None,
                mode: None,
                timeout_ms: 1_000,
                max_lines: 500,
                max_bytes: 1 << 20,
                max_streams: 10,
                group_by: None,
            };
            let rules = config.build().unwrap();
            for line in *continuing {
                assert!(
                    rules.condition.is_match(line.as_bytes()),
                    "{preset:?} should continue through {line:?}"
                );
            }
            for line in *other {
                assert!(
                    !rules.condition.is_match(line.as_bytes()),
                    "{preset:?} should not continue through {line:?}"
                );
                assert!(
                    rules.start.is_match(line.as_bytes()),
                    "{line:?} starts a group"
                );
            }
        }
    }
}
