// The CISE dashboard: polls the JSON API (docs/api.md) and draws plain DOM and SVG.
// No dependencies, no build step. Money is integer token units (1 unit = €0.000001).
"use strict";

const FULL_EVERY_MS = 15000; // everything
const STATS_EVERY_MS = 2000; // payments per second
const FETCH_TIMEOUT_MS = 30000;
const SPARK_POINTS = 60;
const CLOSED_SHOWN = 16; // closed or settled channels listed under the open ones
const SVG_NS = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);
const assetNames = new Map(); // lowercased asset id -> its name
const names = new Map(); // lowercased address -> a readable name (asset agents, pools, operators)
const rates = []; // payments per second samples
let lastStats = null;
let loaded = false;

// -- formatting ------------------------------------------------------------------------------

// Token units as euros with all six decimals and thousands separators, like `cise.money.euro`.
function euro(units) {
  const n = BigInt(units);
  const abs = n < 0n ? -n : n;
  const whole = (abs / 1000000n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const frac = (abs % 1000000n).toString().padStart(6, "0");
  return `${n < 0n ? "-" : ""}€${whole}.${frac}`;
}
const euroShort = (units) => `€${(Number(units) / 1e6).toFixed(2)}`;
const short = (hex) => (hex && hex.length > 14 ? `${hex.slice(0, 6)}…${hex.slice(-4)}` : String(hex));
const who = (addr) => names.get(String(addr).toLowerCase()) || short(addr);
const tid = (kind, id) => `${kind}-${String(id).toLowerCase()}`;
const int = (n) => Number(n).toLocaleString("en-US");

// -- DOM and SVG helpers ---------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  return fill(node, attrs, children);
}
function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  return fill(node, attrs, children);
}
function fill(node, attrs, children) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === "text") node.textContent = v;
    else if (k === "testid") node.setAttribute("data-testid", v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) node.append(c);
  }
  return node;
}
function set(id, text) {
  $(id).textContent = text;
}

// -- fetching --------------------------------------------------------------------------------

async function api(path) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
  try {
    const response = await fetch(path, { signal: abort.signal, cache: "no-store" });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(`${path}: ${response.status} ${body.error || response.statusText}`);
    return body;
  } catch (err) {
    throw new Error(err.name === "AbortError" ? `${path}: no answer within ${FETCH_TIMEOUT_MS / 1000} s` : err.message);
  } finally {
    clearTimeout(timer);
  }
}

// One refresh's answers, so that each endpoint is asked once per turn (chain reads are slow).
let batch = null;
function get(path) {
  if (!batch) return api(path);
  if (!batch.has(path)) batch.set(path, api(path));
  return batch.get(path);
}

const problems = new Map(); // what failed -> message
function report(what, err) {
  if (err) problems.set(what, err.message || String(err));
  else problems.delete(what);
  const box = $("errors");
  box.replaceChildren(...[...problems.values()].map((m) => el("div", { text: m })));
  box.hidden = problems.size === 0;
}

// Run `draw` on the answers of `paths`; a failure shows on the page and in the section.
async function section(what, paths, draw, target) {
  try {
    const answers = await Promise.all(paths.map(get));
    await draw(...answers);
    report(what, null);
  } catch (err) {
    report(what, err);
    if (target) $(target).replaceChildren(el("div", { class: "bad", text: `${what}: ${err.message}` }));
  }
}

// -- sections --------------------------------------------------------------------------------

