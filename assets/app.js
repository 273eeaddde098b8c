// The store's web page: search (GET /v1/query), a chart of events per interval stacked by
// level (GET /v1/histogram, drawn with uPlot), live tail (GET /v1/tail, a server-sent event
// stream read over fetch), and the pending and firing alerts (GET /v1/alerts, when the
// pipeline has alert rules).
//
// When the API asks for a token (401), the page asks for it once, keeps it in
// sessionStorage (this tab only, gone when it closes) and sends it as a bearer header on
// every request; never in a URL. That is why the tail is read over fetch: EventSource
// cannot send headers.
"use strict";
const $ = (id) => document.getElementById(id);
const COLORS = { error: "#d33", critical: "#900", alert: "#900", emergency: "#600", warn: "#e90",
  notice: "#39c", info: "#3a3", debug: "#999", trace: "#bbb", "": "#ccc" };
let chart = null, cursor = null, tailing = null, total = 0;

const TOKEN_KEY = "sluice-token";
let asking = null;

// Shows the token form and resolves with what the user enters. Requests refused at the
// same time share one form.
function askToken(reason) {
  if (!asking) {
    asking = new Promise((resolve) => {
      $("login-reason").textContent = reason;
      $("login").hidden = false;
      $("token").focus();
      $("login").onsubmit = (e) => {
        e.preventDefault();
        const token = $("token").value.trim();
        sessionStorage.setItem(TOKEN_KEY, token);
        $("token").value = "";
        $("login").hidden = true;
        asking = null;
        resolve(token);
      };
    });
  }
  return asking;
}

// fetch with the stored token; on 401 (no token, or an unknown one) or 403 (a token whose
// role cannot read), asks for a token and tries again.
async function authFetch(url, options) {
  for (;;) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const headers = token ? { Authorization: "Bearer " + token } : {};
    const response = await fetch(url, { ...options, headers });
    if (response.status !== 401 && response.status !== 403) return response;
    const body = await response.json().catch(() => ({}));
    sessionStorage.removeItem(TOKEN_KEY);
    await askToken(token ? "That token was refused (" + (body.error || response.status) + ")." :
                           "This router asks for an API token.");
  }
}

function params(extra) {
  const p = new URLSearchParams({ q: $("q").value });
  if ($("since").value) p.set("since", $("since").value);
  for (const [k, v] of Object.entries(extra || {})) p.set(k, v);
  return p;
}

async function getJSON(path, p) {
  const response = await authFetch(path + "?" + p.toString());
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function row(event, live) {
  const li = document.createElement("li");
  if (live) li.className = "live";
  const level = String(event.level ?? "");
  const head = document.createElement("div");
  for (const [cls, text] of [["time", event.timestamp ?? ""], ["level level-" + level, level],
                             ["app", event.app ?? ""], ["message", event.message ?? ""]]) {
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = text + " ";
    head.appendChild(span);
  }
  li.appendChild(head);
  li.addEventListener("click", () => {
    li.classList.toggle("open");
    if (li.classList.contains("open") && !li.querySelector("pre")) {
      const pre = document.createElement("pre");
      pre.textContent = JSON.stringify(event, null, 2);
      li.appendChild(pre);
    } else if (!li.classList.contains("open")) {
      li.querySelector("pre")?.remove();
    }
  });
  return li;
}

function setCount(n) { total = n; $("count").textContent = n; }

async function search(more) {
  $("error").textContent = "";
  try {
    const p = params({ limit: 100 });
    if (more && cursor) p.set("cursor", cursor);
    const page = await getJSON("/v1/query", p);
    if (!more) $("rows").replaceChildren();
    for (const e of page.events) $("rows").appendChild(row(e, false));
    cursor = page.next_cursor || null;
    $("more").hidden = !cursor;
    setCount(page.total);
    if (!more) await drawChart();
  } catch (err) {
    $("error").textContent = err.message;
  }
}

async function drawChart() {
  const h = await getJSON("/v1/histogram", params({ split: "level" }));
  const names = Object.keys(h.series);
  // Stacked: each series is drawn as the running sum of itself and the ones before it.
  const running = h.times_ms.map(() => 0);
  const stacked = names.map((name) => h.series[name].map((n, i) => (running[i] += n)));
  const data = [h.times_ms.map((t) => t / 1000), ...stacked];
  const series = [{}, ...names.map((name) => ({
    label: name || "(none)", stroke: COLORS[name] || "#66c", fill: (COLORS[name] || "#66c") + "55",
    paths: uPlot.paths.bars({ size: [0.9] }), points: { show: false } }))];
  // Draw the highest stack first so lower levels stay visible in front.
  const width = Math.max(400, $("chart").clientWidth || 800);
  if (chart) chart.destroy();
  chart = new uPlot({ width, height: 180, series: [series[0], ...series.slice(1).reverse()],
                      axes: [{}, { size: 50 }], legend: { show: true } },
                    [data[0], ...data.slice(1).reverse()], $("chart"));
}

function showLive(data) {
  try {
    $("rows").prepend(row(JSON.parse(data), true));
    setCount(total + 1);
    while ($("rows").children.length > 1000) $("rows").lastChild.remove();
  } catch (_) { /* a malformed line is skipped */ }
}

// Reads the tail's event stream until `abort` fires: `data:` lines are events, an
// `event: overflow` block says how many the page missed, `:` lines are keepalives.
async function readTail(abort) {
  const q = new URLSearchParams({ q: $("q").value }).toString();
  const response = await authFetch("/v1/tail?" + q, { signal: abort.signal });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.error || response.statusText);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "", kind = "message", data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    pending += value;
    let end;
    while ((end = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, end);
      pending = pending.slice(end + 1);
      if (line === "") {
        if (data.length && kind === "overflow") {
          const n = JSON.parse(data.join("\n")).dropped;
          $("error").textContent = n + " live events skipped (the page fell behind)";
        } else if (data.length) {
          showLive(data.join("\n"));
        }
        kind = "message"; data = [];
      } else if (line.startsWith("event: ")) {
        kind = line.slice(7);
      } else if (line.startsWith("data: ")) {
        data.push(line.slice(6));
      }
    }
  }
}

function setTail(on) {
  if (tailing) { tailing.abort(); tailing = null; }
  if (!on) return;
  const abort = new AbortController();
  tailing = abort;
  readTail(abort).catch((err) => {
    if (!abort.signal.aborted) $("error").textContent = "live tail: " + err.message;
  });
}

async function refreshAlerts() {
  let alerts = [];
  try {
    const response = await authFetch("/v1/alerts");
    // 404: the pipeline has no alert rules.
    if (response.ok) alerts = (await response.json()).alerts;
  } catch (_) { /* the router is restarting: keep the page */ return; }
  $("alerts").hidden = alerts.length === 0;
  $("alert-list").replaceChildren(...alerts.map((a) => {
    const li = document.createElement("li");
    li.className = a.status;
    const group = Object.entries(a.group).map(([k, v]) => k + "=" + v).join(" ");
    li.textContent = `${a.status} ${a.rule} [${a.severity}] ${group} value ${a.value} since ${a.since}`;
    return li;
  }));
}

$("search").addEventListener("submit", (e) => { e.preventDefault(); search(false); if ($("tail").checked) setTail(true); });
$("since").addEventListener("change", () => search(false));
$("more").addEventListener("click", () => search(true));
$("tail").addEventListener("change", (e) => setTail(e.target.checked));
setInterval(() => { if (!$("tail").checked) drawChart().catch(() => {}); }, 30000);
setInterval(refreshAlerts, 5000);
refreshAlerts();
search(false);
