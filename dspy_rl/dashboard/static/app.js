/* dspy-rl dashboard: a small hash-routed page over the JSON API; charts with the vendored uPlot. */
"use strict";

const POLL_MS = parseInt(document.body.dataset.pollMs, 10) || 2000;
const PAGE_SIZE = parseInt(document.body.dataset.pageSize, 10) || 50;
const AUTH = document.body.dataset.auth === "1";
const page = document.getElementById("page");
const COLORS = ["#2563eb", "#16a34a", "#dc2626", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563", "#65a30d", "#9333ea"];
let timers = [];
let charts = [];
let generation = 0;

// ---------------------------------------------------------------------------------------------- helpers
function esc(s) {
  return String(s == null ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function fmt(v, digits) {
  if (v === null || v === undefined || (typeof v === "number" && !isFinite(v))) return "–";
  if (typeof v !== "number") return esc(v);
  const a = Math.abs(v);
  if (Number.isInteger(v) && a < 1e15) return v.toLocaleString("en-US");
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
  return v.toFixed(digits === undefined ? (a >= 100 ? 0 : 3) : digits);
}
function fmtRate(v) {
  // success rates and scores: always three decimals (JSON writes 0.0 as 0)
  return typeof v === "number" && isFinite(v) ? v.toFixed(3) : "–";
}
function fmtDuration(s) {
  if (s === null || s === undefined || !isFinite(s)) return "–";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return h ? `${h}h ${m}m` : m ? `${m}m ${sec}s` : `${sec}s`;
}
function fmtTime(t) {
  return t ? new Date(t * 1000).toLocaleString("en-GB", { hour12: false }) : "–";
}
function fmtBytes(b) {
  if (b >= 1 << 30) return (b / (1 << 30)).toFixed(2) + " GiB";
  if (b >= 1 << 20) return (b / (1 << 20)).toFixed(2) + " MiB";
  if (b >= 1 << 10) return (b / (1 << 10)).toFixed(1) + " KiB";
  return b + " B";
}
function pill(status) { return `<span class="pill ${esc(status)}">${esc(status)}</span>`; }
function card(k, v) { return `<div class="card"><div class="k">${esc(k)}</div><div class="v">${v}</div></div>`; }
function runLink(id) { return `#/run/${encodeURIComponent(id)}`; }
function sweepLink(id) { return `#/sweep/${encodeURIComponent(id)}`; }
function fileUrl(rel) { return "files/" + rel.split("/").map(encodeURIComponent).join("/"); }
function apiPath(id) { return id.split("/").map(encodeURIComponent).join("/"); }

class HttpError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}
async function api(path, opts) {
  const headers = { Accept: "application/json" };
  if (opts && opts.method === "POST") {
    headers["Content-Type"] = "application/json";
    const tok = localStorage.getItem("dspy-rl-token");
    if (tok) headers.Authorization = "Bearer " + tok;
  }
  const r = await fetch(path, Object.assign({ headers }, opts || {}));
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) throw new HttpError(r.status, (body && body.detail) || r.statusText);
  return body;
}
function every(ms, fn) {
  // one poll at a time: the next starts ms after the previous finished; stops when the page changes
  const gen = generation;
  const tick = async () => {
    if (gen !== generation) return;
    try {
      await fn();
      const stale = document.getElementById("stale");
      if (stale) stale.remove();
    } catch (e) {
      console.warn("live update failed", e);
      if (!document.getElementById("stale")) {
        page.insertAdjacentHTML("afterbegin", `<div class="warn" id="stale" data-testid="stale"></div>`);
      }
      document.getElementById("stale").textContent = `live update failed (${e.status ? "HTTP " + e.status + ": " : ""}${e.message}); retrying`;
    }
    if (gen === generation) timers.push(setTimeout(tick, ms));
  };
  timers.push(setTimeout(tick, ms));
}
function ready(name) { document.body.dataset.ready = name; }
function showError(e) {
  page.innerHTML = `<div class="error" data-testid="error">${esc(e.status ? `HTTP ${e.status}: ` : "")}${esc(e.message)}</div>`;
  ready("error");
}

// ------------------------------------------------------------------------------------------------ charts
function lineChart(el, title, xs, series, opts) {
  opts = opts || {};
  const box = document.createElement("div");
  box.className = "chart";
  box.innerHTML = `<h3>${esc(title)}</h3>`;
  el.appendChild(box);
  const width = Math.max(300, box.clientWidth - 16);
  if (!xs.length || !series.length) {
    box.insertAdjacentHTML("beforeend", `<p class="muted">no data yet</p>`);
    return null;
  }
  const cfg = {
    width, height: opts.height || 220,
    scales: { x: { time: !!opts.time, distr: opts.logX ? 3 : 1 }, y: opts.yRange ? { range: opts.yRange } : {} },
    axes: [{ label: opts.xLabel || "" }, { label: opts.yLabel || "", size: 60 }],
    series: [{ label: opts.xLabel || "x" }].concat(series.map((s, i) => ({
      label: s.label, stroke: s.color || COLORS[i % COLORS.length], width: s.width || 1.5,
      spanGaps: true, points: s.points ? { show: true, size: s.size || 6, fill: s.color || COLORS[i % COLORS.length] } : { show: false },
      paths: s.noLine ? () => null : undefined,
    }))),
    legend: { live: true },
  };
  const data = [xs].concat(series.map((s) => s.data));
  const u = new uPlot(cfg, data, box);
  charts.push(u);
  box.dataset.points = String(xs.length);
  return { u, box, update(xs2, series2) { u.setData([xs2].concat(series2.map((s) => s.data))); box.dataset.points = String(xs2.length); } };
}

// ---------------------------------------------------------------------------------------------- runs list
async function runsPage(params) {
  const status = params.get("status") || "";
  const q = params.get("q") || "";
  const pg = parseInt(params.get("page") || "1", 10);
  const qs = new URLSearchParams({ page: pg, page_size: PAGE_SIZE });
  if (status) qs.set("status", status);
  if (q) qs.set("q", q);
  const d = await api("api/rl/sessions?" + qs);
  const tabs = ["", "live", "finished", "failed"].map((s) => {
    const n = s ? d.counts[s] : d.counts.live + d.counts.finished + d.counts.failed;
    const p = new URLSearchParams({ status: s, q });
    return `<a href="#/runs?${p}" class="${s === status ? "sel" : ""}" data-filter="${s || "all"}">${s || "all"} (${n})</a>`;
  }).join(" · ");
  const rows = d.sessions.map((r) => `<tr data-run="${esc(r.id)}" title="${esc(r.status_detail)}">
      <td><a href="${runLink(r.id)}">${esc(r.id)}</a></td><td>${pill(r.status)}</td>
      <td>${esc(r.algorithm)}</td><td>${esc(r.env)}</td>
      <td class="num">${fmt(r.steps)}${r.budget ? ` / ${fmt(r.budget)}` : ""}</td>
      <td><span class="progress"><span style="width:${Math.min(100, 100 * (r.progress || 0)).toFixed(1)}%"></span></span></td>
      <td class="num">${fmt(r.env_steps_per_s, 0)}</td><td class="num">${fmtRate(r.success_rate)}</td>
      <td class="num">${fmtRate(r.eval_success_rate)}</td><td class="num">${r.status === "live" ? fmtDuration(r.eta_s) : "–"}</td>
      <td>${fmtTime(r.updated)}</td></tr>`).join("");
  const nav = [];
  if (pg > 1) nav.push(`<a href="#/runs?${new URLSearchParams({ status, q, page: pg - 1 })}" data-testid="prev">← newer</a>`);
  nav.push(`page ${d.page} of ${d.pages} (${fmt(d.total)} runs)`);
  if (pg < d.pages) nav.push(`<a href="#/runs?${new URLSearchParams({ status, q, page: pg + 1 })}" data-testid="next">older →</a>`);
  page.innerHTML = `<h1>Runs</h1>
    <div class="toolbar">${tabs}
      <form id="search"><input name="q" value="${esc(q)}" placeholder="filter by id"> <button>filter</button></form></div>
    <table data-testid="runs-table"><thead><tr><th>run</th><th>status</th><th>algorithm</th><th>env</th>
      <th class="num">steps</th><th>progress</th><th class="num">env steps/s</th><th class="num">success</th>
      <th class="num">eval success</th><th class="num">ETA</th><th>updated</th></tr></thead>
      <tbody>${rows || `<tr><td colspan="11" class="muted">no runs under this filter</td></tr>`}</tbody></table>
    <div class="toolbar" data-testid="pager">${nav.join(" · ")}</div>`;
  document.getElementById("search").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = new FormData(ev.target).get("q");
    location.hash = "#/runs?" + new URLSearchParams({ status, q: v });
  });
  if (d.counts.live) every(POLL_MS, () => route(true));
  ready("runs");
}

