// The page's chart (loaded before app.js, sharing its globals: `state`, `$`, `formatTime`,
// `navigate`, `addFilter`, `term`): events per interval stacked by severity, drawn with
// uPlot; live events counted into it; a dragged span zooms into that range.
"use strict";

// Severity groups, most severe first: the chart's stacking order (bottom up), the legend's
// order, and the levels each stands for. Colours are opaque, so stacked bars never mix;
// app.css has the same values for the legend's swatches.
const GROUPS = [
  { name: "critical", levels: ["emergency", "alert", "critical", "fatal"], color: "#7b1fa2" },
  { name: "error", levels: ["error"], color: "#d32f2f" },
  { name: "warn", levels: ["warn"], color: "#f2a900" },
  { name: "info", levels: ["notice", "info"], color: "#1e88e5" },
  { name: "debug", levels: ["debug"], color: "#78909c" },
  { name: "trace", levels: ["trace"], color: "#b0bec5" },
  { name: "other", levels: [], color: "#8d6e63" },
];
const groupOf = (level) => GROUPS.find((g) => g.levels.includes(level)) || GROUPS[GROUPS.length - 1];

let chart = null;
let hist = null; // { times: [ms], interval, counts: { group: [n] }, levels: { group: Set } }
let drawPending = false;

// The bucket width the API picks for a span (`auto_interval` in src/store/http.rs): about
// 60 buckets, in steps that divide one another.
const STEPS_SECS = [1, 5, 10, 30, 60, 300, 600, 1800, 3600, 10800, 21600, 43200, 86400, 604800];
const bucketSecs = (spanSecs) => STEPS_SECS.find((s) => s >= spanSecs / 60) || 604800;

// A fixed range's buckets start at its `from` (the API would start them at the interval
// boundary before it, counting events the rows leave out): the widest step up to the
// automatic one that `from` is a multiple of.
function histogramParams() {
  const extra = { split: "level" };
  if (state.from) {
    const from = Date.parse(state.from) / 1000;
    const to = state.to ? Date.parse(state.to) / 1000 : Date.now() / 1000;
    const auto = bucketSecs(to - from);
    const step = STEPS_SECS.filter((s) => s <= auto).reverse().find((s) => from % s === 0);
    if (step) extra.interval = step + "s";
  }
  return extra;
}

function setHistogram(h) {
  const counts = {}, levels = {};
  for (const [level, values] of Object.entries(h.series)) {
    const g = groupOf(level).name;
    counts[g] ??= h.times_ms.map(() => 0);
    (levels[g] ??= new Set()).add(level);
    values.forEach((n, i) => { counts[g][i] += n; });
  }
  hist = { times: h.times_ms.slice(), interval: h.interval_ms, counts, levels };
}

// Moves the chart's window on to `now`: a range that follows the present ("last hour")
// slides, dropping its oldest buckets; a fixed range only grows up to its end.
function advance(now) {
  if (!hist || !hist.times.length) return;
  const slide = !state.from;
  while (hist.times[hist.times.length - 1] + hist.interval <= now) {
    hist.times.push(hist.times[hist.times.length - 1] + hist.interval);
    for (const c of Object.values(hist.counts)) c.push(0);
    if (slide && state.since) {
      hist.times.shift();
      for (const c of Object.values(hist.counts)) c.shift();
    }
  }
}

// A live event is counted into its bucket (the current minute's bar, for a recent one).
function countLive(event) {
  if (!hist || !hist.times.length) return;
  const t = Date.parse(event.timestamp);
  const ms = Number.isNaN(t) ? Date.now() : t;
  advance(Math.max(ms, Date.now()));
  const i = Math.floor((ms - hist.times[0]) / hist.interval);
  if (i < 0 || i >= hist.times.length) return;
  const level = String(event.level ?? "");
  const g = groupOf(level).name;
  hist.counts[g] ??= hist.times.map(() => 0);
  (hist.levels[g] ??= new Set()).add(level);
  hist.counts[g][i] += 1;
  scheduleDraw();
}

function scheduleDraw() {
  if (drawPending) return;
  drawPending = true;
  setTimeout(() => { drawPending = false; drawChart(); }, 250);
}

// Counts are whole: the linear axis never labels 0.5.
const COUNT_STEPS = [1, 2, 5].flatMap((m) => [1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7].map((p) => m * p))
  .sort((a, b) => a - b);

