// The operators' dashboard: plain JavaScript, no build step, no third-party code.
// In development the page fetches an observer token from /dev/token; elsewhere paste a token
// once (it is kept in sessionStorage) or open the page as /#token=<jwt>.
"use strict";

const state = {
  token: null, chartData: {}, feedCount: 0, lastEventId: null, expired: false, decision: null,
};
const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
};
const fmt = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString("en"));

async function getToken() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) { sessionStorage.setItem("aidline.token", fromHash); return fromHash; }
  const stored = sessionStorage.getItem("aidline.token");
  if (stored) return stored;
  const res = await fetch("/dev/token");
  if (res.ok) return (await res.json()).token;
  const typed = prompt("Bearer token for the projection service:");
  if (typed) sessionStorage.setItem("aidline.token", typed);
  return typed;
}

async function api(path) {
  const res = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` } });
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return res.json();
}

function setStatus(text) { $("#status").textContent = text; }

// -- requirement board --------------------------------------------------------------------

function boardQuery() {
  const params = new URLSearchParams();
  for (const [k, v] of new FormData($("#board-filters"))) if (v) params.set(k, v);
  return params;
}

async function loadBoard() {
  const params = boardQuery();
  params.set("limit", "500");
  const data = await api(`/board/requirements?${params}`);
  const body = $("#board tbody");
  body.replaceChildren(...data.items.map((r) => el("tr", { "data-id": r.requirement_id },
    el("td", {}, r.requirement_id), el("td", { title: r.item_name || "" }, r.item_code),
    el("td", {}, r.capability), el("td", {}, r.priority), el("td", {}, r.needed_by || ""),
    el("td", {}, el("span", { class: `pill ${r.status}` }, r.status)),
    el("td", { class: "n" }, fmt(r.requested)), el("td", { class: "n" }, fmt(r.pledged)),
    el("td", { class: "n" }, fmt(r.allocated)), el("td", { class: "n" }, fmt(r.in_transit)),
    el("td", { class: "n" }, fmt(r.delivered)))));
}

async function downloadCsv(event) {
  event.preventDefault();
  const params = boardQuery();
  params.set("format", "csv");
  params.set("limit", "500"); // the API's page limit: the whole board is fetched page by page
  const parts = [];
  for (let offset = 0; ; offset += 500) {
    params.set("offset", String(offset));
    const res = await fetch(`/board/requirements?${params}`, { headers: { Authorization: `Bearer ${state.token}` } });
    if (!res.ok) throw new Error(`CSV export: HTTP ${res.status}`);
    const text = await res.text();
    const cut = text.indexOf("\n") + 1; // every page starts with the header line
    const rows = text.slice(cut);
    parts.push(offset === 0 ? text : rows);
    if (!rows.trim()) break;
  }
  saveCsv(parts, "requirements.csv");
}

function saveCsv(parts, name) {
  const url = URL.createObjectURL(new Blob(parts, { type: "text/csv" }));
  el("a", { href: url, download: name }).click();
  URL.revokeObjectURL(url);
}

// -- what changed between two days (the meeting pack) -------------------------------------

function changesQuery() {
  const params = new URLSearchParams();
  for (const [k, v] of new FormData($("#changes-form"))) if (v) params.set(k, v);
  return params;
}

async function loadChanges(event) {
  if (event) event.preventDefault();
  const params = changesQuery();
  params.set("limit", "500");
  const data = await api(`/changes?${params}`);
  $("#changes tbody").replaceChildren(...data.items.map((c) => el("tr", {},
    el("td", {}, c.date), el("td", {}, c.kind), el("td", {}, c.summary))));
  $("#changes-note").textContent =
    `${data.total} changes from ${data.from} to ${data.to}` + (data.next_offset !== null ? ` (first ${data.items.length})` : "");
}

async function downloadChangesCsv(event) {
  event.preventDefault();
  const params = changesQuery();
  params.set("format", "csv");
  params.set("limit", "500");
  const res = await fetch(`/changes?${params}`, { headers: { Authorization: `Bearer ${state.token}` } });
  if (!res.ok) throw new Error(`CSV export: HTTP ${res.status}`);
  saveCsv([await res.text()], "changes.csv");
}

// -- forum decisions and their execution --------------------------------------------------

const share = (x) => (x === null || x === undefined ? "—" : `${Math.round(x * 100)}%`);

async function loadDecisions() {
  const data = await api("/decisions?limit=100");
  $("#decisions tbody").replaceChildren(...data.items.map((d) => {
    const row = el("tr", { "data-id": d.decision_id, tabindex: "0" },
      el("td", {}, d.meeting_date || ""), el("td", {}, d.reference),
      el("td", { class: "n" }, fmt(d.requirements_endorsed)),
      el("td", { class: "n" }, fmt(d.pledges_confirmed)),
      el("td", { class: "n" }, fmt(d.endorsed_quantity)),
      el("td", { class: "n" }, fmt(d.allocated_quantity)),
      el("td", { class: "n" }, fmt(d.in_transit_quantity)),
      el("td", { class: "n" }, fmt(d.handed_over_quantity)),
      el("td", { class: "n" }, share(d.share_handed_over)),
      el("td", { class: "n" }, fmt(d.shortfalls)));
    if (d.decision_id === state.decision) row.classList.add("selected");
    row.addEventListener("click", () => showExecution(d.decision_id));
    row.addEventListener("keydown", (e) => { if (e.key === "Enter") showExecution(d.decision_id); });
    return row;
  }));
  if (state.decision) await showExecution(state.decision);
}

function stuckText(line) {
  const why = line.shortfall_reason ? ` (${line.shortfall_reason})` : "";
  return line.stuck.length ? `${line.stuck.join(", ")}${why}` : "";
}

function shipmentText(s) {
  // Only what the viewer's role sees of the shipment is in the answer (docs/access.md).
  const parts = [`${s.shipment_id} ${s.status} ${fmt(s.quantity)} at ${s.hub}`];
  if (s.held) parts.push(`held${s.inspection_notes ? `: ${s.inspection_notes}` : ""}`);
  if (s.delayed) parts.push(`delayed${s.new_eta ? ` to ${s.new_eta}` : ""}${s.delay_reason ? `: ${s.delay_reason}` : ""}`);
  if (s.lost_quantity) parts.push(`lost ${fmt(s.lost_quantity)}${s.loss_reason ? `: ${s.loss_reason}` : ""}`);
  return parts.join(" · ");
}

async function showExecution(decisionId) {
  state.decision = decisionId;
  for (const row of document.querySelectorAll("#decisions tbody tr")) {
    row.classList.toggle("selected", row.dataset.id === decisionId);
  }
  const x = await api(`/decisions/${encodeURIComponent(decisionId)}/execution`);
  $("#execution").hidden = false;
  $("#execution").dataset.id = decisionId;
  $("#execution-title").textContent = `${x.reference} (meeting ${x.meeting_date}): ` +
    `${x.requirements_endorsed} requirements endorsed, ${x.pledges_confirmed} pledges confirmed, ` +
    `${share(x.requirements.share_handed_over)} handed over`;
  const s = x.stuck;
  $("#execution-stuck").textContent = `Stuck: ${fmt(s.no_allocation.requirements)} requirements ` +
    `and ${fmt(s.no_allocation.pledges)} pledges without allocation (${fmt(s.no_allocation.quantity)}), ` +
    `${fmt(s.shortfall.requirements)} short (${fmt(s.shortfall.quantity)}); shipments held ` +
    `${fmt(s.held.shipments)} (${fmt(s.held.quantity)}), delayed ${fmt(s.delayed.shipments)} ` +
    `(${fmt(s.delayed.quantity)}), with losses ${fmt(s.lost.shipments)} (${fmt(s.lost.quantity)} lost)`;
  $("#execution-lines tbody").replaceChildren(...x.lines.map((line) => el("tr", { "data-id": line.subject },
    el("td", {}, `${line.kind} ${line.subject}`), el("td", {}, line.item_code),
    el("td", {}, el("span", { class: `pill ${line.status}` }, line.status)),
    ...["confirmed", "allocated", "dispatched", "at_hub", "handed_over", "received", "lost"]
      .map((k) => el("td", { class: "n" }, fmt(line[k]))),
    el("td", { class: "n" }, fmt(line.days_to_handed_over)),
    el("td", { class: "stuck" }, stuckText(line)))));
  const shipments = x.shipments.map((sh) => el("li", { "data-id": sh.shipment_id }, shipmentText(sh)));
  $("#execution-shipments").replaceChildren(...(shipments.length ? shipments
    : [el("li", {}, "no shipment of it is yours to see (figures above)")]));
}

async function downloadExecutionCsv(event) {
  event.preventDefault();
  const id = $("#execution").dataset.id;
  const res = await fetch(`/decisions/${encodeURIComponent(id)}/execution?format=csv`,
    { headers: { Authorization: `Bearer ${state.token}` } });
  if (!res.ok) throw new Error(`CSV export: HTTP ${res.status}`);
  saveCsv([await res.text()], `decision-${id}.csv`);
}

// -- capability gaps and the chart --------------------------------------------------------

async function loadGaps() {
  const data = await api("/capabilities/gaps");
  $("#gaps tbody").replaceChildren(...data.capabilities.map((c) => el("tr", {},
    el("td", {}, c.capability), el("td", { class: "n" }, fmt(c.need)),
    el("td", { class: "n" }, fmt(c.pledged)), el("td", { class: "n" }, fmt(c.allocated)),
    el("td", { class: "n" }, fmt(c.delivered)), el("td", { class: "n" }, fmt(c.unmet)))));
  $("#critical").replaceChildren(...data.top_unmet_critical.map((r) =>
    el("li", {}, `${r.requirement_id} — ${r.item_name || r.item_code}: ${fmt(r.uncovered)} ${r.unit} uncovered, needed by ${r.needed_by || "?"}`)));
  const capSelect = document.querySelector("#board-filters select[name=capability]");
  const known = new Set([...capSelect.options].map((o) => o.value));
  for (const c of data.capabilities) if (!known.has(c.capability)) capSelect.append(el("option", {}, c.capability));
  state.chartData = data.over_time;
  const chartSelect = $("#chart-capability");
  const current = chartSelect.value;
  chartSelect.replaceChildren(...Object.keys(data.over_time).map((c) => el("option", {}, c)));
  if (current && data.over_time[current]) chartSelect.value = current;
  drawChart();
}

function drawChart() {
  const points = state.chartData[$("#chart-capability").value] || [];
  const W = 460, H = 220, L = 56, B = 28, T = 10, R = 10;
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("width", "100%");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "pledged vs delivered over time");
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
  };
  if (!points.length) {
    add("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no pledges or deliveries yet");
  } else {
    const days = points.map((p) => Date.parse(p.day));
    const x0 = Math.min(...days), x1 = Math.max(...days);
    const yMax = Math.max(1, ...points.map((p) => Math.max(p.pledged, p.delivered)));
    // One day only: put it in the middle rather than on the axis.
    const x = (d) => (x1 === x0 ? (L + W - R) / 2 : L + ((d - x0) / (x1 - x0)) * (W - L - R));
    const y = (v) => H - B - (v / yMax) * (H - B - T);
    add("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#bbb" });
    add("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#bbb" });
    add("text", { x: L - 6, y: T + 8, "text-anchor": "end" }, fmt(yMax));
    add("text", { x: L - 6, y: H - B, "text-anchor": "end" }, "0");
    add("text", { x: L, y: H - 8 }, points[0].day);
    add("text", { x: W - R, y: H - 8, "text-anchor": "end" }, points[points.length - 1].day);
    // Days are business time (when pledged, when handed over): an import of years of
    // commitments spans years, so each new year gets a tick (labelled when there is room).
    const first = new Date(x0).getUTCFullYear() + 1, last = new Date(x1).getUTCFullYear();
    const every = Math.max(1, Math.ceil((last - first + 1) / 6));
    for (let year = first; year <= last; year++) {
      const xt = x(Date.UTC(year, 0, 1));
      add("line", { x1: xt, y1: T, x2: xt, y2: H - B, stroke: "#eee", class: "year-tick" });
      if ((year - first) % every === 0 && xt - L > 40 && W - R - xt > 70) {
        add("text", { x: xt, y: H - B + 12, "text-anchor": "middle", class: "year-label" }, String(year));
      }
    }
    for (const [key, colour] of [["pledged", "#1f5fa8"], ["delivered", "#2e7d32"]]) {
      const path = points.map((p, i) => `${i ? "L" : "M"}${x(days[i]).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ");
      add("path", { d: path, fill: "none", stroke: colour, "stroke-width": 2, class: `series-${key}` });
      // Markers too, so a series of one day still shows.
      points.forEach((p, i) => add("circle", { cx: x(days[i]).toFixed(1), cy: y(p[key]).toFixed(1), r: 3, fill: colour }));
    }
  }
  const legend = el("div", { class: "legend" },
    el("span", {}, el("i", { class: "swatch pledged" }), "pledged (cumulative)"),
    el("span", {}, el("i", { class: "swatch delivered" }), "delivered (cumulative)"));
  $("#chart").replaceChildren(svg, legend);
}

