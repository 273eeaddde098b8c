//! Every function, table-driven: a program calling it, an input event, and the result
//! (the field `.r` as JSON) or the error.

use crate::event::Value;
use crate::remap::{Program, Scratch};

/// Runs `.r = <call>` on `input`; returns `.r` as JSON (keys in their order) or the error.
fn result(call: &str, input: &str) -> String {
    let program = format!(".r = {call}");
    let program = Program::compile(&program).unwrap_or_else(|e| panic!("{program}: {e}"));
    let mut fields = match serde_json::from_str::<Value>(input) {
        Ok(Value::Object(map)) => map,
        other => panic!("test input {input} is not an object: {other:?}"),
    };
    match program.run(&mut fields, &mut Scratch::default()) {
        Ok(_) => serde_json::to_string(fields.get("r").unwrap_or(&Value::Null)).unwrap_or_default(),
        Err(e) => format!("error: {e}"),
    }
}

fn check(cases: &[(&str, &str, &str)]) {
    let mut failures = Vec::new();
    for (call, input, expected) in cases {
        let got = result(call, input);
        if got != *expected {
            failures.push(format!(
                "{call} on {input}\n  expected {expected}\n  got      {got}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

const NONE: &str = "{}";

#[test]
fn string_functions() {
    check(&[
        ("downcase(.m)", r#"{"m":"HeLLo"}"#, r#""hello""#),
        ("downcase(\"ÉTÉ\")", NONE, r#""été""#),
        ("upcase(.m)", r#"{"m":"abc"}"#, r#""ABC""#),
        ("trim(\"  a b \\n\")", NONE, r#""a b""#),
        ("trim(\"   \")", NONE, r#""""#),
        ("replace(\"a-b-c\", \"-\", \"+\")", NONE, r#""a+b+c""#),
        ("replace(\"a-b-c\", \"-\", \"+\", 1)", NONE, r#""a+b-c""#),
        ("replace(\"user=42 id=7\", r'(\\w+)=(\\d+)', \"$1:$2\")", NONE, r#""user:42 id:7""#),
        ("replace(\"abc\", \"\", \"x\")", NONE, "error: at line 1, column 6: `replace` failed: argument 2 (pattern) must not be empty"),
        ("split(\"a,b,,c\", \",\")", NONE, r#"["a","b","","c"]"#),
        ("split(\"a,b,c\", \",\", 2)", NONE, r#"["a","b,c"]"#),
        ("split(\"a1b22c\", r'\\d+')", NONE, r#"["a","b","c"]"#),
        ("split(\"\", \",\")", NONE, r#"[""]"#),
        ("contains(.m, \"needle\")", r#"{"m":"haystack needle"}"#, "true"),
        ("contains(.m, \"NEEDLE\")", r#"{"m":"haystack needle"}"#, "false"),
        ("contains(.m, \"NEEDLE\", false)", r#"{"m":"haystack needle"}"#, "true"),
        ("starts_with(.m, \"GET \")", r#"{"m":"GET /x"}"#, "true"),
        ("starts_with(.m, \"get\", false)", r#"{"m":"GET /x"}"#, "true"),
        ("ends_with(.m, \".json\")", r#"{"m":"a.json"}"#, "true"),
        ("ends_with(.m, \".json\")", r#"{"m":"a.xml"}"#, "false"),
        ("upcase(1)", NONE, "error: at line 1, column 6: `upcase` failed: argument 1 must be a string, not an integer"),
    ]);
}

#[test]
fn collection_functions() {
    check(&[
        ("join([\"a\", \"b\"], \", \")", NONE, r#""a, b""#),
        ("join([\"a\", \"b\"])", NONE, r#""ab""#),
        ("join([\"a\", 1])", NONE, "error: at line 1, column 6: `join` failed: element 2 of the array is an integer, not a string"),
        ("slice(\"héllo\", 1, 3)", NONE, r#""él""#),
        ("slice(\"hello\", -3)", NONE, r#""llo""#),
        ("slice(\"hello\", 2, 100)", NONE, r#""llo""#),
        ("slice(\"hello\", 4, 1)", NONE, r#""""#),
        ("slice([1, 2, 3, 4], 1, -1)", NONE, "[2,3]"),
        ("merge(.a, .b)", r#"{"a":{"x":1,"o":{"p":1}},"b":{"y":2,"o":{"q":2}}}"#, r#"{"x":1,"o":{"q":2},"y":2}"#),
        ("merge(.a, .b, true)", r#"{"a":{"x":1,"o":{"p":1}},"b":{"y":2,"o":{"q":2}}}"#, r#"{"x":1,"o":{"p":1,"q":2},"y":2}"#),
        ("merge(.a, 1)", r#"{"a":{}}"#, "error: at line 1, column 6: `merge` failed: argument 2 must be an object, not an integer"),
        ("compact(.a)", r#"{"a":{"x":null,"y":"","z":[],"w":{"v":null},"k":0,"l":[null,1]}}"#, r#"{"k":0,"l":[1]}"#),
        ("length(\"héllo\")", NONE, "5"),
        ("length([1, 2])", NONE, "2"),
        ("length(.a)", r#"{"a":{"x":1}}"#, "1"),
        ("length(1)", NONE, "error: at line 1, column 6: `length` failed: argument 1 must be a string, an array or an object, not an integer"),
    ]);
}

#[test]
fn conversion_functions() {
    check(&[
        ("to_int(\" 42 \") ?? 0", NONE, "42"),
        ("to_int(3.9) ?? 0", NONE, "3"),
        ("to_int(true) ?? 0", NONE, "1"),
        ("to_int(\"4.2\") ?? -1", NONE, "-1"),
        ("to_int(1e300) ?? -1", NONE, "-1"),
        ("to_float(\"2.5\") ?? 0", NONE, "2.5"),
        ("to_float(2) ?? 0", NONE, "2.0"),
        ("to_float(\"NaN\") ?? -1", NONE, "-1"),
        ("to_string(12)", NONE, r#""12""#),
        ("to_string(null)", NONE, r#""""#),
        ("to_string([1])", NONE, r#""[1]""#),
        ("to_bool(\"Yes\") ?? null", NONE, "true"),
        ("to_bool(\"off\") ?? null", NONE, "false"),
        ("to_bool(0) ?? null", NONE, "false"),
        ("to_bool(\"maybe\") ?? null", NONE, "null"),
    ]);
}

#[test]
fn parse_functions() {
    check(&[
        (
            "parse_json(.m) ?? null",
            r#"{"m":"{\"a\":{\"b\":[1,true]}}"}"#,
            r#"{"a":{"b":[1,true]}}"#,
        ),
        ("parse_json(\"[1,2]\") ?? null", NONE, "[1,2]"),
        ("parse_json(\"nope\") ?? \"bad\"", NONE, r#""bad""#),
        (
            "parse_logfmt(.m) ?? null",
            r#"{"m":"a=1 b=\"x y\" flag"}"#,
            r#"{"a":"1","b":"x y","flag":true}"#,
        ),
        (
            "parse_key_value(.m) ?? null",
            r#"{"m":"user=bob msg=\"hi there\" ok"}"#,
            r#"{"user":"bob","msg":"hi there","ok":true}"#,
        ),
        (
            "parse_key_value(.m, \":\", \";\") ?? null",
            r#"{"m":"a:1; b:2"}"#,
            r#"{"a":"1","b":"2"}"#,
        ),
        (
            "parse_key_value(\"no pairs here\") ?? \"bad\"",
            NONE,
            r#""bad""#,
        ),
        (
            "parse_regex(.m, r'^(?P<method>\\w+) (?P<path>\\S+)') ?? null",
            r#"{"m":"GET /index.html HTTP/1.1"}"#,
            r#"{"method":"GET","path":"/index.html"}"#,
        ),
        (
            "parse_regex(.m, r'^(?P<n>\\d+)$') ?? \"no match\"",
            r#"{"m":"abc"}"#,
            r#""no match""#,
        ),
        (
            "parse_url(.u) ?? null",
            r#"{"u":"https://bob:s3cret@Example.com:8443/a%20b/c?x=1&y=hello+world#top"}"#,
            r#"{"scheme":"https","username":"bob","password":"s3cret","host":"example.com","port":8443,"path":"/a b/c","query":{"x":"1","y":"hello world"},"fragment":"top"}"#,
        ),
        (
            "parse_url(\"http://[::1]/\") ?? null",
            NONE,
            r#"{"scheme":"http","username":"","password":null,"host":"::1","port":null,"path":"/","query":{},"fragment":null}"#,
        ),
        ("parse_url(\"not a url\") ?? \"bad\"", NONE, r#""bad""#),
        (
            "parse_url(\"http://host:99999/\") ?? \"bad\"",
            NONE,
            r#""bad""#,
        ),
    ]);
}

#[test]
fn time_functions() {
    check(&[
        ("format_timestamp(parse_timestamp(.t) ?? null, \"%Y-%m-%d %H:%M:%S\")", r#"{"t":"2024-05-01T10:20:30Z"}"#, r#""2024-05-01 10:20:30""#),
        ("format_timestamp(parse_timestamp(.t) ?? null, \"%s\")", r#"{"t":1714558830}"#, r#""1714558830""#),
        ("format_timestamp(parse_timestamp(.t, \"%d/%m/%Y %H:%M\") ?? null, \"%FT%T\")", r#"{"t":"01/05/2024 10:20"}"#, r#""2024-05-01T10:20:00""#),
        ("format_timestamp(parse_timestamp(.t, \"%Y-%m-%d\") ?? null, \"%FT%T\")", r#"{"t":"2024-05-01"}"#, r#""2024-05-01T00:00:00""#),
        ("format_timestamp(parse_timestamp(.t, \"%Y-%m-%d %H:%M %z\") ?? null, \"%FT%T\")", r#"{"t":"2024-05-01 10:20 +0200"}"#, r#""2024-05-01T08:20:00""#),
        ("parse_timestamp(\"yesterday\") ?? \"bad\"", NONE, r#""bad""#),
        ("parse_timestamp(\"01/05/2024\", \"%Y\") ?? \"bad\"", NONE, r#""bad""#),
        ("format_timestamp(now(), \"%Q\")", NONE, "error: at line 1, column 6: `format_timestamp` failed: invalid format \"%Q\""),
        ("format_timestamp(\"2024\", \"%Y\")", NONE, "error: at line 1, column 6: `format_timestamp` failed: argument 1 must be a timestamp, not a string"),
    ]);
    let year: i64 = result("to_int(format_timestamp(now(), \"%Y\")) ?? 0", NONE)
        .parse()
        .unwrap_or(0);
    assert!((2024..3000).contains(&year), "now() gave year {year}");
}

#[test]
fn hash_and_id_functions() {
    check(&[
        (
            "sha256(\"abc\")",
            NONE,
            r#""ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad""#,
        ),
        (
            "md5(\"abc\")",
            NONE,
            r#""900150983cd24fb0d6963f7d28e17f72""#,
        ),
        (
            "md5(1)",
            NONE,
            "error: at line 1, column 6: `md5` failed: argument 1 must be a string, not an integer",
        ),
    ]);
    let a = result("uuid_v4()", NONE);
    let b = result("uuid_v4()", NONE);
    assert_ne!(a, b);
    let id = a.trim_matches('"');
    let groups: Vec<usize> = id.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
    assert_eq!(&id[14..15], "4", "version 4: {id}");
}

#[test]
fn user_agents() {
    let cases: &[(&str, &str)] = &[
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            r#"{"browser":{"family":"Chrome","version":"120.0.0.0"},"os":{"family":"Windows","version":"10"},"device":{"type":"desktop"}}"#),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
            r#"{"browser":{"family":"Edge","version":"120.0.2210.91"},"os":{"family":"Windows","version":"10"},"device":{"type":"desktop"}}"#),
        ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
            r#"{"browser":{"family":"Firefox","version":"121.0"},"os":{"family":"Linux","version":null},"device":{"type":"desktop"}}"#),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
            r#"{"browser":{"family":"Safari","version":"17.1"},"os":{"family":"iOS","version":"17.1.2"},"device":{"type":"mobile"}}"#),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36",
            r#"{"browser":{"family":"Chrome","version":"120.0.6099.144"},"os":{"family":"Android","version":"14"},"device":{"type":"mobile"}}"#),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
            r#"{"browser":{"family":"Safari","version":"17.2"},"os":{"family":"macOS","version":"10.15.7"},"device":{"type":"desktop"}}"#),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            r#"{"browser":{"family":"Googlebot","version":"2.1"},"os":{"family":"Other","version":null},"device":{"type":"bot"}}"#),
        ("curl/8.5.0",
            r#"{"browser":{"family":"curl","version":"8.5.0"},"os":{"family":"Other","version":null},"device":{"type":"bot"}}"#),
        ("something else entirely",
            r#"{"browser":{"family":"Other","version":null},"os":{"family":"Other","version":null},"device":{"type":"other"}}"#),
    ];
    let mut failures = Vec::new();
    for (ua, expected) in cases {
        let input = serde_json::json!({ "ua": ua }).to_string();
        let got = result("parse_user_agent(.ua)", &input);
        if got != *expected {
            failures.push(format!("{ua}\n  expected {expected}\n  got      {got}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// docs/remap.md documents every function, with an example.
#[test]
fn every_function_is_documented() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/remap.md"))
        .expect("docs/remap.md");
    for name in crate::remap::function_names() {
        assert!(
            docs.contains(&format!("### `{name}(")),
            "docs/remap.md has no section for `{name}`"
        );
    }
}