// ---------------------------------------------------------------------------------------------- one run
function column(rows, key, xkey) {
  return rows.map((r) => (typeof r[key] === "number" ? r[key] : null));
}
async function runPage(id) {
  const [detail, m] = await Promise.all([api("api/rl/sessions/" + apiPath(id)), api("api/rl/sessions/" + apiPath(id) + "/metrics")]);
  let rows = m.rows.filter((r) => r.success_rate !== undefined || r.loss !== undefined || r.reward_mean !== undefined);
  const evalRow = m.rows.find((r) => r.eval_success_rate !== undefined);
  let next = m.next;
  const x = detail.step_key;
  page.innerHTML = `<h1>${esc(id)}</h1>
    <div class="cards" id="cards"></div>
    <div id="corrupt"></div>
    <div class="charts" id="charts"></div>
    <h2>Resolved config</h2><pre data-testid="config">${esc(detail.config_text || "(no config.yaml)")}</pre>
    <h2>Checkpoints</h2><div id="ckpts"></div><div id="images"></div>`;
  const cardsEl = document.getElementById("cards");
  function renderCards(s, corrupt) {
    cardsEl.innerHTML = card("status", pill(s.status)) + card("algorithm", esc(s.algorithm)) + card("env", esc(s.env)) +
      card(x === "env_steps" ? "env steps" : "steps", `<span data-testid="steps">${fmt(s.steps)}</span>${s.budget ? ` <span class="muted">/ ${fmt(s.budget)}</span>` : ""}`) +
      card("env steps/s", fmt(s.env_steps_per_s, 0)) + card("success", fmtRate(s.success_rate)) +
      card("return", fmt(s.episode_return)) + (s.eval_success_rate !== null ? card("eval success", fmtRate(s.eval_success_rate)) : "") +
      card("ETA", s.status === "live" ? fmtDuration(s.eta_s) : "–") + card("wall", fmtDuration(s.wall_s));
    cardsEl.title = s.status_detail;
    document.getElementById("corrupt").innerHTML = corrupt
      ? `<div class="warn" data-testid="corrupt">${corrupt} corrupt line${corrupt === 1 ? "" : "s"} in metrics.jsonl skipped</div>` : "";
  }
  renderCards(detail, m.corrupt_lines);
  const chartsEl = document.getElementById("charts");
  const has = (k) => rows.some((r) => typeof r[k] === "number");
  const defs = [];
  const succ = ["success_rate", "iter_success_rate", "reward_mean"].filter(has);
  defs.push({ title: "Success rate" + (evalRow ? ` (final eval ${fmtRate(evalRow.eval_success_rate)})` : ""), keys: succ, yRange: succ.includes("reward_mean") ? undefined : [0, 1] });
  defs.push({ title: "Episode return", keys: ["episode_return", "return_A", "return_B", "return_C"].filter(has) });
  defs.push({ title: "Losses", keys: m.loss_keys.filter((k) => has(k) && !/entropy|clipfrac|grad_norm|approx_kl/.test(k)) });
  defs.push({ title: "Entropy / KL / clip fraction", keys: m.loss_keys.filter((k) => has(k) && /entropy|clipfrac|approx_kl/.test(k)) });
  defs.push({ title: "Env steps/s", keys: ["env_steps_per_s", "samples_per_s"].filter(has) });
  defs.push({ title: "Time per iteration: sample / learn / wait (s)", keys: ["sample_s", "learn_s", "wait_s"].filter(has) });
  const useKeys = ["sys/cpu_percent", "sys/ram_used_gb", "sys/gpu_util_percent", "sys/vram_used_mb", "cpu_percent", "ram_used_gb", "gpu_util_percent"].filter(has);
  if (useKeys.length) defs.push({ title: "CPU / RAM / GPU use", keys: useKeys });
  const made = defs.map((d) => {
    const xs = rows.map((r) => r[x]);
    const c = lineChart(chartsEl, d.title, xs, d.keys.map((k) => ({ label: k, data: column(rows, k) })), { xLabel: x, yRange: d.yRange });
    return { d, c };
  });
  let machineChart = null;
  if (!useKeys.length) {
    const st = await api("api/system/stats");
    const h = st.history;
    machineChart = lineChart(chartsEl, "Machine CPU / RAM / GPU use (sampled by the dashboard)", h.map((s) => s.t),
      machineSeries(h), { time: true, yLabel: "% / GB" });
  }
  const ck = detail.checkpoints.map((c) => `<tr><td><a href="${fileUrl(c.file)}">${esc(c.name)}</a></td><td class="num">${fmtBytes(c.bytes)}</td><td>${fmtTime(c.mtime)}</td></tr>`).join("");
  document.getElementById("ckpts").innerHTML = ck
    ? `<table data-testid="checkpoints"><thead><tr><th>file</th><th class="num">size</th><th>written</th></tr></thead><tbody>${ck}</tbody></table>`
    : `<p class="muted">no checkpoints</p>`;
  document.getElementById("images").innerHTML = detail.images.map((f) => `<h2>${esc(f.split("/").pop())}</h2><img class="plot" alt="${esc(f)}" src="${fileUrl(f)}">`).join("");
  let status = detail.status;
  if (status === "live") {
    every(POLL_MS, async () => {
      const inc = await api("api/rl/sessions/" + apiPath(id) + "/metrics?after=" + next);
      next = inc.next;
      const fresh = inc.rows.filter((r) => r.success_rate !== undefined || r.loss !== undefined || r.reward_mean !== undefined);
      renderCards(inc.summary, inc.corrupt_lines);
      if (fresh.length) {
        rows = rows.concat(fresh);
        const xs = rows.map((r) => r[x]);
        made.forEach(({ d, c }) => { if (c) c.update(xs, d.keys.map((k) => ({ data: column(rows, k) }))); });
      }
      if (machineChart) {
        const st = await api("api/system/stats");
        machineChart.update(st.history.map((s) => s.t), machineSeries(st.history).map((s) => ({ data: s.data })));
      }
      status = inc.summary.status;
      document.body.dataset.rows = String(rows.length);
    });
  }
  document.body.dataset.rows = String(rows.length);
  ready("run");
}
function machineSeries(h) {
  return [
    { label: "CPU %", data: h.map((s) => s.cpu_percent) },
    { label: "RAM used GB", data: h.map((s) => s.ram_used_gb) },
    { label: "GPU %", data: h.map((s) => (s.gpu_util_percent === undefined ? null : s.gpu_util_percent)) },
  ];
}