function drawNetwork(net, members) {
  $("network-line").replaceChildren(
    "chain ", el("b", { testid: "network-chain-id", text: net.chain_id }),
    " · block ", el("b", { testid: "network-block", text: int(net.block_number) }),
    ` · settle timeout ${net.settle_timeout} blocks`);
  set("members-count", int(members.count));
  const contracts = ["manager", "token", "registry", "membership", "governor", "financing_factory", "treasury"];
  $("network").replaceChildren(...contracts.filter((c) => net[c]).flatMap((c) => [
    el("dt", { text: c.replace(/_/g, " ") }), el("dd", { text: short(net[c]), title: net[c], class: "mono" }),
  ]));
  const params = Object.entries(net.parameters || {}).map(([k, v]) => {
    if (k.endsWith("_units")) return [k.slice(0, -6), euro(v)];
    if (k.endsWith("_s")) return [k.slice(0, -2), `${int(v)} s`];
    if (k.endsWith("_blocks")) return [k.slice(0, -7), `${int(v)} block${Number(v) === 1 ? "" : "s"}`];
    if (k.endsWith("_percent")) return [k.slice(0, -8), `${v} %`];
    if (v && typeof v === "object") return [k, v.uri || short(v.hash || JSON.stringify(v)), JSON.stringify(v)];
    return [k, String(v)];
  });
  if (!params.length) params.push(["(not governed)", "–"]);
  $("parameters").replaceChildren(...params.flatMap(([k, v, title]) => [
    el("dt", { text: k.replace(/_/g, " ") }), el("dd", { text: v, title: title || v, testid: `parameter-${k}` }),
  ]));
}

async function learnNames() {
  const [members, assets, pools, settlement] = await Promise.allSettled(
    ["/api/members", "/api/assets", "/api/pools", "/api/settlement"].map(get));
  const known = (addr, name) => addr && names.set(String(addr).toLowerCase(), name);
  for (const m of members.value?.members || []) {
    if (m.roles.length === 1) known(m.address, `${m.roles[0]} ${m.address.slice(2, 6)}`);
  }
  const hub = settlement.value?.status?.hub;
  if (hub) known(hub, "hub");
  for (const a of assets.value?.assets || []) {
    assetNames.set(String(a.asset_id).toLowerCase(), a.name);
    known(a.operator, `${a.name} operator`);
    known(a.agent, a.name);
  }
  for (const p of pools.value?.pools || []) known(p.pool, `pool ${assetName(p.asset_id)}`);
}

async function drawAssets(list) {
  list.assets.sort((a, b) => String(a.name).localeCompare(String(b.name)));
  set("assets-count", list.assets.length);
  set("uses-total", int(list.assets.reduce((s, a) => s + a.uses, 0)));
  set("revenue-total", euro(list.assets.reduce((s, a) => s + BigInt(a.revenue_units), 0n)));
  const details = await Promise.all(list.assets.map(async (summary) => {
    const id = summary.asset_id;
    const [detail, check] = await Promise.all([
      api(`/api/assets/${id}`).catch((err) => ({ ...summary, error: err.message })),
      api(`/api/assets/${id}/verification`).catch((err) => ({ ok: false, problem: err.message })),
    ]);
    return [detail, check];
  }));
  // One hour axis for every asset, from the first hour with uses to the last (at most 48 h).
  const hours = details.flatMap(([a]) => (a.revenue_by_hour || []).map((h) => Math.floor(h.t / 3600)));
  const first = Math.min(...hours), last = Math.min(Math.max(...hours), first + 47);
  const axis = hours.length ? Array.from({ length: last - first + 1 }, (_, i) => (first + i) * 3600) : [];
  $("assets").replaceChildren(...details.map(([a, check]) => assetCard(a, check, axis)));
}

function assetCard(a, check, axis) {
  const id = a.asset_id;
  const verified = check.ok
    ? el("span", { class: "badge good", testid: tid("ledger-verified", id), text: "verified" })
    : el("span", { class: "badge bad", testid: tid("ledger-verified", id), text: check.problem || "not verified", title: check.problem });
  return el("article", { class: "card", testid: tid("asset-card", id) },
    el("div", { class: "card-head" },
      el("h3", { text: a.name || short(id), title: id }), verified),
    el("div", { class: "numbers" },
      el("div", {}, el("label", { text: "uses" }), el("b", { testid: tid("asset-uses", id), text: int(a.uses) })),
      el("div", {}, el("label", { text: "revenue" }), el("b", { testid: tid("asset-revenue", id), text: euro(a.revenue_units) })),
      el("div", {}, el("label", { text: "anchored seq" }), el("b", { testid: tid("asset-anchored", id), text: a.anchored_to_seq ?? "–" })),
      el("div", {}, el("label", { text: "split" }), el("b", { text: `v${a.split_version}` })),
    ),
    a.error ? el("div", { class: "bad", text: a.error }) : null,
    el("h4", { text: "revenue per hour (UTC)" }),
    hourChart(a.revenue_by_hour || [], axis, tid("revenue-chart", id)),
    el("h4", { text: "income per beneficiary" }),
    incomeChart(a.income || [], tid("income-chart", id)),
  );
}

