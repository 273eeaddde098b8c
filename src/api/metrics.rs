//! Renders the telemetry registry in the Prometheus text exposition format (0.0.4).

use std::fmt::Write;

use crate::telemetry;

/// Every registered metric as `sluice_<name>{labels} value`, grouped by name with one
/// `# HELP` and `# TYPE` line each, names and label sets in a stable order: counters, then
/// gauges, then histograms, then the families configuration names (`log_to_metric`).
pub fn render_prometheus() -> String {
    let mut counters = telemetry::snapshot();
    counters.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let gauges = telemetry::gauge_snapshot();
    let histograms = telemetry::histogram_snapshot();
    let mut out = String::with_capacity(4096 + (counters.len() + gauges.len()) * 96);
    for (kind, series) in [("counter", &counters), ("gauge", &gauges)] {
        let mut current = "";
        for (name, labels, value) in series {
            if *name != current {
                current = name;
                header(&mut out, name, kind);
            }
            sample(&mut out, name, "", labels, None, &value.to_string());
        }
    }
    let mut current = "";
    for (name, labels, histogram) in &histograms {
        if *name != current {
            current = name;
            header(&mut out, name, "histogram");
        }
        let (cumulative, sum) = histogram.read();
        for (bound, count) in telemetry::LATENCY_BUCKETS.iter().zip(cumulative) {
            let le = bound.to_string();
            sample(
                &mut out,
                name,
                "_bucket",
                labels,
                Some(&le),
                &count.to_string(),
            );
        }
        let total = cumulative[cumulative.len() - 1].to_string();
        sample(&mut out, name, "_bucket", labels, Some("+Inf"), &total);
        sample(&mut out, name, "_sum", labels, None, &sum.to_string());
        sample(&mut out, name, "_count", labels, None, &total);
    }
    render_families(&mut out, &telemetry::family_snapshot());
    out
}

/// Families named by configuration. Families sharing a name (one metric declared by two
/// transforms, told apart by their `component_id` label) share one header; one whose type
/// differs from the first of its name is left out, as the format allows one type per name.
fn render_families(out: &mut String, families: &[telemetry::Family]) {
    let mut current: Option<(&str, telemetry::FamilyKind)> = None;
    for family in families {
        match current {
            Some((name, kind)) if name == family.name => {
                if kind != family.kind {
                    continue;
                }
            }
            _ => {
                let kind = match family.kind {
                    telemetry::FamilyKind::Counter => "counter",
                    telemetry::FamilyKind::Gauge => "gauge",
                    telemetry::FamilyKind::Histogram => "histogram",
                };
                let _ = writeln!(
                    out,
                    "# HELP sluice_{} {}",
                    family.name,
                    one_line(&family.help)
                );
                let _ = writeln!(out, "# TYPE sluice_{} {kind}", family.name);
                current = Some((&family.name, family.kind));
            }
        }
        for (labels, reading) in &family.series {
            match reading {
                telemetry::Reading::Number(value) => {
                    sample(out, &family.name, "", labels, None, &number(*value));
                }
                telemetry::Reading::Histogram {
                    buckets,
                    count,
                    sum,
                } => {
                    for (bound, cumulative) in buckets {
                        let le = number(*bound);
                        let count = cumulative.to_string();
                        sample(out, &family.name, "_bucket", labels, Some(&le), &count);
                    }
                    let count = count.to_string();
                    sample(out, &family.name, "_bucket", labels, Some("+Inf"), &count);
                    sample(out, &family.name, "_sum", labels, None, &number(*sum));
                    sample(out, &family.name, "_count", labels, None, &count);
                }
            }
        }
    }
}

/// A sample value as the format spells it (`+Inf`, `-Inf`, `NaN` for the non-finite).
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        value.to_string()
    }
}

/// Help text is one line: a newline or backslash in a configured description is escaped.
fn one_line(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str) {
    let _ = writeln!(out, "# HELP sluice_{name} {}", help(name));
    let _ = writeln!(out, "# TYPE sluice_{name} {kind}");
}

