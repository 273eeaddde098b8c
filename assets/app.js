// The store's web page: search (GET /v1/query), a chart of events per interval stacked by
// level (GET /v1/histogram, drawn with uPlot by chart.js), live tail (GET /v1/tail, a server-sent event
// stream read over fetch), and the pending and firing alerts (GET /v1/alerts, when the
// pipeline has alert rules).
//
// The page's state lives in its URL (`/?q=…&since=15m` or `from`/`to`, `live=1`,
// `tz=utc|local`, `log=1`): read at load, pushed on every search so that a search can be
// shared and bookmarked and back/forward restore it.
//
// When the API asks for a token (401), the page asks for it once, keeps it in
// sessionStorage (this tab only, gone when it closes) and sends it as a bearer header on
// every request; never in a URL. That is why the tail is read over fetch: EventSource
// cannot send headers.
"use strict";
const $ = (id) => document.getElementById(id);

const DEFAULT_SINCE = "1h";
const LIVE_ROWS = 1000;

let state = null;      // what the URL says
let generation = 0;    // bumped by every run; answers to an older run are dropped
let cursor = null, tailing = null, liveCount = 0;

// === state in the URL ===

function stateFromURL() {
  const p = new URLSearchParams(location.search);
  const from = p.get("from") || "", to = p.get("to") || "";
  let since = p.has("since") ? p.get("since") : DEFAULT_SINCE;
  if (since === "all" || from) since = "";
  return { q: p.get("q") || "", since, from, to: from ? to : "", live: p.get("live") === "1",
           tz: p.get("tz") === "local" ? "local" : "utc", log: p.get("log") === "1" };
}

function urlOf(s) {
  const p = new URLSearchParams();
  if (s.q) p.set("q", s.q);
  if (s.from) {
    p.set("from", s.from);
    if (s.to) p.set("to", s.to);
  } else {
    p.set("since", s.since || "all");
  }
  if (s.live) p.set("live", "1");
  p.set("tz", s.tz);
  if (s.log) p.set("log", "1");
  return "/?" + p.toString();
}

// Puts the state into the form's controls.
function showState() {
  $("q").value = state.q;
  const since = $("since");
  const value = state.from ? "range" : state.since;
  if (![...since.options].some((o) => o.value === value)) {
    since.add(new Option("last " + value, value), since.options.length - 1);
  }
  since.value = value;
  since.options[since.options.length - 1].hidden = !state.from;
  $("tail").checked = state.live;
  $("tz").value = state.tz;
  $("log").checked = state.log;
}

// A new state: pushed as a history entry (a search) or replacing the current one (a view
// setting), then shown.
function navigate(changes, { push = true, rerun = true } = {}) {
  state = { ...state, ...changes };
  // Live tail follows the present: a zoomed range in the past does not go with it.
  if (state.live && state.from) state = { ...state, since: DEFAULT_SINCE, from: "", to: "" };
  const url = urlOf(state);
  if (url !== location.pathname + location.search) {
    if (push) history.pushState(state, "", url);
    else history.replaceState(state, "", url);
  }
  showState();
  if (rerun) run();
  else render();
}

window.addEventListener("popstate", (e) => {
  state = e.state || stateFromURL();
  showState();
  run();
});

// === times, in the chosen zone ===

const pad = (n, w = 2) => String(n).padStart(w, "0");

function zoneName() {
  if (state.tz === "utc") return "UTC";
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
}

// "2026-12-06 18:41:52.123" (or shorter: "date", "minute", "second") in the chosen zone.
function formatTime(ms, precision = "ms") {
  const d = new Date(ms);
  const u = state.tz === "utc";
  const [Y, M, D, h, m, s, f] = u
    ? [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds()]
    : [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds(), d.getMilliseconds()];
  const date = `${Y}-${pad(M)}-${pad(D)}`;
  if (precision === "date") return date;
  const minute = `${date} ${pad(h)}:${pad(m)}`;
  if (precision === "minute") return minute;
  const second = `${minute}:${pad(s)}`;
  return precision === "second" ? second : `${second}.${pad(f, 3)}`;
}

const isoSeconds = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