function hourChart(rows, axis, testid) {
  const W = 380, H = 96, left = 44, bottom = 16;
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", testid });
  if (!rows.length) return fill(chart, {}, [svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "axis", text: "no uses yet" })]);
  const byHour = new Map(rows.map((h) => [Math.floor(h.t / 3600) * 3600, h]));
  const max = Math.max(...rows.map((h) => Number(h.revenue_units)), 1);
  const slot = (W - left) / axis.length;
  const y = (v) => (H - bottom) * (1 - v / max);
  chart.append(
    svg("line", { x1: left, x2: W, y1: H - bottom, y2: H - bottom, class: "grid" }),
    svg("line", { x1: left, x2: W, y1: y(max), y2: y(max), class: "grid" }),
    svg("text", { x: left - 4, y: y(max) + 9, "text-anchor": "end", class: "axis", text: euroShort(max) }),
    svg("text", { x: left - 4, y: H - bottom, "text-anchor": "end", class: "axis", text: "€0" }),
  );
  const every = Math.ceil(axis.length / 8);
  axis.forEach((t, i) => {
    const x = left + i * slot;
    const h = byHour.get(t);
    if (h) {
      const v = Number(h.revenue_units);
      chart.append(svg("rect", { x: x + slot * 0.15, y: y(v), width: Math.max(slot * 0.7, 1), height: H - bottom - y(v), class: "bar" },
        svg("title", { text: `${hourLabel(t)}: ${h.uses} uses, ${euro(h.revenue_units)}` })));
    }
    if (i % every === 0) chart.append(svg("text", { x: x + slot / 2, y: H - 3, "text-anchor": "middle", class: "axis", text: hourLabel(t) }));
  });
  return chart;
}
const hourLabel = (t) => `${String(new Date(t * 1000).getUTCHours()).padStart(2, "0")}h`;

function incomeChart(income, testid) {
  const rowH = 18, W = 380, labelW = 92, valueW = 88;
  const rows = [...income].sort((a, b) => Number(b.units) - Number(a.units));
  const chart = svg("svg", { viewBox: `0 0 ${W} ${Math.max(rows.length, 1) * rowH}`, class: "chart", testid });
  const max = Math.max(...rows.map((r) => Number(r.units)), 1);
  rows.forEach((r, i) => {
    const y = i * rowH;
    const w = ((W - labelW - valueW) * Number(r.units)) / max;
    chart.append(
      svg("text", { x: 0, y: y + 13, class: "label", text: who(r.beneficiary) }, svg("title", { text: r.beneficiary })),
      svg("rect", { x: labelW, y: y + 3, width: Math.max(w, 1), height: rowH - 6, rx: 2, class: "bar alt" }),
      svg("text", { x: W, y: y + 13, "text-anchor": "end", class: "value", text: euro(r.units) }),
    );
  });
  return chart;
}

