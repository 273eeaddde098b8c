//! `log_to_metric` in a router process: events over TCP become series at `/metrics`
//! (checked by Prometheus's own `promtool` when installed).

use std::io::Write;

use crate::api::{http_get, run_with_stdin};
use crate::util::{have_tool, sluice_up, spawn_router, tempdir, TIMEOUT};

#[test]
fn requests_per_status_and_latency_histogram_are_scraped() {
    let dir = tempdir();
    let config = dir.path().join("metrics.toml");
    std::fs::write(
        &config,
        r#"
[api]
address = "127.0.0.1:0"

[sources.in]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"

[transforms.http_metrics]
type = "log_to_metric"
inputs = ["in"]
metrics = [
  { type = "counter", name = "http_requests_total", tags = { app = "{{ app }}", status = "{{ status }}" } },
  { type = "histogram", field = "duration_ms", name = "http_request_duration", buckets = [10, 100, 1000], tags = { app = "{{ app }}" } },
  { type = "counter", name = "per_user_total", tags = { user = "{{ user }}" }, max_series = 2 },
]

[sinks.out]
type = "file"
inputs = ["http_metrics"]
path = "OUT"
"#
        .replace("OUT", &dir.path().join("out.log").display().to_string()),
    )
    .unwrap();
    let router = spawn_router(sluice_up(&config));
    let mut tcp = std::net::TcpStream::connect(router.address_of("in").expect("address")).unwrap();
    let lines = [
        (r#"web"#, 200, 5, "ann"),
        ("web", 200, 50, "bob"),
        ("web", 500, 700, "cy"),
        ("api", 200, 5000, "dee"),
    ];
    for (app, status, ms, user) in lines {
        writeln!(
            tcp,
            r#"{{"app":"{app}","status":{status},"duration_ms":{ms},"user":"{user}"}}"#
        )
        .unwrap();
    }
    drop(tcp);
    let api: std::net::SocketAddr = router.address_of("api").expect("api").parse().unwrap();
    let expected = [
        "# TYPE sluice_log_http_requests_total counter",
        r#"sluice_log_http_requests_total{component_id="http_metrics",app="web",status="200"} 2"#,
        r#"sluice_log_http_requests_total{component_id="http_metrics",app="web",status="500"} 1"#,
        r#"sluice_log_http_requests_total{component_id="http_metrics",app="api",status="200"} 1"#,
        "# TYPE sluice_log_http_request_duration histogram",
        r#"sluice_log_http_request_duration_bucket{component_id="http_metrics",app="web",le="10"} 1"#,
        r#"sluice_log_http_request_duration_bucket{component_id="http_metrics",app="web",le="100"} 2"#,
        r#"sluice_log_http_request_duration_bucket{component_id="http_metrics",app="web",le="1000"} 3"#,
        r#"sluice_log_http_request_duration_sum{component_id="http_metrics",app="web"} 755"#,
        r#"sluice_log_http_request_duration_bucket{component_id="http_metrics",app="api",le="1000"} 0"#,
        r#"sluice_log_http_request_duration_count{component_id="http_metrics",app="api"} 1"#,
        // The cardinality limit: two users keep their series, the rest share `_other`.
        r#"sluice_log_per_user_total{component_id="http_metrics",user="ann"} 1"#,
        r#"sluice_log_per_user_total{component_id="http_metrics",user="_other"} 2"#,
        r#"sluice_component_metric_overflow_events_total{component_id="http_metrics",metric="per_user_total",reason="series"} 2"#,
        // The events themselves pass on.
        r#"sluice_component_sent_events_total{component_id="out"} 4"#,
    ];
    let deadline = std::time::Instant::now() + TIMEOUT;
    let metrics = loop {
        let (status, metrics) = http_get(api, "/metrics");
        assert_eq!(status, 200);
        let missing: Vec<_> = expected.iter().filter(|l| !metrics.contains(*l)).collect();
        if missing.is_empty() {
            break metrics;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "missing {missing:?} in:\n{metrics}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    router.signal("-TERM");
    let (status, log) = router.finish();
    assert!(status.success(), "{log}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.log"))
            .unwrap()
            .lines()
            .count(),
        4
    );
    if have_tool("promtool") {
        let (ok, report) = run_with_stdin("promtool", &["check", "metrics"], metrics.as_bytes());
        assert!(ok, "promtool check metrics failed:\n{report}");
    }
}
