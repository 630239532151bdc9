"use strict";
// The dashboard: a read-only view over the same API and tokens as the CLI. The open tab refreshes every
// few seconds; plots are drawn by plotly.js (Plotly.react redraws in place, keeping zoom and hover).
const $ = (id) => document.getElementById(id);
const REFRESH_MS = 3000;
const RANGES = ["1h", "6h", "1d", "7d", "30d"];
const PALETTE = ["#3559e0", "#12805c", "#b54708", "#7a5af8", "#c11574", "#0e9384", "#667085", "#ca8504"];
let token = sessionStorage.getItem("gpufleet-token");
let who = null, range = "6h", timer = null;

const esc = (s) => String(s ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const when = (t) => t ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) : "-";
const num = (x) => (x ?? 0).toLocaleString("en-US", {maximumFractionDigits: 0});
const usd = (x) => x == null ? "-" : "$" + (Math.abs(x) >= 1e9 ? (x / 1e9).toFixed(2) + "B" : Math.abs(x) >= 1e6 ?
  (x / 1e6).toFixed(2) + "M" : Math.abs(x) >= 1000 ? num(x) : x.toFixed(2));
const hours = (x) => (x ?? 0) < 10 ? (x ?? 0).toFixed(2) : num(x);
const epoch = (d) => typeof d === "number" ? d : Date.parse(d.length <= 10 ? d + "T00:00:00Z" : d) / 1000;
const dates = (ts) => ts.map(t => new Date(t * 1000));
const ago = (t) => { const s = Date.now() / 1000 - t; return s < 120 ? `${s.toFixed(0)} s` : s < 7200 ? `${(s / 60).toFixed(0)} min` : `${(s / 3600).toFixed(1)} h`; };

class AuthError extends Error {}
async function api(path) {
  const r = await fetch(path, {headers: {Authorization: "Bearer " + token}});
  if (r.status === 401) throw new AuthError("token refused");
  if (!r.ok) return null;
  return (r.headers.get("content-type") || "").includes("json") ? r.json() : r.text();
}

function table(el, head, rows) {
  el.innerHTML = "<tr>" + head.map(h => `<th>${h}</th>`).join("") + "</tr>" +
    (rows.length ? rows.join("") : `<tr><td colspan="${head.length}" class="muted">none</td></tr>`);
}
function cards(el, items) {
  el.innerHTML = items.map(([label, value, cls]) => `<div class="metric"><b class="${cls || ""}">${value}</b><span>${label}</span></div>`).join("");
}
function titled(layout) {
  // plotly.js takes titles as {text}; write them as plain strings here.
  const t = (v) => typeof v === "string" ? {text: v} : v;
  const out = Object.assign({}, layout, layout.title ? {title: t(layout.title)} : {});
  for (const ax of ["xaxis", "yaxis"]) if (out[ax] && out[ax].title) out[ax] = Object.assign({}, out[ax], {title: t(out[ax].title)});
  return out;
}
function plot(id, traces, layout) {
  Plotly.react($(id), traces, Object.assign({margin: {l: 60, r: 20, t: 44, b: 40}, paper_bgcolor: "#fff",
    plot_bgcolor: "#fff", legend: {orientation: "h", y: -0.18}, font: {size: 12}}, titled(layout)),
    {displaylogo: false, responsive: true});
}
function sumBy(series, keyOf, col, n) {
  // Each group's series added up point by point (null where none of them has a value).
  const out = {};
  for (const s of series) {
    const k = keyOf(s), v = s[col] || [];
    out[k] = out[k] || new Array(n).fill(null);
    v.forEach((x, i) => { if (x != null) out[k][i] = (out[k][i] || 0) + x; });
  }
  return out;
}
const total = (series, col, n) => sumBy(series, () => "all", col, n).all || new Array(n).fill(null);

