"""``edgepack fleet simulate`` (N real agents in one process) and ``edgepack fleet acl`` (broker users and ACLs)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from .common import err_console, handle_errors, out_console, print_json

Opt = typer.Option


@handle_errors
def simulate(
    devices: Annotated[int, Opt("--devices", "-n", help="simulated devices")],
    bundle: Annotated[Path, Opt("--bundle", help="the bundle every device serves (real inference)")],
    broker: Annotated[str, Opt("--broker", help="mqtt://HOST:PORT or mqtts://HOST:PORT")],
    fleet: Annotated[str, Opt("--fleet", help="fleet name in the topics")] = "sim",
    duration: Annotated[float, Opt("--duration", help="seconds to run (0: until Ctrl-C)")] = 60.0,
    rate: Annotated[float, Opt("--rate", help="requests per second per device (Poisson)")] = 2.0,
    telemetry_interval: Annotated[float, Opt("--telemetry-interval", help="seconds per telemetry period")] = 5.0,
    drift: Annotated[float, Opt("--drift", help="input shift, in standard deviations of the samples")] = 0.0,
    drift_scale: Annotated[float, Opt("--drift-scale", help="input scale factor of drifting devices")] = 1.0,
    drift_at: Annotated[float, Opt("--drift-at", help="seconds from the start when drift begins")] = 0.0,
    drift_share: Annotated[float, Opt("--drift-share", help="share of devices that drift (0..1)")] = 1.0,
    drift_window: Annotated[float, Opt("--drift-window", help="seconds per drift window")] = 10.0,
    latency_spikes: Annotated[float, Opt("--latency-spikes", help="share of calls slowed by a spike (0..1)")] = 0.0,
    spike_ms: Annotated[float, Opt("--spike-ms", help="length of a spike (x 0.5..1.5)")] = 100.0,
    crash_rate: Annotated[float, Opt("--crash-rate", help="crashes per device per minute")] = 0.0,
    crash_downtime: Annotated[float, Opt("--crash-downtime", help="seconds a crashed device stays down")] = 5.0,
    network_cuts: Annotated[float, Opt("--network-cuts", help="network cuts per device per minute")] = 0.0,
    cut_seconds: Annotated[float, Opt("--cut-seconds", help="seconds a network cut lasts")] = 3.0,
    seed: Annotated[int, Opt("--seed", help="seed of every random choice")] = 0,
    inputs: Annotated[Optional[Path], Opt("--inputs", help=".npz of real inputs, one row per request (default: "
                                          "drawn from the bundle's drift baseline)")] = None,
    runtimes: Annotated[int, Opt("--runtimes", help="loaded copies of the model (0: one per CPU)")] = 0,
    backend: Annotated[Optional[str], Opt("--backend", help="force a backend")] = None,
    prefix: Annotated[str, Opt("--prefix", help="device ids are PREFIX0001, PREFIX0002, ...")] = "sim-",
    profile: Annotated[Optional[str], Opt("--profile", help="device profile the devices announce (flash checks "
                                          "it); its [power] and [cost] figures")] = None,
    power_watts: Annotated[Optional[float], Opt("--power-watts", help="device power draw (W)")] = None,
    cost_per_hour: Annotated[Optional[float], Opt("--cost-per-hour", help="price of a device-hour")] = None,
    credentials: Annotated[Optional[Path], Opt("--credentials", help="credentials.json of `fleet acl`: "
                                                 "each device logs in as itself")] = None,
    username: Annotated[Optional[str], Opt("--username", help="one MQTT user for every device")] = None,
    password: Annotated[Optional[str], Opt("--password", help="its password")] = None,
    ca: Annotated[Optional[str], Opt("--ca", help="CA file for mqtts://")] = None,
    ota: Annotated[bool, Opt("--ota", help="give every device an A/B state folder: they take `edgepack flash` "
                                           "updates and rollouts")] = False,
    trust_keys: Annotated[Optional[list[Path]], Opt("--trust-key", help="serve and install only bundles signed by "
                                                     "this public key (repeatable)")] = None,
    json_out: Annotated[bool, Opt("--json", help="print the final figures as JSON")] = False,
    verbose: Annotated[bool, Opt("--verbose", "-v", help="show tracebacks")] = False,
):
    """Run N real device agents (real bundle, real inference, own MQTT connection and outbox each) with input
    drift, latency spikes, crashes and network cuts, for demos and load tests."""
    from ..fleet.simulate import SimSettings, Simulator
    settings = SimSettings(devices=devices, bundle=bundle, broker=broker, fleet=fleet, duration=duration or None,
                           rate=rate, telemetry_interval=telemetry_interval, drift=drift, drift_scale=drift_scale,
                           drift_at=drift_at, drift_share=drift_share, drift_window=drift_window,
                           latency_spikes=latency_spikes, spike_ms=spike_ms, crash_rate=crash_rate,
                           crash_downtime=crash_downtime, network_cuts=network_cuts, cut_seconds=cut_seconds,
                           seed=seed, inputs=inputs, runtimes=runtimes, backend=backend, prefix=prefix,
                           username=username, password=password, ca=ca, ota=ota, profile=profile,
                           trust_keys=tuple(str(k) for k in trust_keys or ()),
                           **_cost(profile, power_watts, cost_per_hour),
                           passwords=_passwords(credentials, fleet))
    sim = Simulator(settings)
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err_console,
                  disable=json_out) as bars:
        task = bars.add_task(f"{devices} devices", total=duration or None)
        try:
            stats = sim.run(lambda st: bars.update(task, completed=st["elapsed_s"], description=_line(st)))
        except KeyboardInterrupt:
            stats = sim.stats()
    if json_out:
        return print_json(stats)
    out_console.print(_line(stats))


def _cost(profile: str | None, power_watts: float | None, cost_per_hour: float | None) -> dict:
    """Power and price: the flags, else the profile's ``[power]`` / ``[cost]``."""
    stated = {}
    if profile:
        from ..devices import cost_settings, profiles
        from ..errors import EdgepackError
        found = profiles()
        if profile not in found:
            raise EdgepackError(f"no device profile {profile!r}", hint=f"profiles: {', '.join(found)}")
        stated = cost_settings(found[profile])
    if power_watts is not None:
        stated["power_watts"] = power_watts
    if cost_per_hour is not None:
        stated["cost_per_hour"] = cost_per_hour
    return stated