function showRange() {
  let text;
  if (state.from) {
    const from = Date.parse(state.from);
    const to = state.to ? Date.parse(state.to) : Date.now();
    text = `${formatTime(from, "second")} – ${state.to ? formatTime(to, "second") : "now"}`;
  } else if (state.since) {
    const option = [...$("since").options].find((o) => o.value === state.since);
    text = `${option ? option.text : "last " + state.since} (to ${formatTime(Date.now(), "minute")})`;
  } else {
    text = "all events";
  }
  $("range").textContent = `${text}, ${zoneName()}`;
}

// === requests ===

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
  const p = new URLSearchParams({ q: state.q });
  if (state.from) {
    p.set("from", state.from);
    if (state.to) p.set("to", state.to);
  } else if (state.since) {
    p.set("since", state.since);
  }
  for (const [k, v] of Object.entries(extra || {})) p.set(k, v);
  return p;
}

async function getJSON(path, p) {
  const response = await authFetch(path + "?" + p.toString());
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

// === click to filter ===

function term(field, value) {
  return field + ":" + (/^[\w.\-@/]+$/.test(value) ? value : JSON.stringify(value));
}

// Adds a term to the query (once) and searches.
function addFilter(text) {
  const q = state.q.trim();
  if (q.split(/\s+/).includes(text)) return;
  navigate({ q: q ? `${q} ${text}` : text });
}

// === rows ===

function chip(cls, field, value) {
  if (!value) {
    const empty = document.createElement("span");
    empty.className = cls;
    return empty;
  }
  const button = document.createElement("button");
  button.type = "button";
  button.className = "chip " + cls;
  button.textContent = value;
  button.title = `add ${term(field, value)} to the query`;
  button.addEventListener("click", (e) => {
    e.stopPropagation();
    addFilter(term(field, value));
  });
  return button;
}

function row(event, live) {
  const li = document.createElement("li");
  if (live) li.className = "live";
  const level = String(event.level ?? "");
  const ms = Date.parse(event.timestamp);
  const time = document.createElement("time");
  time.className = "time";
  if (!Number.isNaN(ms)) {
    time.dateTime = new Date(ms).toISOString();
    time.textContent = formatTime(ms);
  } else {
    time.textContent = String(event.timestamp ?? "");
  }
  const message = document.createElement("span");
  message.className = "message";
  message.textContent = typeof event.message === "string" ? event.message : JSON.stringify(event.message ?? "");
  li.append(time, chip("level level-" + level, "level", level), chip("app", "app", String(event.app ?? "")), message);
  li.tabIndex = 0;
  li.addEventListener("keydown", (e) => {
    if (e.target === li && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); li.click(); }
  });
  li.addEventListener("click", () => {
    if (getSelection().toString()) return; // selecting text is not a click
    li.classList.toggle("open");
    li.setAttribute("aria-expanded", li.classList.contains("open"));
    if (li.classList.contains("open")) {
      const pre = document.createElement("pre");
      pre.textContent = JSON.stringify(event, null, 2);
      li.appendChild(pre);
    } else {
      li.querySelector("pre")?.remove();
    }
  });
  return li;
}

// Row times follow the time zone without a new search.
function retimeRows() {
  for (const t of document.querySelectorAll("#rows time[datetime]")) {
    t.textContent = formatTime(Date.parse(t.dateTime));
  }
}

// A federating router (docs/federation.md) says which peers did not answer; the page says
// so rather than passing a partial count off as the whole.
function showPartial(...answers) {
  const missing = answers.flatMap((a) => (a && a.missing) || []);
  const peers = [...new Set(missing.map((m) => m.peer + " (" + m.reason + ")"))];
  $("partial").textContent = peers.length
    ? "Partial result: no answer from " + peers.join(", ")
    : "";
}

function setCount(n, label) {
  $("count").textContent = n;
  $("count-label").textContent = label;
}

// === search ===

