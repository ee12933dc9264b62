"""The web page's inline stylesheet and script (no build step, no CDN: the page works offline).

The script listens to ``events`` (server-sent events carrying ``webview.view()``), rebuilds the table with
``textContent`` only and redraws every device's latency and drift plot as SVG polylines; it marks the page
(``data-live``, ``data-events``, ``data-drawn``) so a headless browser can tell it ran. ``CSP`` pins both by
their sha256, so no other inline script can run even if something slipped through escaping.
"""
from __future__ import annotations

import base64
import hashlib

from .webview import H, PAD, W

__all__ = ["CSP", "SCRIPT", "STYLE"]

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1rem 2rem;color:#222;background:#fafafa}
h1{font-size:1.3rem;margin:0} h2{font-size:1.05rem;margin-top:1.5rem} header p{margin:.2rem 0}
#status{color:#777;font-size:.85rem} form{margin:.8rem 0} label{margin-right:1rem}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left;white-space:nowrap}
th a{color:inherit} td.num,th.num{text-align:right}
tr.online td.state{color:#187a2f} tr.offline td.state{color:#b3261e} tr.unknown td.state{color:#9a6700}
tr.alert td.drift{color:#b3261e;font-weight:600}
#plots{display:flex;flex-wrap:wrap;gap:1rem} figure{margin:0;background:#fff;border:1px solid #ddd;padding:.4rem}
figcaption{font-size:.85rem;word-break:break-all;max-width:320px}
svg.plot{display:block;width:320px;height:96px} svg text{font-size:9px;fill:#555}
polyline{fill:none;stroke-width:1.5} .p50{stroke:#1f6feb} .p95{stroke:#d97706} .psi{stroke:#7c3aed}
line.limit{stroke:#b3261e;stroke-dasharray:4 3} .key{font-size:.75rem;color:#555}
""".strip()

SCRIPT = r"""
(function () {
  "use strict";
  var W = %(W)d, H = %(H)d, PAD = %(PAD)d, NS = "http://www.w3.org/2000/svg";
  var NUM = {p50_ms: 1, p95_ms: 1, throughput: 1, error_rate: 1, drift_alerts: 1, last_seen: 1, cost_per_1k: 1};
  var body = document.body, events = 0;
  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function sv(tag, attrs, text) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function span(s) { return s >= 120 ? Math.round(s / 60) + " min" : Math.round(s) + " s"; }
  function plot(kind, lines, limit) {
    var svg = sv("svg", {"class": "plot " + kind, viewBox: "0 0 " + W + " " + H, role: "img",
                         "aria-label": kind + " over time", "data-drawn-by": "script"});
    var pts = [], name;
    for (name in lines) pts = pts.concat(lines[name]);
    if (!pts.length) {
      svg.appendChild(sv("text", {x: PAD, y: H / 2}, "no " + (kind === "drift" ? "drift windows" : "telemetry") + " yet"));
      return svg;
    }
    var t0 = Infinity, t1 = -Infinity, top = limit ? limit * 1.2 : 0;
    pts.forEach(function (p) { t0 = Math.min(t0, p[0]); t1 = Math.max(t1, p[0]); top = Math.max(top, p[1]); });
    top = top || 1;
    var sp = (t1 - t0) || 1;
    function x(t) { return (PAD + (W - 2 * PAD) * (t - t0) / sp).toFixed(1); }
    function y(v) { return (H - PAD - (H - 2 * PAD) * v / top).toFixed(1); }
    svg.appendChild(sv("text", {"class": "axis", x: PAD, y: PAD - 3}, Number(top.toPrecision(3)) + (kind === "latency" ? " ms" : "")));
    svg.appendChild(sv("text", {"class": "axis", x: W - PAD, y: H - 2, "text-anchor": "end"}, "last " + span(t1 - t0)));
    if (limit) svg.appendChild(sv("line", {"class": "limit", x1: PAD, x2: W - PAD, y1: y(limit), y2: y(limit)}));
    for (name in lines) {
      var points = lines[name].map(function (p) { return x(p[0]) + "," + y(p[1]); }).join(" ");
      svg.appendChild(sv("polyline", {"class": "line " + name, points: points}));
    }
    return svg;
  }
  function head(columns) {
    var params = new URLSearchParams(location.search), sort = params.get("sort") || "", tr = el("tr");
    columns.forEach(function (c) {
      var th = el("th", NUM[c[0]] ? "num" : ""), a = el("a", "", c[1]);
      params.set("sort", sort === c[0] ? "-" + c[0] : c[0]);
      a.setAttribute("href", "?" + params.toString());
      th.appendChild(a);
      tr.appendChild(th);
    });
    return tr;
  }
  function show(v) {
    $("counters").textContent = v.counters;
    $("link").textContent = v.link;
    $("more").textContent = v.more ? v.more + " more devices (narrow with the filters)" : "";
    var thead = $("devices").tHead, tbody = $("devices").tBodies[0];
    thead.replaceChildren(head(v.columns));
    tbody.replaceChildren.apply(tbody, v.rows.map(function (r) {
      var tr = el("tr", r.state + (r.alert ? " alert" : ""));
      tr.setAttribute("data-key", r.key);
      r.cells.forEach(function (text, i) {
        var key = v.columns[i][0];
        tr.appendChild(el("td", (NUM[key] ? "num " : "") + (key === "online" ? "state" : key === "drift_alerts" ? "drift" : ""), text));
      });
      return tr;
    }));
    var drawn = 0, section = $("plots");
    section.replaceChildren.apply(section, v.plots.map(function (p) {
      var fig = el("figure");
      fig.setAttribute("data-key", p.key);
      fig.appendChild(el("figcaption", "", p.device + " (" + p.fleet + ")"));
      fig.appendChild(el("div", "key", "latency: p50 blue, p95 orange"));
      fig.appendChild(plot("latency", p.latency));
      fig.appendChild(el("div", "key", "drift: max PSI of the window, dashed = alert level"));
      fig.appendChild(plot("drift", p.drift, v.psi_limit));
      drawn += fig.querySelectorAll("polyline").length;
      return fig;
    }));
    body.setAttribute("data-drawn", drawn);
  }
  var es = new EventSource("events" + location.search);
  es.addEventListener("snapshot", function (e) {
    events += 1;
    show(JSON.parse(e.data));
    body.setAttribute("data-events", events);
    body.setAttribute("data-live", "1");
    $("status").textContent = "live (server-sent events)";
  });
  es.addEventListener("end", function () { es.close(); $("status").textContent = "stream ended"; });
  es.onerror = function () { $("status").textContent = "reconnecting..."; };
})();
""".strip() % {"W": W, "H": H, "PAD": PAD}


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CSP = (f"default-src 'none'; script-src {_hash(SCRIPT)}; style-src {_hash(STYLE)}; connect-src 'self'; "
       "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