// -- Fleet ----------------------------------------------------------------------------------------------
async function fleetTab() {
  const [h, f, losses] = await Promise.all([api(`/v1/history?range=${range}`), api("/v1/fleet"), api("/v1/capacity")]);
  const n = h.t.length, x = dates(h.t);
  const last = (s, col) => (s[col] || [])[n - 1] || 0;
  const live = h.clusters.reduce((a, s) => a + last(s, "gpus"), 0), used = h.clusters.reduce((a, s) => a + last(s, "used"), 0);
  const failed = h.clusters.reduce((a, s) => a + last(s, "failed"), 0);
  cards($("fleet-cards"), [["GPUs in the fleet", num(live)], ["allocated", num(used)],
    ["free", num(Math.max(0, live - used - failed)), "ok"], ["failed", num(failed), failed ? "bad" : ""],
    ["clusters", num(f.clusters.length)], ["providers", num(new Set(f.clusters.map(c => c.provider)).size)]]);
  const byProv = sumBy(h.clusters, s => s.provider || "?", "used", n);
  const traces = Object.entries(byProv).map(([p, ys], i) => ({x, y: ys, name: `${p} allocated`, stackgroup: "used",
    line: {shape: "hv", width: 0.5, color: PALETTE[i % PALETTE.length]}}));
  traces.push({x, y: total(h.clusters, "gpus", n), name: "GPUs in the fleet", line: {shape: "hv", color: "#1d2433", dash: "dot"}});
  traces.push({x, y: total(h.clusters, "failed", n), name: "failed", line: {shape: "hv", color: "#c4320a"}});
  plot("chart-fleet", traces, {title: `GPUs allocated per provider, last ${range}`, yaxis: {title: "GPUs"}});
  const cl = h.clusters.filter(s => last(s, "gpus") > 0);
  const names = cl.map(s => s.name);
  plot("chart-clusters", [
    {type: "bar", orientation: "h", y: names, x: cl.map(s => last(s, "used")), name: "allocated", marker: {color: "#3559e0"}},
    {type: "bar", orientation: "h", y: names, x: cl.map(s => Math.max(0, last(s, "gpus") - last(s, "used") - last(s, "failed"))), name: "free", marker: {color: "#a6d4bd"}},
    {type: "bar", orientation: "h", y: names, x: cl.map(s => last(s, "failed")), name: "failed", marker: {color: "#c4320a"}}],
    {title: "Each cluster now", barmode: "stack", xaxis: {title: "GPUs"}, yaxis: {automargin: true}});
  domainsPlot(f.domains);
  table($("clusters"), ["cluster", "provider", "region", "GPU", "backend", "state", "GPUs", "free", "domains down"],
    f.clusters.map(c => `<tr><td>${esc(c.name)}</td><td>${esc(c.provider)}</td><td>${esc(c.region)}</td><td>${esc(c.gpu)}</td>
      <td>${esc(c.backend)}</td><td class="${c.up ? "up" : "down"}">${c.up ? "up" : "DOWN"}</td>
      <td class="num">${num(c.gpus)}</td><td class="num">${num(c.free_gpus)}</td><td class="num">${c.domains_down.length}</td></tr>`));
  table($("capacity"), ["scope", "target", "since", "reason"], (losses || []).map(c => `<tr><td>${esc(c.scope)}</td>
    <td>${esc(c.target)}${c.domain !== null ? " domain " + c.domain : ""}</td><td>${when(c.failed_at)}</td><td class="reason">${esc(c.reason)}</td></tr>`));
}

function domainsPlot(domains) {
  // One heatmap row per cluster: each cell is an NVLink domain, coloured by the share of its GPUs in use;
  // failed domains are grey (null), so a rack outage shows as a gap.
  const width = Math.max(1, ...domains.map(d => d.free.length));
  const z = [], text = [], y = [];
  for (const d of domains) {
    const down = new Set(d.down);
    const row = d.free.map((f, i) => (!d.up || down.has(i)) ? null : (d.usable - f) / d.usable);
    const tip = d.free.map((f, i) => (!d.up || down.has(i)) ? `domain ${i}: failed` : `domain ${i}: ${d.usable - f} of ${d.usable} GPUs in use`);
    z.push(row.concat(new Array(width - row.length).fill(null)));
    text.push(tip.concat(new Array(width - tip.length).fill("")));
    y.push(`${d.cluster} (${d.free.length} × ${d.usable})`);
  }
  plot("chart-domains", [{type: "heatmap", z, text, y, hoverinfo: "text+y", zmin: 0, zmax: 1, xgap: 1, ygap: 4,
    colorscale: [[0, "#e8f3ee"], [0.5, "#7fb7a0"], [1, "#1d4ed8"]], colorbar: {title: "in use", tickformat: ".0%"}}],
    {title: "NVLink domains of the largest clusters (grey: failed)", xaxis: {title: "domain", showgrid: false, tickformat: "d", dtick: width > 40 ? null : 1},
     yaxis: {automargin: true}, plot_bgcolor: "#c8ccd4"});
}

