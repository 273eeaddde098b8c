//! Configuration: every shipped pipeline validates; broken ones fail naming file, component
//! and field; `sluice validate` exits accordingly.

use sluice::pipeline::Pipeline;

use crate::util::{repo_root, sluice_bin};

fn errors_of(toml: &str) -> Vec<String> {
    match Pipeline::from_str("broken.toml", toml, |name| match name {
        "SET" => Some("5140".into()),
        _ => None,
    }) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    }
}

const GOOD_TAIL: &str = r#"
[sinks.out]
type = "blackhole"
inputs = ["in"]
"#;

#[test]
fn every_shipped_pipeline_validates() {
    let mut checked = 0;
    for dir in ["pipelines", "benches/scenarios"] {
        for entry in std::fs::read_dir(repo_root().join(dir)).expect("dir exists") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                if let Err(errors) = Pipeline::load(&path) {
                    panic!(
                        "{} is invalid: {}",
                        path.display(),
                        errors
                            .iter()
                            .map(|e| e.to_string())
                            .collect::<Vec<_>>()
                            .join("; ")
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 8,
        "expected the shipped pipelines, found {checked}"
    );
}

/// Each broken config must fail, and the error must name (file, component, field).
#[test]
fn broken_configs_name_file_component_and_field() {
    let cases: &[(&str, String, &[&str])] = &[
        (
            "typo in a field name",
            format!("[sources.in]\ntype = \"tcp\"\nadress = \"127.0.0.1:1\"\n{GOOD_TAIL}"),
            &["broken.toml", "source `in`", "field `adress`"],
        ),
        (
            "typo in a nested field name",
            format!("[sources.in]\ntype = \"tcp\"\naddress = \"127.0.0.1:1\"\nframing = {{ method = \"newline\", max_frame_byte = 5 }}\n{GOOD_TAIL}"),
            &["broken.toml", "source `in`", "field `framing.max_frame_byte`:"],
        ),
        (
            "unknown component type",
            format!("[sources.in]\ntype = \"tcpp\"\n{GOOD_TAIL}"),
            &["broken.toml", "source `in`", "field `type`", "tcpp"],
        ),
        (
            "dangling input",
            "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"nope\"]\n"
                .to_string(),
            &["broken.toml", "sink `out`", "field `inputs`", "nope"],
        ),
        (
            "unknown time zone",
            "[sources.in]\ntype = \"stdin\"\n[transforms.p]\ntype = \"parse\"\ninputs = [\"in\"]\ntimezone = \"Europe/Atlantis\"\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"p\"]\n"
                .to_string(),
            &["broken.toml", "transform `p`", "field `timezone`", "unknown time zone \"Europe/Atlantis\""],
        ),
        (
            "unknown named output",
            "[sources.in]\ntype = \"stdin\"\n[transforms.p]\ntype = \"parse\"\ninputs = [\"in\"]\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"p.nope\"]\n"
                .to_string(),
            &["broken.toml", "sink `out`", "field `inputs`", "p.nope"],
        ),
        (
            "cycle",
            "[sources.in]\ntype = \"stdin\"\n[transforms.a]\ntype = \"filter\"\ninputs = [\"in\", \"b\"]\ncondition = \"x exists\"\n[transforms.b]\ntype = \"filter\"\ninputs = [\"a\"]\ncondition = \"x exists\"\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"b\"]\n"
                .to_string(),
            &["broken.toml", "transform `a`", "field `inputs`", "cycle"],
        ),
        (
            "bad type",
            format!("[sources.in]\ntype = \"tcp\"\naddress = \"127.0.0.1:1\"\nmax_connections = \"many\"\n{GOOD_TAIL}"),
            &["broken.toml", "source `in`", "field `max_connections`"],
        ),
        (
            "a content type the http source cannot read",
            format!("[sources.in]\ntype = \"http\"\naddress = \"127.0.0.1:1\"\ncontent_types = [\"application/x-ndjson\", \"multipart/form-data\"]\n{GOOD_TAIL}"),
            &["broken.toml", "source `in`", "field `content_types[1]`", "multipart/form-data"],
        ),
        (
            "an origin that is not one",
            format!("[sources.in]\ntype = \"http\"\naddress = \"127.0.0.1:1\"\nallowed_origins = [\"app.example.com\"]\n{GOOD_TAIL}"),
            &["broken.toml", "source `in`", "field `allowed_origins[0]`"],
        ),
        (
            "an api beyond loopback without auth",
            format!("[api]\naddress = \"0.0.0.0:8686\"\n[sources.in]\ntype = \"stdin\"\n{GOOD_TAIL}"),
            &["broken.toml", "field `api.auth`", "insecure_no_auth = true"],
        ),
        (
            "bad nested type",
            format!("[sources.in]\ntype = \"tcp\"\naddress = \"127.0.0.1:1\"\nframing = {{ method = \"newline\", max_frame_bytes = \"big\" }}\n{GOOD_TAIL}"),
            &["broken.toml", "source `in`", "max_frame_bytes"],
        ),
        (
            "bad condition",
            "[sources.in]\ntype = \"stdin\"\n[transforms.f]\ntype = \"filter\"\ninputs = [\"in\"]\ncondition = \"level == \"\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"f\"]\n"
                .to_string(),
            &["broken.toml", "transform `f`", "field `condition`"],
        ),
        (
            "bad address",
            format!("[sources.in]\ntype = \"tcp\"\naddress = \"localhost\"\n{GOOD_TAIL}"),
            &["broken.toml", "source `in`", "field `address`"],
        ),
        (
            "missing environment variable",
            format!("[sources.in]\ntype = \"tcp\"\naddress = \"127.0.0.1:${{UNSET_VAR}}\"\n{GOOD_TAIL}"),
            &["broken.toml", "UNSET_VAR", "line 3"],
        ),
        (
            "toml syntax",
            "[sources.in\ntype = \"stdin\"\n".to_string(),
            &["broken.toml", "invalid toml", "line 1"],
        ),
        (
            "sink used as input",
            "[sources.in]\ntype = \"stdin\"\n[sinks.a]\ntype = \"blackhole\"\ninputs = [\"in\"]\n[sinks.b]\ntype = \"blackhole\"\ninputs = [\"a\"]\n"
                .to_string(),
            &["broken.toml", "sink `b`", "field `inputs`", "is a sink"],
        ),
        (
            "multiline without its rules",
            "[sources.in]\ntype = \"stdin\"\n[transforms.ml]\ntype = \"multiline\"\ninputs = [\"in\"]\nmode = \"halt_with\"\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"ml\"]\n"
                .to_string(),
            &["broken.toml", "transform `ml`", "field `start_pattern`", "preset"],
        ),
        (
            "a file source's multiline option with a bad regex",
            "[sources.in]\ntype = \"file\"\ninclude = [\"/tmp/x\"]\ncontainer = \"cri\"\nmultiline = { start_pattern = \"(\", condition_pattern = \"^\\\\s\", mode = \"continue_through\" }\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\n"
                .to_string(),
            &["broken.toml", "source `in`", "field `multiline.start_pattern`", "invalid regex"],
        ),
        #[cfg(feature = "kafka")]
        (
            "kafka key_field written as a template (its old meaning)",
            "[sources.in]\ntype = \"stdin\"\n[sinks.k]\ntype = \"kafka\"\ninputs = [\"in\"]\nbootstrap_servers = \"127.0.0.1:9092\"\ntopic = \"logs\"\nkey_field = \"{{ app }}\"\n"
                .to_string(),
            &[
                "broken.toml",
                "sink `k`",
                "field `key_field`",
                "use key = \"{{ app }}\" for a template, or key_field = \"app\" for a field",
            ],
        ),
        (
            "unknown enrichment table type",
            format!("[enrichment_tables.t]\ntype = \"xml\"\nfile = \"x\"\n[sources.in]\ntype = \"stdin\"\n{GOOD_TAIL}"),
            &["broken.toml", "enrichment table `t`", "field `type`", "csv, geoip"],
        ),
        (
            "an enrichment table with inputs",
            format!("[enrichment_tables.t]\ntype = \"csv\"\nfile = \"x\"\nkey = \"k\"\ninputs = [\"in\"]\n[sources.in]\ntype = \"stdin\"\n{GOOD_TAIL}"),
            &["broken.toml", "enrichment table `t`", "field `inputs`", "enrichment tables take no inputs"],
        ),
        (
            "a csv table without its key",
            format!("[enrichment_tables.t]\ntype = \"csv\"\nfile = \"x\"\n[sources.in]\ntype = \"stdin\"\n{GOOD_TAIL}"),
            &["broken.toml", "enrichment table `t`", "field `key`"],
        ),
        (
            "an enrich lookup in a table that is not there",
            "[enrichment_tables.owners]\ntype = \"csv\"\nfile = \"x\"\nkey = \"k\"\n[sources.in]\ntype = \"stdin\"\n[transforms.e]\ntype = \"enrich\"\ninputs = [\"in\"]\nlookups = [{ table = \"owner\", key = \"{{ app }}\", into = \"o\" }]\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"e\"]\n".to_string(),
            &["broken.toml", "transform `e`", "field `lookups[0].table`", "expected one of: owners"],
        ),
        (
            "a log_to_metric metric without its field",
            "[sources.in]\ntype = \"stdin\"\n[transforms.m]\ntype = \"log_to_metric\"\ninputs = [\"in\"]\nmetrics = [{ type = \"histogram\", name = \"d\" }]\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"m\"]\n".to_string(),
            &["broken.toml", "transform `m`", "field `metrics[0].field`"],
        ),
    ];
    for (what, toml, expected) in cases {
        let errors = errors_of(toml);
        assert!(!errors.is_empty(), "{what}: expected an error");
        let text = errors.join("\n");
        for needle in *expected {
            assert!(
                text.contains(needle),
                "{what}: error {text:?} does not mention {needle:?}"
            );
        }
    }
}

/// The log-store sinks flatten their shared options into their own, which serde's
/// `deny_unknown_fields` cannot check: an unknown or mistyped option is still refused,
/// naming it, and `request.concurrency` is checked (Loki's pushes stay one at a time).
#[test]
fn log_store_sinks_name_unknown_and_bad_fields() {
    let sink = |kind: &str, extra: &str| {
        let table = if kind == "clickhouse" {
            "table = \"logs\"\n"
        } else {
            ""
        };
        format!(
            "[sources.in]\ntype = \"tcp\"\naddress = \"127.0.0.1:1\"\n[sinks.out]\ntype = \"{kind}\"\ninputs = [\"in\"]\nendpoint = \"http://127.0.0.1:1\"\n{table}{extra}\n"
        )
    };
    for kind in ["clickhouse", "elasticsearch", "loki"] {
        assert_eq!(errors_of(&sink(kind, "")), Vec::<String>::new(), "{kind}");
        assert_eq!(
            errors_of(&sink(kind, "request = { concurrency = 1 }")),
            Vec::<String>::new(),
            "{kind}"
        );
        for (extra, needles) in [
            (
                "batch_max_event = 10",
                &["field `batch_max_event`", "unknown field `batch_max_event`"][..],
            ),
            (
                "batch_max_events = \"many\"",
                &["batch_max_events", "invalid type"][..],
            ),
            (
                "request = { concurency = 2 }",
                &["request.concurency", "unknown field `concurency`"][..],
            ),
            (
                "request = { concurrency = 0 }",
                &["field `request.concurrency`", "must be between 1 and"][..],
            ),
        ] {
            let text = errors_of(&sink(kind, extra)).join("\n");
            for needle in needles.iter().chain(&["broken.toml", "sink `out`"]) {
                assert!(
                    text.contains(needle),
                    "{kind} with {extra}: {text:?} lacks {needle:?}"
                );
            }
        }
    }
    let loki = errors_of(&sink("loki", "request = { concurrency = 2 }")).join("\n");
    assert!(
        loki.contains("field `request.concurrency`") && loki.contains("one at a time"),
        "{loki}"
    );
}

/// The http and opentelemetry sinks refuse an unknown option by name, and an error inside an
/// option names it.
#[test]
fn post_sinks_name_unknown_and_bad_fields() {
    for kind in ["http", "opentelemetry"] {
        let sink = |extra: &str| {
            format!(
                "[sources.in]\ntype = \"tcp\"\naddress = \"127.0.0.1:1\"\n[sinks.out]\ntype = \"{kind}\"\ninputs = [\"in\"]\nuri = \"http://127.0.0.1:1/v1/logs\"\n{extra}\n"
            )
        };
        assert_eq!(errors_of(&sink("")), Vec::<String>::new(), "{kind}");
        for (extra, needles) in [
            (
                "batch_max_event = 10",
                &["field `batch_max_event`", "unknown field `batch_max_event`"][..],
            ),
            (
                "timeout_secs = \"long\"",
                &["field `timeout_secs`", "invalid type"][..],
            ),
            (
                "retry = { max_backof_secs = 2 }",
                &["retry.max_backof_secs", "unknown field `max_backof_secs`"][..],
            ),
            (
                "batch_max_bytes = 0",
                &["field `batch_max_bytes`", "must be at least 1"][..],
            ),
        ] {
            let text = errors_of(&sink(extra)).join("\n");
            for needle in needles.iter().chain(&["broken.toml", "sink `out`"]) {
                assert!(
                    text.contains(needle),
                    "{kind} with {extra}: {text:?} lacks {needle:?}"
                );
            }
        }
    }
}

#[test]
fn environment_defaults_and_values_are_substituted() {
    let toml = "[sources.in]\ntype = \"tcp\"\naddress = \"127.0.0.1:${SET}\"\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\n[sinks.f]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"${DIR:-/tmp/x}/out.log\"\n";
    assert!(errors_of(toml).is_empty(), "{:?}", errors_of(toml));
}

#[test]
fn validate_command_exit_codes() {
    let dir = crate::util::tempdir();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[sources.in]\ntype = \"stdin\"\nbogus = 1\n").unwrap();
    let good = repo_root().join("pipelines/default.toml");

    let ok = std::process::Command::new(sluice_bin())
        .arg("validate")
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let failed = std::process::Command::new(sluice_bin())
        .arg("validate")
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("bad.toml")
            && stderr.contains("source `in`")
            && stderr.contains("field `bogus`"),
        "{stderr}"
    );
}