function drawChannels(body) {
  const list = body.channels.filter((c) => /^open/i.test(c.state));
  const others = body.channels.filter((c) => !/^open/i.test(c.state));
  const counts = {};
  for (const c of others) counts[c.state] = (counts[c.state] || 0) + 1;
  const summary = el("div", { class: "muted", testid: "channels-summary",
    text: `${body.channels.length} channels: ${list.length} open` + Object.entries(counts).map(([k, n]) => `, ${n} ${k}`).join("") });
  summary.title = others.map((c) => `${c.channel_id}: ${who(c.participant1)} ↔ ${who(c.participant2)} (${c.state})`).join("\n");
  const rowH = 18, W = 300, labelW = 128, mid = labelW + (W - labelW) / 2, half = (W - labelW) / 2 - 4;
  const side = (c, n) => BigInt(c[`deposit${n}_units`]) - BigInt(c[`withdrawn${n}_units`]);
  const max = Math.max(1, ...list.flatMap((c) => [Number(side(c, 1)), Number(side(c, 2)),
    Number(c.capacity1_units ?? 0), Number(c.capacity2_units ?? 0)]));
  const scale = (v) => (half * Math.max(0, Number(v))) / max; // a side can have withdrawn more than it put in
  const chart = svg("svg", { viewBox: `0 0 ${W} ${Math.max(list.length, 1) * rowH}`, class: "chart", testid: "channels-chart" });
  list.forEach((c, i) => {
    const y = i * rowH;
    const s1 = side(c, 1), s2 = side(c, 2);
    const tip = `channel ${c.channel_id} (${c.state}): ${who(c.participant1)} ${euro(s1)}` +
      (c.capacity1_units !== null ? ` (capacity ${euro(c.capacity1_units)})` : "") +
      ` · ${who(c.participant2)} ${euro(s2)}` + (c.capacity2_units !== null ? ` (capacity ${euro(c.capacity2_units)})` : "");
    const g = svg("g", { testid: tid("channel", c.channel_id) }, svg("title", { text: tip }),
      svg("text", { x: 0, y: y + 14, class: "label", text: `${who(c.participant1)} ↔ ${who(c.participant2)}` }),
      svg("rect", { x: mid - scale(s1), y: y + 4, width: scale(s1), height: rowH - 8, class: "bar" }),
      svg("rect", { x: mid, y: y + 4, width: scale(s2), height: rowH - 8, class: "bar alt" }),
    );
    if (c.capacity1_units !== null) g.append(svg("rect", { x: mid - scale(c.capacity1_units), y: y + 8, width: scale(c.capacity1_units), height: rowH - 16, class: "cap" }));
    if (c.capacity2_units !== null) g.append(svg("rect", { x: mid, y: y + 8, width: scale(c.capacity2_units), height: rowH - 16, class: "cap" }));
    chart.append(g);
  });
  chart.append(svg("line", { x1: mid, x2: mid, y1: 0, y2: list.length * rowH, class: "grid" }));
  const closed = others.slice(0, CLOSED_SHOWN).map((c) => el("div", { class: "closed", testid: tid("channel", c.channel_id),
    text: `#${c.channel_id} ${who(c.participant1)} ↔ ${who(c.participant2)} · ${c.state}` }));
  if (others.length > CLOSED_SHOWN) closed.push(el("div", { class: "closed", text: `and ${others.length - CLOSED_SHOWN} more` }));
  $("channels").replaceChildren(summary, ...(list.length ? [chart] : []), ...closed);
}

function drawSettlement(body) {
  const st = body.status;
  const last = body.rounds[0];
  set("next-due", st && st.next_due_at ? st.next_due_at.replace(" UTC", "") : "not scheduled");
  set("last-round", last ? `last: round ${last.round}, ${last.status}` : "no rounds yet");
  const parts = st ? [`hub ${st.hub_running ? "running" : "not running"}`, `owed now ${st.owed_to_counterparties}`] : ["no status from a hub"];
  if (st && st.period_s) parts.push(`every ${int(st.period_s)} s`);
  if (st && st.not_signing && st.not_signing.length) parts.push(`${st.not_signing.length} not signing`);
  set("settlement-status", parts.join(" · "));
  const rows = body.rounds.map((r) => el("tr", {},
    el("td", { text: r.round }),
    el("td", {}, el("span", { class: `badge ${r.status === "settled" || r.status === "empty" ? "good" : r.status === "failed" ? "bad" : ""}`, testid: `settlement-status-${r.round}`, text: r.status })),
    el("td", { text: `${r.signed}/${r.planned}` }),
    el("td", { class: "num", testid: `settlement-to-parties-${r.round}`, text: r.to_counterparties }),
    el("td", { class: "num", text: int(r.gas_used) }),
    el("td", { class: "num", text: r.gas_per_item ? int(r.gas_per_item) : "–" }),
  ));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 6, class: "muted", text: "no rounds yet" })));
  $("rounds").tBodies[0].replaceChildren(...rows);
}

