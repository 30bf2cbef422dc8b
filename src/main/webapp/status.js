// The live status page: polls GET /status once a second and draws it. No build step, no library.
// With an API key set on the server, open the page as /#key=<key> (a fragment never reaches logs).
"use strict";
const key = new URLSearchParams(location.hash.slice(1)).get("key");
const $ = (id) => document.getElementById(id);
const int = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const one = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
const pct = (x) => one.format(100 * x) + "%";

function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return one.format(n) + " " + units[i];
}

function count(n) {
  return n >= 1e9 ? one.format(n / 1e9) + " B" : n >= 1e6 ? one.format(n / 1e6) + " M" : int.format(n);
}

function ago(ms) {
  const s = Math.max(0, (Date.now() - ms) / 1000);
  return s < 60 ? int.format(s) + " s ago" : s < 3600 ? int.format(s / 60) + " min ago" : new Date(ms).toLocaleTimeString();
}

function badge(el, text, kind) {
  el.textContent = text;
  el.className = "badge " + kind;
}

function drawChart(points) {
  const canvas = $("chart");
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * dpr;
  canvas.height = h * dpr;
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  const left = 56, bottom = 20, top = 8, span = 300;  // five minutes, one point a second
  const max = Math.max(10, ...points.map((p) => Math.max(p.sampled_per_s, p.computed_per_s))) * 1.1;
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = "#6b7280";
  g.strokeStyle = "#e3e6eb";
  for (let i = 0; i <= 4; i++) {
    const y = top + (h - top - bottom) * (1 - i / 4);
    g.beginPath(); g.moveTo(left, y); g.lineTo(w, y); g.stroke();
    g.textAlign = "right";
    g.fillText(count((max * i) / 4), left - 6, y + 4);
  }
  g.textAlign = "left";
  g.fillText("−5 min", left, h - 4);
  g.textAlign = "right";
  g.fillText("now", w, h - 4);
  const x = (i) => left + ((w - left) * (span - (points.length - 1 - i))) / span;
  const y = (v) => top + (h - top - bottom) * (1 - v / max);
  for (const [field, color] of [["computed_per_s", "#e0892b"], ["sampled_per_s", "#2f6fde"]]) {
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    points.forEach((p, i) => (i ? g.lineTo(x(i), y(p[field])) : g.moveTo(x(i), y(p[field]))));
    g.stroke();
  }
}

function render(s) {
  const phase = s.server.phase;
  badge($("phase"), phase, phase === "ready" ? "ok" : phase === "failed" ? "bad" : "warn");
  $("error").hidden = !s.server.failure;
  $("error").textContent = s.server.failure ? "The engine failed to start: " + s.server.failure : "";
  const up = s.server.uptime_s;
  $("server").textContent = "v" + s.server.version + ", up "
    + (up < 120 ? int.format(up) + " s" : up < 7200 ? int.format(up / 60) + " min" : one.format(up / 3600) + " h");
  if (!s.model) return;
  const m = s.model, e = s.engine, wts = s.weights;
  $("model-id").textContent = m.id;
  $("architecture").textContent = m.architecture;
  $("parameters").textContent = count(m.parameters) + " (" + bytes(m.weight_bytes) + ")";
  $("device").textContent = m.dtype + ", " + m.device;
  $("context").textContent = int.format(m.context_length) + " tokens";
  $("path").textContent = m.path;
  badge($("rl-state"), e.rl_state, e.rl_state === "serving" ? "ok" : e.rl_state === "released" ? "bad" : "warn");
  $("running").textContent = int.format(e.running);
  $("max-running").textContent = int.format(e.max_running);
  $("waiting").textContent = int.format(e.waiting);
  $("kv-usage").textContent = pct(e.kv_usage);
  $("kv-detail").textContent = int.format(e.kv_used_blocks) + " of " + int.format(e.kv_total_blocks) + " blocks of "
    + e.kv_block_size + " tokens";
  $("cache-hit").textContent = pct(e.prefix_cache_hit_rate);
  $("sampled-total").textContent = int.format(e.sampled_tokens);
  const points = s.throughput.points;
  $("tokens-per-s").textContent = points.length ? int.format(points[points.length - 1].sampled_per_s) : "–";
  $("weight-version").textContent = wts.version;
  const rows = wts.pushes.map((p) => "<tr><td>" + esc(p.version) + "</td><td>" + esc(p.transport) + "</td><td>" + int.format(p.tensors)
    + "</td><td>" + bytes(p.bytes) + "</td><td>" + one.format(p.seconds * 1000) + " ms</td><td>" + ago(p.at_ms) + "</td></tr>");
  $("pushes").innerHTML = rows.length ? rows.join("") : '<tr><td colspan="6" class="muted">no pushes yet</td></tr>';
  drawChart(points);
}

function esc(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

async function poll() {
  try {
    const r = await fetch("status", { headers: key ? { Authorization: "Bearer " + key } : {}, cache: "no-store" });
    if (r.status === 401) throw new Error("this server needs its API key: open the page as /#key=<key>");
    if (!r.ok) throw new Error("GET /status: " + r.status);
    render(await r.json());
  } catch (err) {
    badge($("phase"), "unreachable", "bad");
    $("error").hidden = false;
    $("error").textContent = String(err.message || err);
  }
  setTimeout(poll, 1000);
}
poll();
