//! HTTPS out and in (issue 15): the `http` sink posting to an https receiver that trusts a
//! test CA, refusing one whose certificate it does not trust, presenting a client
//! certificate (mutual TLS); and the API listener over TLS, answered to `sluice query
//! --url https://...`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::certs::issue;
use crate::recorder::Recorder;
use crate::util::{counter, read_lines, sluice_bin, tempdir, wait_until, Router};

/// PEM files of a test PKI: a CA, a server certificate for 127.0.0.1 and a client
/// certificate, both signed by the CA, and a second CA that signed nothing here.
struct Pki {
    ca: PathBuf,
    other_ca: PathBuf,
    server_crt: PathBuf,
    server_key: PathBuf,
    client_crt: PathBuf,
    client_key: PathBuf,
}

fn pki(dir: &Path) -> Pki {
    let (ca, ca_cert, ca_key) = issue(&["https test ca"], None);
    let (other_ca, _, _) = issue(&["an unrelated ca"], None);
    let (server, _, _) = issue(&["127.0.0.1"], Some((&ca_cert, &ca_key)));
    let (client, _, _) = issue(&["forwarder"], Some((&ca_cert, &ca_key)));
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("pem");
        path
    };
    Pki {
        ca: write("ca.pem", &ca.cert_pem),
        other_ca: write("other-ca.pem", &other_ca.cert_pem),
        server_crt: write("server.pem", &server.cert_pem),
        server_key: write("server.key", &server.key_pem),
        client_crt: write("client.pem", &client.cert_pem),
        client_key: write("client.key", &client.key_pem),
    }
}

/// An https receiver; with `client_ca`, it requires a client certificate signed by it.
async fn receiver(pki: &Pki, client_ca: Option<&Path>) -> (SocketAddr, std::sync::Arc<Recorder>) {
    let acceptor = sluice::tls::TlsConfig {
        crt_file: pki.server_crt.clone(),
        key_file: pki.server_key.clone(),
        ca_file: client_ca.map(Path::to_path_buf),
    }
    .acceptor()
    .expect("acceptor");
    Recorder::start_with(&[], Some(acceptor)).await
}

/// A pipeline of `[api]` section `api`, a tcp source `{prefix}_in` of JSON lines and a
/// store `{prefix}_store` at `store`.
fn tcp_to_store(api: &str, prefix: &str, store: &Path) -> String {
    format!(
        r#"
{api}

[sources.{prefix}_in]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"

[sinks.{prefix}_store]
type = "store"
inputs = ["{prefix}_in"]
path = "{}"
commit_interval_ms = 20
"#,
        store.display()
    )
}

/// Writes `lines` as JSON events into a tcp source.
fn feed(addr: SocketAddr, tag: &str, count: usize) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connects");
    for i in 0..count {
        writeln!(stream, "{{\"message\":\"{tag} {i}\"}}").expect("writes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sink_posts_over_https_to_a_receiver_signed_by_its_ca() {
    let dir = tempdir();
    let pki = pki(dir.path());
    let (addr, recorder) = receiver(&pki, None).await;
    let router = Router::start(&format!(
        r#"
[sources.hs_in]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"

[sinks.hs_out]
type = "http"
inputs = ["hs_in"]
uri = "https://{addr}/v1/logs"
tls = {{ ca_file = "{}" }}
"#,
        pki.ca.display()
    ))
    .await;
    feed(router.addr("hs_in"), "trusted", 5);
    // Counted sent once the answer is in, just after the receiver recorded the request.
    wait_until("five events sent over https", || {
        counter("component_sent_events_total", "hs_out", None) == 5
    })
    .await;
    assert_eq!(
        recorder.messages(),
        (0..5).map(|i| format!("trusted {i}")).collect::<Vec<_>>()
    );
    router.stop().await;
}

/// A server whose certificate no trusted CA signed fails the handshake: nothing is
/// delivered or acknowledged as sent, each attempt is retried and counted, and the reason
/// (here in the dead letter once the attempts run out) says the certificate was not trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sink_refuses_a_server_it_does_not_trust() {
    let dir = tempdir();
    let pki = pki(dir.path());
    let (addr, recorder) = receiver(&pki, None).await;
    let dead = dir.path().join("dead.log");
    let router = Router::start(&format!(
        r#"
[sources.hu_in]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"

[sinks.hu_out]
type = "http"
inputs = ["hu_in"]
uri = "https://{addr}/v1/logs"
tls = {{ ca_file = "{}" }}
retry = {{ initial_backoff_ms = 10, max_backoff_secs = 1, max_attempts = 3 }}

[sinks.hu_dead]
type = "file"
inputs = ["hu_out.dead_letter"]
path = "{}"
"#,
        pki.other_ca.display(),
        dead.display()
    ))
    .await;
    feed(router.addr("hu_in"), "untrusted", 2);
    wait_until("the events dead-lettered after their attempts", || {
        read_lines(&dead).len() == 2
    })
    .await;
    let letter: serde_json::Value = serde_json::from_str(&read_lines(&dead)[0]).expect("json");
    let reason = letter["dead_letter"]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("gave up after 3 attempts") && reason.contains("certificate"),
        "{reason}"
    );
    assert_eq!(recorder.attempts("/v1/logs"), 0, "no request got through");
    assert_eq!(counter("component_sent_events_total", "hu_out", None), 0);
    // Two attempts retried per request (the two events may have gone as one or two).
    assert!(counter("component_retries_total", "hu_out", None) >= 2);
    router.stop().await;
}

