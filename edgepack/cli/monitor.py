"""``edgepack monitor``: the fleet live in the terminal (rich) and, with ``--web``, on a web page; ``--headless``
only ingests into the history (a service: one line of figures per ``--stats-every`` seconds, clean exit on
SIGTERM)."""
from __future__ import annotations

import json
import signal
import threading
import time
from contextlib import contextmanager
from typing import Annotated, Optional

import typer
from rich.markup import escape

from .common import err_console, handle_errors, out_console
from .fleet import DEFAULT as DEFAULT_HISTORY

Opt = typer.Option


def _check_sort(value: str) -> str:
    from ..fleet.fleetstate import SORT_KEYS
    if value.lstrip("-") not in SORT_KEYS:
        raise typer.BadParameter(f"choose one of {', '.join(SORT_KEYS)} (-key sorts descending)")
    return value


def _check_name(value: Optional[str]) -> Optional[str]:
    if value is not None and (not value or any(c in value for c in "/+#") or len(value) > 128):
        raise typer.BadParameter(f"{value!r} is not a name: 1 to 128 characters without '/', '+' or '#'")
    return value


def _check_web(value: Optional[str]) -> Optional[str]:
    from ..errors import EdgepackError
    from ..fleet.web import parse_bind
    if value is not None:
        try:
            parse_bind(value)
        except EdgepackError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


@handle_errors
def monitor(
    broker: Annotated[str, Opt("--broker", help="mqtt://HOST:PORT or mqtts://HOST:PORT")],
    history: Annotated[str, Opt("--history", envvar="EDGEPACK_HISTORY",
                                help="where every message is stored: sqlite:///PATH or postgresql://...")]
    = DEFAULT_HISTORY,
    no_history: Annotated[bool, Opt("--no-history", help="keep the live view only, store nothing")] = False,
    fleet: Annotated[Optional[str], Opt("--fleet", help="only this fleet (also narrows the subscription)",
                                        callback=_check_name)] = None,
    model: Annotated[Optional[str], Opt("--model", help="only devices running this model")] = None,
    sort: Annotated[str, Opt(help="sort key, -key for descending: device, p95_ms, error_rate, last_seen, ...",
                             callback=_check_sort)]
    = "device",
    web: Annotated[Optional[str], Opt("--web", metavar="HOST:PORT", callback=_check_web,
                                      help="also serve the view on a web page (loopback; 0.0.0.0:PORT for every "
                                           "network, without authentication)")] = None,
    headless: Annotated[bool, Opt("--headless", help="no terminal view: ingest (and serve --web) only")] = False,
    share_group: Annotated[Optional[str], Opt("--share-group", help="split the ingest with other monitors "
                                                                    "(MQTT 5 shared subscription $share/GROUP/...)",
                                                  callback=_check_name)]
    = None,
    duration: Annotated[Optional[float], Opt(help="stop after this many seconds (demos, tests)", min=0)] = None,
    refresh: Annotated[float, Opt(help="seconds between redraws of the terminal view", min=0.1)] = 1.0,
    stats_every: Annotated[float, Opt(help="--headless: seconds between two log lines", min=0.1)] = 60.0,
    rows: Annotated[int, Opt(help="terminal view: at most this many devices", min=1)] = 200,
    username: Annotated[Optional[str], Opt(help="MQTT user name")] = None,
    password: Annotated[Optional[str], Opt(help="MQTT password", envvar="EDGEPACK_MQTT_PASSWORD")] = None,
    ca: Annotated[Optional[str], Opt(help="CA file for mqtts://")] = None,
    json_out: Annotated[bool, Opt("--json", help="--headless: log lines as JSON objects")] = False,
    verbose: Annotated[bool, Opt("--verbose", "-v", help="show tracebacks")] = False,
):
    """Watch the fleet: devices online/offline, model and version, backend, p50/p95 latency, throughput,
    error rate, drift alerts, update state, last seen (and cost per 1,000 predictions when devices report it)."""
    from ..fleet.ingest import Monitor
    bind = _bind(web)
    mon = Monitor(broker, history=None if no_history else history, share_group=share_group, fleet=fleet or "+",
                  username=username, password=password, ca=ca)
    stop = threading.Event()
    with _on_sigterm(stop):
        mon.start()
        server = None
        try:
            server = _serve(mon, bind, fleet, model, sort) if bind else None
            if not mon.wait_connected(5.0):
                err_console.print(f"[yellow]warning:[/] not connected to {escape(broker)} yet "
                                  f"({escape(str(mon.link.last_error or 'no answer'))}); retrying in the background")
            if headless:
                _headless(mon, stop, duration, stats_every, json_out)
            else:
                _live(mon, stop, duration, refresh, fleet, model, sort, rows)
        except KeyboardInterrupt:
            pass
        finally:
            if server is not None:
                server.stop()
            mon.stop()
    if headless:
        _log(mon, json_out, final=True)