// ---------------------------------------------------------------------------------------------- performance
async function performancePage() {
  const [s, t] = await Promise.all([api("api/rl/performance/summary"), api("api/rl/performance/trends")]);
  const o = s.overall;
  const groups = s.by_algorithm_env.map((g) => `<tr><td>${esc(g.group)}</td><td class="num">${g.runs}</td><td class="num">${g.live}</td>
    <td class="num">${g.finished}</td><td class="num">${g.failed}</td><td class="num">${fmt(g.env_steps)}</td>
    <td class="num">${fmt(g.mean_env_steps_per_s, 0)}</td><td class="num">${fmt(g.best_success_rate)}</td></tr>`).join("");
  page.innerHTML = `<h1>Performance</h1><div class="cards">${card("runs", o.runs)}${card("live", o.live)}${card("finished", o.finished)}${card("failed", o.failed)}
    ${card("env steps", fmt(o.env_steps))}${card("mean env steps/s", fmt(o.mean_env_steps_per_s, 0))}${card("best success", fmt(o.best_success_rate))}</div>
    <table data-testid="perf-table"><thead><tr><th>algorithm / env</th><th class="num">runs</th><th class="num">live</th><th class="num">finished</th>
    <th class="num">failed</th><th class="num">env steps</th><th class="num">env steps/s</th><th class="num">best success</th></tr></thead><tbody>${groups}</tbody></table>
    <h2>Trends (runs in start order)</h2><div class="charts" id="charts"></div>`;
  const el = document.getElementById("charts");
  const p = t.points;
  const idx = p.map((_, i) => i + 1);
  lineChart(el, "Success rate per run", idx, [
    { label: "run", data: p.map((r) => r.success_rate), points: true, noLine: true },
    { label: `moving avg (${t.window})`, data: p.map((r) => r.success_rate_avg) }], { xLabel: "run #" });
  lineChart(el, "Env steps/s per run", idx, [
    { label: "run", data: p.map((r) => r.env_steps_per_s), points: true, noLine: true },
    { label: `moving avg (${t.window})`, data: p.map((r) => r.env_steps_per_s_avg) }], { xLabel: "run #" });
  ready("performance");
}