/// A receiver asking for client certificates accepts the sink that presents one signed by
/// its CA and refuses the one that presents none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sink_presents_a_client_certificate_for_mutual_tls() {
    let dir = tempdir();
    let pki = pki(dir.path());
    let (addr, recorder) = receiver(&pki, Some(&pki.ca)).await;
    let router = Router::start(&format!(
        r#"
[sources.hm_in]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"

[sinks.hm_with_cert]
type = "http"
inputs = ["hm_in"]
uri = "https://{addr}/with"
tls = {{ ca_file = "{ca}", crt_file = "{crt}", key_file = "{key}" }}

[sinks.hm_without_cert]
type = "http"
inputs = ["hm_in"]
uri = "https://{addr}/without"
tls = {{ ca_file = "{ca}" }}
retry = {{ initial_backoff_ms = 10, max_backoff_secs = 1, max_attempts = 3 }}
"#,
        ca = pki.ca.display(),
        crt = pki.client_crt.display(),
        key = pki.client_key.display(),
    ))
    .await;
    feed(router.addr("hm_in"), "mutual", 3);
    wait_until("the certified sink's events", || {
        recorder.messages().len() == 3
    })
    .await;
    wait_until("the uncertified sink retried", || {
        counter("component_retries_total", "hm_without_cert", None) >= 2
    })
    .await;
    assert_eq!(recorder.attempts("/without"), 0);
    assert_eq!(
        counter("component_sent_events_total", "hm_without_cert", None),
        0
    );
    router.stop().await;
}

/// A client certificate without its key, or a key file that is not there, stops the start
/// with the field named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sink_tls_file_errors_name_the_field() {
    let dir = tempdir();
    let missing = dir.path().join("missing.key");
    let toml = format!(
        "[sources.hf_in]\ntype = \"stdin\"\n\n[sinks.hf_out]\ntype = \"http\"\ninputs = [\"hf_in\"]\nuri = \"https://127.0.0.1:1/\"\ntls = {{ crt_file = \"{crt}\", key_file = \"{key}\" }}\n",
        crt = missing.display(),
        key = missing.display(),
    );
    let pipeline = sluice::pipeline::Pipeline::from_str("t.toml", &toml, |_| None)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let error = sluice::topology::start(pipeline, tokio_util::sync::CancellationToken::new())
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.contains("hf_out") && error.contains("tls.crt_file: cannot read"),
        "{error}"
    );
    let half = "[sources.hg_in]\ntype = \"stdin\"\n\n[sinks.hg_out]\ntype = \"http\"\ninputs = [\"hg_in\"]\nuri = \"https://127.0.0.1:1/\"\ntls = { crt_file = \"/c.pem\" }\n";
    let errors =
        sluice::pipeline::Pipeline::from_str("t.toml", half, |_| None).expect_err("invalid");
    let text = errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    assert!(
        text.contains("hg_out") && text.contains("tls.key_file"),
        "{text}"
    );
}