function drawPools(body) {
  const bar = (label, value, total, testid) => el("div", { class: "progress-row" },
    el("label", { text: label }),
    el("div", { class: "progress" }, el("div", { style: `width:${Math.min(100, total > 0 ? (100 * Number(value)) / Number(total) : 0)}%` })),
    el("span", { class: "num" }, el("b", { testid, text: euro(value) }), ` / ${euro(total)}`));
  const cards = body.pools.map((p) => el("div", { class: "pool", testid: tid("pool", p.pool) },
    el("div", { class: "card-head" },
      el("h3", { title: p.pool, text: `pool ${short(p.pool)} · ${assetName(p.asset_id)}` }),
      el("span", { class: "badge", testid: tid("pool-status", p.pool), text: String(p.status) })),
    bar("raised", p.raised_units, p.target_units, tid("pool-raised", p.pool)),
    bar("repaid", p.repaid_units, p.cap_units, tid("pool-repaid", p.pool)),
    el("div", { class: "muted", text: `${p.contributors} contributors · beyond the cap, to the operator: ${euroShort(p.to_operator_units)}` }),
  ));
  $("pools").replaceChildren(...(cards.length ? cards : [el("div", { class: "muted", text: "no financing pools" })]));
}
const assetName = (id) => assetNames.get(String(id).toLowerCase()) || short(id);

// -- payments per second ---------------------------------------------------------------------

async function pollStats() {
  try {
    const s = await api("/api/stats");
    if (lastStats && s.time > lastStats.time) {
      rates.push(Math.max(0, (s.payments - lastStats.payments) / (s.time - lastStats.time)));
      if (rates.length > SPARK_POINTS) rates.shift();
      set("pps", rates[rates.length - 1].toFixed(1));
      drawSpark();
    }
    lastStats = s;
    report("stats", null);
  } catch (err) {
    report("stats", err);
  }
}

function drawSpark() {
  const W = 160, H = 36, max = Math.max(...rates, 1);
  const x = (i) => W - ((rates.length - 1 - i) * W) / (SPARK_POINTS - 1); // newest at the right
  const y = (r) => H - 2 - ((H - 4) * r) / max;
  const line = rates.map((r, i) => `${x(i)},${y(r)}`).join(" ");
  $("pps-spark").replaceChildren(
    svg("polygon", { points: `${x(0)},${H} ${line} ${W},${H}`, class: "spark-area" }),
    svg("polyline", { points: line, class: "spark" }),
    svg("line", { x1: 0, x2: W, y1: H - 1, y2: H - 1, class: "spark-base" }),
  );
}

// -- the loop --------------------------------------------------------------------------------

let busy = false;
async function refresh() {
  if (busy) return; // a slow answer: skip a turn rather than pile requests up
  busy = true;
  batch = new Map();
  try {
    await refreshAll();
  } finally {
    busy = false;
    batch = null;
  }
}

async function refreshAll() {
  // The names of asset agents, operators and pools label channels, pools and income bars.
  await learnNames(); // failures show in the sections below
  await Promise.all([
    section("network", ["/api/network", "/api/members"], drawNetwork, "network"),
    section("assets", ["/api/assets"], drawAssets, "assets"),
    section("pools", ["/api/pools"], drawPools, "pools"),
    section("channels", ["/api/channels"], drawChannels, "channels"),
    section("settlement", ["/api/settlement"], drawSettlement, "settlement-status"),
  ]);
  if (problems.has("network")) set("network-line", "network unavailable (see above)");
  set("updated", `updated ${new Date().toISOString().slice(11, 19)} UTC`);
  if (!loaded) {
    loaded = true;
    document.body.append(el("div", { testid: "loaded", id: "loaded", hidden: "" }));
  }
}

refresh();
pollStats();
setInterval(refresh, FULL_EVERY_MS);
setInterval(pollStats, STATS_EVERY_MS);