// -- donor ledger and hubs ----------------------------------------------------------------

async function loadLedger(event) {
  if (event) event.preventDefault();
  const nation = new FormData($("#ledger-form")).get("nation").toUpperCase();
  const data = await api(`/donors/${encodeURIComponent(nation)}/ledger`);
  const t = data.totals;
  const rows = ["pledged", "confirmed", "allocated", "shipped", "handed_over", "backlog"];
  $("#ledger tbody").replaceChildren(...rows.map((k) => el("tr", {},
    el("td", {}, k.replace("_", " ")), el("td", { class: "n" }, fmt(t[`${k}_quantity`])),
    el("td", { class: "n" }, `€ ${fmt(Math.round(t[`${k}_eur`]))}`))));
  const rate = data.on_time_rate === null ? "no handovers yet" : `${Math.round(data.on_time_rate * 100)}% on time`;
  $("#ledger-note").textContent = `${nation}: ${data.pledges} pledges, ${rate}`;
}

async function loadHubs() {
  const list = await api("/hubs?limit=500");
  const boards = await Promise.all(list.items.map((h) => api(`/hubs/${encodeURIComponent(h.hub)}`)));
  $("#hubs").replaceChildren(...boards.map((b) => el("div", { class: "hub" },
    el("b", {}, `${b.hub} ${b.name}`),
    ` inbound ${fmt(b.inbound.shipments)} (${fmt(b.inbound.quantity)}) · on hand ${fmt(b.on_hand.shipments)}` +
    ` · held ${fmt(b.held_at_inspection.shipments)} · dwell ${b.dwell_hours.on_hand_average ?? "—"} h`)));
}