/// Every shipped pipeline has an API listener, and its listen addresses come from one set of
/// variables (full host:port) that mean the same in each: SLUICE_TCP, SLUICE_UDP,
/// SLUICE_HTTP, SLUICE_API.
#[test]
fn shipped_pipelines_share_one_set_of_address_variables() {
    let env = |name: &str| match name {
        "SLUICE_TCP" => Some("127.0.0.2:1001".to_string()),
        "SLUICE_UDP" => Some("127.0.0.2:1002".to_string()),
        "SLUICE_HTTP" => Some("127.0.0.2:1003".to_string()),
        "SLUICE_API" => Some("127.0.0.2:1004".to_string()),
        "SLUICE_API_TOKENS_FILE" => Some("/run/secrets/sluice/tokens".to_string()),
        _ => None,
    };
    let mut checked = 0;
    for entry in std::fs::read_dir(repo_root().join("pipelines")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let name = path.display().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let pipeline = Pipeline::from_str(&name, &text, env)
            .unwrap_or_else(|errors| panic!("{name}: {errors:?}"));
        let api = pipeline
            .api
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no [api]"));
        assert_eq!(api.address, "127.0.0.2:1004", "{name}: [api]");
        let tokens = api.auth.as_ref().map(|a| a.tokens_file.as_str());
        assert_eq!(
            tokens,
            Some("/run/secrets/sluice/tokens"),
            "{name}: [api] auth"
        );
        for source in &pipeline.sources {
            let (address, variable) = match &source.source {
                sluice::pipeline::Source::Tcp(c) => (&c.address, "127.0.0.2:1001"),
                sluice::pipeline::Source::Udp(c) => (&c.address, "127.0.0.2:1002"),
                sluice::pipeline::Source::Http(c) => (&c.address, "127.0.0.2:1003"),
                _ => continue,
            };
            assert_eq!(address, variable, "{name}: source `{}`", source.id);
        }
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} pipelines found");
    let default =
        Pipeline::from_str("default", sluice::config::DEFAULT_PIPELINE, |_| None).unwrap();
    let rules: Vec<_> = default.alerts.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(rules, ["error_burst", "app_silent"]);
}

