use super::matcher::glob_matches;
use super::*;
use crate::event::{Event, Value};

fn term(field: Option<&str>, value: &str) -> Query {
    Query::Term {
        field: field.map(str::to_string),
        value: value.to_string(),
    }
}

#[test]
fn parses_table() {
    let not = |q| Query::Not(Box::new(q));
    let cases: Vec<(&str, Query)> = vec![
        ("", Query::All),
        ("  ", Query::All),
        ("boom", term(None, "boom")),
        ("app:web", term(Some("app"), "web")),
        (
            "app:web level:error",
            Query::And(vec![term(Some("app"), "web"), term(Some("level"), "error")]),
        ),
        (
            "a AND b OR c",
            Query::Or(vec![
                Query::And(vec![term(None, "a"), term(None, "b")]),
                term(None, "c"),
            ]),
        ),
        (
            "a AND (b OR c)",
            Query::And(vec![
                term(None, "a"),
                Query::Or(vec![term(None, "b"), term(None, "c")]),
            ]),
        ),
        ("NOT a", not(term(None, "a"))),
        ("-level:debug", not(term(Some("level"), "debug"))),
        // A lone `-` is a word, inside parentheses as outside (the fuzzer found `(a -)`
        // refused while `a -` parsed).
        ("a -", Query::And(vec![term(None, "a"), term(None, "-")])),
        ("(a -)", Query::And(vec![term(None, "a"), term(None, "-")])),
        (
            "msg:\"connection refused\"",
            Query::Phrase {
                field: Some("msg".into()),
                text: "connection refused".into(),
            },
        ),
        (
            "\"a \\\"b\\\"\"",
            Query::Phrase {
                field: None,
                text: "a \"b\"".into(),
            },
        ),
        (
            "app:web*",
            Query::Wildcard {
                field: Some("app".into()),
                pattern: "web*".into(),
            },
        ),
        (
            "status:>=500",
            Query::Range {
                field: "status".into(),
                lower: Bound::Included(500.0),
                upper: Bound::Unbounded,
            },
        ),
        (
            "took:<1.5",
            Query::Range {
                field: "took".into(),
                lower: Bound::Unbounded,
                upper: Bound::Excluded(1.5),
            },
        ),
        (
            "status:[200 TO 299]",
            Query::Range {
                field: "status".into(),
                lower: Bound::Included(200.0),
                upper: Bound::Included(299.0),
            },
        ),
        (
            "status:[500 TO *]",
            Query::Range {
                field: "status".into(),
                lower: Bound::Included(500.0),
                upper: Bound::Unbounded,
            },
        ),
        ("url:http://x/y", term(Some("url"), "http://x/y")),
        ("a-b", term(None, "a-b")),
    ];
    for (input, expected) in cases {
        assert_eq!(Query::parse(input), Ok(expected), "{input:?}");
    }
}

#[test]
fn errors_carry_position() {
    let cases = [
        ("(a", 2, "expected `)`"),
        ("a)", 1, "unexpected `)`"),
        ("a AND", 5, "expected a term"),
        ("OR a", 0, "expected a term before"),
        ("status:>=abc", 9, "expected a number"),
        ("status:[1 2]", 10, "expected `TO`"),
        ("msg:\"open", 4, "unterminated quote"),
        ("()", 1, "empty parentheses"),
        ("app:", 4, "expected a value"),
    ];
    for (input, position, message) in cases {
        let err = Query::parse(input).expect_err(input);
        assert_eq!(err.position, position, "{input:?}: {err}");
        assert!(err.message.contains(message), "{input:?}: {err}");
    }
    let deep = "(".repeat(200) + "a" + &")".repeat(200);
    assert!(Query::parse(&deep).is_err());
}

#[test]
fn matches_live_events() {
    let value: Value = serde_json::from_str(
        r#"{"message":"Connection refused by upstream","app":"web-1","status":503,"tags":["a","b"]}"#,
    )
    .expect("json");
    let Value::Object(map) = value else {
        panic!("object expected")
    };
    let event = Event::new(map);
    let cases = [
        ("", true),
        ("refused", true),
        ("REFUSED", true),
        ("refuse", false),
        ("\"refused by\"", true),
        ("\"by refused\"", false),
        ("refu*", true),
        ("app:web-1", true),
        ("app:web", false),
        ("app:web*", true),
        ("app:w?b-1", true),
        ("status:>=500", true),
        ("status:[200 TO 299]", false),
        ("status:503", true),
        ("tags:b", true),
        ("missing:x", false),
        ("-app:web-1", false),
        ("NOT missing:x", true),
        ("app:x OR status:<600", true),
        ("app:web-1 AND nothing", false),
    ];
    for (query, expected) in cases {
        let q = Query::parse(query).expect(query);
        assert_eq!(q.matches(&event), expected, "{query:?}");
    }
}