// -- live feed ----------------------------------------------------------------------------

let refreshTimer = null;
function scheduleRefresh() {
  // Many events arrive in bursts: refresh the tables at most every second.
  if (refreshTimer) return;
  refreshTimer = setTimeout(async () => {
    refreshTimer = null;
    await Promise.allSettled([loadBoard(), loadDecisions(), loadGaps(), loadLedger(), loadHubs()]);
  }, 1000);
}

// EventSource cannot send an Authorization header, and a token in the URL would be logged: the
// page trades its token for a stream ticket, good for one stream and a minute. EventSource
// would reconnect with the same (spent) ticket, so the page reconnects itself, with a new
// ticket and the last event id it saw.
async function streamUrl() {
  const res = await fetch("/events/stream/tickets", {
    method: "POST", headers: { Authorization: `Bearer ${state.token}` } });
  if (!res.ok) throw new Error(`stream ticket: HTTP ${res.status}`);
  const params = new URLSearchParams({ ticket: (await res.json()).ticket });
  if (state.lastEventId) params.set("since", state.lastEventId);
  return `/events/stream?${params}`;
}

async function connectFeed() {
  let url;
  try {
    url = await streamUrl();
  } catch (error) {
    setStatus(`error: ${error.message}; retrying`);
    setTimeout(connectFeed, 5000);
    return;
  }
  let opened = false;
  const source = new EventSource(url);
  source.onopen = () => { opened = true; setStatus("live"); };
  source.addEventListener("expired", () => { state.expired = true; });
  source.onerror = () => {
    source.close();
    if (state.expired) { setStatus("the token has expired: reload the page"); return; }
    if (!opened) {
      // Refused (a resume too far back, too many streams): start from now, tables reloaded.
      state.lastEventId = null;
      scheduleRefresh();
    }
    setStatus("reconnecting…");
    setTimeout(connectFeed, opened ? 1000 : 5000);
  };
  source.onmessage = (message) => {
    state.lastEventId = message.lastEventId;
    const e = JSON.parse(message.data);
    const feed = $("#feed");
    const item = el("li", { class: "new", "data-type": e.type, "data-subject": e.subject },
      `${e.time.slice(11, 19)} `, el("span", { class: "type" }, e.type),
      // The actor is left out for roles that do not see people (docs/access.md).
      ` ${e.subject}${e.actor ? ` by ${e.actor}` : ""}`);
    feed.prepend(item);
    while (feed.children.length > 200) feed.lastChild.remove();
    state.feedCount += 1;
    setStatus(`live · ${state.feedCount} events`);
    scheduleRefresh();
  };
}

async function main() {
  state.token = await getToken();
  if (!state.token) { setStatus("no token"); return; }
  $("#board-filters").addEventListener("change", loadBoard);
  $("#csv").addEventListener("click", downloadCsv);
  $("#execution-csv").addEventListener("click", downloadExecutionCsv);
  $("#ledger-form").addEventListener("submit", loadLedger);
  $("#chart-capability").addEventListener("change", drawChart);
  $("#changes-form").addEventListener("submit", loadChanges);
  $("#changes-csv").addEventListener("click", downloadChangesCsv);
  // The pack opens on the last 30 days.
  const month = new Date(Date.now() - 30 * 86400e3).toISOString().slice(0, 10);
  $("#changes-form").elements.from.value = month;
  connectFeed();
  const results = await Promise.allSettled(
    [loadBoard(), loadDecisions(), loadGaps(), loadLedger(), loadHubs(), loadChanges()]);
  const failed = results.filter((r) => r.status === "rejected");
  setStatus(failed.length ? `error: ${failed[0].reason.message}` : "live");
}

main();