/// Read as a field, the unquoted word in `level >= error` names a field no event has, so
/// every error event would go to `_unmatched` without a word. `sluice validate` refuses it,
/// names file, component and field, and suggests the quotes.
#[test]
fn validate_refuses_an_unquoted_comparison_with_a_hint() {
    let dir = crate::util::tempdir();
    let file = dir.path().join("routes.toml");
    std::fs::write(
        &file,
        r#"
[sources.in]
type = "stdin"

[transforms.by_level]
type = "route"
inputs = ["in"]
routes = { errors = 'level >= error' }

[sinks.out]
type = "blackhole"
inputs = ["by_level.errors", "by_level._unmatched"]
"#,
    )
    .unwrap();
    let out = std::process::Command::new(sluice_bin())
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for needle in [
        "routes.toml",
        "transform `by_level`",
        "field `routes.errors`",
        "column 10",
        r#"did you mean "error"?"#,
        "`.error`",
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }
}

/// Graph checks are iterative: a chain of 100,000 transforms validates, and the same chain
/// closed into a cycle is an error, neither of them a stack overflow.
#[test]
fn a_hundred_thousand_component_chain_validates() {
    let chain = |first_input: &str| {
        let mut text = String::from("[sources.in]\ntype = \"stdin\"\n");
        let mut previous = first_input.to_string();
        for i in 0..100_000 {
            text.push_str(&format!(
                "[transforms.t{i}]\ntype = \"filter\"\ninputs = [\"{previous}\"]\ncondition = \"x exists\"\n"
            ));
            previous = format!("t{i}");
        }
        text.push_str(&format!(
            "[sinks.out]\ntype = \"blackhole\"\ninputs = [\"{previous}\"]\n"
        ));
        text
    };
    let pipeline = Pipeline::from_str("chain.toml", &chain("in"), |_| None).expect("validates");
    assert_eq!(pipeline.transforms.len(), 100_000);
    let errors = errors_of(&chain("t99999"));
    assert!(errors.iter().any(|e| e.contains("cycle")), "{errors:?}");
}

/// An environment variable cannot add keys to the pipeline (`${VAR}` values land as data).
#[test]
fn an_environment_value_cannot_add_a_key() {
    let text = "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\nbuffer = { max_bytes = ${MB} }\n";
    let errors = match Pipeline::from_str("env.toml", text, |name| {
        (name == "MB").then(|| "1048576, when_full = \"drop_newest\"".to_string())
    }) {
        Ok(_) => panic!("a value adding when_full was accepted"),
        Err(errors) => errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
    };
    assert!(
        errors
            .iter()
            .any(|e| e.contains("env.toml") && e.contains("`MB`")),
        "{errors:?}"
    );
}