// ---------------------------------------------------------------------------------------------- sweeps
async function sweepsPage() {
  const d = await api("api/rl/sweeps");
  const rows = d.sweeps.map((s) => `<tr><td><a href="${sweepLink(s.id)}">${esc(s.id)}</a></td><td>${pill(s.status)}</td><td>${esc(s.name)}</td>
    <td>${esc(s.searcher)}</td><td>${esc(s.metric)} (${esc(s.mode)})</td><td>${esc(s.cost)}</td>
    <td class="num">${s.trials}${s.num_samples ? " / " + s.num_samples : ""}</td><td class="num">${s.errors}</td>
    <td class="num">${fmt(s.best_score)}</td><td class="num">${fmt(s.best_cost)}</td><td>${fmtTime(s.updated)}</td></tr>`).join("");
  page.innerHTML = `<h1>Sweeps</h1><table data-testid="sweeps-table"><thead><tr><th>sweep</th><th>status</th><th>name</th><th>searcher</th><th>metric</th>
    <th>cost</th><th class="num">trials</th><th class="num">errors</th><th class="num">best score</th><th class="num">its cost</th><th>updated</th></tr></thead>
    <tbody>${rows || `<tr><td colspan="11" class="muted">no sweeps under the runs directory</td></tr>`}</tbody></table>`;
  if (d.sweeps.some((s) => s.status === "live")) every(POLL_MS * 2, () => route(true));
  ready("sweeps");
}

