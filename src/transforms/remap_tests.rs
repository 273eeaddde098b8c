use super::*;
use crate::event::Map;

fn event(json: &str) -> Event {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(map)) => Event::new(map),
        other => panic!("test input {json} is not an object: {other:?}"),
    }
}

fn build(toml_src: &str, id: &str) -> Result<Remap, FieldError> {
    let config: RemapConfig =
        toml::from_str(toml_src).unwrap_or_else(|e| panic!("bad test config: {e}"));
    config.build(&TransformContext { id: id.into() })
}

fn render(map: &Map) -> String {
    serde_json::to_string(&Value::Object(map.clone())).unwrap_or_default()
}

/// Runs the transform over `input` and returns (output name, the event as JSON).
fn route(remap: &mut Remap, input: &str) -> (&'static str, String) {
    let mut out = Outputs::new(RemapConfig::outputs().len());
    remap.transform(event(input), &mut out);
    let mut found = Vec::new();
    for (name, events) in [
        ("default", out.default_output()),
        ("dropped", out.named_output(DROPPED_OUTPUT)),
        ("failed", out.named_output(FAILED_OUTPUT)),
    ] {
        for e in events {
            found.push((name, render(&e.fields)));
        }
    }
    assert_eq!(found.len(), 1, "one event in, one out: {found:?}");
    found.remove(0)
}

#[test]
fn events_go_to_default_dropped_or_failed() {
    let mut remap = build(
        r#"source = '''
if .level == "debug" { abort }
.service = downcase(.app)
.ratio = .hits / .total
'''"#,
        "remap_outputs",
    )
    .expect("builds");
    let cases = [
        (
            r#"{"app":"Web","hits":1,"total":4}"#,
            ("default", r#"{"app":"Web","hits":1,"total":4,"service":"web","ratio":0.25}"#.to_string()),
        ),
        (
            r#"{"level":"debug","app":"Web"}"#,
            ("dropped", r#"{"level":"debug","app":"Web"}"#.to_string()),
        ),
        (
            // Fails on line 3 (TOML drops the newline after `'''`) after setting
            // `.service`: the event leaves unchanged but for the reason.
            r#"{"app":"Web","hits":1,"total":0}"#,
            (
                "failed",
                r#"{"app":"Web","hits":1,"total":0,"remap_error":"at line 3, column 16: division by zero"}"#
                    .to_string(),
            ),
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(route(&mut remap, input), expected, "{input}");
    }
    assert_eq!(
        telemetry::counter_value(
            "component_errors_total",
            &[
                ("component_id", "remap_outputs"),
                ("reason", "remap_failed")
            ]
        ),
        1
    );
}

#[test]
fn the_program_can_come_from_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("shape.remap");
    std::fs::write(&path, ".a = 1\n.b = upcase(.m)\n").expect("write");
    let mut remap = build(
        &format!("file = {:?}", path.display().to_string()),
        "remap_file",
    )
    .expect("builds");
    assert_eq!(
        route(&mut remap, r#"{"m":"x"}"#),
        ("default", r#"{"m":"x","a":1,"b":"X"}"#.to_string())
    );

    std::fs::write(&path, ".a = 1\n.b = to_int(.m)\n").expect("write");
    let error = build(
        &format!("file = {:?}", path.display().to_string()),
        "remap_file",
    )
    .expect_err("an unhandled fallible call");
    assert_eq!(error.field, "file");
    assert_eq!(
        error.message,
        format!(
            "{}: at line 2, column 6: unhandled error: `to_int` can fail; handle it with `x, err = to_int(...)` or `to_int(...) ?? default`",
            path.display()
        )
    );
}

#[test]
fn config_errors_name_the_field() {
    let cases = [
        ("", "source", "is required: the program (or give `file`)"),
        (
            "source = '.a = 1'\nfile = 'x.remap'",
            "file",
            "give either `source` (the program) or `file` (a file holding it), not both",
        ),
        (
            "source = '''\n.a = 1\n.b = \"x\n'''",
            "source",
            "at line 2, column 6: unterminated string",
        ),
    ];
    for (toml_src, field, message) in cases {
        let error = build(toml_src, "remap_config").expect_err(toml_src);
        assert_eq!(
            (error.field.as_str(), error.located_in_value().as_str()),
            (field, message)
        );
    }
    let error = build("file = '/nonexistent/x.remap'", "remap_config").expect_err("missing file");
    assert_eq!(error.field, "file");
    assert!(
        error
            .message
            .starts_with("cannot read /nonexistent/x.remap: "),
        "{}",
        error.message
    );
}
