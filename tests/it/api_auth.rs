//! Who may read what (issue 15): the API's tokens, roles and app scopes against every
//! route, the Host and CORS checks, the refusal to serve a non-loopback API without auth,
//! `sluice query`/`tail`/`alerts` with `--token`. The http source's refusals of what a web
//! page could post are in `browser_ingest.rs`.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::store::json;
use crate::util::{sluice_bin, tempdir, Router, TIMEOUT};

const READ: &str = "read-token-aaaaaaaaaaaa";
const SCOPED: &str = "scoped-token-bbbbbbbbbb";
const METRICS: &str = "metrics-token-cccccccccc";
const ADMIN: &str = "admin-token-dddddddddddd";
const UNKNOWN: &str = "nobody-issued-this-token";
/// Listed by its SHA-256 only.
const HASHED: &str = "hashed-read-token-eeeeee";

const TOKENS: &str = "\
# token                   roles    scope
read-token-aaaaaaaaaaaa   read
scoped-token-bbbbbbbbbb   read     apps=web,worker
metrics-token-cccccccccc  metrics
admin-token-dddddddddddd  admin
sha256:HASHED             read
";

fn tokens_file() -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, HASHED.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    TOKENS.replace("HASHED", &hex)
}

/// One HTTP/1.0 answer: status, head (lowercased header names as sent) and body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    head: String,
    body: String,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    }

    pub(crate) fn error(&self) -> String {
        json(&self.body)["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no JSON error in {self:?}"))
            .to_string()
    }
}

