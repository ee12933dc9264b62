"""``edgepack rollout``: flash a bundle to a fleet in waves, each gated on the new model's health."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from edgepack_runtime.errors import OtaError

from .common import err_console, handle_errors, out_console, print_json

Opt = typer.Option


@handle_errors
def rollout(
    bundle: Annotated[Optional[Path], typer.Argument(help="the .edgepack bundle file (not with --resume)")] = None,
    fleet: Annotated[Optional[str], Opt(help="fleet to roll out to (its devices that take updates)")] = None,
    broker: Annotated[Optional[str], Opt(help="mqtt://HOST:PORT or mqtts://HOST:PORT (on --resume: overrides "
                                              "the recorded one)")] = None,
    canary: Annotated[str, Opt(help="share of the fleet in the first wave (at least one device)")] = "10%",
    waves: Annotated[str, Opt(help="cumulative shares of the fleet after each following wave")] = "25%,50%,100%",
    max_error_rate: Annotated[float, Opt(help="stop when errors / requests of the new model exceed this")] = 0.01,
    max_p95_ratio: Annotated[float, Opt(help="stop when p95 latency new / old (same devices) exceeds this")] = 1.5,
    max_drift: Annotated[float, Opt(help="stop when this share of the new model's drift windows raised alerts")] = 0.2,
    soak: Annotated[float, Opt(help="seconds of the new model's telemetry to judge each wave on")] = 300.0,
    soak_max: Annotated[Optional[float], Opt(help="longest soak while a device has sent too little "
                                                  "telemetry (default 2 x --soak)")] = None,
    min_calls: Annotated[int, Opt(help="requests the new model must serve in a soak to be judged")] = 20,
    min_periods: Annotated[int, Opt(help="telemetry periods per device wanted (baseline and soak)")] = 2,
    p95_floor_ms: Annotated[float, Opt(help="p95 latencies under this count as this in the ratio (ms)")] = 0.0,
    baseline_window: Annotated[float, Opt(help="seconds of the old model's telemetry in a baseline")] = 900.0,
    baseline_wait: Annotated[Optional[float], Opt(help="longest wait for baseline telemetry (default --soak)")] = None,
    history: Annotated[Optional[str], Opt(help="fleet history (sqlite:///PATH or postgresql://...) to take "
                                               "baselines from")] = None,
    state: Annotated[Optional[Path], Opt(help="rollout state file (default rollout-FLEET-BUNDLE.json)")] = None,
    resume: Annotated[bool, Opt(help="go on with the rollout of --state (after a restart or a kill)")] = False,
    require_shadow: Annotated[Optional[float], Opt(help="seconds each wave runs the bundle as a shadow first")] = None,
    shadow_share: Annotated[float, Opt(help="share of requests a shadow sees")] = 0.1,
    shadow_min_samples: Annotated[int, Opt(help="shadow samples per device needed to judge it")] = 100,
    shadow_min_cosine: Annotated[float, Opt(help="lowest mean cosine shadow vs serving answers")] = 0.999,
    shadow_min_top1: Annotated[float, Opt(help="lowest top-1 agreement (class-score outputs)")] = 0.99,
    shadow_max_p95_ratio: Annotated[Optional[float], Opt(help="highest shadow/serving p95 (off: the shadow runs "
                                                              "niced; the soak judges latency)")] = None,
    flash_timeout: Annotated[float, Opt(help="seconds a wave's flash may take")] = 600.0,
    rollback_timeout: Annotated[float, Opt(help="seconds to wait for the devices' rollback answers")] = 60.0,
    discovery: Annotated[float, Opt(help="seconds to collect the devices' announcements")] = 2.0,
    budget_ms: Annotated[Optional[float], Opt(help="health-check latency budget on the device (ms)")] = None,
    username: Annotated[Optional[str], Opt(help="MQTT user name")] = None,
    password: Annotated[Optional[str], Opt(help="MQTT password", envvar="EDGEPACK_MQTT_PASSWORD")] = None,
    ca: Annotated[Optional[Path], Opt(help="CA file for mqtts://")] = None,
    connect_timeout: Annotated[float, Opt(help="seconds to reach the broker")] = 10.0,
    json_out: Annotated[bool, Opt("--json", help="print the rollout's state document as JSON")] = False,
    verbose: Annotated[bool, Opt("--verbose", "-v", help="show tracebacks")] = False,
):
    """Roll BUNDLE out to a fleet in waves: the canary first, then wider. Each wave is flashed, its telemetry
    watched for --soak seconds and compared with the previous model on the same devices (error rate, p95
    latency ratio, drift alerts): pass -> next wave; fail -> stop and roll every updated device back.
    The state file lets --resume continue after a restart. Exits 11 when the rollout stopped."""
    from ..fleet.rollout import Auth, Gates, RolloutSettings, resume_rollout, start_rollout
    auth = Auth(username=username, password=password, ca=str(ca) if ca else None, connect_timeout=connect_timeout)
    view = _View(quiet=json_out)
    if resume:
        path = state or _default_state(bundle, fleet)
        doc = resume_rollout(path, broker=broker, auth=auth, progress=view)
    else:
        if bundle is None or not fleet or not broker:
            raise OtaError("a rollout needs BUNDLE, --fleet and --broker (or --resume --state FILE)",
                           hint="e.g. edgepack rollout m.edgepack --fleet lab --broker mqtt://10.0.0.2:1883")
        settings = RolloutSettings(canary=canary, waves=waves, soak=soak, soak_max=soak_max,
                                   baseline_window=baseline_window, baseline_wait=baseline_wait, discovery=discovery,
                                   flash_timeout=flash_timeout, rollback_timeout=rollback_timeout, budget_ms=budget_ms,
                                   history=history, require_shadow=require_shadow, shadow_share=shadow_share,
                                   shadow_min_samples=shadow_min_samples, shadow_min_cosine=shadow_min_cosine,
                                   shadow_min_top1=shadow_min_top1, shadow_max_p95_ratio=shadow_max_p95_ratio,
                                   gates=Gates(max_error_rate=max_error_rate, max_p95_ratio=max_p95_ratio,
                                               max_drift=max_drift, min_calls=min_calls, min_periods=min_periods,
                                               p95_floor_ms=p95_floor_ms))
        path = state or _default_state(bundle, fleet)
        doc = start_rollout(bundle, broker=broker, fleet=fleet, state=path, settings=settings, auth=auth,
                            progress=view)
    view.close()
    if json_out:
        print_json(doc)
    else:
        _summary(doc, path)
    if doc["status"] != "completed":
        if not json_out:
            err_console.print(f"[bold red]rollout stopped:[/] {escape(str(doc.get('reason')))}", soft_wrap=True)
        raise typer.Exit(OtaError.exit_code)


def _default_state(bundle: Optional[Path], fleet: Optional[str]) -> Path:
    if bundle is None or not fleet:
        raise OtaError("--resume needs --state FILE (or BUNDLE and --fleet to find the default state file)")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"rollout-{fleet}-{Path(bundle).stem}")
    return Path(f"{name}.json")


class _View:
    """Progress on stderr: a spinner line while waiting, one line per decision."""

    def __init__(self, quiet: bool):
        self.quiet, self.status = quiet, None

    def _say(self, text: str) -> None:
        if self.status is None:
            self.status = err_console.status(text)
            self.status.start()
        else:
            self.status.update(text)

    def _print(self, text: str) -> None:
        err_console.print(text, soft_wrap=True)

    def close(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None

    def __call__(self, event: str, data: dict) -> None:
        if self.quiet:
            return
        wave = escape(str(data.get("wave", "")))
        if event == "plan":
            for w in data["waves"]:
                self._print(f"plan: [bold]{escape(w['name'])}[/] ({w['share']:.0%}): {escape(', '.join(w['devices']))}")
            for s in data["skipped"]:
                self._print(f"skipped {escape(s['device'])}: {escape(s['why'])}")
        elif event == "baseline":
            self._say(f"{wave}: waiting for baseline telemetry ({data['left_s']:.0f} s left)")
        elif event == "flash":
            self._say(f"{wave}: flashing " + ", ".join(_row(r) for r in data["rows"]))
        elif event in ("soak", "shadow"):
            f = data.get("figures")
            self._say(f"{wave}: {event} {data['elapsed_s']:.0f}/{data.get('soak_s', data.get('shadow_s')):g} s"
                      + (f": {f['calls']} calls, {f['errors']} errors, p95 {_ms(f['p95_ms'])} "
                         f"(before {_ms(data['baseline']['p95_ms'])})" if f else ""))
        elif event == "decision":
            self.close()
            d = data["decision"]
            color, word = ("green", "passed") if d["passed"] else ("red", "failed")
            self._print(f"[{color}]{wave} {word}[/]" + (f": {escape(d['reason'])}" if d.get("reason") else ""))
        elif event == "rollback":
            self.close()
            result = data.get("result")
            if result is None:
                self._print(f"rolling back {escape(', '.join(data['devices'])) or 'no device'}")
            else:
                for device, r in result["devices"].items():
                    self._print(f"  {escape(device)}: {escape(str(r['state']))}")


def _row(r: dict) -> str:
    done = r.get("progress") if r["state"] == "downloading" else None
    return f"{escape(r['device'])} {escape(r['state'])}" + (f" {100 * done:.0f}%" if done is not None else "")


def _ms(v) -> str:
    return "n/a" if v is None else f"{v:.3g} ms"


def _summary(doc: dict, path: Path) -> None:
    table = Table(title=f"rollout of {escape(doc['bundle']['model_id'])} to fleet {escape(doc['fleet'])}: "
                        f"{doc['status']}")
    for col in ("wave", "devices", "state", "errors", "p95 before", "p95 after", "drift alerting", "seconds"):
        table.add_column(col)
    for w in doc["waves"]:
        f, b = (w.get("figures") or {}).get("all") or {}, (w.get("baseline") or {}).get("all") or {}
        rate = f.get("error_rate")
        share = f.get("drift_share")
        secs = sum(v for v in (w.get("timing") or {}).values() if isinstance(v, (int, float)))
        table.add_row(escape(w["name"]), str(len(w["devices"])), w["state"],
                      "" if rate is None else f"{rate:.2%}", _ms(b.get("p95_ms")) if b else "",
                      _ms(f.get("p95_ms")) if f else "", "" if share is None else f"{share:.0%}",
                      f"{secs:.1f}" if secs else "")
    out_console.print(table)
    out_console.print(f"state: {escape(str(path))}")