proptest::proptest! {
    /// Any text parses or fails with a position inside it (or just after); whatever
    /// parses evaluates, and `NOT (q)` negates it.
    #[test]
    fn parse_never_panics(src in "\\PC{0,64}") {
        match Query::parse(&src) {
            Err(e) => proptest::prop_assert!(e.position <= src.len(), "{e}"),
            Ok(q) => {
                let event = Event::new(crate::event::Map::new());
                let negated = Query::Not(Box::new(q.clone()));
                proptest::prop_assert_eq!(negated.matches(&event), !q.matches(&event));
            }
        }
    }

    #[test]
    fn pieces_parse_or_fail_cleanly(
        parts in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just("app:web"), proptest::strategy::Just("AND"),
                proptest::strategy::Just("OR"), proptest::strategy::Just("NOT"),
                proptest::strategy::Just("("), proptest::strategy::Just(")"),
                proptest::strategy::Just("-x"), proptest::strategy::Just("\"a b\""),
                proptest::strategy::Just("s:>=5"), proptest::strategy::Just("s:[1 TO *]"),
                proptest::strategy::Just("w*"), proptest::strategy::Just(":"),
            ],
            0..12,
        )
    ) {
        let src = parts.join(" ");
        if let Err(e) = Query::parse(&src) {
            proptest::prop_assert!(e.position <= src.len(), "{src}: {e}");
        }
    }
}

#[test]
fn glob_table() {
    let cases = [
        ("web*", "web", true),
        ("web*", "webserver", true),
        ("*er", "webserver", true),
        ("w?b", "web", true),
        ("w?b", "wb", false),
        ("*a*b*", "xxaxxbxx", true),
        ("*a*b", "ba", false),
        ("w?b", "wéb", true),
        ("w??b", "wéb", false),
        ("*é*", "café", true),
    ];
    for (p, t, expected) in cases {
        assert_eq!(glob_matches(p, t), expected, "{p} {t}");
    }
}

/// The byte-wise path for ASCII answers as matching by characters does.
#[test]
fn glob_on_ascii_bytes_equals_glob_on_characters() {
    let mut rng = fastrand::Rng::with_seed(18);
    let alphabet = b"ab*?";
    for _ in 0..20_000 {
        let pattern: String = (0..rng.usize(0..7))
            .map(|_| alphabet[rng.usize(..alphabet.len())] as char)
            .collect();
        let text: String = (0..rng.usize(0..9))
            .map(|_| if rng.bool() { 'a' } else { 'b' })
            .collect();
        // The same pattern and text with every `a` as `é`: not ASCII, so by characters.
        let wide = |s: &str| s.replace('a', "é");
        assert_eq!(
            glob_matches(&pattern, &text),
            glob_matches(&wide(&pattern), &wide(&text)),
            "{pattern} {text}"
        );
    }
}

/// `level:>=error` compares severities as conditions do, for every spelling of a level;
/// a word that is not a level is an error, and numbers stay numeric ranges.
#[test]
fn levels_compare_by_severity() {
    let with_level = |level: &str| {
        let mut event = Event::from_message(bytes::Bytes::from_static(b"x"));
        event.insert("level", level);
        event
    };
    let cases = [
        ("level:>=error", "error", true),
        ("level:>=error", "err", true),
        ("level:>=error", "fatal", true),
        ("level:>=error", "emergency", true),
        ("level:>=error", "warn", false),
        ("level:>=error", "info", false),
        ("level:>warn", "warning", false),
        ("level:>warn", "error", true),
        ("level:<=info", "debug", true),
        ("level:<=info", "informational", true),
        ("level:<=info", "notice", false),
        ("level:<info", "info", false),
        ("level:<trace", "trace", false),
        ("-level:>=warn", "info", true),
        ("-level:>=warn", "warning", false),
    ];
    for (q, level, expected) in cases {
        let query = Query::parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        assert_eq!(
            query.matches(&with_level(level)),
            expected,
            "{q} on {level}"
        );
    }
    let error = Query::parse("level:>=loud").expect_err("not a level");
    assert!(error.to_string().contains("expected a level"), "{error}");
    assert!(matches!(
        Query::parse("level:>=3").expect("numeric"),
        Query::Range { .. }
    ));
}
