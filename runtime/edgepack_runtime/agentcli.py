"""``edgepack-device agent``: settings from flags and/or a TOML file (flags win), then run until stopped."""
from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from urllib.parse import urlparse

from .errors import EdgepackError

# every setting: (type, default, flag help or None for TOML-only)
SETTINGS = {
    "bundle": (str, None, "bundle file or folder to serve"),
    "broker": (str, None, "mqtt://HOST:PORT or mqtts://HOST:PORT (omit to run without MQTT)"),
    "device_id": (str, None, "this device's id in the topics"),
    "fleet": (str, "default", "fleet name in the topics"),
    "telemetry_interval": (float, 10.0, "seconds between telemetry messages"),
    "telemetry_file": (str, None, "without --broker: append telemetry/drift/events as JSON lines here"),
    "http_host": (str, "127.0.0.1", "address of the local HTTP API"),
    "http_port": (int, 8470, "port of the local HTTP API (0 picks a free one)"),
    "http_max_connections": (int, 128, "open HTTP connections at most (past it: close an idle one, else 503)"),
    "http_header_timeout": (float, 10.0, "seconds for a request head to arrive (else 408)"),
    "http_body_timeout": (float, 30.0, "seconds for a request body to arrive (else 408)"),
    "http_idle_timeout": (float, 5.0, "seconds an idle keep-alive connection stays open"),
    "http_max_body_mb": (float, 16.0, "largest request body (else 413)"),
    "http_body_budget_mb": (float, 128.0, "request bodies in flight and their decoding, all together (else 503)"),
    "outbox": (str, "edgepack-outbox.db", "SQLite file for store-and-forward"),
    "outbox_max_messages": (int, 10_000, "messages kept while the broker is away"),
    "outbox_max_mb": (float, 50.0, "megabytes kept while the broker is away"),
    "outbox_policy": (str, "drop-oldest", "past the bound: drop-oldest or drop-newest"),
    "username": (str, None, "MQTT user name"),
    "password": (str, None, "MQTT password"),
    "ca": (str, None, "CA file for mqtts://"),
    "cert": (str, None, "client certificate for mqtts://"),
    "key": (str, None, "client key for mqtts://"),
    "mqtt_protocol": (str, "auto", "auto (5, else 3.1.1), 5 or 3.1.1"),
    "queue_size": (int, 64, "requests waiting before the API answers busy"),
    "cache_size": (int, 0, "LRU cache of outputs for repeated identical inputs (0 = off)"),
    "max_batch": (int, 1, "micro-batch single-row requests up to this size"),
    "max_wait_ms": (float, 2.0, "longest wait to fill a micro-batch"),
    "drift_window": (int, 1000, "observations per drift window"),
    "drift_window_seconds": (float, None, "close drift windows after this many seconds as well"),
    "drift_psi": (float, 0.25, None), "drift_js": (float, 0.1, None), "drift_ks": (float, 0.2, None),
    "drift_class_shift": (float, 0.2, None),
    "threads": (int, None, "backend threads"),
    "backend": (str, None, "force a backend: litert, tflite-runtime, onnxruntime"),
    "sample_dir": (str, None, "keep raw inputs/outputs here for labeling (off by default)"),
    "sample_per_minute": (float, 6.0, "raw samples kept per minute at most"),
    "sample_max_mb": (float, 100.0, "size cap of the raw sample folder"),
    "refuse_nonfinite": (bool, False, "answer inputs holding NaN or Inf with an input error (400) instead of running"),
    "command_rate": (float, 5.0, "MQTT commands handled per second at most (token bucket; more answer rate_limited)"),
    "command_burst": (int, 20, "MQTT commands handled at once before command_rate applies"),
    "trust_keys": (list, None, None),   # public key files (flag: --trust-key, repeatable); set: only signed bundles
    "state_dir": (str, None, "OTA state folder (A/B slots, ota.json, inbox/): serve its active slot and take updates"),
    "profile": (str, None, "this device's profile (e.g. raspberry-pi-5): updates built for other profiles are refused"),
    "health_budget_ms": (float, None, "latency budget of an update's health check (median ms per call; unset: none)"),
    "power_watts": (float, None, "the device's average power draw (W): telemetry then carries energy_j_per_1k"),
    "cost_per_hour": (float, None, "what one device-hour costs: telemetry then carries cost_per_1k"),
    "shadow_share": (float, 0.1, "share of calls also run on a shadow bundle (flash --shadow; the offer may set it)"),
    "shadow_queue": (int, 8, "sampled calls waiting for the shadow; past it they are dropped and counted"),
    "shadow_nice": (int, 19, "niceness added to the shadow's threads: the serving model wins the CPU (0: equal)"),
}
# floor and ceiling of every numeric setting, inclusive (runtime/README.md states them; a test keeps them in step)
BOUNDS = {
    "telemetry_interval": (0.1, 86400.0), "http_port": (0, 65535),
    "outbox_max_messages": (1, 10_000_000), "outbox_max_mb": (0.01, 100_000.0),
    "queue_size": (1, 100_000), "cache_size": (0, 100_000), "max_batch": (1, 1024), "max_wait_ms": (0.0, 10_000.0),
    "drift_window": (10, 100_000_000), "drift_window_seconds": (1.0, 30 * 86400.0),
    "drift_psi": (0.0, 100.0), "drift_js": (0.0, 1.0), "drift_ks": (0.0, 1.0), "drift_class_shift": (0.0, 1.0),
    "threads": (1, 1024), "sample_per_minute": (0.0, 60_000.0), "sample_max_mb": (0.0, 1_000_000.0),
    "command_rate": (0.01, 1000.0), "command_burst": (1, 10_000),
    "http_max_connections": (1, 10_000), "http_header_timeout": (0.1, 3600.0), "http_body_timeout": (0.1, 3600.0),
    "http_idle_timeout": (0.1, 3600.0), "http_max_body_mb": (0.001, 4096.0), "http_body_budget_mb": (0.01, 65536.0),
    "health_budget_ms": (0.0, 3_600_000.0), "power_watts": (0.0, 100_000.0), "cost_per_hour": (0.0, 1_000_000.0),
    "shadow_share": (0.0, 1.0), "shadow_queue": (1, 10_000), "shadow_nice": (0, 19),
}