// -- Money ----------------------------------------------------------------------------------------------
async function moneyTab() {
  if (!who.admin) {
    $("money-note").textContent = "Spend and contracts are shown to admin tokens.";
    return;
  }
  const month = new Date(); month.setUTCDate(1); month.setUTCHours(0, 0, 0, 0);
  const [all, mon, h] = await Promise.all([api("/v1/spend"), api(`/v1/spend?since=${month.toISOString().slice(0, 19)}Z`),
    api(`/v1/history?range=${range}`)]);
  if (!all) { $("money-note").textContent = "No portfolio is loaded yet."; return; }
  $("money-note").textContent = `Billed under the contracts since ${when(all.since)} (the same numbers as gpufleet spend).`;
  const commits = all.contracts.filter(k => k.kind === "spend_commitment");
  const billed = all.until - all.since, early = billed < 86400;   // a pace over less than a day says little
  const risk = early ? [] : commits.filter(k => k.pace != null && Math.abs(1 - k.pace) > 0.1);
  cards($("money-cards"), [["spend this month", usd(mon ? mon.total_usd : null)], ["spend in all", usd(all.total_usd)],
    ["on demand", usd(all.on_demand_usd)], ["reserved, idle", usd(all.reserved_idle_usd), all.reserved_idle_usd > 0 ? "warn" : ""],
    ["commitments off pace", num(risk.length), risk.length ? "bad" : "ok"]]);
  plot("chart-providers", [{type: "bar", x: all.providers.map(p => p.provider), y: all.providers.map(p => p.usage_usd), name: "usage"},
    {type: "bar", x: all.providers.map(p => p.provider), y: all.providers.map(p => p.fees_usd), name: "fees"}],
    {title: "Spend per provider", barmode: "stack", yaxis: {title: "USD"}});
  const teams = all.teams || [];
  plot("chart-teams", [{type: "bar", x: teams.map(t => t.team), y: teams.map(t => t.usd), name: "USD",
    text: teams.map(t => `${hours(t.gpu_hours)} GPU-h`), hoverinfo: "x+y+text"}],
    {title: "Spend per team (its GPU-hours at each provider's billed rate)", yaxis: {title: "USD"}});
  burndown(commits, h);
  table($("contracts"), ["contract", "kind", "provider", "spent", "committed", "on schedule", "pace", "at term end at this pace"],
    all.contracts.map(k => {
      const projected = k.committed_usd != null && k.pace != null ? k.committed_usd * k.pace : null;
      const gap = projected == null ? "-" : early ? '<span class="muted">after a day of billing</span>' : projected < k.committed_usd ? `<span class="bad">${usd(k.committed_usd - projected)} wasted</span>`
        : `<span class="warn">${usd(projected - k.committed_usd)} over</span>`;
      return `<tr><td>${esc(k.contract)}</td><td>${esc(k.kind)}</td><td>${esc(k.provider)}</td><td class="num">${usd(k.usd)}</td>
        <td class="num">${usd(k.committed_usd)}</td><td class="num">${usd(k.on_schedule_usd)}</td>
        <td class="num">${k.pace == null ? "-" : (100 * k.pace).toFixed(0) + "%"}</td><td>${gap}</td></tr>`;
    }));
}

function burndown(commits, h) {
  // Dollars drawn on each commitment (sampled by the server) against its take-or-pay straight line.
  if (!commits.length) {
    plot("chart-burndown", [], {title: "Commitment burn-down: this portfolio has no spend commitments",
      xaxis: {visible: false}, yaxis: {visible: false}});
    return;
  }
  const x = dates(h.t), traces = [];
  commits.forEach((k, i) => {
    const s = h.contracts.find(c => c.name === k.contract), color = PALETTE[i % PALETTE.length];
    const t0 = epoch(k.start), t1 = epoch(k.end);
    traces.push({x, y: s ? s.usd : [], name: `${k.contract} drawn`, line: {shape: "hv", color}});
    traces.push({x, y: h.t.map(t => k.committed_usd * Math.min(1, Math.max(0, (t - t0) / (t1 - t0)))),
      name: `${k.contract} on schedule`, line: {dash: "dash", color}});
  });
  plot("chart-burndown", traces, {title: `Commitment burn-down, last ${range}`, yaxis: {title: "USD drawn"}});
}

