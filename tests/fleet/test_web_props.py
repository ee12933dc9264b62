"""Property tests of what the monitor takes from the network or the URL: any device id, fleet or model name
a device may publish ends up as text on the page (never markup) and in the terminal; any query string is a
filter or a clear 400; any --web value binds to loopback, to all interfaces when written out, or is refused."""
from __future__ import annotations

import ipaddress
from html.parser import HTMLParser

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from edgepack.errors import EdgepackError
from edgepack.fleet.fleetstate import SORT_KEYS, FleetState
from edgepack.fleet.messages import Message, parse
from edgepack.fleet.tui import render_text
from edgepack.fleet.webpage import render_page
from edgepack.fleet.webview import BadQuery, Query, view

from .monitor_kit import feed

ALLOWED_TAGS = {"html", "head", "meta", "title", "noscript", "style", "body", "header", "h1", "h2", "p", "form",
                "label", "select", "option", "button", "table", "thead", "tbody", "tr", "th", "td", "a", "section",
                "figure", "figcaption", "div", "svg", "text", "line", "polyline", "script"}
# what a topic level may hold (the ingest refuses '/', '+', '#' and what str.isprintable() refuses)
names = st.text(st.characters(exclude_categories=("Cs", "Cc", "Cf", "Co", "Cn", "Zl", "Zp", "Zs"),
                              include_characters=" ", exclude_characters="/+#"), min_size=1, max_size=40)
PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Page(HTMLParser):
    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags, self.keys, self.rows, self.captions, self._text = [], [], [], [], None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "tr" and "data-key" in a:
            self.keys.append(a["data-key"])
            self.rows.append([])
        if tag in ("td", "figcaption"):
            self._text = ""

    def handle_data(self, data):
        if self._text is not None:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "td" and self._text is not None:
            self.rows[-1].append(self._text)
        elif tag == "figcaption" and self._text is not None:
            self.captions.append(self._text)
        if tag in ("td", "figcaption"):
            self._text = None


def _accepted(fleet: str, device: str) -> bool:
    probe = parse(f"edgepack/v1/{fleet}/{device}/state", b'{"schema":1,"ts":2e9,"device":"x","fleet":"y"}', now=2e9)
    return not (getattr(probe, "reason", None) in ("topic",))


@PROPS
@given(devices=st.lists(st.tuples(names, names, names), min_size=1, max_size=3, unique_by=lambda t: (t[0], t[1])))
def test_any_name_from_a_device_is_text_on_the_page(devices):
    assume(all(_accepted(f, d) for f, d, _ in devices))
    state = FleetState()
    for fleet, device, model in devices:
        feed(state, fleet, device, model=model, points=2)
    q = Query()
    everything = state.snapshot()["devices"]
    html = render_page(view(state, q), q, fleets=sorted({r["fleet"] for r in everything}),
                       models=sorted({r["model"] for r in everything}), sort_keys=SORT_KEYS)
    page = Page(html)
    assert set(page.tags) <= ALLOWED_TAGS and page.tags.count("script") == 1
    expected = {(f, d): m for f, d, m in devices}
    assert sorted(page.keys) == sorted(f"{f}/{d}" for f, d in expected)
    for row in page.rows:
        assert (row[1], row[0]) in expected and row[3] == f"{expected[(row[1], row[0])]} 1.0.0"
    assert sorted(page.captions) == sorted(f"{d} ({f})" for f, d in expected)


@PROPS
@given(device=names, model=names)
def test_any_name_from_a_device_renders_in_the_terminal(device, model):
    assume(_accepted("lab", device))
    state = FleetState()
    feed(state, "lab", device, model=model, points=1)
    text = render_text(state.snapshot(), width=400)
    assert "1/1 devices online" in text and device in text and f"{model} 1.0.0" in text


@PROPS
@given(query=st.text(max_size=200))
def test_any_query_string_is_a_filter_or_a_clear_refusal(query):
    try:
        q = Query().parse(query, SORT_KEYS)
    except BadQuery as exc:
        assert str(exc)
        return
    assert q.sort.lstrip("-") in SORT_KEYS and 0 <= q.rows <= 10_000 and 0 <= q.plots <= 100
    assert q.fleet is None or len(q.fleet) <= 256


@PROPS
@given(text=st.one_of(st.text(max_size=40), st.from_regex(r"\[?[0-9a-f:.]{0,20}\]?:[0-9]{1,6}", fullmatch=True)))
def test_any_web_value_binds_to_loopback_or_is_refused(text):
    from edgepack.fleet.web import parse_bind
    try:
        host, port, public = parse_bind(text)
    except EdgepackError as exc:
        assert "--web" in str(exc)
        return
    assert 0 <= port <= 65535
    assert public == (host in ("0.0.0.0", "::"))
    assert public or ipaddress.ip_address(host).is_loopback


def test_messages_are_accepted_as_the_kit_builds_them():
    assert isinstance(parse("edgepack/v1/a/b/state", b'{"schema":1,"ts":2e9,"device":"b","fleet":"a",'
                            b'"state":"online"}', now=2e9), Message)