def describe_bounds(key: str) -> str:
    """``[lo, hi]`` of a numeric setting, as the README and the error messages write it."""
    return "[" + ", ".join(str(int(b)) if float(b).is_integer() else f"{b:g}" for b in BOUNDS[key]) + "]"


def _bounded(key: str, value, source: str):
    """``value`` if it lies within the setting's bounds (NaN never does), else an error naming the setting."""
    if key in BOUNDS and value is not None and not isinstance(value, bool):
        lo, hi = BOUNDS[key]
        if not lo <= value <= hi:
            raise EdgepackError(f"agent setting {source} must be in {describe_bounds(key)}, not {value!r}",
                                hint="see the settings table in the runtime README")
    return value
DEFAULTS = {k: d for k, (_, d, _) in SETTINGS.items() if d is not None}
KEYS = set(SETTINGS)


def add_parser(sub) -> None:
    p = sub.add_parser("agent", help="run the bundle as a service: local HTTP API, telemetry over MQTT")
    p.add_argument("--config", type=Path, help="TOML file with the same settings (flags override it)")
    for key, (kind, default, help_) in SETTINGS.items():
        if help_ is not None and kind is bool:
            p.add_argument("--" + key.replace("_", "-"), dest=key, action="store_const", const=True, help=help_)
        elif help_ is not None:
            shown = f" (default {default})" if default is not None else ""
            shown += f", within {describe_bounds(key)}" if key in BOUNDS else ""
            p.add_argument("--" + key.replace("_", "-"), dest=key, type=kind, help=help_ + shown)
    p.add_argument("--trust-key", dest="trust_keys", action="append", metavar="PUB",
                   help="serve only bundles signed by this public key (repeatable; TOML: trust_keys = [...])")
    p.add_argument("--list-commands", action="store_true",
                   help="print the MQTT command table (cmd/<verb>: arguments, what it does) and exit")
    p.add_argument("--verbose", "-v", action="store_true")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)


def _typed(key: str, value, source: str):
    kind = SETTINGS[key][0]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is list and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise EdgepackError(f"agent setting {key} in {source} must be a list of file paths, not {value!r}")
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise EdgepackError(f"agent setting {key} in {source} must be {kind.__name__}, not {value!r}")
    return _bounded(key, value, f"{key} in {source}")


def settings(args) -> dict:
    """Defaults, then the TOML file, then the flags; checked for unknown keys, types and required ones."""
    conf = dict(DEFAULTS)
    if getattr(args, "config", None):
        try:
            import tomllib
        except ImportError:  # Python < 3.11 on older devices
            import tomli as tomllib  # type: ignore[no-redef]
        try:
            data = tomllib.loads(Path(args.config).read_text())
        except (OSError, ValueError) as exc:
            raise EdgepackError(f"cannot read agent config {args.config}: {exc}") from None
        unknown = sorted(set(data) - KEYS)
        if unknown:
            raise EdgepackError(f"agent config {args.config} has unknown keys {unknown}",
                                hint=f"known keys: {', '.join(sorted(KEYS))}")
        conf.update({k: _typed(k, v, str(args.config)) for k, v in data.items()})
    conf.update({k: _bounded(k, v, f"--{k.replace('_', '-')}") for k, v in vars(args).items()
                 if k in KEYS and v is not None})
    if not conf.get("bundle") and not conf.get("state_dir"):
        raise EdgepackError("no bundle given", hint="pass --bundle PATH (or --state-dir DIR) or set it in --config")
    if conf.get("broker") and not conf.get("device_id"):
        raise EdgepackError("--device-id is required with --broker")
    if conf["outbox_policy"] not in ("drop-oldest", "drop-newest"):
        raise EdgepackError(f"outbox_policy must be drop-oldest or drop-newest, not {conf['outbox_policy']!r}")
    if conf["mqtt_protocol"] not in ("auto", "5", "3.1.1"):
        raise EdgepackError(f"mqtt_protocol must be auto, 5 or 3.1.1, not {conf['mqtt_protocol']!r}")
    return conf