// -- Work -----------------------------------------------------------------------------------------------
async function workTab() {
  const [jobs, events, h, f] = await Promise.all([api("/v1/jobs?active=true&newest=true&limit=500"),
    api("/v1/events?newest=true&limit=30"), api(`/v1/history?range=${range}`), api("/v1/fleet")]);
  const queued = jobs.filter(j => j.state === "queued").sort((a, b) => b.priority - a.priority || a.submitted_at - b.submitted_at);
  const running = jobs.filter(j => j.state !== "queued");
  const lost = jobs.reduce((a, j) => a + j.lost_gpu_hours, 0), restarts = jobs.reduce((a, j) => a + Math.max(0, j.attempt - 1), 0);
  cards($("work-cards"), [["queued", num(queued.length), queued.length ? "warn" : ""], ["running", num(running.length), "ok"],
    ["GPUs held", num(running.reduce((a, j) => a + j.gpus, 0))], ["restarts", num(restarts)], ["lost GPU-hours", hours(lost)]]);
  table($("queue"), ["id", "team", "name", "kind", "GPUs", "prio", "waiting", "why it waits"], queued.map(j => `<tr>
    <td>${j.id}</td><td>${esc(j.team)}</td><td>${esc(j.name)}</td><td>${esc(j.kind)}</td><td class="num">${num(j.gpus)}</td>
    <td class="num">${j.priority}</td><td>${ago(j.submitted_at)}</td><td class="reason">${esc(j.reason || "not tried yet")}</td></tr>`));
  // Gangs first (they hold whole tensor-parallel groups), then the largest.
  const held = running.slice().sort((a, b) => (b.kind === "training") - (a.kind === "training") || b.gpus - a.gpus);
  table($("gangs"), ["id", "team", "name", "kind", "GPUs", "clusters", "started", "restarts", "lost GPU-h"], held.map(j => `<tr>
    <td>${j.id}</td><td>${esc(j.team)}</td><td>${esc(j.name)}</td><td>${esc(j.kind)}</td><td class="num">${num(j.gpus)}</td>
    <td>${esc((j.clusters || []).join(", "))}</td><td>${when(j.started_at)}</td><td class="num">${Math.max(0, j.attempt - 1)}</td>
    <td class="num">${hours(j.lost_gpu_hours)}</td></tr>`));
  const x = dates(h.t);
  plot("chart-queue", h.teams.flatMap((t, i) => [
    {x, y: t.queued, name: `${t.name} queued`, line: {shape: "hv", dash: "dot", color: PALETTE[i % PALETTE.length]}},
    {x, y: t.running, name: `${t.name} running`, line: {shape: "hv", color: PALETTE[i % PALETTE.length]}}]),
    {title: `Jobs per team, last ${range}`, yaxis: {title: "jobs"}});
  sharesPlot(f);
  table($("events"), ["when", "kind", "job", "message"], events.map(e => `<tr><td>${when(e.at)}</td><td>${esc(e.kind)}</td>
    <td>${e.job_id ?? ""}</td><td class="reason">${esc(e.message)}</td></tr>`));
}

function sharesPlot(f) {
  if (!f.shares) { plot("chart-shares", [], {title: "Provider shares: admin tokens only"}); return; }
  const providers = [...new Set(f.clusters.map(c => c.provider))].sort();
  const classes = Object.keys(f.shares).sort();
  const traces = providers.map((p, i) => ({type: "bar", name: p, x: classes, marker: {color: PALETTE[i % PALETTE.length]},
    y: classes.map(k => { const by = f.shares[k], tot = Object.values(by).reduce((a, b) => a + b, 0); return tot ? (by[p] || 0) / tot : 0; })}));
  const shapes = f.caps.filter(c => classes.includes(c.class) || c.class === "all").flatMap(c =>
    (c.class === "all" ? classes : [c.class]).map(k => ({type: "line", xref: "x", yref: "y", x0: classes.indexOf(k) - 0.45,
      x1: classes.indexOf(k) + 0.45, y0: c.max_share, y1: c.max_share, line: {color: "#c4320a", width: 2, dash: "dash"}})));
  plot("chart-shares", traces, {title: "Provider share of each class's GPUs (dashed: cap)", barmode: "group",
    yaxis: {title: "share", tickformat: ".0%", range: [0, 1]}, shapes});
}

