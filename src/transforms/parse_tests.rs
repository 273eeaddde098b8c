use super::*;
use crate::event::format_timestamp;

fn build(toml_config: &str, id: &str) -> Parse {
    let config: ParseConfig = toml::from_str(toml_config).expect("test config parses");
    config
        .build(&TransformContext { id: id.to_string() })
        .expect("test config builds")
}

/// Fields rendered as JSON, timestamps in RFC 3339.
fn render(event: &Event) -> String {
    serde_json::to_string(&event.fields).unwrap()
}

/// Runs one line (as the `message` field) through a transform built from `config`, and
/// checks which output it took (`None` default, `Some(0)` failed) and its fields.
fn check(config: &str, line: &str, output: Option<usize>, expected: &str) {
    let mut parse = build(config, "test_parse");
    let mut out = Outputs::new(ParseConfig::outputs().len());
    parse.transform(
        Event::from_message(Bytes::copy_from_slice(line.as_bytes())),
        &mut out,
    );
    let events = match output {
        None => out.default_output(),
        Some(i) => out.named_output(i),
    };
    assert_eq!(
        events.len(),
        1,
        "config {config:?}, line {line:?}: wrong output"
    );
    assert_eq!(
        render(&events[0]),
        expected,
        "config {config:?}, line {line:?}"
    );
}

#[test]
fn implausible_timestamps_are_counted_and_arrival_kept() {
    let mut parse = build("", "test_parse_implausible");
    let arrival = 1_796_558_400_000_000_000;
    for line in [
        "2031-01-01 00:00:00 ERROR far future",
        "2026-12-06 01:00:00 fine",
    ] {
        let mut out = Outputs::new(ParseConfig::outputs().len());
        let mut event = Event::from_message(Bytes::copy_from_slice(line.as_bytes()));
        event.meta.received_at = arrival;
        parse.transform(event, &mut out);
    }
    let count = telemetry::counter_value(
        IMPLAUSIBLE_TIMESTAMPS,
        &[("component_id", "test_parse_implausible")],
    );
    assert_eq!(count, 1);
}