/// One request over a fresh connection; `Host: localhost` unless `headers` sets one. With
/// `head_only`, returns once the head is in (a tail's stream never ends by itself).
pub(crate) fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    head_only: bool,
) -> Answer {
    let mut stream = std::net::TcpStream::connect(addr).expect("connects");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let mut request = format!("{method} {path} HTTP/1.0\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str("Host: localhost\r\n");
    }
    for (key, value) in headers {
        request.push_str(&format!("{key}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).expect("writes");
    let mut response = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = stream.read(&mut buf).unwrap_or(0);
        response.extend_from_slice(&buf[..n]);
        // A stream's head is enough; a refusal's JSON body is read to the end.
        let streaming = head_only
            && response.windows(4).any(|w| w == b"\r\n\r\n")
            && response.get(8..13) == Some(b" 200 ");
        if n == 0 || streaming {
            break;
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Answer {
        status: head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Answer {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("Authorization", b.as_str()))
        .collect();
    send(
        addr,
        "GET",
        path,
        &headers,
        "",
        path.starts_with("/v1/tail"),
    )
}

fn post_ndjson(addr: SocketAddr, body: &str) -> u16 {
    send(
        addr,
        "POST",
        "/v1/logs",
        &[("Content-Type", "application/x-ndjson")],
        body,
        false,
    )
    .status
}

/// A router with a store and an alert rule, its API behind the tokens above.
async fn guarded_router(dir: &std::path::Path, api_extra: &str) -> Router {
    let tokens = dir.join("api-tokens");
    std::fs::write(&tokens, tokens_file()).expect("tokens file");
    Router::start(&format!(
        r#"
[api]
address = "127.0.0.1:0"
auth = {{ tokens_file = "{}" }}
{api_extra}

[sources.aa_in]
type = "http"
address = "127.0.0.1:0"
decoding = "json"

[sinks.aa_store]
type = "store"
inputs = ["aa_in"]
path = "{}"
commit_interval_ms = 20

[alerts.aa_errors]
inputs = ["aa_in"]
condition = 'level == "error"'
group_by = ["app"]
kind = "threshold"
window_secs = 60
threshold = 1
state_path = "{}"
"#,
        tokens.display(),
        dir.join("store").display(),
        dir.join("aa_errors.json").display()
    ))
    .await
}

/// Three apps' events: web and worker are in the scoped token's apps, db is not.
fn three_apps(tag: &str) -> String {
    let mut body = String::new();
    for app in ["web", "worker", "db"] {
        for i in 0..3 {
            body.push_str(&format!(
                "{{\"message\":\"{tag} {app} {i}\",\"level\":\"error\",\"app\":\"{app}\"}}\n"
            ));
        }
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_against_every_route() {
    let dir = tempdir();
    let router = guarded_router(dir.path(), "").await;
    let (ingest, api) = (router.addr("aa_in"), router.addr("api"));
    tokio::task::spawn_blocking(move || {
        assert_eq!(post_ndjson(ingest, &three_apps("roles")), 200);
        let routes = [
            "/health",
            "/",
            "/assets/app.js",
            "/metrics",
            "/v1/query",
            "/v1/histogram",
            "/v1/top?field=app",
            "/v1/tail",
            "/v1/alerts",
        ];
        // Per token, the status each route answers, in the order of `routes`.
        let table: [(Option<&str>, [u16; 9]); 7] = [
            (None, [200, 200, 200, 401, 401, 401, 401, 401, 401]),
            (Some(UNKNOWN), [200, 200, 200, 401, 401, 401, 401, 401, 401]),
            (Some(READ), [200, 200, 200, 403, 200, 200, 200, 200, 200]),
            (Some(HASHED), [200, 200, 200, 403, 200, 200, 200, 200, 200]),
            (Some(SCOPED), [200, 200, 200, 403, 200, 200, 200, 200, 200]),
            (Some(METRICS), [200, 200, 200, 200, 403, 403, 403, 403, 403]),
            (Some(ADMIN), [200, 200, 200, 200, 200, 200, 200, 200, 200]),
        ];
        for (token, statuses) in table {
            for (route, expected) in routes.iter().zip(statuses) {
                let answer = get(api, route, token);
                assert_eq!(answer.status, expected, "{token:?} GET {route}: {answer:?}");
                match expected {
                    401 => {
                        let why = answer.error();
                        let expected_why = if token.is_some() {
                            "unknown token"
                        } else {
                            "Authorization: Bearer"
                        };
                        assert!(why.contains(expected_why), "{route}: {why}");
                        assert_eq!(
                            answer.header("www-authenticate").as_deref(),
                            Some("Bearer realm=\"sluice\"")
                        );
                    }
                    403 => {
                        let why = answer.error();
                        assert!(why.contains("role") && why.contains("needs"), "{why}");
                    }
                    _ => {}
                }
            }
        }
        // A token in the URL is not a bearer token: URLs end up in logs and history.
        assert_eq!(
            get(api, &format!("/v1/query?token={READ}"), None).status,
            401
        );
    })
    .await
    .expect("requests");
    assert!(
        sluice::telemetry::counter_value("api_refused_requests_total", &[("reason", "token")]) > 0
    );
    assert!(
        sluice::telemetry::counter_value("api_refused_requests_total", &[("reason", "role")]) > 0
    );
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_token_never_sees_another_apps_events() {
    let dir = tempdir();
    let router = guarded_router(dir.path(), "").await;
    let (ingest, api) = (router.addr("aa_in"), router.addr("api"));
    tokio::task::spawn_blocking(move || {
        assert_eq!(post_ndjson(ingest, &three_apps("stored")), 200);
        let apps_of = |answer: &Answer| -> Vec<String> {
            let mut apps: Vec<String> = json(&answer.body)["events"]
                .as_array()
                .expect("events")
                .iter()
                .map(|e| e["app"].as_str().unwrap_or("").to_string())
                .collect();
            apps.sort();
            apps.dedup();
            apps
        };
        // Whatever the query asks, the server's filter holds.
        let queries = [
            ("/v1/query", vec!["web", "worker"]),
            ("/v1/query?q=app:db", vec![]),
            ("/v1/query?q=stored", vec!["web", "worker"]),
            ("/v1/query?q=app:db%20OR%20app:web", vec!["web"]),
            ("/v1/query?q=NOT%20app:web", vec!["worker"]),
            ("/v1/query?q=app:*", vec!["web", "worker"]),
        ];
        for (path, expected) in queries {
            let answer = get(api, path, Some(SCOPED));
            assert_eq!(answer.status, 200, "{answer:?}");
            assert_eq!(apps_of(&answer), expected, "{path}");
        }
        // The unscoped token sees all three apps.
        assert_eq!(
            apps_of(&get(api, "/v1/query", Some(READ))),
            ["db", "web", "worker"]
        );

        let histogram = json(&get(api, "/v1/histogram?split=app", Some(SCOPED)).body);
        let series: Vec<&String> = histogram["series"].as_object().expect("series").keys().collect();
        assert_eq!(series, ["web", "worker"], "{histogram}");
        let total: u64 = histogram["series"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|s| s.as_array().unwrap().iter().filter_map(|n| n.as_u64()))
            .sum();
        assert_eq!(total, 6);

        let top = json(&get(api, "/v1/top?field=app", Some(SCOPED)).body);
        let mut values: Vec<&str> = top["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|v| v["value"].as_str().unwrap())
            .collect();
        values.sort();
        assert_eq!(values, ["web", "worker"], "{top}");

        // The rule fires for every app; the scoped token sees its apps' alerts only.
        let deadline = Instant::now() + TIMEOUT;
        let alert_apps = |token: &str| -> Vec<String> {
            let mut apps: Vec<String> = json(&get(api, "/v1/alerts", Some(token)).body)["alerts"]
                .as_array()
                .expect("alerts")
                .iter()
                .map(|a| a["group"]["app"].as_str().unwrap_or("").to_string())
                .collect();
            apps.sort();
            apps
        };
        while alert_apps(ADMIN).len() < 3 {
            assert!(Instant::now() < deadline, "the rule never fired for all apps");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(alert_apps(SCOPED), ["web", "worker"]);

        // Tail: each batch holds a db event before a web one, so once the web event is
        // seen, the db event (earlier in the same batch) would have been too.
        let mut stream = std::net::TcpStream::connect(api).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        write!(
            stream,
            "GET /v1/tail HTTP/1.0\r\nHost: localhost\r\nAuthorization: Bearer {SCOPED}\r\n\r\n"
        )
        .expect("request");
        let mut seen = String::new();
        let mut buf = [0u8; 8192];
        let deadline = Instant::now() + TIMEOUT;
        while !seen.contains("live web") {
            assert!(Instant::now() < deadline, "the web event never reached the tail: {seen}");
            let batch = "{\"message\":\"live db\",\"app\":\"db\"}\n{\"message\":\"live web\",\"app\":\"web\"}\n";
            assert_eq!(post_ndjson(ingest, batch), 200);
            if let Ok(n) = stream.read(&mut buf) {
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
        assert!(seen.starts_with("HTTP/1.0 200") || seen.starts_with("HTTP/1.1 200"), "{seen}");
        assert!(!seen.contains("live db"), "a scoped tail saw another app: {seen}");
    })
    .await
    .expect("requests");
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_header_and_cors() {
    let dir = tempdir();
    // Without tokens, the default names are the only ones answered.
    let router = Router::start(&format!(
        "[api]\naddress = \"127.0.0.1:0\"\n\n[sources.aa_open_in]\ntype = \"http\"\naddress = \"127.0.0.1:0\"\n\n[sinks.aa_open_store]\ntype = \"store\"\ninputs = [\"aa_open_in\"]\npath = \"{}\"\n",
        dir.path().join("store").display()
    ))
    .await;
    let api = router.addr("api");
    let guarded_dir = tempdir();
    let guarded = guarded_router(guarded_dir.path(), "").await;
    let guarded_api = router_api(&guarded);
    let other_dir = tempdir();
    let named = guarded_router(
        other_dir.path(),
        "allowed_hosts = [\"Logs.Example.com\"]\ncors_origins = [\"https://logs.example.com\"]",
    )
    .await;
    let named_api = router_api(&named);
    tokio::task::spawn_blocking(move || {
        let auth = format!("Bearer {READ}");
        let with = |addr, host: &str, origin: Option<&str>| {
            let mut headers = vec![("Host", host), ("Authorization", auth.as_str())];
            if let Some(o) = origin {
                headers.push(("Origin", o));
            }
            send(addr, "GET", "/v1/query", &headers, "", false)
        };
        let port = api.port();
        // Default: loopback names and the bound IP, any port.
        for host in [
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            "[::1]".to_string(),
        ] {
            assert_eq!(with(api, &host, None).status, 200, "{host}");
        }
        // A rebinding page's requests carry its own name.
        let rebound = with(api, &format!("evil.example:{port}"), None);
        assert_eq!(rebound.status, 421, "{rebound:?}");
        assert!(rebound.error().contains("allowed_hosts"));
        // Probes reach /health by any name.
        let health = send(
            api,
            "GET",
            "/health",
            &[("Host", "10.9.8.7:8686")],
            "",
            false,
        );
        assert_eq!(health.status, 200);
        // With tokens, any name (a rebinding page has no token to send)...
        assert_eq!(
            with(guarded_api, "sluice.logging.svc:8686", None).status,
            200
        );
        assert_eq!(
            send(
                guarded_api,
                "GET",
                "/v1/query",
                &[("Host", "evil.example")],
                "",
                false
            )
            .status,
            401
        );
        // ...unless a configured list says which; it replaces the default.
        assert_eq!(with(named_api, "logs.example.com", None).status, 200);
        assert_eq!(with(named_api, "localhost", None).status, 421);

        // No CORS header unless cors_origins lists the origin.
        let cross = with(api, "localhost", Some("https://logs.example.com"));
        assert_eq!(cross.status, 200);
        assert_eq!(cross.header("access-control-allow-origin"), None);
        let preflight = |addr, host: &str, origin: &str| {
            send(
                addr,
                "OPTIONS",
                "/v1/query",
                &[
                    ("Host", host),
                    ("Origin", origin),
                    ("Access-Control-Request-Method", "GET"),
                    ("Access-Control-Request-Headers", "authorization"),
                ],
                "",
                false,
            )
        };
        let refused = preflight(api, "localhost", "https://logs.example.com");
        assert_eq!(refused.status, 403, "{refused:?}");
        assert_eq!(refused.header("access-control-allow-origin"), None);

        let listed = with(
            named_api,
            "logs.example.com",
            Some("https://logs.example.com"),
        );
        assert_eq!(
            listed.header("access-control-allow-origin").as_deref(),
            Some("https://logs.example.com")
        );
        let allowed = preflight(named_api, "logs.example.com", "https://logs.example.com");
        assert_eq!(allowed.status, 204, "{allowed:?}");
        assert_eq!(
            allowed.header("access-control-allow-headers").as_deref(),
            Some("authorization")
        );
        let other = with(named_api, "logs.example.com", Some("https://evil.example"));
        assert_eq!(other.header("access-control-allow-origin"), None);
    })
    .await
    .expect("requests");
    router.stop().await;
    guarded.stop().await;
    named.stop().await;
}

fn router_api(router: &Router) -> SocketAddr {
    router.addr("api")
}

/// `sluice validate` and `sluice up` refuse an API on every address without auth, naming
/// the file, `api` and the field; an explicit `insecure_no_auth = true` is accepted.
#[test]
fn a_non_loopback_api_without_auth_does_not_start() {
    let dir = tempdir();
    let write = |name: &str, api: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "[api]\n{api}\n\n[sources.in]\ntype = \"stdin\"\n\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\n"
            ),
        )
        .expect("config");
        path
    };
    let open = write("open.toml", "address = \"0.0.0.0:0\"");
    let empty_file = write(
        "empty.toml",
        "address = \"0.0.0.0:0\"\nauth = { tokens_file = \"${AA_UNSET_TOKENS_FILE:-}\" }",
    );
    let insecure = write(
        "insecure.toml",
        "address = \"0.0.0.0:0\"\ninsecure_no_auth = true",
    );
    let loopback = write(
        "loopback.toml",
        "address = \"127.0.0.1:0\"\nauth = { tokens_file = \"${AA_UNSET_TOKENS_FILE:-}\" }",
    );
    for (file, command) in [
        (&open, "validate"),
        (&empty_file, "validate"),
        (&open, "up"),
    ] {
        let mut cmd = std::process::Command::new(sluice_bin());
        cmd.arg(command);
        if command == "up" {
            cmd.arg("--config");
        }
        let output = cmd
            .arg(file)
            .env_remove("AA_UNSET_TOKENS_FILE")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned()
            + &String::from_utf8_lossy(&output.stdout);
        assert!(
            !output.status.success(),
            "{command} {}: {stderr}",
            file.display()
        );
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for needle in [
            name.as_str(),
            "api.auth",
            "0.0.0.0",
            "insecure_no_auth = true",
        ] {
            assert!(
                stderr.contains(needle),
                "{command}: `{needle}` missing from: {stderr}"
            );
        }
    }
    let output = std::process::Command::new(sluice_bin())
        .arg("validate")
        .args([&insecure, &loopback])
        .env_remove("AA_UNSET_TOKENS_FILE")
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A malformed tokens file stops the start, naming the file and line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_tokens_file_stops_the_start() {
    let dir = tempdir();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "short read\n").expect("tokens");
    let toml = format!(
        "[api]\naddress = \"127.0.0.1:0\"\nauth = {{ tokens_file = \"{}\" }}\n\n[sources.aa_bad_in]\ntype = \"stdin\"\n\n[sinks.aa_bad_out]\ntype = \"blackhole\"\ninputs = [\"aa_bad_in\"]\n",
        tokens.display()
    );
    let pipeline = sluice::pipeline::Pipeline::from_str("t.toml", &toml, |_| None)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let error = sluice::topology::start(pipeline, tokio_util::sync::CancellationToken::new())
        .await
        .err()
        .expect("refused");
    let text = error.to_string();
    assert!(
        text.contains("line 1") && text.contains(&tokens.display().to_string()),
        "{text}"
    );
}

/// `sluice query`, `tail` and `alerts` send `--token` (or `SLUICE_TOKEN`) as a bearer token,
/// and say how to give one when the router answers 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_clients_send_their_token() {
    let dir = tempdir();
    let router = guarded_router(dir.path(), "").await;
    let (ingest, api) = (router.addr("aa_in"), router.addr("api"));
    tokio::task::spawn_blocking(move || {
        assert_eq!(post_ndjson(ingest, &three_apps("cli")), 200);
        let url = format!("http://{api}");
        let run = |args: &[&str], env_token: Option<&str>| {
            let mut cmd = std::process::Command::new(sluice_bin());
            cmd.args(args)
                .args(["--url", &url])
                .env_remove("SLUICE_TOKEN");
            if let Some(t) = env_token {
                cmd.env("SLUICE_TOKEN", t);
            }
            let output = cmd
                .stdin(std::process::Stdio::null())
                .output()
                .expect("runs");
            (
                output.status.success(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        };
        for command in [
            vec!["query", "--json"],
            vec!["tail", "--no-retry"],
            vec!["alerts"],
        ] {
            let (ok, _, stderr) = run(&command, None);
            assert!(!ok, "{command:?} without a token");
            assert!(
                stderr.contains("401") && stderr.contains("--token"),
                "{command:?}: {stderr}"
            );
        }
        let (ok, stdout, stderr) = run(&["query", "--json", "--token", SCOPED], None);
        assert!(ok, "{stderr}");
        assert_eq!(stdout.lines().count(), 6, "{stdout}");
        assert!(!stdout.contains("\"db\""), "{stdout}");
        let (ok, stdout, stderr) = run(&["query", "--json"], Some(READ));
        assert!(ok, "{stderr}");
        assert_eq!(stdout.lines().count(), 9, "{stdout}");
        let (ok, _, stderr) = run(&["alerts", "--json", "--token", ADMIN], None);
        assert!(ok, "{stderr}");
        let (ok, _, stderr) = run(&["alerts"], Some(METRICS));
        assert!(!ok && stderr.contains("403"), "{stderr}");
    })
    .await
    .expect("cli");
    router.stop().await;
}
