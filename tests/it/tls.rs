//! TLS on the TCP source with client-certificate verification: a client with a certificate
//! signed by the configured CA is served; one without is refused in the handshake.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::certs::{issue, Issued};
use crate::util::{counter, read_lines, tempdir, wait_until, Router};

fn client(ca: &CertificateDer<'static>, identity: Option<&Issued>) -> TlsConnector {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some(id) => builder
            .with_client_auth_cert(
                vec![id.cert.clone()],
                PrivateKeyDer::try_from(id.key_der.clone()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    TlsConnector::from(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_verification_serves_good_clients_and_refuses_others() {
    let dir = tempdir();
    let (ca, ca_cert, ca_key) = issue(&["sluice test ca"], None);
    let (server, _, _) = issue(&["localhost"], Some((&ca_cert, &ca_key)));
    let (good_client, _, _) = issue(&["shipper"], Some((&ca_cert, &ca_key)));
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let crt = write("server.crt", &server.cert_pem);
    let key = write("server.key", &server.key_pem);
    let ca_file = write("ca.crt", &ca.cert_pem);
    let out = dir.path().join("out.log");
    let router = Router::start(&format!(
        r#"
[sources.tls_tcp]
type = "tcp"
address = "127.0.0.1:0"
tls = {{ crt_file = "{}", key_file = "{}", ca_file = "{}" }}

[sinks.tls_out]
type = "file"
inputs = ["tls_tcp"]
path = "{}"
encoding = "text"
"#,
        crt.display(),
        key.display(),
        ca_file.display(),
        out.display()
    ))
    .await;
    let addr = router.addr("tls_tcp");
    let name = ServerName::try_from("localhost").unwrap();

    let stream = TcpStream::connect(addr).await.unwrap();
    let mut tls = client(&ca.cert, Some(&good_client))
        .connect(name.clone(), stream)
        .await
        .unwrap();
    tls.write_all(b"over tls\n").await.unwrap();
    tls.shutdown().await.unwrap();
    wait_until("the good client's event", || {
        counter("component_sent_events_total", "tls_out", None) == 1
    })
    .await;

    // Without a client certificate the server refuses the handshake: whatever the client
    // manages to send is never read.
    let stream = TcpStream::connect(addr).await.unwrap();
    if let Ok(mut tls) = client(&ca.cert, None).connect(name, stream).await {
        let _ = tls.write_all(b"must not arrive\n").await;
        let mut buf = [0u8; 16];
        let _ = tls.read(&mut buf).await;
    }
    wait_until("the refused handshake counted", || {
        counter("component_errors_total", "tls_tcp", Some("tls_handshake")) == 1
    })
    .await;
    router.stop().await;
    assert_eq!(read_lines(&out), ["over tls"]);
}

/// HTTPS ingest with client verification, driven by curl: with the client certificate the
/// request is answered 200; without it curl cannot even complete the handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_ingest_requires_the_client_certificate() {
    if !crate::util::have_tool("curl") {
        return;
    }
    let dir = tempdir();
    let (ca, ca_cert, ca_key) = issue(&["sluice test ca"], None);
    let (server, _, _) = issue(&["localhost"], Some((&ca_cert, &ca_key)));
    let (client_id, _, _) = issue(&["shipper"], Some((&ca_cert, &ca_key)));
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let (crt, key, ca_file) = (
        write("server.crt", &server.cert_pem),
        write("server.key", &server.key_pem),
        write("ca.crt", &ca.cert_pem),
    );
    let (client_crt, client_key) = (
        write("client.crt", &client_id.cert_pem),
        write("client.key", &client_id.key_pem),
    );
    let out = dir.path().join("out.log");
    let router = Router::start(&format!(
        r#"
[sources.tls_http]
type = "http"
address = "127.0.0.1:0"
tls = {{ crt_file = "{crt}", key_file = "{key}", ca_file = "{ca_file}" }}

[sinks.tls_http_out]
type = "file"
inputs = ["tls_http"]
path = "{}"
encoding = "text"
"#,
        out.display()
    ))
    .await;
    let port = router.addr("tls_http").port();
    let curl = move |with_cert: bool| {
        let (ca_file, client_crt, client_key) =
            (ca_file.clone(), client_crt.clone(), client_key.clone());
        tokio::task::spawn_blocking(move || {
            let mut cmd = std::process::Command::new("curl");
            cmd.args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", "20"])
                .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
                .args(["--cacert", &ca_file, "--data-binary", "over https\n"])
                .args(["-H", "Content-Type: application/octet-stream"]);
            if with_cert {
                cmd.args(["--cert", &client_crt, "--key", &client_key]);
            }
            let out = cmd
                .arg(format!("https://localhost:{port}/v1/logs"))
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            text.rsplit_once('\n')
                .map(|(_, c)| c.trim().to_string())
                .unwrap_or_default()
        })
    };
    assert_eq!(curl(true).await.unwrap(), "200");
    assert_eq!(
        curl(false).await.unwrap(),
        "000",
        "no client certificate, no request"
    );
    router.stop().await;
    assert_eq!(read_lines(&out), ["over https"]);
}
