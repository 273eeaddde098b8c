//! Compile errors: each names the line and column (1-based, in characters) of the problem.

use super::{CompileError, Program, MAX_DEPTH, MAX_PROGRAM_BYTES};

fn error(program: &str) -> String {
    match Program::compile(program) {
        Ok(_) => panic!("{program:?} compiled"),
        Err(CompileError {
            line,
            column,
            message,
        }) => format!("{line}:{column}: {message}"),
    }
}

#[test]
fn errors_point_at_line_and_column() {
    let cases: &[(&str, &str)] = &[
        ("", "1:1: the program is empty"),
        ("# only a comment\n", "1:1: the program is empty"),
        (".a = parse_json(.m)", "1:6: unhandled error: `parse_json` can fail; handle it with `x, err = parse_json(...)` or `parse_json(...) ?? default`"),
        (".a = 1\n.b = upcase(to_string(.x) + to_int(.y))", "2:29: unhandled error: `to_int` can fail; handle it with `x, err = to_int(...)` or `to_int(...) ?? default`"),
        ("if parse_json(.m) == {} { .a = 1 }", "1:4: unhandled error: `parse_json` can fail; handle it with `x, err = parse_json(...)` or `parse_json(...) ?? default`"),
        ("to_int(.a)", "1:1: unhandled error: `to_int` can fail; handle it with `x, err = to_int(...)` or `to_int(...) ?? default`"),
        // The right side of `??` is not handled by it.
        (".a = to_int(.a) ?? to_int(.b)", "1:20: unhandled error: `to_int` can fail; handle it with `x, err = to_int(...)` or `to_int(...) ?? default`"),
        (".a = 1\n  .b = nope(1)", "2:8: unknown function `nope`"),
        (".a = x", "1:6: undefined variable `x` (a field is written `.x`)"),
        (".a = now", "1:6: undefined variable `now` (`now` is a function: call it as `now(...)`)"),
        ("x = x + 1", "1:5: undefined variable `x` (a field is written `.x`)"),
        (".a = downcase()", "1:6: `downcase` takes 1 argument, found 0"),
        (".a = replace(.a, \"x\")", "1:6: `replace` takes 3 to 4 arguments, found 2"),
        (".a = \"open", "1:6: unterminated string"),
        (".a = 1 .b = 2", "1:8: expected a new line or `;` after the statement, found `.b`"),
        (".a == 1 = 2", "1:9: expected a new line or `;` after the statement, found `=`"),
        (".a = (1 + 2", "1:12: expected `)`, found the end of the program"),
        ("if .a { .b = 1", "1:15: expected `}` to close the block, found the end of the program"),
        ("if .a .b = 1", "1:7: expected `{` to open a block, found `.b`"),
        (".a = 1 < 2 < 3", "1:12: comparisons cannot be chained: put parentheses around one side of `<`"),
        (".a = r'x'", "1:6: a regex is only allowed as the pattern of `replace`, `split` or `parse_regex`"),
        (".a = replace(.a, r'(', \"\")", "1:18: invalid regex: unclosed group"),
        ("x, e = parse_regex(.m, \"(?P<a>.)\")", "1:24: the pattern of `parse_regex` must be a regex literal: r'(?P<name>...)'"),
        (".a = del(a)", "1:10: expected a field (`.name`) as the argument of `del`, found `a`"),
        ("downcase = 1", "1:1: `downcase` is a function and cannot be assigned to"),
        (".a = 5xx", "1:6: invalid number `5xx` (quote it if it is a string)"),
        (".a = 1 ~ 2", "1:8: unexpected `~`"),
        (".a = {1: 2}", "1:7: expected a key (`\"name\":`) or `}`, found `1`"),
        ("  .\"é\" = 1\n.a = ", "2:6: expected a value, found the end of the program"),
        // Columns count characters, not bytes.
        (".a = \"é\" ~ 1", "1:10: unexpected `~`"),
        ("  .é = 1", "1:4: expected a field name after `.`"),
        ("é", "1:1: unexpected `é`"),
    ];
    let mut failures = Vec::new();
    for (program, expected) in cases {
        let got = error(program);
        if got != *expected {
            failures.push(format!(
                "{program:?}\n  expected {expected}\n  got      {got}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn handled_fallible_calls_compile() {
    for program in [
        "x, err = parse_json(.m)",
        ".a, err = to_int(.m)",
        "_, err = parse_url(.u)",
        ".a = to_int(.m) ?? 0",
        ".a = (to_int(.m) ?? 0) + 1",
        ".a = upcase(to_string(.x) ?? \"\")",
        "if (to_int(.m) ?? 0) > 3 { .big = true }",
        ".a = parse_regex(.m, r'(?P<x>\\d+)') ?? {}",
    ] {
        if let Err(e) = Program::compile(program) {
            panic!("{program:?}: {e}");
        }
    }
}

#[test]
fn size_and_depth_are_bounded() {
    let big = ".a = 1\n".repeat(MAX_PROGRAM_BYTES / 7 + 1);
    assert!(
        error(&big).contains("more than the limit"),
        "{}",
        error(&big)
    );
    let deep = format!(
        ".a = {}1{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert!(
        error(&deep).contains("nests too deeply"),
        "{}",
        error(&deep)
    );
    let negations = format!(".a = {}true", "!".repeat(MAX_DEPTH + 1));
    assert!(error(&negations).contains("nests too deeply"));
    // A long chain is a deep tree too: evaluating it must not overflow the stack.
    for op in ["+", "*", "&&", "||", "??"] {
        let chain = format!(".a = 1{}", format!(" {op} 1").repeat(MAX_DEPTH + 1));
        assert!(error(&chain).contains("nests too deeply"), "{op}");
    }
    let fits = format!(".a = 1{}", " + 1".repeat(MAX_DEPTH / 2));
    assert!(Program::compile(&fits).is_ok());
}
