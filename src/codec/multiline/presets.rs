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
