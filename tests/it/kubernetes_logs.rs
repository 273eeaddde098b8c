//! The `kubernetes_logs` source on a directory laid out exactly as the kubelet lays out
//! `/var/log/pods` (`<namespace>_<pod>_<uid>/<container>/<restart>.log`, names as in the
//! Kubernetes docs), written in CRI format with partial (`P`) lines.
//!
//! No Kubernetes API server can be installed here, so a recording HTTP server in this file
//! (tokio + hyper on 127.0.0.1:0) stands in for it: it answers `GET /api/v1/pods` with a
//! `PodList` and `?watch=1` with a stream of watch events, in the JSON the API documents
//! (`{"type": "MODIFIED", "object": {...Pod...}}` one per line), and records each
//! request's path, query and `Authorization` header. Every wait polls a condition (the
//! sink's file, a counter) with a deadline.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::certs::issue;
use crate::util::{counter, free_port, read_lines, tempdir, wait_until, Router};

const WEB_UID: &str = "3c1f6a2e-8d7b-4b9e-9f64-2a1d0c5e7b11";
const WEB_POD: &str = "web-7d4b9c8f6d-x2x7k";

/// A watch response body fed by the test: each message is one chunk.
struct ChannelBody(mpsc::UnboundedReceiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// The stand-in for the Kubernetes API server.
#[derive(Default)]
struct FakeApi {
    /// The items of the next list.
    pods: Mutex<Vec<Value>>,
    /// Open watches.
    watches: Mutex<Vec<mpsc::UnboundedSender<Bytes>>>,
    /// `(path?query, authorization)` of each request.
    requests: Mutex<Vec<(String, String)>>,
}

impl FakeApi {
    async fn start(pods: Vec<Value>) -> (SocketAddr, Arc<Self>) {
        Self::start_with(pods, None).await
    }

    /// The same over TLS (`https://`), as the API server always is in a cluster.
    async fn start_with(
        pods: Vec<Value>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> (SocketAddr, Arc<Self>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let api = Arc::new(FakeApi {
            pods: Mutex::new(pods),
            ..Default::default()
        });
        let shared = api.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let api = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let api = api.clone();
                        async move { Ok::<_, Infallible>(api.answer(request)) }
                    });
                    let http = http1::Builder::new();
                    let _ = match tls {
                        None => http.serve_connection(TokioIo::new(stream), service).await,
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(stream) => {
                                http.serve_connection(TokioIo::new(stream), service).await
                            }
                            Err(_) => return,
                        },
                    };
                });
            }
        });
        (addr, api)
    }

    fn answer(&self, request: Request<Incoming>) -> Response<BoxBody<Bytes, Infallible>> {
        let uri = request.uri().clone();
        let auth = request
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let target = uri.path_and_query().unwrap().to_string();
        self.requests.lock().unwrap().push((target, auth));
        let query = uri.query().unwrap_or("");
        if uri.path() != "/api/v1/pods" {
            return Response::builder()
                .status(404)
                .body(Full::new(Bytes::from("not found")).boxed())
                .unwrap();
        }
        if query.split('&').any(|p| p == "watch=1") {
            let (tx, rx) = mpsc::unbounded_channel();
            self.watches.lock().unwrap().push(tx);
            return Response::builder()
                .header("content-type", "application/json")
                .body(ChannelBody(rx).boxed())
                .unwrap();
        }
        let list = json!({
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "100"},
            "items": *self.pods.lock().unwrap(),
        });
        Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(list.to_string())).boxed())
            .unwrap()
    }

    fn watching(&self) -> bool {
        self.watches.lock().unwrap().iter().any(|w| !w.is_closed())
    }

    /// Sends `line` and a newline to every open watch.
    fn send(&self, line: &str) {
        for watch in self.watches.lock().unwrap().iter() {
            let _ = watch.send(Bytes::from(format!("{line}\n")));
        }
    }

    fn event(&self, kind: &str, pod: &Value) {
        self.send(&json!({"type": kind, "object": pod}).to_string());
    }
}

/// A `v1.Pod` as the API sends it (trimmed of what the source does not read, plus a few
/// fields it must ignore).
fn pod(namespace: &str, name: &str, uid: &str, labels: Value, version: u32) -> Value {
    let mut owner = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c8f6d",
        "uid": "a1b2", "controller": true, "blockOwnerDeletion": true}]);
    if name.starts_with("db-") {
        owner = json!([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "c3d4", "controller": true}]);
    }
    if name.starts_with("backup-") {
        owner = json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "backup-28123", "uid": "e5f6", "controller": true}]);
    }
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "resourceVersion": version.to_string(),
            "creationTimestamp": "2024-10-06T10:15:00Z",
            "labels": labels,
            "annotations": {"example.com/channel": "#shop", "kubectl.kubernetes.io/last-applied-configuration": "{...}"},
            "ownerReferences": owner,
        },
        "spec": {"nodeName": "node-1", "containers": [{"name": "nginx", "image": "nginx:1.27"}]},
        "status": {"phase": "Running", "podIP": "10.1.2.3"},
    })
}

