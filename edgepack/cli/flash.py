"""``edgepack flash`` and ``edgepack rollback``: model updates of devices over MQTT (or --via ssh/dir)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from edgepack_runtime.errors import OtaError

from .common import err_console, handle_errors, out_console, print_json

BROKER_HELP = "mqtt://HOST:PORT or mqtts://HOST:PORT"
Broker = Annotated[Optional[str], typer.Option("--broker", help=BROKER_HELP)]
Devices = Annotated[list[str], typer.Option("--device", "-d", help="device id (repeatable)")]
Fleet = Annotated[Optional[str], typer.Option("--fleet", help="fleet of the devices (default: 'default'); "
                                              "without --device: every device that announced itself in it")]
Json = Annotated[bool, typer.Option("--json", help="print one result per device as JSON")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="show tracebacks")]
User = Annotated[Optional[str], typer.Option(help="MQTT user name")]
Password = Annotated[Optional[str], typer.Option(help="MQTT password", envvar="EDGEPACK_MQTT_PASSWORD")]
Ca = Annotated[Optional[Path], typer.Option(help="CA file for mqtts://")]
ConnectTimeout = Annotated[float, typer.Option(help="seconds to reach the broker")]


@handle_errors
def flash(
    bundle: Annotated[Path, typer.Argument(help="the .edgepack bundle file")],
    broker: Broker = None, device: Devices = [], fleet: Fleet = None,  # noqa: B006 (typer's list default)
    timeout: Annotated[float, typer.Option(help="seconds to wait for every device's final state")] = 600.0,
    chunk_size: Annotated[int, typer.Option(help="bytes per chunk (4 KiB to 16 MiB; fitted to the broker's "
                                            "maximum packet size)")] = 256 * 1024,
    max_inflight: Annotated[int, typer.Option(help="chunks in flight to the broker, all devices")] = 32,
    budget_ms: Annotated[Optional[float], typer.Option(help="health-check latency budget on the device (ms)")] = None,
    discovery: Annotated[float, typer.Option(help="seconds to collect the devices' announcements")] = 2.0,
    allow_unknown: Annotated[bool, typer.Option(help="offer to named devices that never announced themselves: "
                                                "pending until they appear")] = False,
    via: Annotated[Optional[str], typer.Option(help="deliver over ssh://user@host[:port]/STATE_DIR or dir:PATH "
                                               "instead of MQTT")] = None,
    shadow: Annotated[bool, typer.Option("--shadow", help="run BUNDLE as a shadow beside the serving model (same "
                                         "checks, never serves; agreement in telemetry): ok when 'shadowing'")] = False,
    shadow_share: Annotated[Optional[float], typer.Option(
        min=0.0, max=1.0, help="with --shadow: share of calls the shadow runs on (default: the device's)")] = None,
    username: User = None, password: Password = None, ca: Ca = None, connect_timeout: ConnectTimeout = 10.0,
    json_out: Json = False, verbose: Verbose = False,
):
    """Send BUNDLE to devices: each verifies it, installs it into its inactive slot, health-checks it and
    switches, or keeps its previous model. Exits non-zero unless every device committed the update."""
    if shadow_share is not None and not shadow:
        raise OtaError("--shadow-share goes with --shadow", hint="add --shadow, or drop --shadow-share")
    if via:
        if shadow:
            raise OtaError("--shadow works over MQTT only", hint="drop --via, or flash without --shadow")
        return _via(via, bundle, json_out)
    from ..fleet.flash import FlashSettings
    from ..fleet.flash import flash as run_flash
    devices, fleet_name = _targets(broker, device, fleet)
    settings = FlashSettings(chunk_size=chunk_size, max_inflight=max_inflight, timeout=timeout, budget_ms=budget_ms,
                             discovery=discovery, allow_unknown=allow_unknown, username=username,
                             connect_timeout=connect_timeout,
                             password=password, ca=str(ca) if ca else None,
                             mode="shadow" if shadow else "install", shadow_share=shadow_share)
    with _Bars(quiet=json_out) as bars:
        results = run_flash(bundle, broker=broker, devices=devices, fleet=fleet_name, settings=settings,
                            progress=bars.update)
    _finish(results, json_out, "shadowing" if shadow else "committed", "flash")


@handle_errors
def rollback(
    broker: Broker = None, device: Devices = [], fleet: Fleet = None,  # noqa: B006
    timeout: Annotated[float, typer.Option(help="seconds to wait for the devices' answers")] = 60.0,
    username: User = None, password: Password = None, ca: Ca = None, connect_timeout: ConnectTimeout = 10.0,
    json_out: Json = False, verbose: Verbose = False,
):
    """Return devices to their previous model (the other slot, health-checked first)."""
    from ..fleet.rollback import rollback as run_rollback
    devices, fleet_name = _targets(broker, device, fleet)
    results = run_rollback(broker=broker, devices=devices, fleet=fleet_name, timeout=timeout, username=username,
                           password=password, ca=str(ca) if ca else None, connect_timeout=connect_timeout)
    _finish(results, json_out, "rolled_back", "rollback")


def _targets(broker, device, fleet) -> tuple[list[str], str]:
    if not broker:
        raise OtaError("--broker is required", hint="e.g. --broker mqtt://10.0.0.2:1883 (or --via for flash)")
    if not device and not fleet:
        raise OtaError("name the devices: --device ID (repeatable) or --fleet NAME for every device of a fleet")
    return list(device), fleet or "default"


def _finish(results: list[dict], json_out: bool, good: str, verb: str) -> None:
    if json_out:
        print_json(results)
    else:
        for r in results:
            color = "green" if r["ok"] else "red"
            why = f": {escape(r['reason'])}" if r.get("reason") and not r["ok"] else ""
            out_console.print(f"[{color}]{escape(r['device'])}[/] {escape(r['state'])}{why}")
    bad = [r["device"] for r in results if not r["ok"]]
    if bad:
        if not json_out:
            err_console.print(f"[bold red]error:[/] {verb} did not end in {good} on {len(bad)} of {len(results)} "
                              f"device(s): {escape(', '.join(bad))}")
        raise typer.Exit(OtaError.exit_code)


def _via(url: str, bundle: Path, json_out: bool) -> None:
    try:
        from ..fleet.via import deliver
    except ImportError:
        raise OtaError("--via is not available in this installation (edgepack.fleet.via is missing)") from None
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  console=err_console, disable=json_out) as bars:
        task = bars.add_task(escape(url), total=None)
        result = deliver(url, bundle, install=True, progress=lambda done, total: bars.update(task, completed=done,
                                                                                             total=total))
    if json_out:
        print_json(result)
        return
    status = result.get("status") or {}
    out_console.print(f"delivered to {escape(str(result.get('path')))} ({result.get('via')}); "
                      + (f"device state: {escape(str(status.get('state')))}" if status else
                         "the device installs it on its next start"))
    if status and status.get("state") != "committed":
        raise typer.Exit(OtaError.exit_code)


class _Bars:
    """One progress bar per device: transfer %, then the device's state."""

    def __init__(self, quiet: bool):
        self.progress = Progress(TextColumn("{task.fields[device]}"), BarColumn(), TextColumn("{task.description}"),
                                 TimeElapsedColumn(), console=err_console, disable=quiet)
        self.tasks: dict[str, int] = {}

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def update(self, rows: list[dict]) -> None:
        for r in rows:
            if r["device"] not in self.tasks:
                self.tasks[r["device"]] = self.progress.add_task("", total=1.0, device=escape(r["device"]))
            state = r["state"] + (" (offline)" if r.get("online") == "offline" and r["state"] == "pending" else "")
            done = r["progress"] if r["state"] == "downloading" and r["progress"] is not None else (
                1.0 if r["state"] not in ("pending", "downloading") else 0.0)
            text = f"{state} {100 * done:.0f}%" if r["state"] == "downloading" else state
            self.progress.update(self.tasks[r["device"]], completed=done, description=escape(text))
