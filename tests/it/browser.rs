//! The web page in a real browser: headless Chromium driven through chromedriver's
//! WebDriver HTTP API. It loads the page, runs a query, sees the chart and the rows, turns
//! live tail on and sees a newly ingested event appear, and shows an alert rule firing; with
//! `[api] auth`, it asks for a token, keeps it for the tab and sees only its token's apps.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::store::http;
use crate::util::{have_tool, tempdir, Router, TIMEOUT};

/// One WebDriver call; returns the `value` of the answer.
fn webdriver(port: u16, method: &str, path: &str, body: Value) -> Value {
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("chromedriver connects");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let body = body.to_string();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("writes");
    // chromedriver may keep the connection open: read the head, then Content-Length bytes.
    let mut response = Vec::new();
    let mut buf = [0u8; 8192];
    let text = loop {
        let n = stream.read(&mut buf).unwrap_or(0);
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(usize::MAX);
            if body.len() >= length {
                break text;
            }
        }
        if n == 0 {
            break text;
        }
    };
    let payload = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let value: Value = serde_json::from_str(payload)
        .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}: {text}"));
    if let Some(error) = value["value"]["error"].as_str() {
        panic!(
            "webdriver {method} {path}: {error}: {}",
            value["value"]["message"]
        );
    }
    value["value"].clone()
}

struct Chromedriver {
    child: std::process::Child,
    port: u16,
    session: Option<String>,
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            let _ = std::panic::catch_unwind(|| {
                webdriver(
                    self.port,
                    "DELETE",
                    &format!("/session/{session}"),
                    json!({}),
                )
            });
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_chromedriver(profile: &std::path::Path) -> Chromedriver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let child = std::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let mut driver = Chromedriver {
        child,
        port,
        session: None,
    };
    let deadline = Instant::now() + TIMEOUT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let capabilities = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium_binary(),
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1200,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    }}});
    let session = webdriver(port, "POST", "/session", capabilities);
    driver.session = session["sessionId"].as_str().map(str::to_string);
    driver
}

fn chromium_binary() -> String {
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(candidate).exists() {
            return candidate.to_string();
        }
    }
    "chromium".to_string()
}