async function sweepPage(id) {
  const s = await api("api/rl/sweeps/" + apiPath(id));
  const names = s.parameters;
  const trials = s.trials_table;
  const sign = s.mode === "max" ? -1 : 1;
  const ordered = trials.slice().sort((a, b) => (a.score === null) - (b.score === null) || sign * ((a.score || 0) - (b.score || 0)));
  const head = `<tr><th>#</th><th>trial</th>${names.map((n) => `<th>${esc(n)}</th>`).join("")}<th class="num">${esc(s.metric)}</th><th class="num">${esc(s.cost)}</th><th>status</th><th>Pareto</th></tr>`;
  const body = ordered.map((t) => `<tr class="${t.pareto ? "pareto" : ""}" data-trial="${esc(t.trial_id)}"><td class="num">${t.index + 1}</td>
    <td>${t.train_run ? `<a href="${runLink(id + "/" + t.train_run)}">${esc(t.trial_id)}</a>` : esc(t.trial_id)}</td>
    ${names.map((n) => `<td class="num">${fmt(t.config[n])}</td>`).join("")}<td class="num">${fmt(t.score)}</td><td class="num">${fmt(t.cost)}</td>
    <td>${pill(t.status)}</td><td>${t.pareto ? "★" : ""}</td></tr>`).join("");
  const imp = s.importance.slice().sort((a, b) => (b.share || 0) - (a.share || 0)).map((p) => `<tr><td>${esc(p.name)}</td>
    <td>${p.share === null ? `<span class="muted">needs 3 scored trials</span>` : `<span class="bar" style="width:${(200 * p.share).toFixed(0)}px"></span> ${(100 * p.share).toFixed(0)}%`}</td>
    <td class="num">${fmt(p.value)}</td><td class="muted">${esc(p.kind || "")}</td></tr>`).join("");
  page.innerHTML = `<h1>Sweep ${esc(id)}</h1>
    <div class="cards">${card("status", pill(s.status))}${card("searcher", esc(s.searcher))}${card("trials", `${s.trials}${s.num_samples ? " / " + s.num_samples : ""}`)}
      ${card("errors", s.errors)}${card("best " + s.metric, fmt(s.best_score))}${card("its " + s.cost, fmt(s.best_cost))}</div>
    ${s.best_config ? `<p>best config: <code>${esc(Object.entries(s.best_config).map(([k, v]) => `${k}=${typeof v === "number" ? fmt(v) : v}`).join(" "))}</code></p>` : ""}
    <div class="charts" id="charts"></div>
    <h2>Parameter importance</h2><table data-testid="importance"><thead><tr><th>parameter</th><th>share</th><th class="num">value</th><th>measure</th></tr></thead><tbody>${imp}</tbody></table>
    <h2>Trials (best first; ★ on the score/cost Pareto front)</h2><table data-testid="trials-table"><thead>${head}</thead><tbody>${body}</tbody></table>
    <h2>Sweep config</h2><pre>${esc(s.config_text)}</pre>`;
  const el = document.getElementById("charts");
  const h = s.history;
  lineChart(el, "Optimization history", h.map((r) => r.index + 1), [
    { label: s.metric, data: h.map((r) => r.score), points: true, noLine: true },
    { label: "best so far", data: h.map((r) => r.best) }], { xLabel: "trial #" });
  const pts = trials.filter((t) => t.score !== null && t.cost !== null).sort((a, b) => a.cost - b.cost);
  const costs = pts.map((t) => t.cost);
  const logX = costs.length > 1 && costs[0] > 0 && costs[costs.length - 1] / costs[0] > 100;
  lineChart(el, `${s.metric} vs ${s.cost} (Pareto front)`, costs, [
    { label: "trial", data: pts.map((t) => t.score), points: true, noLine: true },
    { label: "Pareto front", data: pts.map((t) => (t.pareto ? t.score : null)), points: true, color: "#dc2626", width: 2 }],
    { xLabel: s.cost + (logX ? " (log)" : ""), logX });
  if (s.status === "live") every(POLL_MS * 2, () => route(true));
  ready("sweep");
}