def make_sink(conf: dict):
    """The MQTT link for ``broker`` (with its outbox), a JSON-lines file for ``telemetry_file``, else None."""
    if not conf.get("broker"):
        if conf.get("telemetry_file"):
            from .sink import JsonLinesSink
            return JsonLinesSink(conf["telemetry_file"], device_id=conf.get("device_id") or "local",
                                 fleet=conf["fleet"])
        return None
    from .link import MqttLink
    from .outbox import Outbox
    url = urlparse(conf["broker"])
    if url.scheme not in ("mqtt", "mqtts") or not url.hostname:
        raise EdgepackError(f"broker must look like mqtt://HOST:PORT, not {conf['broker']!r}")
    outbox = Outbox(conf["outbox"], max_messages=conf["outbox_max_messages"],
                    max_bytes=int(conf["outbox_max_mb"] * 2 ** 20), policy=conf["outbox_policy"])
    tls = {k: conf.get(k) for k in ("ca", "cert", "key")} if url.scheme == "mqtts" else False
    return MqttLink(host=url.hostname, port=url.port or (8883 if tls else 1883), device_id=conf["device_id"],
                    fleet=conf["fleet"], outbox=outbox, username=conf.get("username"),
                    password=conf.get("password"), tls=tls, protocol=conf["mqtt_protocol"],
                    command_rate=conf["command_rate"], command_burst=conf["command_burst"])


def make_agent(conf: dict):
    from .agent import Agent
    from .drift import Thresholds
    from .runtime import Runtime
    from .signing import open_verified
    updater = None
    if conf.get("state_dir"):                     # OTA: serve the active slot (--bundle seeds an empty state)
        from .ota.agentota import open_updater
        updater, path = open_updater(conf)
    else:
        path = conf["bundle"]
    bundle = open_verified(path, conf.get("trust_keys") or ())[0]   # refused before serving anything
    rt = Runtime.open(bundle, backend=conf.get("backend"), num_threads=conf.get("threads"))
    sampler = None
    if conf.get("sample_dir"):
        from .sampler import RawSampler
        sampler = RawSampler(conf["sample_dir"], per_minute=conf["sample_per_minute"],
                             max_bytes=int(conf["sample_max_mb"] * 2 ** 20))
    thresholds = Thresholds(psi=conf["drift_psi"], js=conf["drift_js"], ks=conf["drift_ks"],
                            class_shift=conf["drift_class_shift"])
    agent = Agent(rt, sink=make_sink(conf), telemetry_interval=conf["telemetry_interval"],
                  queue_size=conf["queue_size"], cache_size=conf["cache_size"], max_batch=conf["max_batch"],
                  max_wait_ms=conf["max_wait_ms"], drift_window=conf["drift_window"],
                  drift_window_seconds=conf.get("drift_window_seconds"), drift_thresholds=thresholds,
                  sampler=sampler, refuse_nonfinite=conf["refuse_nonfinite"], power_watts=conf.get("power_watts"),
                  cost_per_hour=conf.get("cost_per_hour"))
    if updater is not None:
        from .ota.agentota import attach
        attach(agent, updater, conf)
        from .shadowinstall import attach_shadow
        attach_shadow(agent, updater, conf)
    return agent


def http_limits(conf: dict) -> dict:
    """The ``AgentServer`` limits from the ``http_*`` settings."""
    mb = lambda key: int(conf[key] * 2 ** 20)  # noqa: E731
    return {"max_connections": conf["http_max_connections"], "header_timeout": conf["http_header_timeout"],
            "body_timeout": conf["http_body_timeout"], "idle_timeout": conf["http_idle_timeout"],
            "max_body": mb("http_max_body_mb"), "body_budget": mb("http_body_budget_mb")}


def _signature_note(agent, conf: dict) -> str:
    from .signing import trust_set, verify
    return verify(agent.rt.bundle, trust_set(conf.get("trust_keys") or ()))["note"]


def cmd_agent(args, stop: threading.Event | None = None) -> int:
    if getattr(args, "list_commands", False):
        from .agentcmds import COMMANDS
        print(COMMANDS.render(), end="")
        return 0
    from .server import AgentServer
    conf = settings(args)
    agent = make_agent(conf)
    server = AgentServer(agent, conf["http_host"], conf["http_port"], **http_limits(conf))
    stop = stop or threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, lambda *_: stop.set())
        except ValueError:  # not the main thread (tests)
            pass
    with agent:
        server.start()
        sink = agent.sink.status() if agent.sink is not None else None
        print(f"edgepack agent: {agent.rt.bundle.manifest['model']['name']} on {agent.rt.backend_name}, "
              f"http://{conf['http_host']}:{server.port}/v1/infer"
              + (f", mqtt {conf['broker']} as {conf['fleet']}/{conf['device_id']}" if conf.get("broker") else "")
              + (f", telemetry to {sink['path']}" if sink and sink.get("kind") == "jsonl" else "")
              + f"; {_signature_note(agent, conf)}", flush=True)
        stop.wait()
        server.stop()
    return 0