/// One sample line; `le` is a histogram bucket's bound.
fn sample<K: AsRef<str>>(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(K, String)],
    le: Option<&str>,
    value: &str,
) {
    let _ = write!(out, "sluice_{name}{suffix}");
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        let le = le.map(|bound| ("le", bound));
        let pairs = labels
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_str()))
            .chain(le);
        for (i, (key, val)) in pairs.enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{key}=\"");
            escape_label(val, out);
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// One line of help per metric, as Prometheus tooling expects.
fn help(name: &str) -> &'static str {
    match name {
        "component_received_events_total" => "Events a component received.",
        "component_received_bytes_total" => "Raw bytes a source read.",
        "component_sent_events_total" => {
            "Events a component sent on (transforms: per output) or delivered (sinks)."
        }
        "component_sent_bytes_total" => "Bytes a sink wrote.",
        "component_errors_total" => "Errors by reason: bad frames, failed writes, buffer IO.",
        "component_rate_limit_overflow_total" => {
            "Events checked against the shared bucket of apps beyond rate_limit.max_keys."
        }
        "store_commits_total" => "Commits of the store: each makes the events appended before it durable, searchable and acknowledged.",
        "store_implausible_timestamps_total" => "Events whose own time lay outside 1970-2100, stored under their arrival time (the original kept as original_timestamp).",
        "component_metric_overflow_events_total" => {
            "Events a log_to_metric metric counted in its overflow series (reason=series: more tag sets than max_series) or whose set value it could not remember (reason=set_values)."
        }
        "enrichment_table_reloads_total" => {
            "Reloads of an enrichment table's file, by result (ok; failed: the previous table stays in use)."
        }
        "component_redactions_total" => "Values replaced by the redact transform, by detector.",
        "component_discarded_events_total" => "Events dropped on purpose or by policy, by reason.",
        "component_label_overflow_events_total" => {
            "Events a loki sink sent under its fallback label set because their labels would have made more than max_label_sets streams."
        }
        "component_requests_in_flight" => {
            "Requests a clickhouse, elasticsearch or s3 sink has sent and awaits the answer to (at most request.concurrency)."
        }
        "component_dead_lettered_events_total" => {
            "Events a sink gave up on and sent to its dead_letter output."
        }
        "component_connections_accepted_total" => {
            "Connections a listener (network source or the API) accepted within its caps."
        }
        "component_connections_refused_total" => {
            "Connections a listener closed at once over a cap (max_connections, max_connections_per_ip)."
        }
        "component_connections_closed_total" => {
            "Connections a listener closed, by reason (idle_timeout)."
        }
        "component_throttle_overflow_events_total" => {
            "Events of new keys put in a throttle's shared overflow bucket."
        }
        "component_http_responses_total" => "HTTP responses of an http source, by status code.",
        "component_grpc_responses_total" => {
            "OTLP/gRPC answers of an http source's grpc_address, by gRPC status code."
        }
        "component_rate_limited_requests_total" => {
            "Requests refused with 429 because their app was over its rate limit."
        }
        "component_received_events_by_app_total" => "Events an http source accepted, per app.",
        "component_refused_requests_total" => {
            "Requests an http source refused, by reason (content_type, origin, body_too_slow, body_budget)."
        }
        "api_refused_requests_total" => {
            "API requests refused, by reason: host (not allowed), origin, token (401), role (403)."
        }
        "federation_peer_failures_total" => {
            "Peers that gave no answer to a federated request, by reason (connect, timeout, status, body, tail)."
        }
        "federation_partial_answers_total" => {
            "Federated answers sent partial: some peer did not answer."
        }
        "federation_dns_failures_total" => {
            "Failed resolutions of `[api] peers_dns` (the last list is kept)."
        }
        "buffer_queued_bytes_total" => {
            "Estimated bytes of events ever queued in front of a component."
        }
        "buffer_written_events_total" => "Events appended to a disk buffer.",
        "buffer_usage_bytes" => {
            "Bytes of events waiting in a component's buffer now (memory queue or disk)."
        }
        "buffer_capacity_bytes" => "The size limit of a component's buffer.",
        "acknowledgement_latency_seconds" => {
            "Time from a source reading a batch to every sink acknowledging it."
        }
        "buffer_damaged_records_total" => "Damaged disk-buffer records detected and skipped.",
        "kafka_consumer_lag_messages" => {
            "Messages a kafka source's partition is behind the broker's high watermark."
        }
        "kafka_commits_total" => "Offset commits a kafka source issued (ok) or saw fail (failed).",
        "kafka_committed_messages_total" => {
            "Messages whose offsets a kafka source committed (all sinks acknowledged them)."
        }
        "file_source_waiting_files" => {
            "Files a file source's globs found that wait to be opened because max_open_files are open."
        }
        "kafka_revoked_unacknowledged_messages_total" => {
            "Messages a kafka source had read but not seen acknowledged when their partition was revoked; the next owner reads them again, so they may be delivered twice."
        }
        "s3_objects_total" => {
            "Objects an s3 sink stored, by what closed them (max_bytes, timeout, max_open_objects, shutdown)."
        }
        "s3_multipart_uploads_total" => "Objects an s3 sink stored as multipart uploads.",
        "component_retries_total" => "Deliveries a sink attempted again after a retryable failure.",
        "component_rate_limited_events_total" => {
            "Events a tcp source read more slowly because their app was over its rate limit."
        }
        "component_multiline_cut_events_total" => {
            "Events multiline sent at max_lines or max_bytes; the rest of their lines started a new event."
        }
        "component_multiline_evicted_events_total" => {
            "Events multiline sent early because more than max_streams streams had lines pending."
        }
        "component_kubernetes_api_errors_total" => {
            "Failed requests to, and invalid answers from, the Kubernetes API (kubernetes_logs), by reason."
        }
        "component_kubernetes_watch_events_total" => {
            "Pod watch events a kubernetes_logs source applied to its pod cache."
        }
        "alerts_fired_total" => "Alerts a rule started firing (repeats not counted).",
        "alerts_resolved_total" => "Firing alerts a rule resolved.",
        "alert_group_overflow_events_total" => {
            "Events of new groups an alert rule did not count because its group table was full."
        }
        "kafka_assigned_partitions" => "Partitions assigned to a kafka source now.",
        "store_partitions_damaged_total" => {
            "Store partitions that failed to open and were moved to damaged/."
        }
        "store_partitions_dropped_total" => {
            "Store partitions deleted by retention, by reason (age or size)."
        }
        "store_tail_dropped_events_total" => {
            "Live-tail events dropped for clients that fell behind (reported to them in-band)."
        }
        "config_reloads_total" => "Configuration reloads applied.",
        "config_reload_failures_total" => {
            "Configuration reloads refused (invalid pipeline or a change reload cannot apply); the old pipeline kept running."
        }
        "tap_dropped_events_total" => {
            "Live-tap events dropped for clients that fell behind (reported to them in-band)."
        }
        _ => UNDOCUMENTED,
    }
}