// ---------------------------------------------------------------------------------------------- auto mode
async function autoPage() {
  const st = await api("api/rl/status");
  if (!st.auto.available) {
    page.innerHTML = `<h1>GRPO auto mode</h1><div class="warn" data-testid="auto-unavailable">${esc(st.auto.reason)}</div>`;
    ready("auto");
    return;
  }
  const a = await api("api/grpo/auto/status");
  const cycles = a.cycles || [];
  const levels = Array.isArray(a.levels) ? a.levels : Object.keys(a.levels || {});
  const state = a.in_cycle ? "in a cycle" : a.running ? "running" : a.paused ? "paused" : "stopped";
  const lastOf = (lv) => { for (let i = cycles.length - 1; i >= 0; i--) { const l = (cycles[i].levels || {})[lv]; if (l && l.metrics) return l; } return null; };
  const levelRows = levels.map((lv) => { const l = lastOf(lv); const m = (l && l.metrics) || {};
    return `<tr><td>${esc(lv)}</td><td>${l ? esc(l.status) : "–"}</td><td class="num">${fmt(l ? l.groups_trained : null)}</td>
      <td class="num">${fmt(m.steps)}</td><td class="num">${fmt(m.reward_mean)}</td><td class="num">${fmt(m.loss)}</td><td class="num">${fmt(m.kl)}</td></tr>`; }).join("");
  const cycleRows = cycles.slice().reverse().map((c) => `<tr><td class="num">${fmt(c.cycle)}</td><td>${esc(c.status)}</td>
      <td>${fmtTime(c.started_at)}</td><td class="num">${fmtDuration(c.ended_at && c.started_at ? c.ended_at - c.started_at : null)}</td>
      ${levels.map((lv) => { const l = (c.levels || {})[lv]; return `<td>${l ? `${esc(l.status)}${l.groups !== undefined ? ` (${fmt(l.groups)} groups)` : ""}` : "–"}</td>`; }).join("")}
      <td class="wrap muted">${esc(c.reason || "")}</td></tr>`).join("");
  page.innerHTML = `<h1>GRPO auto mode</h1>
    <div class="cards">${card("state", `<span data-testid="auto-state">${esc(state)}</span>`)}${card("next cycle #", fmt(a.cycle))}
      ${card("cycles logged", fmt(cycles.length))}${card("period", fmtDuration(a.period_sec))}${card("next cycle at", a.next_cycle_at ? fmtTime(a.next_cycle_at) : "–")}
      ${card("control", esc(a.control || ""))}</div>
    ${a.control_error ? `<div class="warn">${esc(a.control_error)}</div>` : ""}
    <div class="toolbar"><button id="start" data-testid="auto-start">start</button><button id="stop" data-testid="auto-stop">stop</button><span id="ctl-msg" class="muted"></span></div>
    <h2>Levels</h2><table data-testid="levels"><thead><tr><th>level</th><th>last status</th><th class="num">groups trained</th><th class="num">steps</th>
      <th class="num">reward mean</th><th class="num">loss</th><th class="num">KL</th></tr></thead><tbody>${levelRows}</tbody></table>
    <div class="charts" id="charts"></div>
    <h2>Cycles (newest first)</h2><table data-testid="cycles"><thead><tr><th class="num">cycle</th><th>status</th><th>started</th><th class="num">took</th>
      ${levels.map((lv) => `<th>${esc(lv)}</th>`).join("")}<th>reason</th></tr></thead>
      <tbody>${cycleRows || `<tr><td colspan="${5 + levels.length}" class="muted">no cycles yet</td></tr>`}</tbody></table>
    <p class="muted">source: ${esc(a.source)}</p>`;
  const trained = cycles.filter((c) => c.levels && Object.values(c.levels).some((l) => l.metrics));
  lineChart(document.getElementById("charts"), "Reward mean per level", trained.map((c) => c.cycle),
    levels.map((lv) => ({ label: lv, data: trained.map((c) => { const l = c.levels[lv]; return l && l.metrics ? l.metrics.reward_mean : null; }), points: true })),
    { xLabel: "cycle" });
  for (const action of ["start", "stop"]) {
    document.getElementById(action).addEventListener("click", async () => {
      const msg = document.getElementById("ctl-msg");
      try { await api("api/grpo/auto/" + action, { method: "POST" }); msg.textContent = action + ": ok"; route(true); }
      catch (e) { msg.textContent = `${action}: HTTP ${e.status}: ${e.message}`; }
    });
  }
  every(POLL_MS * 2, () => route(true));
  ready("auto");
}

