"""``edgepack fleet status|history|drift``: read the fleet's history (written by ``edgepack monitor``).

Every command takes ``--history URL`` (``sqlite:///PATH``, the default ``sqlite:///edgepack-fleet.db``, or
``postgresql://...``) and ``--json``. ``fleet simulate`` (the fleet simulator) joins this group below.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from .common import handle_errors, out_console, print_json

fleet_app = typer.Typer(name="fleet", no_args_is_help=True, add_completion=False,
                        help="The fleet's history: status, per-device series, fleet-wide drift.")

HistoryUrl = Annotated[str, typer.Option("--history", envvar="EDGEPACK_HISTORY",
                                         help="sqlite:///PATH or postgresql://USER@HOST:PORT/DB")]
FleetOpt = Annotated[Optional[str], typer.Option("--fleet", help="only this fleet")]
ModelOpt = Annotated[Optional[str], typer.Option("--model", help="only devices running this model")]
Json = Annotated[bool, typer.Option("--json", help="machine-readable output")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="show tracebacks")]
DEFAULT = "sqlite:///edgepack-fleet.db"


def _open(url: str):
    from ..errors import EdgepackError
    from ..fleet.history import open_history, split_settings
    path = split_settings(url)[0]
    if path.startswith("sqlite:///") and path != "sqlite:///:memory:" and not Path(path[len("sqlite://"):]).exists():
        raise EdgepackError(f"no history at {path[len('sqlite://'):]}",
                            hint="run `edgepack monitor --broker URL --history " + url + "` first, or give --history")
    return open_history(url)


def _since(text: Optional[str]) -> Optional[float]:
    """``--since``: seconds ago (``90``, ``15m``, ``2h``, ``3d``) or an absolute Unix time (> 1e9)."""
    from ..errors import EdgepackError
    if text is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text[-1:] in units:
            return time.time() - float(text[:-1]) * units[text[-1]]
        value = float(text)
    except ValueError:
        raise EdgepackError(f"--since {text!r} is not a duration", hint="write e.g. 90, 15m, 2h, 3d, or a Unix time") \
            from None
    return value if value > 1e9 else time.time() - value


def _fmt(value, spec: str = ".1f") -> str:
    if value is None:
        return "-"
    return format(value, spec) if isinstance(value, float) else str(value)


def _status_table(rows: list[dict]) -> Table:
    cost = any(r["cost_per_1k"] is not None for r in rows)
    table = Table("device", "fleet", "state", "model", "backend", "p50 ms", "p95 ms", "calls/s", "errors", "drift",
                  "ota", "seen", *(["cost/1k"] if cost else []))
    now = time.time()
    for r in rows:
        model = f"{r['model']} {r['version']}" if r["model"] else "-"
        seen = f"{now - r['last_seen']:.0f}s ago" if r["last_seen"] else "-"
        table.add_row(escape(r["device"]), escape(r["fleet"]), _online(r["online"]), escape(model),
                      escape(_fmt(r["backend"])), _fmt(r["p50_ms"], ".2f"), _fmt(r["p95_ms"], ".2f"),
                      _fmt(r["throughput"]), _fmt(r["error_rate"], ".1%"), str(r["drift_alerts"]),
                      escape(_fmt(r["ota_state"])), seen, *([_fmt(r["cost_per_1k"], ".4g")] if cost else []))
    return table


def _online(value) -> str:
    return {True: "[green]online[/]", False: "[red]offline[/]"}.get(value, "[yellow]unknown[/]")


@fleet_app.command()
@handle_errors
def status(history: HistoryUrl = DEFAULT, fleet: FleetOpt = None, model: ModelOpt = None,
           sort: Annotated[str, typer.Option(help="sort key (-key: descending), e.g. -p95_ms")] = "device",
           json_out: Json = False, verbose: Verbose = False):
    """Every device with its state, model, version, backend and latency figures."""
    h = _open(history)
    try:
        rows = h.status(fleet, model=model, sort=sort)
    finally:
        h.close()
    if json_out:
        return print_json({"devices": rows})
    out_console.print(_status_table(rows))
    out_console.print(f"{len(rows)} device(s)")


@fleet_app.command("history")
@handle_errors
def history_cmd(device: Annotated[str, typer.Argument(help="device id")], history: HistoryUrl = DEFAULT,
                metric: Annotated[str, typer.Option(help="p50_ms, p95_ms, p99_ms, throughput, error_rate, "
                                                  "calls, drift_psi, drift_alerts, cost_per_1k, ...")] = "p95_ms",
                since: Annotated[Optional[str], typer.Option(help="from (90, 15m, 2h, 3d ago, or a Unix time)")] = None,
                fleet: FleetOpt = None, json_out: Json = False, verbose: Verbose = False):
    """One device's metric over time (downsampled to per-bucket means where the raw points aged out)."""
    from ..errors import EdgepackError
    from ..fleet.devicerow import SERIES
    if metric not in SERIES:
        raise EdgepackError(f"unknown metric {metric!r}", hint="choose one of " + ", ".join(SERIES))
    h = _open(history)
    try:
        points = h.history(device, metric, since=_since(since), fleet=fleet)
        known = h.metrics(device, fleet) if not points else None
    finally:
        h.close()
    if not points and not known:
        raise EdgepackError(f"no series stored for device {device!r}", hint="see `edgepack fleet status` for devices")
    if not points and metric not in known:
        raise EdgepackError(f"device {device!r} has no metric {metric!r}", hint="its metrics: " + ", ".join(known))
    if json_out:
        return print_json({"device": device, "metric": metric, "points": [list(p) for p in points]})
    table = Table("time (UTC)", metric)
    for ts, value in points:
        table.add_row(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)), f"{value:.4g}")
    out_console.print(table)