/// The kubelet's file for a container: `<root>/<ns>_<pod>_<uid>/<container>/<restart>.log`.
fn log_file(root: &Path, namespace: &str, pod: &str, uid: &str, container: &str) -> PathBuf {
    let dir = root
        .join(format!("{namespace}_{pod}_{uid}"))
        .join(container);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("0.log")
}

/// Appends CRI lines: `(stream, tag, message)`.
fn append(path: &Path, lines: &[(&str, &str, &str)]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut text = String::new();
    for (stream, tag, message) in lines {
        text.push_str(&format!(
            "2024-10-06T10:15:00.123456789Z {stream} {tag} {message}\n"
        ));
    }
    f.write_all(text.as_bytes()).unwrap();
}

fn events(path: &Path) -> Vec<Value> {
    read_lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn pipeline(id: &str, root: &Path, out: &Path, extra: &str) -> String {
    format!(
        r#"
[sources.{id}]
type = "kubernetes_logs"
pods_root = "{root}"
glob_interval_ms = 50
rotate_wait_ms = 300
node_name = "node-1"
{extra}

[sinks.out]
type = "file"
inputs = ["{id}"]
path = "{out}"
encoding = "json"
"#,
        root = root.display(),
        out = out.display(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_get_the_path_and_the_pods_metadata() {
    let dir = tempdir();
    let root = dir.path().join("var/log/pods");
    let out = dir.path().join("out.json");
    let token = dir.path().join("token");
    std::fs::write(&token, "test-token\n").unwrap();
    let web_labels = json!({"app.kubernetes.io/name": "shop-web", "team": "shop", "pod-template-hash": "7d4b9c8f6d"});
    let (addr, api) = FakeApi::start(vec![
        pod("default", WEB_POD, WEB_UID, web_labels, 90),
        pod(
            "default",
            "db-0",
            "5e6f",
            json!({"app": "db", "logging": "off"}),
            91,
        ),
    ])
    .await;

    let web = log_file(&root, "default", WEB_POD, WEB_UID, "nginx");
    // A long line the runtime split in three, between two whole ones, and stderr.
    append(
        &web,
        &[
            ("stdout", "F", "GET / 200"),
            ("stdout", "P", "part one, "),
            ("stderr", "F", "warning: slow upstream"),
            ("stdout", "P", "part two, "),
            ("stdout", "F", "end"),
        ],
    );
    let db = log_file(&root, "default", "db-0", "5e6f", "postgres");
    append(&db, &[("stdout", "F", "checkpoint complete")]);
    let system = log_file(&root, "kube-system", "coredns-1", "9a8b", "coredns");
    append(&system, &[("stdout", "F", "dns ready")]);

    let id = "k8s_meta";
    let router = Router::start(&pipeline(
        id,
        &root,
        &out,
        &format!(
            r#"exclude_namespaces = ["kube-system"]
exclude_labels = ["logging=off"]
annotations = ["example.com/channel"]
api = {{ url = "http://{addr}", token_file = "{}" }}"#,
            token.display()
        ),
    ))
    .await;
    wait_until("the web pod's three events", || read_lines(&out).len() >= 3).await;
    wait_until("the db pod's event left out by exclude_labels", || {
        counter(
            "component_discarded_events_total",
            id,
            Some("label_selector"),
        ) >= 1
    })
    .await;
    router.stop().await;

    let got = events(&out);
    assert_eq!(got.len(), 3, "{got:#?}");
    let messages: Vec<(&str, &str)> = got
        .iter()
        .map(|e| {
            (
                e["stream"].as_str().unwrap(),
                e["message"].as_str().unwrap(),
            )
        })
        .collect();
    for want in [
        ("stdout", "GET / 200"),
        ("stdout", "part one, part two, end"),
        ("stderr", "warning: slow upstream"),
    ] {
        assert!(messages.contains(&want), "{want:?} in {messages:?}");
    }
    for event in &got {
        let k = &event["kubernetes"];
        assert_eq!(k["namespace"], "default");
        assert_eq!(k["pod_name"], WEB_POD);
        assert_eq!(k["pod_uid"], WEB_UID);
        assert_eq!(k["container_name"], "nginx");
        assert_eq!(k["restart_count"], 0);
        assert_eq!(k["labels"]["team"], "shop");
        assert_eq!(k["labels"]["app.kubernetes.io/name"], "shop-web");
        assert_eq!(k["node_name"], "node-1");
        assert_eq!(k["owner_kind"], "Deployment");
        assert_eq!(k["owner_name"], "web");
        assert_eq!(
            k["annotations"],
            json!({"example.com/channel": "#shop"}),
            "only the listed annotations"
        );
        assert_eq!(event["app"], "shop-web", "from app.kubernetes.io/name");
        assert!(event["path"].as_str().unwrap().ends_with("nginx/0.log"));
    }
    let requests = api.requests.lock().unwrap().clone();
    assert!(
        requests
            .iter()
            .any(|(target, _)| target == "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1"),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|(target, _)| target.contains("watch=1&resourceVersion=100")),
        "the watch starts from the list's version: {requests:?}"
    );
    assert!(
        requests.iter().all(|(_, auth)| auth == "Bearer test-token"),
        "{requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_updates_later_events_and_a_deleted_pod_is_read_to_its_end() {
    let dir = tempdir();
    let root = dir.path().join("var/log/pods");
    let out = dir.path().join("out.json");
    let uid = "7f00c0de-1111-4222-8333-944445555666";
    let name = "report-7d4b9c8f6d-abcde";
    let (addr, api) = FakeApi::start(vec![pod(
        "jobs",
        name,
        uid,
        json!({"app": "report", "version": "v1"}),
        95,
    )])
    .await;
    let file = log_file(&root, "jobs", name, uid, "main");
    append(&file, &[("stdout", "F", "seq=0")]);

    let id = "k8s_watch";
    let router = Router::start(&pipeline(
        id,
        &root,
        &out,
        &format!(r#"api = {{ url = "http://{addr}" }}"#),
    ))
    .await;
    wait_until("the first event", || !read_lines(&out).is_empty()).await;
    assert_eq!(events(&out)[0]["kubernetes"]["labels"]["version"], "v1");
    assert_eq!(events(&out)[0]["app"], "report", "from the `app` label");
    wait_until("the watch", || api.watching()).await;

    // A line that is not JSON is counted and skipped; the watch goes on.
    api.send("{not json");
    let relabelled = pod(
        "jobs",
        name,
        uid,
        json!({"app": "report", "version": "v2"}),
        101,
    );
    api.event("MODIFIED", &relabelled);
    wait_until("the MODIFIED event applied", || {
        counter("component_kubernetes_watch_events_total", id, None) >= 1
    })
    .await;
    assert!(
        counter(
            "component_kubernetes_api_errors_total",
            id,
            Some("invalid_json")
        ) >= 1
    );
    append(&file, &[("stdout", "F", "seq=1")]);
    wait_until("the second event", || read_lines(&out).len() >= 2).await;
    assert_eq!(events(&out)[1]["kubernetes"]["labels"]["version"], "v2");

    // A pod that appears while the source runs (ADDED), lives a moment and is deleted
    // while its last lines are unread (the kubelet removes its directory): they are read
    // to the end, and keep the pod's metadata.
    let short_uid = "0b5e55ed-aaaa-4bbb-8ccc-9ddddeeeeff0";
    let short_name = "backup-28123-x7k2p";
    let short = pod("jobs", short_name, short_uid, json!({"app": "backup"}), 102);
    api.event("ADDED", &short);
    wait_until("the ADDED event applied", || {
        counter("component_kubernetes_watch_events_total", id, None) >= 2
    })
    .await;
    let short_file = log_file(&root, "jobs", short_name, short_uid, "backup");
    append(&short_file, &[("stdout", "F", "partial seq=0")]);
    let of_short = || {
        events(&out)
            .into_iter()
            .filter(|e| e["kubernetes"]["pod_name"] == short_name)
            .collect::<Vec<_>>()
    };
    wait_until("the short-lived pod's first line", || {
        !of_short().is_empty()
    })
    .await;
    let last = 3_000;
    let lines: Vec<String> = (1..=last).map(|i| format!("seq={i}")).collect();
    let cri: Vec<(&str, &str, &str)> = lines
        .iter()
        .flat_map(|l| [("stdout", "P", "partial "), ("stdout", "F", l.as_str())])
        .collect();
    // Deleted in the API first (the lines below are read after it), then on the node.
    api.event("DELETED", &short);
    wait_until("the DELETED event applied", || {
        counter("component_kubernetes_watch_events_total", id, None) >= 3
    })
    .await;
    append(&short_file, &cri);
    std::fs::remove_dir_all(root.join(format!("jobs_{short_name}_{short_uid}"))).unwrap();
    wait_until("every line of the deleted pod", || of_short().len() > last).await;

    // A watch the server says is too old (410 Gone) starts again from a list.
    api.send(
        &json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
            "status": "Failure", "reason": "Expired", "code": 410,
            "message": "too old resource version: 95 (101)"}})
        .to_string(),
    );
    let lists = || {
        api.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(target, _)| !target.contains("watch=1"))
            .count()
    };
    wait_until("a new list after 410 Gone", || lists() >= 2).await;
    assert!(counter("component_kubernetes_api_errors_total", id, Some("status")) >= 1);
    router.stop().await;

    let got = of_short();
    assert_eq!(got.len(), last + 1);
    for (i, event) in got.iter().enumerate() {
        assert_eq!(
            event["message"],
            format!("partial seq={i}"),
            "in order, joined"
        );
        let k = &event["kubernetes"];
        assert_eq!(k["labels"]["app"], "backup", "metadata kept after deletion");
        assert_eq!(k["owner_kind"], "Job");
        assert_eq!(k["owner_name"], "backup-28123");
        assert_eq!(k["container_name"], "backup");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_api_events_flow_with_what_the_path_says() {
    let dir = tempdir();
    let root = dir.path().join("var/log/pods");
    let out = dir.path().join("out.json");
    let file = log_file(&root, "default", WEB_POD, WEB_UID, "nginx");
    append(&file, &[("stdout", "F", "first")]);

    // Nothing listens on the API's port: every attempt fails, and is retried.
    let id = "k8s_down";
    let router = Router::start(&pipeline(
        id,
        &root,
        &out,
        &format!(r#"api = {{ url = "http://127.0.0.1:{}" }}"#, free_port()),
    ))
    .await;
    wait_until("the first event", || !read_lines(&out).is_empty()).await;
    append(&file, &[("stdout", "P", "sec"), ("stdout", "F", "ond")]);
    wait_until("the second event", || read_lines(&out).len() >= 2).await;
    wait_until("errors counted, and the API tried again", || {
        counter("component_kubernetes_api_errors_total", id, Some("request")) >= 2
    })
    .await;
    router.stop().await;

    let got = events(&out);
    assert_eq!(got.len(), 2);
    assert_eq!(got[1]["message"], "second");
    for event in &got {
        let k = &event["kubernetes"];
        assert_eq!(k["namespace"], "default");
        assert_eq!(k["pod_name"], WEB_POD);
        assert_eq!(k["pod_uid"], WEB_UID);
        assert_eq!(k["container_name"], "nginx");
        assert_eq!(k["restart_count"], 0);
        assert!(k.get("labels").is_none());
        assert_eq!(k["node_name"], "node-1", "from node_name, without the API");
        assert_eq!(event["app"], "nginx", "the container's name without labels");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_trusting_the_api_servers_ca() {
    let dir = tempdir();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let (ca, ca_cert, ca_key) = issue(&["kubernetes test ca"], None);
    let (server, _, _) = issue(&["127.0.0.1"], Some((&ca_cert, &ca_key)));
    let (other_ca, _, _) = issue(&["another ca"], None);
    let ca_file = write("ca.crt", ca.cert_pem);
    let other_ca_file = write("other.crt", other_ca.cert_pem);
    let acceptor = sluice::tls::TlsConfig {
        crt_file: write("server.pem", server.cert_pem),
        key_file: write("server.key", server.key_pem),
        ca_file: None,
    }
    .acceptor()
    .unwrap();
    let labels = json!({"app.kubernetes.io/name": "shop-web"});
    let (addr, _api) = FakeApi::start_with(
        vec![pod("default", WEB_POD, WEB_UID, labels, 90)],
        Some(acceptor),
    )
    .await;
    let root = dir.path().join("var/log/pods");
    let file = log_file(&root, "default", WEB_POD, WEB_UID, "nginx");
    append(&file, &[("stdout", "F", "hello")]);

    // Trusting the server's CA: the pod's labels.
    let out = dir.path().join("trusted.json");
    let router = Router::start(&pipeline(
        "k8s_tls",
        &root,
        &out,
        &format!(
            r#"api = {{ url = "https://{addr}", ca_file = "{}" }}"#,
            ca_file.display()
        ),
    ))
    .await;
    wait_until("the event", || !read_lines(&out).is_empty()).await;
    router.stop().await;
    assert_eq!(events(&out)[0]["app"], "shop-web");

    // Trusting another CA: the handshake fails, counted; the event still comes, from the path.
    let out = dir.path().join("untrusted.json");
    let id = "k8s_tls_untrusted";
    let router = Router::start(&pipeline(
        id,
        &root,
        &out,
        &format!(
            r#"api = {{ url = "https://{addr}", ca_file = "{}" }}"#,
            other_ca_file.display()
        ),
    ))
    .await;
    wait_until("the event", || !read_lines(&out).is_empty()).await;
    wait_until("the failed handshake counted", || {
        counter("component_kubernetes_api_errors_total", id, Some("request")) >= 1
    })
    .await;
    router.stop().await;
    assert_eq!(events(&out)[0]["app"], "nginx");
}