// ---------------------------------------------------------------------------------------------- trace store
async function tracesPage() {
  const d = await api("api/traces/summary");
  let html = `<h1>Trace store</h1>`;
  const s = d.store;
  if (!s) html += `<div class="warn" data-testid="store-missing">${esc(d.store_error)}</div>`;
  else {
    html += `<div class="cards">${card("spans", `<span data-testid="spans">${fmt(s.spans)}</span>`)}${card("traces", fmt(s.traces))}
      ${Object.entries(s.spans_by_kind).map(([k, v]) => card(k, fmt(v))).join("")}
      ${Object.entries(s.traces_by_status).map(([k, v]) => card("traces " + k, fmt(v))).join("")}${card("newest event", fmtTime(s.newest_ts))}</div>`;
  }
  const ing = d.ingest;
  if (ing) {
    html += `<h2>Ingester</h2><div class="cards">${card("events/s", fmt(ing.events_per_s, 1))}${card("events", fmt(ing.events))}${card("stored", fmt(ing.stored))}
      ${card("duplicates", fmt(ing.duplicates))}${card("DLQ", `<span data-testid="dlq">${fmt(ing.dlq)}</span>`)}${card("lag", fmt(ing.lag))}</div>
      <table data-testid="dlq-reasons"><thead><tr><th>DLQ reason</th><th class="num">count</th></tr></thead><tbody>
      ${Object.entries(ing.dlq_reasons).map(([k, v]) => `<tr><td>${esc(k)}</td><td class="num">${fmt(v)}</td></tr>`).join("") || `<tr><td class="muted" colspan="2">no dead letters</td></tr>`}</tbody></table>`;
  } else {
    html += `<p class="muted" data-testid="ingest-missing">${esc(d.ingest_error)}</p>`;
    if (!d.dlq) html += `<p class="muted">${esc(d.dlq_error)}</p>`;
  }
  const dl = d.dlq;
  if (dl) {
    html += `<h2>Dead letters (file bus)</h2><div class="cards">${card("DLQ", `<span data-testid="dlq-file">${fmt(dl.dlq)}</span>`)}</div>
      <table data-testid="dlq-file-reasons"><thead><tr><th>reason</th><th class="num">count</th></tr></thead><tbody>
      ${Object.entries(dl.dlq_reasons).map(([k, v]) => `<tr><td>${esc(k)}</td><td class="num">${fmt(v)}</td></tr>`).join("")}</tbody></table>
      <table><thead><tr><th>newest dead letters</th><th>where</th><th class="num">line / offset</th><th>at</th></tr></thead><tbody>
      ${dl.recent.map((r) => `<tr><td class="wrap">${esc(r.reason)}</td><td class="muted wrap">${esc(r.where)}</td><td class="num">${fmt(r.line)}</td><td>${fmtTime(r.failed_at)}</td></tr>`).join("")}</tbody></table>`;
  }
  html += `<div class="charts" id="charts"></div>`;
  if (s) {
    html += `<h2>Recent actions</h2><table data-testid="recent"><thead><tr><th>time</th><th>agent</th><th>kind</th><th>name</th><th class="num">reward</th><th>trace</th><th>attributes</th></tr></thead><tbody>
      ${s.recent.map((r) => `<tr><td>${fmtTime(r.start_ts)}</td><td>${esc(r.agent_id)}</td><td>${esc(r.kind)}</td><td>${esc(r.name)}</td><td class="num">${fmt(r.reward)}</td>
      <td>${esc(r.trace_id)}</td><td class="muted wrap">${esc(r.attributes)}</td></tr>`).join("")}</tbody></table>`;
  }
  page.innerHTML = html;
  const el = document.getElementById("charts");
  if (s) lineChart(el, `Events/s (event time, ${s.bucket_s}s buckets)`, s.events_per_s.map((p) => p.t), [{ label: "events/s", data: s.events_per_s.map((p) => p.events_per_s) }], { time: true });
  if (ing) lineChart(el, "Ingester events/s per snapshot", ing.history.map((p) => p.i), [{ label: "events/s", data: ing.history.map((p) => p.events_per_s) }, { label: "DLQ total", data: ing.history.map((p) => p.dlq) }], { xLabel: "snapshot" });
  every(POLL_MS * 2, () => route(true));
  ready("traces");
}