async function run() {
  const mine = ++generation;
  stopTail();
  document.body.dataset.mode = state.live ? "live" : "search";
  $("error").textContent = "";
  setCount("…", "searching");
  showRange();
  try {
    const [page, h] = await Promise.all([
      getJSON("/v1/query", params({ limit: 100 })),
      getJSON("/v1/histogram", params(histogramParams())),
    ]);
    if (mine !== generation) return;
    showPartial(page, h);
    $("rows").replaceChildren(...page.events.map((e) => row(e, false)));
    cursor = page.next_cursor || null;
    $("more").hidden = !cursor || state.live;
    setHistogram(h);
    if (state.live) {
      liveCount = 0;
      setCount(0, "new events since " + formatTime(Date.now(), "second") + " (live)");
      startTail(mine);
    } else {
      setCount(page.total, "events");
    }
    render();
  } catch (err) {
    if (mine === generation) $("error").textContent = err.message;
  }
}

async function more() {
  try {
    const p = params({ limit: 100 });
    if (cursor) p.set("cursor", cursor);
    const page = await getJSON("/v1/query", p);
    showPartial(page);
    $("rows").append(...page.events.map((e) => row(e, false)));
    cursor = page.next_cursor || null;
    $("more").hidden = !cursor;
  } catch (err) {
    $("error").textContent = err.message;
  }
}

function render() {
  showRange();
  retimeRows();
  drawChart();
}

// === live tail ===

function showLive(data) {
  let event;
  try { event = JSON.parse(data); } catch (_) { return; } // a malformed line is skipped
  $("rows").prepend(row(event, true));
  liveCount += 1;
  $("count").textContent = liveCount;
  while ($("rows").children.length > LIVE_ROWS) $("rows").lastChild.remove();
  countLive(event);
}

// Reads the tail's event stream until `abort` fires: `data:` lines are events, an
// `event: overflow` block says how many the page missed, `:` lines are keepalives.
async function readTail(abort) {
  const q = new URLSearchParams({ q: state.q }).toString();
  const response = await authFetch("/v1/tail?" + q, { signal: abort.signal });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.error || response.statusText);
  }
  document.body.dataset.tail = "open";
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
        if (data.length && kind === "partial") {
          showPartial(JSON.parse(data.join("\n")));
        } else if (data.length && kind === "overflow") {
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

let ticker = null;

function startTail(mine) {
  const abort = new AbortController();
  tailing = abort;
  // The window moves on with the clock even when no event arrives.
  ticker = setInterval(() => { advance(Date.now()); scheduleDraw(); }, 5000);
  readTail(abort).then(() => {
    if (mine === generation) $("error").textContent = "live tail ended: the router closed the stream";
  }, (err) => {
    if (!abort.signal.aborted) $("error").textContent = "live tail: " + err.message;
  }).finally(() => {
    if (tailing === abort || tailing === null) document.body.dataset.tail = "closed";
  });
}

function stopTail() {
  if (ticker) { clearInterval(ticker); ticker = null; }
  if (tailing) {
    const t = tailing;
    tailing = null;
    t.abort();
  }
}

// === alerts ===

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

// === controls ===

$("search").addEventListener("submit", (e) => {
  e.preventDefault();
  navigate({ q: $("q").value });
});
$("since").addEventListener("change", (e) => {
  if (e.target.value !== "range") navigate({ since: e.target.value, from: "", to: "" });
});
$("tail").addEventListener("change", (e) => navigate({ q: $("q").value, live: e.target.checked }));
$("tz").addEventListener("change", (e) => navigate({ tz: e.target.value }, { push: false, rerun: false }));
$("log").addEventListener("change", (e) => navigate({ log: e.target.checked }, { push: false, rerun: false }));
$("more").addEventListener("click", more);
window.addEventListener("resize", () => {
  if (chart) chart.setSize({ width: Math.max(200, $("chart").clientWidth), height: 180 });
});
// A range that follows the present redraws its chart now and then (rows stay as they are).
setInterval(async () => {
  if (state.live || state.from || !state.since) return;
  const mine = generation;
  try {
    const h = await getJSON("/v1/histogram", params(histogramParams()));
    if (mine === generation && !state.live) { setHistogram(h); drawChart(); }
  } catch (_) { /* the next search says what is wrong */ }
}, 30000);
setInterval(refreshAlerts, 5000);

state = stateFromURL();
history.replaceState(state, "", urlOf(state));
showState();
refreshAlerts();
run();