// -- Plans and simulation reports -------------------------------------------------------------------------
async function pageInto(frame, path) {
  const html = await api(path);
  frame.hidden = !html;
  if (html) frame.srcdoc = html;
}
async function plansTab() {
  if (!who.admin) { table($("plans"), ["plans are shown to admin tokens"], []); return; }
  const plans = await api("/v1/plans");
  table($("plans"), ["id", "made", "by", "horizon", "status", "objective", "gap"], plans.map(p => `<tr class="pick" data-plan="${p.id}">
    <td>${p.id}</td><td>${when(p.made_at)}</td><td>${esc(p.made_by)}</td><td>${esc(p.from)} … ${esc(p.to)}</td>
    <td>${esc(p.status)}</td><td class="num">${usd(p.objective_usd)}</td><td class="num">${(100 * p.gap).toFixed(2)}%</td></tr>`));
  document.querySelectorAll("tr[data-plan]").forEach(tr => tr.onclick = () => pageInto($("plan-page"), `/v1/plans/${tr.dataset.plan}/report`));
}
async function simulationsTab() {
  const reports = await api("/v1/reports");
  table($("reports"), ["id", "uploaded", "by", "title", "scenario", "runs"], reports.map(r => `<tr class="pick" data-report="${r.id}">
    <td>${r.id}</td><td>${when(r.at)}</td><td>${esc(r.actor)}</td><td>${esc(r.title)}</td><td>${esc(r.scenario)}</td><td class="num">${r.runs}</td></tr>`));
  document.querySelectorAll("tr[data-report]").forEach(tr => tr.onclick = () => pageInto($("report-page"), `/v1/reports/${tr.dataset.report}/report`));
}

// -- frame: log in, tabs, refresh -------------------------------------------------------------------------
const TABS = {fleet: fleetTab, money: moneyTab, work: workTab, plans: plansTab, simulations: simulationsTab};
const LIVE = new Set(["fleet", "money", "work"]);   // plans and reports change only when someone makes one
function current() { const t = location.hash.slice(1); return TABS[t] ? t : "fleet"; }

async function show() {
  const tab = current();
  document.querySelectorAll(".tab").forEach(el => el.classList.toggle("active", el.id === "tab-" + tab));
  document.querySelectorAll("nav a").forEach(a => a.classList.toggle("active", a.dataset.tab === tab));
  try {
    await TABS[tab]();
    document.body.dataset.loaded = tab;   // the page has drawn this tab with the server's data
  } catch (e) {
    if (e instanceof AuthError) { logout(e.message); return; }
    console.error(e);
  }
  clearTimeout(timer);
  if (LIVE.has(tab)) timer = setTimeout(show, REFRESH_MS);
}

async function login() {
  try {
    who = await api("/v1/whoami");
  } catch (e) { logout(e.message); return; }
  if (!who) { logout("the server did not answer"); return; }
  const pf = await api("/v1/portfolio");
  $("portfolio").textContent = pf ? `${pf.name} · version ${pf.version}` : "no portfolio loaded";
  $("who").textContent = who.admin ? `admin (${who.name})` : `team ${who.team}`;
  $("login").hidden = true; $("main").hidden = false; $("logout").hidden = false; $("tabs").hidden = false;
  $("ranges").innerHTML = RANGES.map(r => `<button data-range="${r}" class="${r === range ? "active" : ""}">${r}</button>`).join("");
  document.querySelectorAll("button[data-range]").forEach(b => b.onclick = () => {
    range = b.dataset.range;
    document.querySelectorAll("button[data-range]").forEach(x => x.classList.toggle("active", x === b));
    show();
  });
  show();
}
function logout(msg) {
  clearTimeout(timer);
  sessionStorage.removeItem("gpufleet-token"); token = null; who = null;
  $("main").hidden = true; $("logout").hidden = true; $("tabs").hidden = true; $("who").textContent = "";
  $("login").hidden = false; $("loginerror").textContent = msg || "";
}
$("tokenform").addEventListener("submit", (ev) => {
  ev.preventDefault(); token = $("token").value.trim(); sessionStorage.setItem("gpufleet-token", token); login();
});
$("logout").onclick = () => logout("");
window.addEventListener("hashchange", () => { if (who) show(); });
if (token) login(); else logout("");