// ---------------------------------------------------------------------------------------------- system
async function systemPage() {
  const [st, g] = await Promise.all([api("api/system/stats"), api("api/system/guard")]);
  const n = st.now;
  page.innerHTML = `<h1>System</h1>
    <div class="cards">${card("CPU", fmt(n.cpu_percent, 1) + "%")}${card("RAM", `${fmt(n.ram_used_gb, 2)} / ${fmt(n.ram_total_gb, 1)} GB`)}
      ${card("disk free", fmt(n.disk_free_gb, 1) + " GB")}${card("GPU", n.gpu_util_percent === null ? "none" : fmt(n.gpu_util_percent, 0) + "%")}
      ${card("VRAM", n.vram_total_mb === null ? "none" : `${fmt(n.vram_used_mb, 0)} / ${fmt(n.vram_total_mb, 0)} MB`)}</div>
    <h2>Capacity guard</h2><div id="guard"></div>
    <div class="toolbar"><button id="recheck">check now</button></div>
    <div class="charts" id="charts"></div>`;
  function renderGuard(g) {
    const el = document.getElementById("guard");
    if (g.error) { el.innerHTML = `<div class="warn">guard check: HTTP ${esc(g.error.status)}: ${esc(g.error.message)}</div>`; return; }
    el.innerHTML = `<p>verdict: <span data-testid="guard-ok" class="ok-${g.ok}">${g.ok ? "room for a run" : "a run would be refused"}</span></p>
      <table data-testid="guard-table"><thead><tr><th>check</th><th class="num">value</th><th class="num">required</th><th>unit</th><th>ok</th><th>setting</th><th>detail</th></tr></thead><tbody>
      ${g.checks.map((c) => `<tr><td>${esc(c.name)}</td><td class="num">${fmt(c.value, 2)}</td><td class="num">${fmt(c.required)}</td><td>${esc(c.unit)}</td>
      <td class="ok-${c.ok}">${c.ok ? "ok" : "FAIL"}</td><td><code>${esc(c.setting)}</code></td><td class="muted">${esc(c.detail || "")}</td></tr>`).join("")}</tbody></table>`;
  }
  renderGuard(g);
  document.getElementById("recheck").addEventListener("click", async () => {
    renderGuard(await api("api/system/guard", { method: "POST", body: "{}" }).catch((e) => ({ error: e })));
  });
  const el = document.getElementById("charts");
  const h = st.history;
  const cpu = lineChart(el, "CPU %", h.map((s) => s.t), [{ label: "CPU %", data: h.map((s) => s.cpu_percent) }], { time: true, yRange: [0, 100] });
  const ram = lineChart(el, "RAM used (GB)", h.map((s) => s.t), [{ label: "RAM GB", data: h.map((s) => s.ram_used_gb) }], { time: true });
  const gpu = n.gpu_util_percent === null ? null : lineChart(el, "GPU % / VRAM MB", h.map((s) => s.t), [{ label: "GPU %", data: h.map((s) => s.gpu_util_percent) }, { label: "VRAM MB", data: h.map((s) => s.vram_used_mb) }], { time: true });
  every(POLL_MS, async () => {
    const s2 = await api("api/system/stats");
    const t = s2.history.map((s) => s.t);
    if (cpu) cpu.update(t, [{ data: s2.history.map((s) => s.cpu_percent) }]);
    if (ram) ram.update(t, [{ data: s2.history.map((s) => s.ram_used_gb) }]);
    if (gpu) gpu.update(t, [{ data: s2.history.map((s) => s.gpu_util_percent) }, { data: s2.history.map((s) => s.vram_used_mb) }]);
  });
  ready("system");
}

// ---------------------------------------------------------------------------------------------- router
async function route(refresh) {
  const hash = location.hash || "#/runs";
  const [path, query] = hash.slice(1).split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean);
  if (refresh && parts[0] !== "run") { /* full re-render of list pages */ }
  else if (refresh) return;
  timers.forEach(clearTimeout);
  timers = [];
  generation += 1;
  const keep = window.scrollY;
  charts.forEach((c) => c.destroy());
  charts = [];
  delete document.body.dataset.ready;
  document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("active", a.dataset.nav === (parts[0] === "run" ? "runs" : parts[0] === "sweep" ? "sweeps" : parts[0])));
  try {
    switch (parts[0] || "runs") {
      case "runs": await runsPage(params); break;
      case "run": await runPage(decodeURIComponent(parts.slice(1).join("/"))); break;
      case "performance": await performancePage(); break;
      case "sweeps": await sweepsPage(); break;
      case "sweep": await sweepPage(decodeURIComponent(parts.slice(1).join("/"))); break;
      case "auto": await autoPage(); break;
      case "traces": await tracesPage(); break;
      case "system": await systemPage(); break;
      default: throw new HttpError(404, `no page ${path}`);
    }
    if (refresh) window.scrollTo(0, keep);
  } catch (e) {
    showError(e);
  }
}

if (AUTH) {
  const box = document.getElementById("token-box");
  const input = document.getElementById("token");
  box.hidden = false;
  input.value = localStorage.getItem("dspy-rl-token") || "";
  input.addEventListener("change", () => localStorage.setItem("dspy-rl-token", input.value));
}
window.addEventListener("hashchange", () => route(false));
route(false);
