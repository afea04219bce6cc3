// tandem's status page: polls /api/v1/status every 2 s and draws it; looks leases up through
// /api/v1/leases. No framework, no CDN: this file, the HTML and the CSS are all of it.
"use strict";

const POLL_MS = 2000;
const STATE_COLOURS = {
  "normal": "#2c9c5a", "communications-interrupted": "#d98a1c", "partner-down": "#d2433a",
  "recover": "#8a63c9", "recover-wait": "#a57fd9", "recover-done": "#b79be0",
  "potential-conflict": "#e0a030", "resolution-interrupted": "#c0392b", "conflict-done": "#e5b85c",
  "startup": "#7f8ea3", "paused": "#9aa3b2", "shutdown": "#555d6b", "unknown": "#c4c9d2",
};
const OTHER_STATES = ["expired", "released", "abandoned", "reset"];

const $ = (sel) => document.querySelector(sel);

// The API token, when the server wants one: kept for this tab only.
function authHeaders() {
  const t = sessionStorage.getItem("tandem-token");
  return t ? { Authorization: "Bearer " + t } : {};
}

async function api(path) {
  const r = await fetch(path, { cache: "no-store", headers: authHeaders() });
  if (r.status === 401) {
    $("#login").hidden = false;
    throw new Error("a token is needed");
  }
  const body = await r.json();
  if (!body.ok) throw new Error(body.error || r.statusText);
  return body;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function when(unix) {
  if (!unix) return "—";
  return new Date(unix * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function ago(unix, now) {
  if (!unix) return "—";
  const s = Math.max(0, Math.round(now - unix));
  if (s < 120) return s + " s ago";
  if (s < 7200) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

function stateBadge(state) {
  return el("span", { class: "state " + state, text: state });
}

function row(cells, header) {
  return el("tr", {}, ...cells.map((c) => {
    const cell = el(header ? "th" : "td", typeof c === "number" ? { class: "num" } : {});
    cell.append(typeof c === "number" ? c.toLocaleString("en") : c);
    return cell;
  }));
}

function table(head, rows) {
  return el("table", {}, row(head, true), ...rows.map((r) => row(r)));
}

// Our own state changes as coloured segments from the first one kept to now.
function timeline(rel, now) {
  const own = (rel.history || []).filter((c) => !c.partner);
  const bar = el("div", { class: "timeline", title: "our states, oldest on the left" });
  if (own.length === 0) return bar;
  const start = own[0].at;
  const span = Math.max(1, now - start);
  own.forEach((c, i) => {
    const end = i + 1 < own.length ? own[i + 1].at : now;
    const seg = el("span", { title: c.to + " from " + when(c.at), "data-state": c.to });
    seg.style.width = (100 * Math.max(0, end - c.at) / span) + "%";
    seg.style.minWidth = "2px";
    seg.style.background = STATE_COLOURS[c.to] || "#999";
    bar.append(seg);
  });
  return bar;
}

function relationships(status, now) {
  const box = $("#relationships");
  box.replaceChildren();
  if ((status.relationships || []).length === 0) {
    box.append(el("p", { class: "muted", text: "none configured" }));
    return;
  }
  for (const r of status.relationships) {
    const link = r.link_up ? "up" : "down";
    const div = el("div", { class: "rel", "data-name": r.name, "data-state": r.state, "data-partner-state": r.partner_state });
    div.append(el("h3", {}, r.name + " ", el("span", { class: "muted", text: r.role + ", " + r.mode })));
    div.append(table(
      ["our state", "partner's state", "since", "peer link", "last contact", "unacked updates", "bindings sent", "refused"],
      [[stateBadge(r.state), stateBadge(r.partner_state), when(r.state_since),
        el("span", { class: "link " + link, text: link + (r.link_since ? " since " + when(r.link_since) : "") }),
        ago(r.last_heard, now), r.unacked_updates, r.updates_sent, r.updates_refused]]));
    div.append(timeline(r, now));
    const changes = el("ul", { class: "changes" });
    for (const c of (r.history || []).slice().reverse()) {
      changes.append(el("li", { text: when(c.at) + "  " + (c.partner ? "partner" : "we") + ": " + c.from + " → " + c.to }));
    }
    div.append(changes);
    box.append(div);
  }
}

function pools(status) {
  const box = $("#pools");
  box.replaceChildren();
  for (const [scope, counts] of Object.entries(status.leases || {})) {
    const n = (s) => counts[s] || 0;
    const other = OTHER_STATES.reduce((a, s) => a + n(s), 0);
    const total = n("active") + n("free") + n("backup") + other;
    const pct = total ? (100 * n("active") / total) : 0;
    const rel = (status.scope_failover || {})[scope];
    const div = el("div", { class: "scope", "data-scope": scope, "data-active": n("active"), "data-free": n("free"), "data-backup": n("backup"), "data-total": total });
    div.append(el("div", {}, el("strong", { text: scope }), " ",
      el("span", { class: "muted", text: (rel ? "relationship " + rel + ", " : "") + total.toLocaleString("en") + " addresses, " }),
      el("span", { class: "utilisation", text: pct.toFixed(1) + " % used" }), " ",
      el("span", { class: "muted balance", text: "free " + n("free") + " / backup " + n("backup") })));
    const bar = el("div", { class: "bar" });
    for (const [cls, v] of [["active", n("active")], ["free", n("free")], ["backup", n("backup")], ["other", other]]) {
      const seg = el("span", { class: cls, title: cls + ": " + v });
      seg.style.width = total ? (100 * v / total) + "%" : "0";
      bar.append(seg);
    }
    div.append(bar);
    box.append(div);
  }
}

function workers(status) {
  const sum = (m) => Object.values(m || {}).reduce((a, b) => a + b, 0);
  const top = (m) => Object.entries(m || {}).sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k, v]) => k + " " + v).join(", ") || "—";
  $("#workers").replaceChildren(table(
    ["worker", "datapath", "received", "sent", "offers", "acks", "naks", "dropped", "most dropped for", "unanswered"],
    (status.workers || []).map((w) => [String(w.id), w.datapath, w.rx, w.tx, (w.sent || {}).offer || 0,
      (w.sent || {}).ack || 0, (w.sent || {}).nak || 0, sum(w.dropped), top(w.dropped), sum(w.silent)])));
  const xdp = status.xdp || [];
  $("#xdp").replaceChildren(...(xdp.length ? [table(
    ["interface", "XDP mode", "to workers", "to the kernel", "load-balance drops", "rate-limited"],
    xdp.map((x) => [x.interface, x.mode, x.redirect, x.pass + x.no_xsk, x.lb_drop, x.rate_mac + x.rate_circuit + x.rate_relay]))] : []));
}

async function refresh() {
  try {
    const s = (await api("/api/v1/status")).status;
    const now = Date.now() / 1000;
    $("#server").textContent = "tandemd " + s.version + " · " + s.datapath + " · up " + s.uptime + " s";
    $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
    relationships(s, now);
    pools(s);
    workers(s);
  } catch (e) {
    $("#updated").replaceChildren(el("span", { class: "error", text: "cannot reach tandemd: " + e.message }));
  }
}

// An address, a MAC, a client id (hex), "remote:" and a remote-id, or else a circuit-id:
// which one the text is.
function leaseQuery(q) {
  q = q.trim();
  if (/^\d+\.\d+\.\d+\.\d+$/.test(q)) return "ip=" + encodeURIComponent(q);
  if (/^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$/i.test(q)) return "mac=" + encodeURIComponent(q);
  if (q.startsWith("remote:")) return "remote_id=" + encodeURIComponent(q.slice(7));
  if (q.startsWith("circuit:")) return "circuit_id=" + encodeURIComponent(q.slice(8));
  if (q.startsWith("host:")) return "hostname=" + encodeURIComponent(q.slice(5));
  if (/^([0-9a-f]{2}:?)+$/i.test(q)) return "client_id=" + encodeURIComponent(q);
  return "circuit_id=" + encodeURIComponent(q);
}

async function search(query) {
  const out = $("#lease-results");
  try {
    const body = await api("/api/v1/leases?" + query);
    const leases = body.leases || [];
    out.replaceChildren(
      el("p", { class: "muted", text: leases.length + (leases.length === 1 ? " lease" : " leases") + (body.next ? " (more after " + body.next + ")" : "") }),
      table(["address", "state", "hardware address", "client id", "circuit-id", "remote-id", "host name", "ends"],
        leases.map((l) => [l.address, l.state, l.chaddr, l.client_id || "", l.circuit_id || "",
          l.remote_id || "", l.hostname || "", when(l.ends)])));
  } catch (e) {
    out.replaceChildren(el("p", { class: "error", text: e.message }));
  }
}

$("#login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("tandem-token", $("#token").value.trim());
  $("#login").hidden = true;
  refresh();
});
$("#search").addEventListener("submit", (ev) => {
  ev.preventDefault();
  search(leaseQuery($("#query").value));
});
$("#list").addEventListener("click", () => search("limit=100"));

const initial = new URLSearchParams(location.search).get("q");
if (initial) {
  $("#query").value = initial;
  search(leaseQuery(initial));
}
refresh();
setInterval(refresh, POLL_MS);
