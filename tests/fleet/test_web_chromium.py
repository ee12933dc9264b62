"""``edgepack monitor --headless --web`` as a real process on a real mosquitto, read by a real headless
Chromium (the page's script runs: table rows, SVG plots, escaped device ids), by urllib (JSON snapshot, SSE
feed), then stopped with SIGTERM (a clean exit, the service way)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from html.parser import HTMLParser

import paho.mqtt.client as mqtt
import pytest

from tests.agent.conftest import free_port

from .chromium import chromium, dump_dom  # noqa: F401  (fixture)
from .monitor_kit import FakeDevice, clear_retained, wait_until

EVIL = '"><img src=x onerror=alert(1)><script>alert(2)<'     # MQTT topics cannot hold '/', '+' or '#'


class Dom(HTMLParser):
    """Tags seen, the text of every table cell per row, and the SVG plots (who drew them, polyline points)."""

    def __init__(self, html: str):
        super().__init__()
        self.tags, self.rows, self.svgs, self.body, self._td = [], [], [], {}, None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "body":
            self.body = a
        elif tag == "tr" and "data-key" in a:
            self.rows.append([])
        elif tag == "td" and self.rows:
            self._td = ""
        elif tag == "svg":
            self.svgs.append({"class": a.get("class"), "by": a.get("data-drawn-by"), "lines": []})
        elif tag == "polyline" and self.svgs:
            self.svgs[-1]["lines"].append(len((a.get("points") or "").split()))

    def handle_data(self, data):
        if self._td is not None:
            self._td += data

    def handle_endtag(self, tag):
        if tag == "td" and self._td is not None:
            self.rows[-1].append(self._td)
            self._td = None


def _get(url: str, timeout: float = 10.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers, r.read()


def _events(url: str, want: int, timeout: float = 15.0) -> list[tuple[str, str]]:
    """The first ``want`` events of an SSE stream (name, data), read within ``timeout`` seconds."""
    out, name, data = [], None, []
    with urllib.request.urlopen(url, timeout=timeout) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        for raw in r:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif not line and name:
                out.append((name, "\n".join(data)))
                name, data = None, []
                if len(out) >= want:
                    break
    return out


@pytest.fixture
def monitor_process(broker):
    """The monitor as a service: --headless --web on a free loopback port, one unique fleet."""
    fleet, port = f"m2w-{uuid.uuid4().hex[:8]}", free_port()
    cmd = [sys.executable, "-m", "edgepack.cli.main", "monitor", "--broker", f"mqtt://127.0.0.1:{broker.port}",
           "--no-history", "--headless", "--web", f"127.0.0.1:{port}", "--fleet", fleet, "--stats-every", "1",
           "--duration", "120"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        assert wait_until(lambda: any("stats:" in line for line in lines), 20), proc.stderr.read() if \
            proc.poll() is not None else "no stats line"
        yield fleet, f"http://127.0.0.1:{port}/", proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_web_view_in_chromium_json_sse_and_sigterm(broker, chromium, monitor_process):  # noqa: F811
    fleet, url, proc, lines = monitor_process
    devices = [FakeDevice(broker.port, name, fleet) for name in ("cam-1", "cam-2", EVIL)]
    try:
        for d in devices:
            d.online()
        for step in range(4):
            for i, d in enumerate(devices):
                d.telemetry(1.0 + i + step * 0.5, 3.0 + i + step, calls=50 + 10 * i)
                d.drift(0.05 * step * (i + 1), alerts=int(i == 2 and step == 3))
            time.sleep(0.05)
        bad = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bad-{time.time_ns()}")
        bad.connect("127.0.0.1", broker.port)
        bad.loop_start()
        bad.publish(f"edgepack/v1/{fleet}/cam-1/telemetry", b'{"schema": 99}', qos=1).wait_for_publish(5)
        bad.disconnect()
        bad.loop_stop()
        assert wait_until(lambda: json.loads(_get(url + "api/snapshot")[2])["counters"]["accepted"] >= 27, 15)

        # JSON snapshot: the filters of the query, the ingest's stats
        status, headers, body = _get(url + "api/snapshot?sort=-p95_ms")
        snap = json.loads(body)
        assert status == 200 and headers["Content-Type"] == "application/json"
        assert [r["device"] for r in snap["devices"]] == [EVIL, "cam-2", "cam-1"]
        assert [r["p95_ms"] for r in snap["devices"]] == [8.0, 7.0, 6.0]
        assert snap["counters"]["rejected"]["schema"] == 1 and snap["stats"]["connected"] is True

        # SSE: two snapshot events, then the end the page asked for
        events = _events(url + "events?events=2&sort=-p50_ms", want=3)
        assert [e[0] for e in events] == ["snapshot", "snapshot", "end"]
        view = json.loads(events[0][1])
        assert [r["cells"][0] for r in view["rows"]] == [EVIL, "cam-2", "cam-1"]
        assert len(view["plots"]) == 3 and len(view["plots"][0]["latency"]["p95"]) == 4
        assert [p[1] for p in view["plots"][2]["latency"]["p50"]] == [1.0, 1.5, 2.0, 2.5]
        assert len(_events(url + "events", want=1, timeout=10)) == 1          # an endless stream, left early

        # the page in a real browser: its script ran, drew the plots, and the hostile id stayed text
        dom = Dom(dump_dom(chromium, url + "?events=2"))
        assert dom.body["data-live"] == "1" and dom.body["data-events"] == "2"
        assert dom.tags.count("script") == 1 and "img" not in dom.tags
        assert sorted(row[0] for row in dom.rows) == sorted([EVIL, "cam-1", "cam-2"])
        cam2 = next(row for row in dom.rows if row[0] == "cam-2")
        assert cam2[2:8] == ["online", "clf 1.0.0", "litert", "3.5", "7.0", "6.0"]
        drawn = [s for s in dom.svgs if s["by"] == "script"]
        assert len(drawn) == 6 and all(s["by"] == "script" for s in dom.svgs)   # latency + drift per device
        assert [s["lines"] for s in drawn if s["class"] == "plot latency"] == [[4, 4]] * 3
        assert [s["lines"] for s in drawn if s["class"] == "plot drift"] == [[4]] * 3
        assert int(dom.body["data-drawn"]) == 9

        # SIGTERM: a clean stop with a last line of figures
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert re.search(r"stopped: 3/3 devices online, 2[7-9] messages accepted, 1 rejected \(schema 1\)", lines[-1])
    finally:
        for d in devices:
            d.close()
        clear_retained(broker.port, devices)
