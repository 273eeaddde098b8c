use super::*;
use crate::telemetry::Reading;

use crate::event::test_event as event;

fn build(id: &str, toml_src: &str) -> Result<LogToMetric, FieldError> {
    let config: LogToMetricConfig =
        toml::from_str(toml_src).unwrap_or_else(|e| panic!("bad test config: {e}"));
    config.build(&TransformContext { id: id.into() })
}

/// Runs `events` through a transform built from `config`; returns it and what it passed on.
fn run(id: &str, config: &str, events: &[&str]) -> (LogToMetric, usize) {
    let mut t = build(id, config).unwrap_or_else(|e| panic!("{config}: {e}"));
    let mut out = Outputs::new(0);
    for e in events {
        t.transform(event(e), &mut out);
    }
    let passed = out.default_output().len();
    (t, passed)
}

/// Metric `index`'s series as (tag values without component_id, reading), sorted.
fn series(t: &LogToMetric, index: usize) -> Vec<(Vec<String>, Reading)> {
    let family = t.metrics[index].exposed.family();
    let mut out: Vec<_> = family
        .series
        .into_iter()
        .map(|(labels, reading)| {
            assert_eq!(labels[0], ("component_id".into(), t.id.clone()));
            (
                labels[1..]
                    .iter()
                    .map(|(_, v)| v.clone())
                    .collect::<Vec<_>>(),
                reading,
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn numbers(t: &LogToMetric, index: usize) -> Vec<(Vec<String>, f64)> {
    series(t, index)
        .into_iter()
        .map(|(tags, reading)| match reading {
            Reading::Number(n) => (tags, n),
            other => panic!("not a number: {other:?}"),
        })
        .collect()
}

fn tags(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

#[test]
fn counters_count_events_per_tag_set_or_add_values() {
    let events = [
        r#"{"app":"web","status":200,"bytes":100}"#,
        r#"{"app":"web","status":200,"bytes":50.5}"#,
        r#"{"app":"web","status":500}"#,
        r#"{"app":"api","status":200,"bytes":"7"}"#,
    ];
    let config = r#"metrics = [
        { type = "counter", name = "requests_total", tags = { app = "{{ app }}", status = "{{ status }}" } },
        { type = "counter", field = "bytes", name = "with_bytes_total" },
        { type = "counter", field = "bytes", name = "bytes_total", increment_by_value = true, tags = { app = "{{ app }}" } },
    ]"#;
    let (t, passed) = run("counters", config, &events);
    assert_eq!(passed, 4, "events pass on unchanged");
    assert_eq!(
        numbers(&t, 0),
        vec![
            (tags(&["api", "200"]), 1.0),
            (tags(&["web", "200"]), 2.0),
            (tags(&["web", "500"]), 1.0),
        ]
    );
    assert_eq!(numbers(&t, 1), vec![(vec![], 3.0)], "events with the field");
    assert_eq!(
        numbers(&t, 2),
        vec![(tags(&["api"]), 7.0), (tags(&["web"]), 150.5)]
    );
}

#[test]
fn unusable_values_are_counted_and_skipped() {
    let config = r#"metrics = [
        { type = "counter", field = "n", increment_by_value = true },
        { type = "gauge", field = "g" },
    ]"#;
    let events = [
        r#"{"n":-1,"g":"high"}"#,
        r#"{"n":"x","g":2}"#,
        r#"{"n":3,"g":null}"#,
    ];
    let (t, passed) = run("unusable", config, &events);
    assert_eq!(passed, 3);
    assert_eq!(numbers(&t, 0), vec![(vec![], 3.0)]);
    assert_eq!(numbers(&t, 1), vec![(vec![], 2.0)], "null is no value");
    assert_eq!(
        telemetry::counter_value(
            "component_errors_total",
            &[("component_id", "unusable"), ("reason", "metric_value")]
        ),
        3
    );
}

#[test]
fn gauges_keep_the_last_value() {
    let config = r#"metrics = [{ type = "gauge", field = "queue.depth", name = "queue_depth", tags = { q = "{{ q }}" } }]"#;
    let events = [
        r#"{"q":"a","queue":{"depth":5}}"#,
        r#"{"q":"a","queue":{"depth":2.5}}"#,
        r#"{"q":"b","queue":{"depth":9}}"#,
        r#"{"q":"b"}"#,
    ];
    let (t, _) = run("gauges", config, &events);
    assert_eq!(
        numbers(&t, 0),
        vec![(tags(&["a"]), 2.5), (tags(&["b"]), 9.0)]
    );
}

#[test]
fn histograms_observe_into_cumulative_buckets() {
    let config = r#"metrics = [
        { type = "histogram", field = "duration_ms", buckets = [10, 100, 1000] },
        { type = "histogram", field = "secs", name = "default_buckets" },
    ]"#;
    let events = [
        r#"{"duration_ms":10,"secs":0.003}"#,
        r#"{"duration_ms":11,"secs":0.2}"#,
        r#"{"duration_ms":"99.5","secs":60}"#,
        r#"{"duration_ms":5000}"#,
    ];
    let (t, _) = run("histograms", config, &events);
    assert_eq!(
        series(&t, 0),
        vec![(
            vec![],
            Reading::Histogram {
                buckets: vec![(10.0, 1), (100.0, 3), (1000.0, 3)],
                count: 4,
                sum: 5120.5,
            }
        )]
    );
    let Reading::Histogram { buckets, count, .. } = &series(&t, 1)[0].1 else {
        panic!("a histogram");
    };
    assert_eq!(buckets.len(), DEFAULT_BUCKETS.len());
    assert_eq!(buckets[0], (0.005, 1));
    assert_eq!(buckets[5], (0.25, 2));
    assert_eq!(buckets[10], (10.0, 2));
    assert_eq!(*count, 3);
}

#[test]
fn sets_count_distinct_values_up_to_their_bound() {
    let config = r#"metrics = [{ type = "set", field = "user", name = "users", tags = { app = "{{ app }}" }, max_set_values = 3 }]"#;
    let events = [
        r#"{"app":"web","user":"ann"}"#,
        r#"{"app":"web","user":"bob"}"#,
        r#"{"app":"web","user":"ann"}"#,
        r#"{"app":"api","user":1}"#,
        r#"{"app":"web","user":"cy"}"#,
        r#"{"app":"web","user":"dee"}"#,
        r#"{"app":"web","user":"bob"}"#,
    ];
    let (t, _) = run("sets", config, &events);
    assert_eq!(
        numbers(&t, 0),
        vec![(tags(&["api"]), 1.0), (tags(&["web"]), 3.0)]
    );
    assert_eq!(
        telemetry::counter_value(
            "component_metric_overflow_events_total",
            &[("component_id", "sets"), ("reason", "set_values")]
        ),
        1,
        "only `dee` found the set full"
    );
}

#[test]
fn tag_sets_beyond_max_series_share_the_overflow_series() {
    let config = r#"metrics = [{ type = "counter", name = "by_user_total", tags = { user = "{{ user }}", app = "web" }, max_series = 2 }]"#;
    let events: Vec<String> = (0..10)
        .map(|i| format!(r#"{{"user":"u{}"}}"#, i % 5))
        .collect();
    let events: Vec<&str> = events.iter().map(String::as_str).collect();
    let (t, _) = run("overflow", config, &events);
    assert_eq!(
        numbers(&t, 0),
        vec![
            (tags(&["_other", "_other"]), 6.0),
            (tags(&["u0", "web"]), 2.0),
            (tags(&["u1", "web"]), 2.0),
        ]
    );
    assert_eq!(
        telemetry::counter_value(
            "component_metric_overflow_events_total",
            &[("component_id", "overflow"), ("reason", "series")]
        ),
        6
    );
    assert_eq!(t.metrics[0].index.len(), 2, "memory stays bounded");
}

#[test]
fn long_tag_values_are_cut_and_nul_cannot_merge_tag_sets() {
    let config = r#"metrics = [{ type = "counter", name = "pairs_total", tags = { a = "{{ a }}", b = "{{ b }}" } }]"#;
    let long = "é".repeat(200);
    let events = [
        r#"{"a":"x\u0000y","b":"z"}"#.to_string(),
        r#"{"a":"x","b":"y\u0000z"}"#.to_string(),
        format!(r#"{{"a":"{long}","b":""}}"#),
    ];
    let events: Vec<&str> = events.iter().map(String::as_str).collect();
    let (t, _) = run("tagcut", config, &events);
    let got = numbers(&t, 0);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.iter().any(|(tags, _)| tags[0] == "x\u{fffd}y"));
    let cut = got
        .iter()
        .find(|(tags, _)| tags[0].starts_with('é'))
        .unwrap();
    assert_eq!(cut.0[0].len(), 256, "cut at a character boundary");
}

#[test]
fn drop_events_drops_and_counts() {
    let config = "drop_events = true\nmetrics = [{ type = \"counter\", name = \"seen_total\" }]";
    let (t, passed) = run("dropper", config, &["{}", "{}"]);
    assert_eq!(passed, 0);
    assert_eq!(numbers(&t, 0), vec![(vec![], 2.0)]);
    assert_eq!(
        telemetry::counter_value(
            "component_discarded_events_total",
            &[
                ("component_id", "dropper"),
                ("reason", "converted_to_metric")
            ]
        ),
        2
    );
}

#[test]
fn metrics_render_at_the_metrics_endpoint_with_their_prefix() {
    let config = r#"metrics = [
        { type = "counter", name = "render_test_total", description = "Test.", tags = { s = "{{ s }}" } },
        { type = "histogram", field = "d", name = "render_test_d", buckets = [1, 2] },
    ]"#;
    let (_t, _) = run("render", config, &[r#"{"s":"a\"b","d":1.5}"#]);
    let text = crate::api::render_prometheus();
    for line in [
        "# HELP sluice_log_render_test_total Test.\n",
        "# TYPE sluice_log_render_test_total counter\n",
        "sluice_log_render_test_total{component_id=\"render\",s=\"a\\\"b\"} 1\n",
        "# TYPE sluice_log_render_test_d histogram\n",
        "sluice_log_render_test_d_bucket{component_id=\"render\",le=\"1\"} 0\n",
        "sluice_log_render_test_d_bucket{component_id=\"render\",le=\"2\"} 1\n",
        "sluice_log_render_test_d_bucket{component_id=\"render\",le=\"+Inf\"} 1\n",
        "sluice_log_render_test_d_sum{component_id=\"render\"} 1.5\n",
        "sluice_log_render_test_d_count{component_id=\"render\"} 1\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    drop(_t);
    assert!(
        !crate::api::render_prometheus().contains("sluice_log_render_test"),
        "a dropped transform's metrics are gone"
    );
}

#[test]
fn config_errors_name_the_field() {
    let cases = [
        ("metrics = []", "metrics", "must list at least one metric"),
        (
            r#"metrics = [{ type = "gauge" }]"#,
            "metrics[0].field",
            "required",
        ),
        (
            r#"metrics = [{ type = "counter" }]"#,
            "metrics[0].name",
            "required",
        ),
        (
            r#"metrics = [{ type = "counter", name = "9x" }]"#,
            "metrics[0].name",
            "not a metric name",
        ),
        (
            r#"metrics = [{ type = "counter", field = "http.status" }]"#,
            "metrics[0].name",
            "not a metric name",
        ),
        (
            r#"metrics = [{ type = "gauge", field = "g", increment_by_value = true }]"#,
            "metrics[0].increment_by_value",
            "only counters",
        ),
        (
            r#"metrics = [{ type = "histogram", field = "d", buckets = [2, 1] }]"#,
            "metrics[0].buckets",
            "ascending",
        ),
        (
            r#"metrics = [{ type = "counter", name = "c", buckets = [1] }]"#,
            "metrics[0].buckets",
            "only histograms",
        ),
        (
            r#"metrics = [{ type = "counter", name = "c", max_series = 0 }]"#,
            "metrics[0].max_series",
            "between 1 and",
        ),
        (
            r#"metrics = [{ type = "counter", name = "c", tags = { le = "x" } }]"#,
            "metrics[0].tags.le",
            "taken",
        ),
        (
            r#"metrics = [{ type = "counter", name = "c", tags = { "a-b" = "x" } }]"#,
            "metrics[0].tags.a-b",
            "label name",
        ),
        (
            r#"metrics = [{ type = "counter", name = "c", tags = { a = "{{ x" } }]"#,
            "metrics[0].tags.a",
            "unclosed",
        ),
        (
            r#"metrics = [{ type = "counter", name = "c" }, { type = "gauge", field = "c" }]"#,
            "metrics[1].name",
            "already a metric",
        ),
    ];
    for (config, field, message) in cases {
        let err = build("errors", config)
            .err()
            .unwrap_or_else(|| panic!("{config} built"));
        assert_eq!(err.field, field, "{config}: {err:?}");
        assert!(err.message.contains(message), "{config}: {err:?}");
    }
    for bad in [
        r#"metrics = [{ type = "summary", name = "x" }]"#,
        r#"metrics = [{ type = "counter", name = "x", extra = 1 }]"#,
    ] {
        assert!(toml::from_str::<LogToMetricConfig>(bad).is_err(), "{bad}");
    }
}