impl Chromedriver {
    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let session = self.session.as_deref().expect("session");
        webdriver(
            self.port,
            method,
            &format!("/session/{session}{path}"),
            body,
        )
    }

    fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    fn element(&self, css: &str) -> String {
        let found = self.call(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("element id")
            .to_string()
    }

    /// Polls `script` until it returns true; a signal the page gives, bounded in time.
    fn wait_for(&self, what: &str, script: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while self.script(script) != Value::Bool(true) {
            let state = self.script(
                "return document.getElementById('status').textContent + ' | ' + document.getElementById('rows').textContent.slice(0, 300)",
            );
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {state}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_page_searches_charts_and_tails() {
    if !have_tool("chromium") || !have_tool("chromedriver") {
        return;
    }
    let dir = tempdir();
    let router = Router::start(&format!(
        r#"
[api]
address = "127.0.0.1:0"

[sources.in]
type = "http"
address = "127.0.0.1:0"
decoding = "json"

[sinks.store]
type = "store"
inputs = ["in"]
path = "{}"
commit_interval_ms = 20

# Fires once the app logs 5 errors within a minute; the page lists it.
[alerts.browser_errors]
inputs = ["in"]
condition = 'level == "error"'
group_by = ["app"]
kind = "threshold"
window_secs = 60
threshold = 5
severity = "critical"
state_path = "{}"
"#,
        dir.path().join("store").display(),
        dir.path().join("browser_errors.json").display()
    ))
    .await;
    let (ingest, api): (SocketAddr, SocketAddr) = (router.addr("in"), router.addr("api"));
    let profile = dir.path().join("chromium-profile");
    tokio::task::spawn_blocking(move || {
        let mut body = String::new();
        for i in 0..30 {
            let level = ["info", "warn", "error"][i % 3];
            body.push_str(&format!(
                "{{\"message\":\"browser event {i}\",\"level\":\"{level}\",\"app\":\"browser\"}}\n"
            ));
        }
        assert_eq!(http(ingest, "POST", "/v1/logs", body.as_bytes()).0, 200);

        let driver = start_chromedriver(&profile);
        driver.call("POST", "/url", json!({"url": format!("http://{api}/")}));
        let q = driver.element("#q");
        driver.call("POST", &format!("/element/{q}/value"), json!({"text": "level:error"}));
        let run = driver.element("#run");
        driver.call("POST", &format!("/element/{run}/click"), json!({}));
        driver.wait_for(
            "ten error rows and the chart",
            "return document.querySelectorAll('#rows li').length === 10 \
             && document.getElementById('count').textContent === '10' \
             && !!document.querySelector('#chart canvas') \
             && [...document.querySelectorAll('#rows li')].every(li => li.textContent.includes('error'))",
        );
        // Rows expand to show every field.
        let first = driver.element("#rows li");
        driver.call("POST", &format!("/element/{first}/click"), json!({}));
        driver.wait_for(
            "an expanded row",
            "return !!document.querySelector('#rows li pre') && document.querySelector('#rows li pre').textContent.includes('\"app\": \"browser\"')",
        );

        let tail = driver.element("#tail");
        driver.call("POST", &format!("/element/{tail}/click"), json!({}));
        // The tail stream is open once the router counts the subscriber; ingest until the
        // page shows the event (a post made before the EventSource connected is not live).
        let deadline = Instant::now() + TIMEOUT;
        let mut n = 0;
        loop {
            let line = format!(
                "{{\"message\":\"fresh from the tail {n}\",\"level\":\"error\",\"app\":\"browser\"}}\n"
            );
            assert_eq!(http(ingest, "POST", "/v1/logs", line.as_bytes()).0, 200);
            let seen = driver.script(
                "return [...document.querySelectorAll('#rows li.live')].some(li => li.textContent.includes('fresh from the tail'))",
            );
            if seen == Value::Bool(true) {
                break;
            }
            assert!(Instant::now() < deadline, "the live event never appeared");
            n += 1;
            std::thread::sleep(Duration::from_millis(200));
        }
        driver.wait_for(
            "the count to follow the tail",
            "return Number(document.getElementById('count').textContent) > 10",
        );
        // 10 errors in the first minute: the rule fires and the page, polling
        // /v1/alerts, lists it with its group.
        driver.wait_for(
            "the firing alert",
            "return [...document.querySelectorAll('#alerts:not([hidden]) li.firing')]\
               .some(li => li.textContent.includes('browser_errors') && li.textContent.includes('app=browser'))",
        );
    })
    .await
    .expect("browser test");
    router.stop().await;
}

/// With `[api] auth`, the page asks for a token on its first 401, keeps it for the tab
/// (sessionStorage), sends it as a bearer header on every request (the tail too, read over
/// fetch) and never in a URL; a refused token is asked for again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_page_asks_for_a_token_once() {
    if !have_tool("chromium") || !have_tool("chromedriver") {
        return;
    }
    const TOKEN: &str = "browser-scoped-token-0123";
    let dir = tempdir();
    let tokens = dir.path().join("tokens");
    std::fs::write(
        &tokens,
        format!("{TOKEN} read apps=browser\nbrowser-metrics-token-0123 metrics\n"),
    )
    .expect("tokens");
    let router = Router::start(&format!(
        r#"
[api]
address = "127.0.0.1:0"
auth = {{ tokens_file = "{}" }}

[sources.bt_in]
type = "http"
address = "127.0.0.1:0"
decoding = "json"

[sinks.bt_store]
type = "store"
inputs = ["bt_in"]
path = "{}"
commit_interval_ms = 20
"#,
        tokens.display(),
        dir.path().join("store").display()
    ))
    .await;
    let (ingest, api): (SocketAddr, SocketAddr) = (router.addr("bt_in"), router.addr("api"));
    let profile = dir.path().join("chromium-profile");
    tokio::task::spawn_blocking(move || {
        let mut body = String::new();
        for i in 0..8 {
            let app = if i % 2 == 0 { "browser" } else { "other" };
            body.push_str(&format!(
                "{{\"message\":\"guarded event {i}\",\"level\":\"info\",\"app\":\"{app}\"}}\n"
            ));
        }
        assert_eq!(http(ingest, "POST", "/v1/logs", body.as_bytes()).0, 200);

        let driver = start_chromedriver(&profile);
        driver.call("POST", "/url", json!({"url": format!("http://{api}/")}));
        let sign_in = |token: &str| {
            driver.wait_for(
                "the token form",
                "return !document.getElementById('login').hidden",
            );
            let field = driver.element("#token");
            driver.call("POST", &format!("/element/{field}/value"), json!({"text": token}));
            let button = driver.element("#sign-in");
            driver.call("POST", &format!("/element/{button}/click"), json!({}));
        };
        sign_in("not-the-right-token-at-all");
        driver.wait_for(
            "the form again, saying the token was refused",
            "return !document.getElementById('login').hidden \
             && document.getElementById('login-reason').textContent.includes('unknown token')",
        );
        // A token whose role cannot read is asked again too, saying why.
        sign_in("browser-metrics-token-0123");
        driver.wait_for(
            "the form again, saying the role does not read",
            "return !document.getElementById('login').hidden \
             && document.getElementById('login-reason').textContent.includes('role (metrics)')",
        );
        sign_in(TOKEN);
        // The scoped token sees its app's four events and no other.
        driver.wait_for(
            "the scoped rows",
            "return document.getElementById('login').hidden \
             && document.getElementById('count').textContent === '4' \
             && [...document.querySelectorAll('#rows li')].every(li => li.textContent.includes('browser'))",
        );
        let kept = driver.script(&format!(
            "return sessionStorage.getItem('sluice-token') === '{TOKEN}' \
             && performance.getEntriesByType('resource').every(e => !e.name.includes('{TOKEN}'))"
        ));
        assert_eq!(kept, Value::Bool(true), "token kept in sessionStorage, never in a URL");

        let tail = driver.element("#tail");
        driver.call("POST", &format!("/element/{tail}/click"), json!({}));
        let deadline = Instant::now() + TIMEOUT;
        let mut n = 0;
        loop {
            let lines = format!(
                "{{\"message\":\"hidden live {n}\",\"app\":\"other\"}}\n{{\"message\":\"guarded live {n}\",\"app\":\"browser\"}}\n"
            );
            assert_eq!(http(ingest, "POST", "/v1/logs", lines.as_bytes()).0, 200);
            let seen = driver.script(
                "return [...document.querySelectorAll('#rows li.live')].some(li => li.textContent.includes('guarded live'))",
            );
            if seen == Value::Bool(true) {
                break;
            }
            assert!(Instant::now() < deadline, "the live event never appeared");
            n += 1;
            std::thread::sleep(Duration::from_millis(200));
        }
        let leaked = driver.script(
            "return [...document.querySelectorAll('#rows li')].some(li => li.textContent.includes('hidden live'))",
        );
        assert_eq!(leaked, Value::Bool(false), "the tail showed another app");

        // A reload in the same tab asks nothing: the token is kept for the session.
        driver.call("POST", "/url", json!({"url": format!("http://{api}/")}));
        driver.wait_for(
            "rows without asking again",
            "return document.getElementById('login').hidden \
             && Number(document.getElementById('count').textContent) >= 4",
        );
    })
    .await
    .expect("browser test");
    router.stop().await;
}
