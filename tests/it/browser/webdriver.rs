//! A WebDriver client for the browser tests: chromedriver started on a free port with
//! headless Chromium, JSON calls over plain HTTP, and the few actions the tests take
//! (click, type, drag, screenshot, wait for a condition in the page).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::TIMEOUT;

/// One WebDriver call; returns the `value` of the answer.
fn webdriver(port: u16, method: &str, path: &str, body: Value) -> Value {
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("chromedriver connects");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    // A GET carries no body.
    let body = if method == "GET" {
        String::new()
    } else {
        body.to_string()
    };
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

/// The key WebDriver names an element reference by.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

pub(super) struct Chromedriver {
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

pub(super) fn start_chromedriver(profile: &std::path::Path) -> Chromedriver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let child = std::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        // A local zone away from UTC, so that switching zones shows.
        .env("TZ", "Asia/Kolkata")
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
    pub(super) fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let session = self.session.as_deref().expect("session");
        webdriver(
            self.port,
            method,
            &format!("/session/{session}{path}"),
            body,
        )
    }

    pub(super) fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    pub(super) fn element(&self, css: &str) -> String {
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

    pub(super) fn click(&self, css: &str) {
        let id = self.element(css);
        self.call("POST", &format!("/element/{id}/click"), json!({}));
    }

    /// Replaces the text of the input `css` with `text`.
    pub(super) fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.call("POST", &format!("/element/{id}/clear"), json!({}));
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            json!({"text": text}),
        );
    }

    /// Drags the mouse across the element `css`, from `from_x` to `to_x` pixels off its
    /// centre, as a person selecting a span does.
    pub(super) fn drag(&self, css: &str, from_x: i64, to_x: i64) {
        let origin = json!({ (ELEMENT_KEY): self.element(css) });
        self.call(
            "POST",
            "/actions",
            json!({"actions": [{"type": "pointer", "id": "mouse",
                "parameters": {"pointerType": "mouse"}, "actions": [
                {"type": "pointerMove", "duration": 0, "origin": origin, "x": from_x, "y": 0},
                {"type": "pointerDown", "button": 0},
                {"type": "pointerMove", "duration": 150, "origin": origin, "x": (from_x + to_x) / 2, "y": 0},
                {"type": "pointerMove", "duration": 150, "origin": origin, "x": to_x, "y": 0},
                {"type": "pointerUp", "button": 0}]}]}),
        );
        self.call("DELETE", "/actions", json!({}));
    }

    /// With SLUICE_SCREENSHOTS=1, saves the page as docs/screenshots/`name`.
    pub(super) fn screenshot(&self, name: &str) {
        if std::env::var_os("SLUICE_SCREENSHOTS").is_none() {
            return;
        }
        use base64::Engine;
        let png = self.call("GET", "/screenshot", json!({}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64 png"))
            .expect("decodes");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(name), png).expect("screenshot written");
    }

    /// Polls `script` until it returns true; a signal the page gives, bounded in time.
    pub(super) fn wait_for(&self, what: &str, script: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while self.script(script) != Value::Bool(true) {
            let state = self.script(
                "const c = document.getElementById('chart'); \
                 return location.search + ' | chart ' + (c && c.dataset.total) + ' | rows ' + document.querySelectorAll('#rows li').length \
                   + ' | ' + (document.body ? document.body.innerText.slice(0, 400) : '')",
            );
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {state}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