/// The API over TLS: `sluice query --url https://...` with `--ca-file` (or
/// `SLUICE_CA_FILE`) gets the stored events, `sluice alerts` its list; without the CA the
/// certificate is refused, and a plain-HTTP request to the TLS port gets no answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_over_tls_answers_sluice_query() {
    let dir = tempdir();
    let pki = pki(dir.path());
    let api = format!(
        "[api]\naddress = \"127.0.0.1:0\"\ntls = {{ crt_file = \"{}\", key_file = \"{}\" }}",
        pki.server_crt.display(),
        pki.server_key.display(),
    );
    let router = Router::start(&tcp_to_store(&api, "at", &dir.path().join("store"))).await;
    feed(router.addr("at_in"), "stored", 4);
    wait_until("four events committed", || {
        counter("component_sent_events_total", "at_store", None) == 4
    })
    .await;
    let api = router.addr("api");
    let ca = pki.ca.clone();
    tokio::task::spawn_blocking(move || {
        let url = format!("https://{api}");
        let query = |extra: &[&str], env_ca: Option<&Path>| {
            let mut cmd = std::process::Command::new(sluice_bin());
            cmd.args(["query", "--json", "--url", &url])
                .args(extra)
                .env_remove("SLUICE_CA_FILE")
                .env_remove("SLUICE_TOKEN");
            if let Some(ca) = env_ca {
                cmd.env("SLUICE_CA_FILE", ca);
            }
            let output = cmd.output().expect("runs");
            (
                output.status.success(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        };
        let ca_text = ca.display().to_string();
        let (ok, stdout, stderr) = query(&["--ca-file", &ca_text], None);
        assert!(ok, "{stderr}");
        assert_eq!(stdout.lines().count(), 4, "{stdout}");
        assert!(stdout.contains("stored 3"), "{stdout}");
        let (ok, stdout, stderr) = query(&[], Some(&ca));
        assert!(ok && stdout.lines().count() == 4, "{stderr}");
        let (ok, _, stderr) = query(&[], None);
        assert!(!ok, "an untrusted certificate is refused");
        assert!(stderr.contains("certificate"), "{stderr}");
        let alerts = std::process::Command::new(sluice_bin())
            .args(["alerts", "--json", "--url", &url, "--ca-file", &ca_text])
            .env_remove("SLUICE_TOKEN")
            .output()
            .expect("runs");
        assert!(
            alerts.status.success(),
            "{}",
            String::from_utf8_lossy(&alerts.stderr)
        );
        let plain = crate::api_auth::send(api, "GET", "/health", &[], "", false);
        assert_ne!(plain.status, 200, "plain http on the tls port");
    })
    .await
    .expect("cli");
    router.stop().await;
}

/// An API requiring client certificates (`tls.ca_file`): `sluice query` and `alerts` (and
/// `tail`, `tap`, `reload`, which build their client the same way) present `--cert-file`/`--key-file` (or `SLUICE_CERT_FILE`/`SLUICE_KEY_FILE`) and
/// are answered; without a certificate the handshake fails, and a certificate without its
/// key is refused before any connection, naming the flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_presents_a_client_certificate_to_a_mutual_tls_api() {
    let dir = tempdir();
    let pki = pki(dir.path());
    let api = format!(
        "[api]\naddress = \"127.0.0.1:0\"\ntls = {{ crt_file = \"{}\", key_file = \"{}\", ca_file = \"{}\" }}",
        pki.server_crt.display(),
        pki.server_key.display(),
        pki.ca.display(),
    );
    let router = Router::start(&tcp_to_store(&api, "mt", &dir.path().join("store"))).await;
    feed(router.addr("mt_in"), "mutual", 3);
    wait_until("three events committed", || {
        counter("component_sent_events_total", "mt_store", None) == 3
    })
    .await;
    let api = router.addr("api");
    let (ca, crt, key) = (
        pki.ca.display().to_string(),
        pki.client_crt.display().to_string(),
        pki.client_key.display().to_string(),
    );
    tokio::task::spawn_blocking(move || {
        let url = format!("https://{api}");
        let run = |args: &[&str], env: &[(&str, &str)]| {
            let mut cmd = std::process::Command::new(sluice_bin());
            cmd.args(args)
                .args(["--url", &url, "--ca-file", &ca])
                .env_remove("SLUICE_CERT_FILE")
                .env_remove("SLUICE_KEY_FILE")
                .env_remove("SLUICE_TOKEN");
            for (name, value) in env {
                cmd.env(name, value);
            }
            let output = cmd.output().expect("runs");
            (
                output.status.success(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        };
        let identity = ["--cert-file", crt.as_str(), "--key-file", key.as_str()];
        let query = |extra: &[&str], env: &[(&str, &str)]| {
            run(&[&["query", "--json"][..], extra].concat(), env)
        };
        let (ok, stdout, stderr) = query(&identity, &[]);
        assert!(ok, "{stderr}");
        assert_eq!(stdout.lines().count(), 3, "{stdout}");
        let (ok, stdout, stderr) = query(
            &[],
            &[("SLUICE_CERT_FILE", &crt), ("SLUICE_KEY_FILE", &key)],
        );
        assert!(ok && stdout.lines().count() == 3, "{stderr}");
        let (ok, _, _) = query(&[], &[]);
        assert!(!ok, "no client certificate, no answer");
        let (ok, _, stderr_half) = query(&["--cert-file", &crt], &[]);
        assert!(!ok);
        assert!(stderr_half.contains("--key-file"), "{stderr_half}");
        let (ok, _, stderr_alerts) = run(&[&["alerts", "--json"][..], &identity].concat(), &[]);
        assert!(ok, "{stderr_alerts}");
    })
    .await
    .expect("cli");
    router.stop().await;
}

/// An API beyond loopback with tokens but without TLS starts, and says at start that its
/// tokens cross the network in clear text; with `tls` it says nothing of the kind.
#[test]
fn a_non_loopback_api_with_tokens_and_no_tls_warns_at_start() {
    let dir = tempdir();
    let pki = pki(dir.path());
    let tokens = dir.path().join("api-tokens");
    std::fs::write(&tokens, "warn-token-aaaaaaaaaaaa read\n").expect("tokens");
    let start = |tls: &str| {
        let config = dir.path().join("warn.toml");
        std::fs::write(
            &config,
            format!(
                "[api]\naddress = \"0.0.0.0:0\"\nauth = {{ tokens_file = \"{}\" }}\n{tls}\n\n\
                 [sources.warn_in]\ntype = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n\
                 [sinks.warn_out]\ntype = \"blackhole\"\ninputs = [\"warn_in\"]\n",
                tokens.display()
            ),
        )
        .expect("config");
        crate::util::spawn_router(crate::util::sluice_up(&config))
            .startup_log
            .clone()
    };
    let plain = start("");
    assert!(
        plain.contains("clear text") && plain.contains("tls"),
        "{plain}"
    );
    let with_tls = start(&format!(
        "tls = {{ crt_file = \"{}\", key_file = \"{}\" }}",
        pki.server_crt.display(),
        pki.server_key.display()
    ));
    assert!(!with_tls.contains("clear text"), "{with_tls}");
}

/// Federation to `https://` peers on a private CA: with `[api] peers_tls.ca_file` the
/// federating router trusts the peer and answers for both stores; without it the peer's
/// certificate is refused and the answer is partial, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federation_trusts_https_peers_on_the_ca_in_peers_tls() {
    let dir = tempdir();
    let pki = pki(dir.path());
    let store = |name: &str| dir.path().join(name);
    let pipeline = |api: &str, store: &Path| tcp_to_store(api, "fed", store);
    let peer = Router::start(&pipeline(
        &format!(
            "[api]\naddress = \"127.0.0.1:0\"\ntls = {{ crt_file = \"{}\", key_file = \"{}\" }}",
            pki.server_crt.display(),
            pki.server_key.display()
        ),
        &store("peer"),
    ))
    .await;
    let peer_url = format!("https://{}", peer.addr("api"));
    let front = |peers_tls: &str| {
        let own = crate::util::free_port();
        let api = format!(
            "[api]\naddress = \"127.0.0.1:{own}\"\npeers = [\"http://127.0.0.1:{own}\", \"{peer_url}\"]\n{peers_tls}"
        );
        pipeline(&api, &store(&format!("front{own}")))
    };
    let trusting = Router::start(&front(&format!(
        "peers_tls = {{ ca_file = \"{}\" }}",
        pki.ca.display()
    )))
    .await;
    let untrusting = Router::start(&front("")).await;
    feed(peer.addr("fed_in"), "on the peer", 3);
    feed(trusting.addr("fed_in"), "on the front", 2);
    wait_until("the events committed", || {
        counter("component_sent_events_total", "fed_store", None) >= 5
    })
    .await;
    let query = |api: SocketAddr| {
        tokio::task::spawn_blocking(move || {
            let (status, body) = crate::store::http(api, "GET", "/v1/query?limit=10", b"");
            assert_eq!(status, 200, "{body}");
            serde_json::from_str::<serde_json::Value>(&body).expect("json")
        })
    };
    let both = query(trusting.addr("api")).await.expect("query");
    assert_eq!(both["total"], 5, "{both}");
    assert_eq!(both["partial"], false, "{both}");
    let alone = query(untrusting.addr("api")).await.expect("query");
    assert_eq!(alone["total"], 0, "{alone}");
    assert_eq!(alone["partial"], true, "{alone}");
    assert_eq!(alone["missing"][0]["peer"], peer_url.as_str(), "{alone}");
    let reason = alone["missing"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("certificate"), "{reason}");
    for router in [trusting, untrusting, peer] {
        router.stop().await;
    }
}