// Log scale: 0 stays 0, n > 0 becomes 1 + log10(n); the axis labels 1, 10, 100…
const scaled = (n) => (state.log ? (n > 0 ? 1 + Math.log10(n) : 0) : n);

function axisTime(splits, incr) {
  const precision = incr >= 86400 ? "date" : incr < 60 ? "second" : "minute";
  return splits.map((s) => {
    const text = formatTime(s * 1000, precision);
    return precision === "date" ? text : text.slice(11);
  });
}

function drawChart() {
  if (!hist) return;
  const groups = GROUPS.filter((g) => hist.counts[g.name]);
  const running = hist.times.map(() => 0);
  // Stacked, most severe at the bottom: each series is the running sum of itself and the
  // ones below; the tallest is drawn first so those below stay in front.
  const stacked = groups.map((g) => hist.counts[g.name].map((n, i) => (running[i] += n)));
  const xs = hist.times.map((t) => t / 1000);
  const x0 = xs.length ? xs[0] : Date.now() / 1000 - 3600;
  // The last bucket's bar starts at its time and is a whole interval wide: the range ends
  // after it, so the newest bar is never cut off.
  const x1 = xs.length ? xs[xs.length - 1] + hist.interval / 1000 : Date.now() / 1000;
  const top = Math.max(1, ...running);
  const series = groups.map((g) => ({
    label: g.name, stroke: g.color, fill: g.color, width: 0, points: { show: false },
    paths: uPlot.paths.bars({ size: [0.92, Infinity], align: 1 }),
  })).reverse();
  const data = [xs, ...stacked.map((s) => s.map(scaled)).reverse()];
  const el = $("chart");
  el.dataset.total = running.reduce((a, b) => a + b, 0);
  el.dataset.scale = state.log ? "log" : "linear";
  const yTop = state.log ? Math.ceil(scaled(top)) || 1 : top * 1.08;
  const opts = {
    width: Math.max(200, el.clientWidth), height: 180, legend: { show: false },
    tzDate: (ts) => (state.tz === "utc" ? uPlot.tzDate(new Date(ts * 1000), "Etc/UTC") : new Date(ts * 1000)),
    cursor: { drag: { x: true, y: false, setScale: false }, points: { show: false } },
    scales: { x: { time: true, range: () => [x0, x1] }, y: { range: () => [0, yTop] } },
    series: [{}, ...series],
    axes: [
      { space: 70, values: (u, splits, ax, space, incr) => axisTime(splits, incr) },
      state.log
        ? { size: 50, splits: () => Array.from({ length: yTop + 1 }, (_, k) => k),
            values: (u, splits) => splits.map((k) => (k === 0 ? "0" : String(10 ** (k - 1)))) }
        : { size: 50, incrs: COUNT_STEPS },
    ],
    hooks: { setSelect: [zoom] },
  };
  if (chart) chart.destroy();
  chart = new uPlot(opts, data, el);
  drawLegend(groups);
}


// Click-drag on the chart: the selected span becomes the range (a new URL state).
function zoom(u) {
  const { left, width } = u.select;
  if (width < 4) return;
  // Snapped to whole buckets of the chart the range will get, so that the chart (whose
  // buckets start on interval boundaries) and the rows count the same events.
  const a = u.posToVal(left, "x"), b = u.posToVal(left + width, "x");
  const step = bucketSecs(b - a);
  const from = Math.floor(a / step) * step * 1000;
  const to = Math.ceil(b / step) * step * 1000;
  u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
  navigate({ from: isoSeconds(from), to: isoSeconds(to), since: "", live: false });
}

function drawLegend(groups) {
  $("legend").replaceChildren(...groups.map((g) => {
    const li = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch g-" + g.name;
    const levels = [...hist.levels[g.name]];
    const named = levels.filter((l) => l && l !== "_other");
    if (g.name === "other" || named.length === 0) {
      li.append(swatch, g.name);
      return li;
    }
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.group = g.name;
    const filter = named.length === 1 ? term("level", named[0]) :
      "(" + named.map((l) => term("level", l)).join(" OR ") + ")";
    button.title = `add ${filter} to the query`;
    button.append(swatch, g.name);
    button.addEventListener("click", () => addFilter(filter));
    li.append(button);
    return li;
  }));
}
