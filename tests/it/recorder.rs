//! A scripted HTTP/1.1 server on 127.0.0.1 that records what it accepts: the far end of the
//! `http` sink and of the notifier sinks (webhook, Slack, PagerDuty).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

/// The path of a script step that answers a request to any path.
pub(crate) const ANY_PATH: &str = "*";

/// A request the recorder answered 2xx.
#[derive(Debug, Clone)]
struct Accepted {
    path: String,
    content_type: String,
    /// The body as text, gunzipped if it came gzipped.
    body: String,
}

#[derive(Default)]
pub(crate) struct Recorder {
    /// Per path (or [`ANY_PATH`]), the answers still to give, in order.
    script: Mutex<HashMap<String, VecDeque<(u16, &'static str)>>>,
    accepted: Mutex<Vec<Accepted>>,
    /// Per path, when each request arrived.
    arrivals: Mutex<HashMap<String, Vec<Instant>>>,
}

impl Recorder {
    /// Starts a server answering each `(path, status, body)` step in turn for its path
    /// ([`ANY_PATH`]: whatever the path, after that path's own steps), then 200.
    pub(crate) async fn start(script: &[(&str, u16, &'static str)]) -> (SocketAddr, Arc<Self>) {
        Self::start_with(script, None).await
    }

    /// The same over TLS (`https://`).
    pub(crate) async fn start_with(
        script: &[(&str, u16, &'static str)],
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> (SocketAddr, Arc<Self>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let recorder = Arc::new(Recorder::default());
        {
            let mut steps = recorder.script.lock().unwrap();
            for (path, status, answer) in script {
                steps
                    .entry(path.to_string())
                    .or_default()
                    .push_back((*status, *answer));
            }
        }
        let shared = recorder.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let recorder = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let recorder = recorder.clone();
                        async move { Ok::<_, Infallible>(recorder.handle(request).await) }
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
        (addr, recorder)
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_string();
        self.arrivals
            .lock()
            .unwrap()
            .entry(path.clone())
            .or_default()
            .push(Instant::now());
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        let gzip = header("content-encoding") == "gzip";
        let content_type = header("content-type");
        let raw = request.into_body().collect().await.unwrap().to_bytes();
        let body = if gzip {
            let mut text = String::new();
            flate2::read::GzDecoder::new(&raw[..])
                .read_to_string(&mut text)
                .unwrap();
            text
        } else {
            String::from_utf8(raw.to_vec()).unwrap()
        };
        let (status, answer) = {
            let mut script = self.script.lock().unwrap();
            [path.as_str(), ANY_PATH]
                .into_iter()
                .find_map(|key| script.get_mut(key).and_then(VecDeque::pop_front))
                .unwrap_or((200, "{}"))
        };
        if (200..300).contains(&status) {
            self.accepted.lock().unwrap().push(Accepted {
                path,
                content_type,
                body,
            });
        }
        let mut response = Response::new(Full::new(Bytes::from_static(answer.as_bytes())));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        if status == 429 {
            // Far longer than the tests wait: a sink must cap it by its max backoff.
            response.headers_mut().insert(
                "retry-after",
                hyper::header::HeaderValue::from_static("3600"),
            );
        }
        response
    }

    /// The JSON bodies accepted on `path`, in order.
    pub(crate) fn bodies(&self, path: &str) -> Vec<Value> {
        self.accepted
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .map(|r| serde_json::from_str(&r.body).expect("a JSON body"))
            .collect()
    }

    /// The lines of every accepted body, in order.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.accepted
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| r.body.lines().map(str::to_string).collect::<Vec<_>>())
            .collect()
    }

    /// The `message` of every accepted NDJSON line, in order.
    pub(crate) fn messages(&self) -> Vec<String> {
        self.lines()
            .iter()
            .map(|line| {
                let event: Value = serde_json::from_str(line).unwrap();
                event["message"].as_str().unwrap().to_string()
            })
            .collect()
    }

    /// The `content-type` of every accepted request.
    pub(crate) fn content_types(&self) -> Vec<String> {
        self.accepted
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.content_type.clone())
            .collect()
    }

    /// Requests to `path`, answered 2xx or not.
    pub(crate) fn attempts(&self, path: &str) -> usize {
        self.arrival_times(path).len()
    }

    /// When each request to `path` arrived, answered 2xx or not.
    pub(crate) fn arrival_times(&self, path: &str) -> Vec<Instant> {
        self.arrivals
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    /// Requests to any path.
    pub(crate) fn requests(&self) -> usize {
        self.arrivals.lock().unwrap().values().map(Vec::len).sum()
    }
}
