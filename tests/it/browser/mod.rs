//! The web page in a real browser: headless Chromium driven through chromedriver's
//! WebDriver HTTP API. It loads a search from its URL, searches again and goes back and
//! forward through the history, turns live tail on (the count starts again, new events come
//! first and are counted into the chart) and off, and shows an alert rule firing; zooms by
//! dragging over the chart, adds a level or app to the query by clicking it, switches time
//! zone and scale; shows multi-line and long messages whole and fits a 420 px screen; a
//! router without a store shows a page saying so. With `[api] auth`, it asks for a token,
//! keeps it for the tab and sees only its token's apps.
//!
//! With `SLUICE_SCREENSHOTS=1` the tests also save screenshots of the main states under
//! docs/screenshots/ (shown in the README); otherwise they write nothing.

mod webdriver;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::store::http;
use crate::util::{have_tool, tempdir, Router, TIMEOUT};
use webdriver::start_chromedriver;

/// The result rows, as an array in the page's JavaScript.
const ROWS_ALL: &str = "[...document.querySelectorAll('#rows li')]";

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
        // A search given in the URL runs at load; the URL is written back whole.
        driver.call(
            "POST",
            "/url",
            json!({"url": format!("http://{api}/?q=level%3Aerror&since=1h")}),
        );
        let error_search = format!(
            "return {ROWS_ALL}.length === 10 \
             && document.getElementById('count').textContent === '10' \
             && document.getElementById('q').value === 'level:error' \
             && document.getElementById('since').value === '1h' \
             && location.search === '?q=level%3Aerror&since=1h&tz=utc' \
             && !!document.querySelector('#chart canvas') \
             && {ROWS_ALL}.every(li => li.textContent.includes('error'))"
        );
        driver.wait_for("ten error rows and the chart, from the URL", &error_search);
        // The page's policy lets no inline script run.
        let inline = driver.script(
            "const s = document.createElement('script'); s.textContent = 'window.inlineRan = true'; \
             document.head.appendChild(s); return window.inlineRan === undefined",
        );
        assert_eq!(inline, Value::Bool(true), "an inline script ran");
        // Rows expand to show every field.
        driver.click("#rows li .message");
        driver.wait_for(
            "an expanded row",
            "return !!document.querySelector('#rows li pre') && document.querySelector('#rows li pre').textContent.includes('\"app\": \"browser\"')",
        );

        // A new search is a new history entry; back and forward restore each.
        driver.type_into("#q", "level:warn");
        driver.click("#run");
        let warn_search = format!(
            "return {ROWS_ALL}.length === 10 \
             && document.getElementById('q').value === 'level:warn' \
             && location.search === '?q=level%3Awarn&since=1h&tz=utc' \
             && {ROWS_ALL}.every(li => li.textContent.includes('warn'))"
        );
        driver.wait_for("the warn search", &warn_search);
        driver.call("POST", "/back", json!({}));
        driver.wait_for("the error search again, after back", &error_search);
        driver.call("POST", "/forward", json!({}));
        driver.wait_for("the warn search again, after forward", &warn_search);
        driver.screenshot("search.png");

        // Live tail is a mode of its own: the current results stay, the count starts from 0
        // and counts what arrives, newest first, into the chart too.
        let chart_total = || -> u64 {
            driver
                .script("return Number(document.getElementById('chart').dataset.total)")
                .as_u64()
                .expect("chart total")
        };
        assert_eq!(chart_total(), 10, "the chart counts the warn events");
        driver.click("#tail");
        driver.wait_for(
            "live mode",
            &format!(
                "return document.body.dataset.mode === 'live' && document.body.dataset.tail === 'open' \
                 && location.search.includes('live=1') \
                 && document.getElementById('count').textContent === '0' \
                 && {ROWS_ALL}.length === 10"
            ),
        );
        // Ingest until the page shows an event (one posted before the stream was
        // registered is not live).
        let deadline = Instant::now() + TIMEOUT;
        let mut n = 0;
        loop {
            let line = format!(
                "{{\"message\":\"fresh from the tail {n}\",\"level\":\"warn\",\"app\":\"browser\"}}\n"
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
        let newest = "{\"message\":\"the newest of all\",\"level\":\"warn\",\"app\":\"browser\"}\n";
        assert_eq!(http(ingest, "POST", "/v1/logs", newest.as_bytes()).0, 200);
        driver.wait_for(
            "the newest event first, counted in the status and the chart",
            "return document.querySelector('#rows li').textContent.includes('the newest of all') \
             && Number(document.getElementById('count').textContent) === document.querySelectorAll('#rows li.live').length \
             && Number(document.getElementById('chart').dataset.total) === 10 + document.querySelectorAll('#rows li.live').length",
        );
        driver.screenshot("live.png");
        // Stopping closes the stream, leaves live mode and shows the search again.
        driver.click("#tail");
        driver.wait_for(
            "the tail stopped",
            "return document.body.dataset.mode === 'search' && document.body.dataset.tail === 'closed' \
             && !location.search.includes('live=') \
             && document.querySelectorAll('#rows li.live').length === 0 \
             && Number(document.getElementById('count').textContent) > 10",
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

/// Events at times spread over the last `minutes`, one per minute, cycling through levels
/// (one without any) and, per round of levels, two apps.
fn spread_events(minutes: i64) -> String {
    let now = chrono::Utc::now();
    let levels = ["critical", "error", "warn", "info", "debug", ""];
    let mut body = String::new();
    for i in 0..minutes {
        let at = (now - chrono::Duration::minutes(minutes - i))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let level = levels[i as usize % levels.len()];
        let level = if level.is_empty() {
            String::new()
        } else {
            format!(",\"level\":\"{level}\"")
        };
        let app = ["checkout", "search"][(i as usize / levels.len()) % 2];
        body.push_str(&format!(
            "{{\"timestamp\":\"{at}\",\"message\":\"order {i} handled\",\"app\":\"{app}\"{level}}}\n"
        ));
    }
    body
}

/// Dragging over the chart zooms into that span (a new URL state, undone by back); a level
/// in the legend and an app in a row add themselves to the query; the time zone switches
/// rows and range together; the log scale is a view setting kept in the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_page_zooms_filters_and_switches_zones() {
    if !have_tool("chromium") || !have_tool("chromedriver") {
        return;
    }
    let dir = tempdir();
    let router = Router::start(&format!(
        r#"
[api]
address = "127.0.0.1:0"

[sources.bz_in]
type = "http"
address = "127.0.0.1:0"
decoding = "json"

[sinks.bz_store]
type = "store"
inputs = ["bz_in"]
path = "{}"
commit_interval_ms = 20
"#,
        dir.path().join("store").display()
    ))
    .await;
    let (ingest, api): (SocketAddr, SocketAddr) = (router.addr("bz_in"), router.addr("api"));
    let profile = dir.path().join("chromium-profile");
    tokio::task::spawn_blocking(move || {
        let body = spread_events(48);
        assert_eq!(http(ingest, "POST", "/v1/logs", body.as_bytes()).0, 200);

        let driver = start_chromedriver(&profile);
        driver.call("POST", "/url", json!({"url": format!("http://{api}/")}));
        // The legend lists levels by severity, whatever their counts; events without a
        // level are "other", last.
        driver.wait_for(
            "48 events and the legend in severity order",
            "return document.getElementById('count').textContent === '48' \
             && [...document.querySelectorAll('#legend li')].map(li => li.textContent).join() === 'critical,error,warn,info,debug,other' \
             && location.search === '?since=1h&tz=utc'",
        );
        driver.screenshot("chart.png");

        // Rows and range in UTC, then in the local zone (Asia/Kolkata, +05:30).
        let times_in = |offset_ms: i64| {
            format!(
                "[...document.querySelectorAll('#rows time')].every(t => t.textContent === \
                 new Date(Date.parse(t.dateTime) + {offset_ms}).toISOString().replace('T', ' ').slice(0, 23))"
            )
        };
        driver.wait_for(
            "UTC rows",
            &format!(
                "return {} && document.getElementById('range').textContent.includes('UTC')",
                times_in(0)
            ),
        );
        driver.click("#tz option[value=local]");
        driver.wait_for(
            "local rows",
            &format!(
                "return {} && document.getElementById('range').textContent.endsWith(Intl.DateTimeFormat().resolvedOptions().timeZone) \
                 && location.search.includes('tz=local')",
                times_in(19_800_000)
            ),
        );
        driver.click("#log");
        driver.wait_for(
            "the log scale",
            "return document.getElementById('chart').dataset.scale === 'log' && location.search.includes('log=1')",
        );

        // Drag over the right half of the chart: a range of about the last half hour.
        let width = driver
            .script("return document.querySelector('#chart .u-over').clientWidth")
            .as_i64()
            .expect("chart width");
        driver.drag("#chart .u-over", 0, width / 2 - 1);
        driver.wait_for(
            "the zoomed range",
            "const p = new URLSearchParams(location.search); \
             const n = Number(document.getElementById('count').textContent); \
             return p.has('from') && p.has('to') && !p.has('since') \
               && document.getElementById('since').value === 'range' \
               && n > 10 && n < 40 && document.querySelectorAll('#rows li').length === n \
               && Number(document.getElementById('chart').dataset.total) === n \
               && document.getElementById('range').textContent.includes('–')",
        );
        driver.call("POST", "/back", json!({}));
        driver.wait_for(
            "the hour again, after back",
            "return location.search === '?since=1h&tz=local&log=1' \
             && document.getElementById('count').textContent === '48'",
        );

        // A level in the legend, then an app in a row, narrow the query.
        driver.click("#legend button[data-group=warn]");
        driver.wait_for(
            "the warn events",
            &format!(
                "return document.getElementById('q').value === 'level:warn' \
                 && new URLSearchParams(location.search).get('q') === 'level:warn' \
                 && {ROWS_ALL}.length === 8 && {ROWS_ALL}.every(li => li.querySelector('.level').textContent === 'warn')"
            ),
        );
        driver.click("#rows li .app");
        driver.wait_for(
            "the warn events of one app",
            &format!(
                "const q = document.getElementById('q').value; \
                 return /^level:warn app:(checkout|search)$/.test(q) \
                 && new URLSearchParams(location.search).get('q') === q \
                 && {ROWS_ALL}.length === 4 \
                 && {ROWS_ALL}.every(li => q.endsWith(li.querySelector('.app').textContent))"
            ),
        );
    })
    .await
    .expect("browser test");
    router.stop().await;
}

/// Multi-line messages keep their lines and indentation, long ones wrap, rows without a level
/// or app keep the columns, and at 420 px nothing is wider than the screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_page_shows_whole_messages_and_fits_a_phone() {
    if !have_tool("chromium") || !have_tool("chromedriver") {
        return;
    }
    let dir = tempdir();
    let router = Router::start(&format!(
        r#"
[api]
address = "127.0.0.1:0"

[sources.bn_in]
type = "http"
address = "127.0.0.1:0"
decoding = "json"

[sinks.bn_store]
type = "store"
inputs = ["bn_in"]
path = "{}"
commit_interval_ms = 20
"#,
        dir.path().join("store").display()
    ))
    .await;
    let (ingest, api): (SocketAddr, SocketAddr) = (router.addr("bn_in"), router.addr("api"));
    let profile = dir.path().join("chromium-profile");
    tokio::task::spawn_blocking(move || {
        let long = "a-very-long-token-".repeat(60);
        let body = format!(
            "{{\"message\":\"java.lang.IllegalStateException: boom\\n    at com.shop.Cart.add(Cart.java:42)\\n    at com.shop.Api.post(Api.java:7)\",\"level\":\"error\",\"app\":\"cart\"}}\n\
             {{\"message\":\"{long}\",\"level\":\"info\",\"app\":\"cart\"}}\n\
             {{\"message\":\"no level and no app\"}}\n\
             {{\"message\":\"an ordinary line\",\"level\":\"warning\",\"app\":\"a-rather-long-app-name\"}}\n"
        );
        assert_eq!(http(ingest, "POST", "/v1/logs", body.as_bytes()).0, 200);

        let driver = start_chromedriver(&profile);
        driver.call("POST", "/url", json!({"url": format!("http://{api}/")}));
        driver.wait_for(
            "four rows",
            &format!("return {ROWS_ALL}.length === 4"),
        );
        let whole_messages = "const ms = [...document.querySelectorAll('#rows .message')]; \
             const trace = ms.find(m => m.textContent.startsWith('java.lang')); \
             const long = ms.find(m => m.textContent.startsWith('a-very-long')); \
             const line = parseFloat(getComputedStyle(trace).lineHeight); \
             return trace.textContent.includes('\\n    at com.shop.Cart.add') \
               && getComputedStyle(trace).whiteSpace === 'pre-wrap' \
               && trace.getBoundingClientRect().height >= 2.5 * line \
               && long.scrollWidth <= long.clientWidth + 1 \
               && long.getBoundingClientRect().height >= 2.5 * line \
               && document.documentElement.scrollWidth <= innerWidth";
        driver.wait_for("whole messages", whole_messages);
        driver.wait_for(
            "messages in one column",
            "const lefts = [...document.querySelectorAll('#rows .message')].map(m => Math.round(m.getBoundingClientRect().left)); \
             return lefts.every(l => l === lefts[0])",
        );

        // A phone: 420 px wide.
        driver.call(
            "POST",
            "/goog/cdp/execute",
            json!({"cmd": "Emulation.setDeviceMetricsOverride",
                   "params": {"width": 420, "height": 900, "deviceScaleFactor": 1, "mobile": true}}),
        );
        driver.wait_for(
            "nothing wider than 420 px",
            "return innerWidth === 420 && document.documentElement.scrollWidth <= innerWidth \
             && [...document.querySelectorAll('header *, #status *, #chart canvas, #rows li')]\
                  .every(e => e.getBoundingClientRect().right <= innerWidth + 0.5)",
        );
        driver.wait_for("whole messages at 420 px", whole_messages);
        driver.screenshot("narrow.png");
    })
    .await
    .expect("browser test");
    router.stop().await;
}

/// A router without a store sink answers `/` with a page saying so, linking to /metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_page_without_a_store_says_so() {
    if !have_tool("chromium") || !have_tool("chromedriver") {
        return;
    }
    let dir = tempdir();
    let router = Router::start(
        r#"
[api]
address = "127.0.0.1:0"

[sources.bs_in]
type = "http"
address = "127.0.0.1:0"
decoding = "json"

[sinks.bs_out]
type = "blackhole"
inputs = ["bs_in"]
"#,
    )
    .await;
    let api = router.addr("api");
    let profile = dir.path().join("chromium-profile");
    tokio::task::spawn_blocking(move || {
        let driver = start_chromedriver(&profile);
        driver.call("POST", "/url", json!({"url": format!("http://{api}/")}));
        driver.wait_for(
            "the no-store page",
            "return document.contentType === 'text/html' \
             && document.querySelector('h1').textContent === 'Sluice' \
             && document.body.textContent.includes('no store sink') \
             && !!document.querySelector('a[href=\"/metrics\"]')",
        );
        driver.click("a[href=\"/metrics\"]");
        driver.wait_for(
            "the metrics",
            "return location.pathname === '/metrics' && document.body.textContent.includes('# TYPE')",
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