def _bind(web: Optional[str]):
    if web is None:
        return None
    from ..fleet.web import parse_bind
    host, port, public = parse_bind(web)
    if public:
        err_console.print(f"[bold yellow]warning:[/] --web {escape(web)} serves the fleet to every network this "
                          "machine is on, with no authentication")
    return host, port, public


def _serve(mon, bind, fleet, model, sort):
    from ..fleet.web import WebServer
    from ..fleet.webview import Query
    host, port, public = bind
    server = WebServer(mon.state, host=host, port=port, public=public, stats=mon.stats,
                       defaults=Query(fleet=fleet, model=model, sort=sort)).start()
    err_console.print(f"web view: {server.url}", highlight=False)
    return server


def _live(mon, stop, duration, refresh, fleet, model, sort, rows) -> None:
    from ..fleet.tui import live, render

    def frame():
        return render(mon.state.snapshot(fleet=fleet, model=model, sort=sort), mon.stats(), limit=rows)
    live(frame, refresh=refresh, stop=stop, duration=duration, console=out_console)


def _headless(mon, stop, duration, every, json_out) -> None:
    end = None if duration is None else time.monotonic() + duration
    _log(mon, json_out)
    while True:
        wait = every if end is None else min(every, end - time.monotonic())
        if wait <= 0 or stop.wait(wait) or (end is not None and time.monotonic() >= end):
            return
        _log(mon, json_out)


def _log(mon, json_out: bool, final: bool = False) -> None:
    """One line of figures: devices online/total, messages accepted and rejected, history, connection."""
    s = mon.stats()
    snap = mon.state.snapshot()["devices"]
    rejected = s.get("rejected") or {}
    line = {"ts": round(time.time(), 3), "event": "stopped" if final else "stats", "connected": s.get("connected"),
            "devices": len(snap), "online": sum(1 for r in snap if r.get("online") is True),
            "accepted": s.get("accepted", 0), "rejected": sum(rejected.values()),
            "rejected_by_reason": {k: v for k, v in rejected.items() if v}, "last_error": s.get("last_error")}
    if "history" in s:
        line["history"] = {k: s["history"][k] for k in ("written", "backlog", "dropped", "write_errors")}
    if json_out:
        typer.echo(json.dumps(line, sort_keys=True))
        return
    text = (f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line['event']}: {line['online']}/{line['devices']} devices online, "
            f"{line['accepted']} messages accepted, {line['rejected']} rejected")
    if line["rejected_by_reason"]:
        text += " (" + ", ".join(f"{k} {v}" for k, v in line["rejected_by_reason"].items()) + ")"
    if "history" in line:
        h = line["history"]
        text += f", history {h['written']} written, {h['backlog']} queued, {h['dropped']} dropped"
    if not final:
        text += ", broker " + ("connected" if line["connected"] else f"disconnected ({line['last_error']})")
    typer.echo(text)


@contextmanager
def _on_sigterm(stop: threading.Event):
    """SIGTERM sets ``stop`` (the service manager's way to end us): the loops return and everything is flushed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