def _passwords(path: Path | None, fleet: str) -> dict:
    if path is None:
        return {}
    from ..errors import EdgepackError
    try:
        creds = json.loads(path.read_text())
        devices = creds["devices"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EdgepackError(f"cannot read credentials {path}: {exc}",
                            hint="pass the credentials.json `edgepack fleet acl` wrote") from None
    if creds.get("fleet") != fleet:
        raise EdgepackError(f"credentials {path} are for fleet {creds.get('fleet')!r}, not {fleet!r}",
                            hint="pass --fleet with the same name as `edgepack fleet acl --fleet`")
    return devices


def _line(st: dict) -> str:
    states = ", ".join(f"{n} {k}" for k, n in sorted(st.get("states", {}).items()))
    return (f"{st['devices']} devices ({escape(states)}), {st.get('connected', 0)} connected; "
            f"{st.get('answered', 0)} answered, {st.get('busy', 0)} busy, {st.get('errors', 0)} errors; "
            f"lag p95 {st.get('lag_ms', {}).get('p95', 0):.1f} ms; crashes {st['crashes']}, cuts {st['cuts']}, "
            f"spikes {st['spikes']}; outbox {st.get('outbox_queued', 0)}")


@handle_errors
def acl(
    fleet: Annotated[str, Opt("--fleet", help="fleet name in the topics")],
    devices: Annotated[str, Opt("--devices", help="N (ids PREFIX0001..), a comma list of ids, or @FILE")],
    out: Annotated[Path, Opt("--out", help="folder for acl, passwd, credentials.json, agents/, mosquitto.conf")],
    prefix: Annotated[str, Opt("--prefix", help="id prefix when --devices is a count")] = "dev-",
    host_user: Annotated[str, Opt("--host-user", help="the monitor/flash user")] = "edgepack-host",
    port: Annotated[int, Opt("--port", help="listener port in mosquitto.conf")] = 1883,
    json_out: Annotated[bool, Opt("--json", help="machine-readable summary")] = False,
    verbose: Annotated[bool, Opt("--verbose", "-v", help="show tracebacks")] = False,
):
    """Write mosquitto per-device users and ACLs for a fleet (see docs/operator.md)."""
    from ..fleet.aclgen import device_ids, write_acl
    info = write_acl(out, fleet=fleet, ids=device_ids(devices, prefix=prefix), host_user=host_user, port=port)
    if json_out:
        return print_json(info)
    out_console.print(f"fleet {escape(fleet)}: {info['devices']} device users + host user {escape(host_user)}; "
                      f"wrote {escape(str(out))}/(acl, passwd, credentials.json, agents/, mosquitto.conf); "
                      "keep credentials.json and agents/ secret")