/// The help of a metric nobody described; a test keeps every metric in the code off it.
const UNDOCUMENTED: &str = "A sluice metric.";

/// Label values escape backslash, double quote and newline, as the format requires.
fn escape_label(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_gauges_and_cumulative_histograms() {
        telemetry::register_gauge(
            "metrics_test_usage_bytes",
            &[("component_id", "q")],
            Box::new(|| Some(42)),
        );
        telemetry::register_gauge("metrics_test_gone_bytes", &[], Box::new(|| None));
        let h = telemetry::histogram("metrics_test_latency_seconds", &[("component_id", "s")]);
        h.observe(std::time::Duration::from_micros(300));
        h.observe(std::time::Duration::from_millis(2));
        h.observe(std::time::Duration::from_secs(60));
        let text = render_prometheus();
        for expected in [
            "# TYPE sluice_metrics_test_usage_bytes gauge\n",
            "sluice_metrics_test_usage_bytes{component_id=\"q\"} 42\n",
            "# TYPE sluice_metrics_test_latency_seconds histogram\n",
            "sluice_metrics_test_latency_seconds_bucket{component_id=\"s\",le=\"0.0005\"} 1\n",
            "sluice_metrics_test_latency_seconds_bucket{component_id=\"s\",le=\"0.0025\"} 2\n",
            "sluice_metrics_test_latency_seconds_bucket{component_id=\"s\",le=\"10\"} 2\n",
            "sluice_metrics_test_latency_seconds_bucket{component_id=\"s\",le=\"+Inf\"} 3\n",
            "sluice_metrics_test_latency_seconds_count{component_id=\"s\"} 3\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        assert!(
            !text.contains("metrics_test_gone_bytes"),
            "a gone gauge is dropped"
        );
    }

    #[test]
    fn renders_counters_with_escaped_labels() {
        telemetry::counter(
            "metrics_test_events_total",
            &[("component_id", "a\"b\\c\nd")],
        )
        .inc(7);
        let text = render_prometheus();
        assert!(
            text.contains("# TYPE sluice_metrics_test_events_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("sluice_metrics_test_events_total{component_id=\"a\\\"b\\\\c\\nd\"} 7\n"),
            "{text}"
        );
    }

    #[test]
    fn families_of_one_name_share_a_header_and_one_type() {
        use telemetry::{Family, FamilyKind, Reading};
        let family = |kind, component: &str, reading| Family {
            name: "metrics_test_family".into(),
            help: "Two\nlines.".into(),
            kind,
            series: vec![(vec![("component_id".into(), component.into())], reading)],
        };
        let families = [
            family(FamilyKind::Counter, "a", Reading::Number(1.0)),
            family(FamilyKind::Counter, "b", Reading::Number(2.5)),
            family(FamilyKind::Gauge, "c", Reading::Number(3.0)),
        ];
        let mut out = String::new();
        render_families(&mut out, &families);
        assert_eq!(
            out,
            "# HELP sluice_metrics_test_family Two\\nlines.\n\
             # TYPE sluice_metrics_test_family counter\n\
             sluice_metrics_test_family{component_id=\"a\"} 1\n\
             sluice_metrics_test_family{component_id=\"b\"} 2.5\n"
        );
        let mut out = String::new();
        let histogram = Reading::Histogram {
            buckets: vec![(0.5, 1), (1.0, 1)],
            count: 2,
            sum: f64::INFINITY,
        };
        render_families(&mut out, &[family(FamilyKind::Histogram, "h", histogram)]);
        for line in [
            "sluice_metrics_test_family_bucket{component_id=\"h\",le=\"0.5\"} 1\n",
            "sluice_metrics_test_family_bucket{component_id=\"h\",le=\"+Inf\"} 2\n",
            "sluice_metrics_test_family_sum{component_id=\"h\"} +Inf\n",
            "sluice_metrics_test_family_count{component_id=\"h\"} 2\n",
        ] {
            assert!(out.contains(line), "missing {line:?} in\n{out}");
        }
    }

    /// Every metric name the code registers (the first string after a `counter(`,
    /// `gauge(`, `histogram(` or `register_gauge(` call) has a help line of its own.
    #[test]
    fn every_registered_metric_has_its_own_help() {
        fn scan(dir: &std::path::Path, names: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    scan(&path, names);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for call in ["counter(", "gauge(", "histogram(", "register_gauge("] {
                    for (at, _) in text.match_indices(call) {
                        let rest = &text[at + call.len()..];
                        let rest = rest.trim_start();
                        let Some(quoted) = rest.strip_prefix('"') else {
                            continue;
                        };
                        let name: String = quoted.chars().take_while(|c| *c != '"').collect();
                        if name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                            names.push(name);
                        }
                    }
                }
            }
        }
        let mut names = Vec::new();
        scan(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut names,
        );
        names.retain(|n| !n.starts_with("metrics_test_"));
        names.sort();
        names.dedup();
        assert!(names.len() > 20, "the scan found too little: {names:?}");
        let undocumented: Vec<_> = names.iter().filter(|n| help(n) == UNDOCUMENTED).collect();
        assert!(
            undocumented.is_empty(),
            "metrics without help: {undocumented:?}"
        );
    }
}
