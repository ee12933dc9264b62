"""The monitor's page, rendered on the server: complete without JavaScript (a filter form, the table, SVG
plots, a 5-second refresh in ``<noscript>``), then kept live by the inline script of ``webassets``.

Every text that comes from a device (ids, fleets, model names, states) goes through ``html.escape``.
"""
from __future__ import annotations

from html import escape
from urllib.parse import urlencode

from .columns import NUMERIC
from .webassets import SCRIPT, STYLE
from .webview import Query, plot_svg

__all__ = ["error_page", "render_page"]


def _e(value) -> str:
    return escape(str(value), quote=True)


def _select(name: str, current, options: list[str], *, blank: str | None = "all") -> str:
    opts = [f'<option value=""{" selected" if not current else ""}>{_e(blank)}</option>'] if blank else []
    opts += [f'<option value="{_e(o)}"{" selected" if o == current else ""}>{_e(o)}</option>' for o in options]
    return f'<label>{name} <select name="{name}">{"".join(opts)}</select></label>'


def _form(q: Query, fleets: list[str], models: list[str], sort_keys) -> str:
    sorts = [k for key in sort_keys for k in (key, f"-{key}")]
    return ('<form id="filters" method="get" action="">' + _select("fleet", q.fleet, fleets)
            + _select("model", q.model, models) + _select("sort", q.sort, sorts, blank=None)
            + '<button type="submit">apply</button></form>')


def _thead(view: dict, q: Query) -> str:
    cells = []
    for key, title in view["columns"]:
        sort = f"-{key}" if q.sort == key else key
        href = "?" + urlencode(q.params(sort=sort))
        cells.append(f'<th class="{"num" if key in NUMERIC else ""}"><a href="{_e(href)}">{_e(title)}</a></th>')
    return "<tr>" + "".join(cells) + "</tr>"


def _tbody(view: dict) -> str:
    rows = []
    for r in view["rows"]:
        tds = []
        for (key, _), text in zip(view["columns"], r["cells"]):
            cls = ("num " if key in NUMERIC else "") + {"online": "state", "drift_alerts": "drift"}.get(key, "")
            tds.append(f'<td class="{cls.strip()}">{_e(text)}</td>')
        cls = r["state"] + (" alert" if r["alert"] else "")
        rows.append(f'<tr class="{_e(cls)}" data-key="{_e(r["key"])}">{"".join(tds)}</tr>')
    return "".join(rows)


def _plots(view: dict) -> str:
    figs = []
    for p in view["plots"]:
        figs.append(f'<figure data-key="{_e(p["key"])}"><figcaption>{_e(p["device"])} ({_e(p["fleet"])})</figcaption>'
                    '<div class="key">latency: p50 blue, p95 orange</div>' + plot_svg("latency", p["latency"])
                    + '<div class="key">drift: max PSI of the window, dashed = alert level</div>'
                    + plot_svg("drift", p["drift"], limit=view["psi_limit"]) + "</figure>")
    return "".join(figs)


def render_page(view: dict, q: Query, *, fleets: list[str], models: list[str], sort_keys,
                title: str = "edgepack monitor") -> str:
    """The whole page for ``view`` (``webview.view``), with filter choices ``fleets`` and ``models``."""
    more = f'{view["more"]} more devices (narrow with the filters)' if view["more"] else ""
    drawn = sum(len(p[k]) > 0 for p in view["plots"] for k in ("latency", "drift"))
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{_e(title)}</title><noscript><meta http-equiv="refresh" content="5"></noscript>'
            f"<style>{STYLE}</style></head>"
            f'<body data-live="0" data-events="0" data-drawn="0" data-server-plots="{drawn}">'
            f'<header><h1>{_e(title)}</h1><p id="counters">{_e(view["counters"])}</p>'
            f'<p id="link">{_e(view["link"])}</p>'
            '<p id="status">static page (refreshed every 5 s without JavaScript)</p></header>'
            + _form(q, fleets, models, sort_keys)
            + f'<table id="devices"><thead>{_thead(view, q)}</thead><tbody>{_tbody(view)}</tbody></table>'
            f'<p id="more">{_e(more)}</p><h2>Latency and drift over time</h2>'
            f'<section id="plots">{_plots(view)}</section>'
            f"<script>{SCRIPT}</script></body></html>\n")


def error_page(status: int, message: str) -> str:
    """A small HTML error page (the message escaped)."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{status}</title></head>'
            f"<body><h1>{status}</h1><p>{_e(message)}</p></body></html>\n")