@fleet_app.command()
@handle_errors
def drift(history: HistoryUrl = DEFAULT, fleet: FleetOpt = None, model: ModelOpt = None,
          bundle: Annotated[Optional[Path], typer.Option(help="the bundle the devices run: its drift baseline "
                                                         "judges the merged counts")] = None,
          since: Annotated[Optional[str], typer.Option(help="merge every window since then, not only the "
                                                       "newest per device")] = None,
          json_out: Json = False, verbose: Verbose = False):
    """Fleet-wide drift: the devices' window counts added up and judged against the bundle's baseline."""
    from ..fleet.fleetdrift import baseline_of
    base = baseline_of(bundle) if bundle is not None else None
    h = _open(history)
    try:
        report = h.drift(fleet, model, baseline=base, since=_since(since))
    finally:
        h.close()
    if json_out:
        return print_json(report)
    _print_drift(report)


def _print_drift(report: dict) -> None:
    if not report["judged"]:
        for name, m in report["models"].items():
            out_console.print(f"model {escape(name)}: {m['devices']} device(s), {m['calls']} calls observed")
        out_console.print(f"[yellow]{escape(report['note'])}[/]")
    else:
        out_console.print(f"model {escape(str(report['model']))} {escape(str(report['version']))}: "
                          f"{report['devices']} device(s), {report['calls']} calls")
        table = Table("tensor", "kind", "n", "psi", "js", "ks", "alert")
        alerted = {a["tensor"]: ",".join(a["metrics"]) for a in report["alerts"]}
        for name, t in report["tensors"].items():
            table.add_row(escape(name), t["kind"], str(t["n"]), f"{t['psi']:.3f}", f"{t['js']:.3f}",
                          f"{t['ks']:.3f}", f"[red]{alerted[name]}[/]" if name in alerted else "")
        out_console.print(table)
        for s in report["skipped"]:
            out_console.print(f"skipped {escape(s['fleet'])}/{escape(s['device'])}: {escape(s['reason'])}")
    for d in report["device_alerts"]:
        if d["alerts"]:
            names = ", ".join(f"{a.get('tensor')} ({','.join(a.get('metrics', []))})" for a in d["alerts"])
            out_console.print(f"[red]device alert[/] {escape(d['fleet'])}/{escape(d['device'])}: {escape(names)}")


# ---- more fleet commands register below (fleet simulate: edgepack/fleet/simulate.py) ----
from .simulate import acl, simulate  # noqa: E402  (M3: fleet simulate, fleet acl)

fleet_app.command("simulate")(simulate)
fleet_app.command("acl")(acl)