#[test]
fn detected_format_names_the_format_or_text_layout() {
    let table = [
        (r#"{"level":"info","msg":"hi"}"#, "json"),
        ("ts=2024-05-01T00:00:00Z level=warn msg=x", "logfmt"),
        (
            "<34>Oct 11 22:14:15 mymachine su[12]: 'su root' failed",
            "syslog",
        ),
        (
            r#"10.0.0.1 - - [23/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "c""#,
            "access_log",
        ),
        ("E1126 10:00:00.123456   12 main.go:1] boom", "glog"),
        (
            "2026-12-06 01:29:59,626 ERROR [main] c.e.App - boom",
            "timestamp_level",
        ),
        ("hello world", "text"),
    ];
    let mut parse = build("detected_format = true", "test_parse");
    for (line, want) in table {
        let mut out = Outputs::new(ParseConfig::outputs().len());
        let mut event = Event::from_message(Bytes::copy_from_slice(line.as_bytes()));
        event.meta.received_at = 1_796_558_400_000_000_000;
        parse.transform(event, &mut out);
        let event = &out.default_output()[0];
        assert_eq!(
            event.get(DETECTED_FORMAT_FIELD).and_then(Value::as_str),
            Some(want),
            "line {line:?}"
        );
    }
    // Off by default, and only with `auto`.
    for config in ["", "format = \"json\"\ndetected_format = true"] {
        let mut parse = build(config, "test_parse");
        let mut out = Outputs::new(ParseConfig::outputs().len());
        parse.transform(Event::from_message(Bytes::from_static(b"{}")), &mut out);
        assert!(out.default_output()[0].get(DETECTED_FORMAT_FIELD).is_none());
    }
}

#[test]
fn every_format_success_and_failure() {
    let table: &[(&str, &str, Option<usize>, &str)] = &[
            // auto: each format, and plain text is a success.
            (
                "",
                r#"{"ts":"2024-05-01T00:00:00.123Z","level":"WARNING","msg":"cache miss","n":3}"#,
                None,
                r#"{"ts":"2024-05-01T00:00:00.123Z","level":"warn","n":3,"message":"cache miss","timestamp":"2024-05-01T00:00:00.123000Z"}"#,
            ),
            (
                "",
                "2015-07-29 17:41:44,747 - INFO  [QuorumPeer] - Notification time out: 3200",
                None,
                r#"{"message":"2015-07-29 17:41:44,747 - INFO  [QuorumPeer] - Notification time out: 3200","timestamp":"2015-07-29T17:41:44.747000Z","level":"info"}"#,
            ),
            ("", "just words", None, r#"{"message":"just words"}"#),
            // json
            (
                r#"format = "json""#,
                r#"{"message":"m","level":"E","time":1714521600}"#,
                None,
                r#"{"message":"m","level":"error","time":1714521600,"timestamp":"2024-05-01T00:00:00.000000Z"}"#,
            ),
            (
                r#"format = "json""#,
                "[1]",
                None,
                r#"{"message":"[1]","parse_error":"expected a json object, found an array"}"#,
            ),
            // logfmt: no message parsed, so the raw line stays the message.
            (
                r#"format = "logfmt""#,
                "at=info method=GET status=503",
                None,
                r#"{"message":"at=info method=GET status=503","at":"info","method":"GET","status":"503","level":"error"}"#,
            ),
            (
                r#"format = "logfmt""#,
                r#"a="open"#,
                None,
                r#"{"message":"a=\"open","parse_error":"unterminated quoted value at column 3"}"#,
            ),
            // syslog
            (
                r#"format = "syslog""#,
                "<190>1 2026-11-23T10:00:00.123+00:00 host app web.1 - State changed",
                None,
                r#"{"facility":"local7","severity":"info","timestamp":"2026-11-23T10:00:00.123000Z","host":"host","app":"app","proc_id":"web.1","instance":"web.1","message":"State changed","level":"info"}"#,
            ),
            (
                r#"format = "syslog""#,
                "plain",
                None,
                r#"{"message":"plain","parse_error":"not a syslog line: expected `<priority>` or a timestamp at `plain`"}"#,
            ),
            // access_log
            (
                r#"format = "access_log""#,
                r#"1.2.3.4 - - [23/Nov/2026:10:00:00 +0000] "GET /x HTTP/1.1" 404 7"#,
                None,
                r#"{"message":"1.2.3.4 - - [23/Nov/2026:10:00:00 +0000] \"GET /x HTTP/1.1\" 404 7","client":"1.2.3.4","timestamp":"2026-11-23T10:00:00.000000Z","method":"GET","path":"/x","protocol":"HTTP/1.1","status":404,"size":7,"level":"warn"}"#,
            ),
            (
                r#"format = "access_log""#,
                "GET /x",
                None,
                r#"{"message":"GET /x","parse_error":"not an access log line: expected the user field at column 7"}"#,
            ),
            // regex
            (
                "format = \"regex\"\npattern = '^(?P<date>\\d{6} \\d{6}) \\d+ (?P<level>[A-Z]+) (?P<message>.*)$'",
                "081109 203615 148 WARN dfs.DataNode: slow",
                None,
                r#"{"date":"081109 203615","level":"warn","message":"dfs.DataNode: slow","timestamp":"2008-11-09T20:36:15.000000Z"}"#,
            ),
            (
                "format = \"regex\"\npattern = '^(?P<n>\\d+)$'",
                "abc",
                None,
                r#"{"message":"abc","parse_error":"pattern did not match"}"#,
            ),
        ];
    for (config, line, output, expected) in table {
        check(config, line, *output, expected);
    }
}

#[test]
fn reroute_and_normalize_off() {
    let table: &[(&str, &str, Option<usize>, &str)] = &[
        (
            "format = \"json\"\nreroute_failed = true",
            "not json",
            Some(0),
            r#"{"message":"not json","parse_error":"invalid json at column 2: expected ident"}"#,
        ),
        (
            "format = \"json\"\nreroute_failed = true",
            r#"{"message":"ok"}"#,
            None,
            r#"{"message":"ok"}"#,
        ),
        // auto never fails, so nothing is rerouted.
        (
            "reroute_failed = true",
            "not json",
            None,
            r#"{"message":"not json"}"#,
        ),
        (
            "format = \"json\"\nnormalize = false",
            r#"{"msg":"m","lvl":"W","ts":1714521600}"#,
            None,
            r#"{"message":"{\"msg\":\"m\",\"lvl\":\"W\",\"ts\":1714521600}","msg":"m","lvl":"W","ts":1714521600}"#,
        ),
        (
            "normalize = false",
            "2015-07-29 17:41:44,747 - INFO x",
            None,
            r#"{"message":"2015-07-29 17:41:44,747 - INFO x"}"#,
        ),
    ];
    for (config, line, output, expected) in table {
        check(config, line, *output, expected);
    }
}

#[test]
fn other_fields_and_missing_fields() {
    let mut parse = build("format = \"logfmt\"\nfield = \"log\"", "t_fields");
    let mut out = Outputs::new(1);
    let mut event = Event::new(Map::new());
    event.insert("log", "a=1 msg=hi");
    event.insert("stream", "stdout");
    parse.transform(event, &mut out);
    // A parsed message replaces the source field; other fields are kept.
    assert_eq!(
        render(&out.default_output()[0]),
        r#"{"stream":"stdout","a":"1","message":"hi"}"#
    );

    let mut out = Outputs::new(1);
    parse.transform(Event::new(Map::new()), &mut out);
    assert_eq!(
        render(&out.default_output()[0]),
        r#"{"parse_error":"field `log` is missing"}"#
    );

    // auto passes events without the field through, normalised.
    let mut parse = build("", "t_auto_missing");
    let mut out = Outputs::new(1);
    let mut event = Event::new(Map::new());
    event.insert("severity", "crit");
    event.meta.received_at = 1_714_521_600_000_000_000;
    parse.transform(event, &mut out);
    let event = &out.default_output()[0];
    assert_eq!(event.fields.get("level"), Some(&Value::from("critical")));
    let ts = event.fields.get("timestamp").map(|v| match v {
        Value::Timestamp(t) => format_timestamp(*t),
        other => format!("{other:?}"),
    });
    assert_eq!(ts.as_deref(), Some("2024-05-01T00:00:00.000000Z"));
}

#[test]
fn failures_are_counted() {
    let mut parse = build("format = \"json\"", "t_count");
    let mut out = Outputs::new(1);
    for line in ["{}", "x", "y"] {
        parse.transform(Event::from_message(Bytes::from(line)), &mut out);
    }
    let count = telemetry::counter_value(
        "component_errors_total",
        &[("component_id", "t_count"), ("reason", "parse_failed")],
    );
    assert_eq!(count, 2);
    assert_eq!(out.default_output().len(), 3);
}

#[test]
fn times_without_an_offset_are_read_in_the_configured_zone() {
    // (line, timestamp with `timezone = "Europe/Berlin"`)
    let table = [
        // Winter (CET, +1) and summer (CEST, +2).
        (
            "2026-12-06 12:00:00,000 ERROR [main] c.e.App - boom",
            "2026-12-06T11:00:00.000000Z",
        ),
        (
            "2026-07-01 12:00:00 WARN slow",
            "2026-07-01T10:00:00.000000Z",
        ),
        // 29 March 2026, 02:00 CET → 03:00 CEST: the skipped 02:30 is read as 03:30 CEST.
        (
            "2026-03-29 01:30:00 INFO before",
            "2026-03-29T00:30:00.000000Z",
        ),
        (
            "2026-03-29 02:30:00 INFO in the gap",
            "2026-03-29T01:30:00.000000Z",
        ),
        (
            "2026-03-29 03:30:00 INFO after",
            "2026-03-29T01:30:00.000000Z",
        ),
        // 25 October 2026, 03:00 CEST → 02:00 CET: the repeated 02:30 is the first one.
        (
            "2026-10-25 02:30:00 INFO twice",
            "2026-10-25T00:30:00.000000Z",
        ),
        (
            "2026-10-25 03:30:00 INFO after",
            "2026-10-25T02:30:00.000000Z",
        ),
        // A year-less syslog time and a JSON field without an offset too.
        (
            "Jul  1 12:00:00 host app[1]: x",
            "2026-07-01T10:00:00.000000Z",
        ),
        (
            r#"{"time":"2026-07-01 12:00:00","msg":"x"}"#,
            "2026-07-01T10:00:00.000000Z",
        ),
        // An offset in the line wins.
        (
            "2026-07-01T12:00:00Z INFO utc",
            "2026-07-01T12:00:00.000000Z",
        ),
        (
            "2026-07-01T12:00:00+05:00 INFO east",
            "2026-07-01T07:00:00.000000Z",
        ),
    ];
    let berlin = build("timezone = \"Europe/Berlin\"", "t_zone");
    let utc = build("", "t_zone_utc");
    let fixed = build("timezone = \"+02:00\"", "t_zone_fixed");
    let timestamp_of = |parse: &Parse, line: &str| {
        let mut event = Event::from_message(Bytes::copy_from_slice(line.as_bytes()));
        event.meta.received_at = 1_796_558_400_000_000_000;
        parse.apply(&mut event).unwrap();
        match event.get("timestamp") {
            Some(Value::Timestamp(t)) => format_timestamp(*t),
            other => format!("{other:?}"),
        }
    };
    for (line, want) in table {
        assert_eq!(timestamp_of(&berlin, line), want, "{line}");
    }
    // Summer in Berlin is +02:00; UTC reads the wall clock as it is.
    let summer = "2026-07-01 12:00:00 WARN slow";
    assert_eq!(timestamp_of(&fixed, summer), "2026-07-01T10:00:00.000000Z");
    assert_eq!(timestamp_of(&utc, summer), "2026-07-01T12:00:00.000000Z");
}

#[test]
fn config_errors() {
    let table: &[(&str, &str, &str)] = &[
            (
                "format = \"regex\"",
                "pattern",
                "is required when format is \"regex\"",
            ),
            (
                "pattern = \"(?P<a>x)\"",
                "pattern",
                "is only allowed when format is \"regex\"",
            ),
            (
                "format = \"json\"\npattern = \"x\"",
                "pattern",
                "is only allowed when format is \"regex\"",
            ),
            (
                "format = \"regex\"\npattern = \"(x)\"",
                "pattern",
                "pattern has no named capture groups like `(?P<name>…)`",
            ),
            ("field = \"\"", "field", "must name a field"),
            (
                "timezone = \"Europe/Nowhere\"",
                "timezone",
                "unknown time zone \"Europe/Nowhere\": expected an IANA name such as \"Europe/Berlin\", an offset such as \"+02:00\", or \"UTC\"",
            ),
            (
                "timezone = \"+25:00\"",
                "timezone",
                "invalid offset \"+25:00\": expected ±HH:MM, ±HHMM or ±HH, at most 23:59",
            ),
        ];
    for (config, field, message) in table {
        let config: ParseConfig = toml::from_str(config).unwrap();
        let err = config
            .build(&TransformContext { id: "t".into() })
            .unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.message.as_str()),
            (*field, *message)
        );
    }
    let config: ParseConfig = toml::from_str("format = \"regex\"\npattern = \"(?P<a>[\"").unwrap();
    let err = config
        .build(&TransformContext { id: "t".into() })
        .unwrap_err();
    assert_eq!(err.field, "pattern");
    assert!(err.message.starts_with("invalid regex:"), "{}", err.message);

    for bad in [
        "format = \"xml\"",
        "colour = \"blue\"",
        "normalize = \"yes\"",
    ] {
        assert!(toml::from_str::<ParseConfig>(bad).is_err(), "{bad}");
    }
    assert_eq!(
        toml::from_str::<ParseConfig>("").unwrap(),
        ParseConfig::default()
    );
}
