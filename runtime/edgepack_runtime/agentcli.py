"""``edgepack-device agent``: settings from flags and/or a TOML file (flags win), then run until stopped."""
from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from urllib.parse import urlparse

from .errors import EdgepackError

DEFAULTS = {"fleet": "default", "telemetry_interval": 10.0, "http_host": "127.0.0.1", "http_port": 8470,
            "queue_size": 64, "cache_size": 0, "max_batch": 1, "max_wait_ms": 2.0, "drift_window": 1000,
            "outbox": "edgepack-outbox.db", "outbox_max_messages": 10_000}
KEYS = set(DEFAULTS) | {"bundle", "broker", "device_id", "username", "password", "threads", "backend", "ca",
                        "sample_dir", "sample_per_minute", "sample_max_mb"}


def add_parser(sub) -> None:
    p = sub.add_parser("agent", help="run the bundle as a service: local HTTP API, telemetry over MQTT")
    p.add_argument("--config", type=Path, help="TOML file with the same settings (flags override it)")
    p.add_argument("--bundle")
    p.add_argument("--broker", help="mqtt://HOST:PORT or mqtts://HOST:PORT (omit to run without MQTT)")
    p.add_argument("--device-id", dest="device_id")
    p.add_argument("--fleet")
    p.add_argument("--telemetry-interval", dest="telemetry_interval", type=float)
    p.add_argument("--http-host", dest="http_host")
    p.add_argument("--http-port", dest="http_port", type=int)
    p.add_argument("--outbox", help="SQLite file for store-and-forward")
    p.add_argument("--username")
    p.add_argument("--password")
    p.add_argument("--cache-size", dest="cache_size", type=int)
    p.add_argument("--max-batch", dest="max_batch", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--backend")
    p.add_argument("--sample-dir", dest="sample_dir", help="keep raw inputs/outputs here for labeling (off by default)")
    p.add_argument("--sample-per-minute", dest="sample_per_minute", type=float)
    p.add_argument("--sample-max-mb", dest="sample_max_mb", type=float)
    p.add_argument("--verbose", "-v", action="store_true")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)


def settings(args) -> dict:
    conf = dict(DEFAULTS)
    if args.config:
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
        conf.update(data)
    conf.update({k: v for k, v in vars(args).items() if k in KEYS and v is not None})
    if not conf.get("bundle"):
        raise EdgepackError("no bundle given", hint="pass --bundle PATH or set bundle in --config")
    if conf.get("broker") and not conf.get("device_id"):
        raise EdgepackError("--device-id is required with --broker")
    return conf


def make_link(conf: dict):
    from .link import MqttLink
    from .outbox import Outbox
    url = urlparse(conf["broker"])
    if url.scheme not in ("mqtt", "mqtts") or not url.hostname:
        raise EdgepackError(f"broker must look like mqtt://HOST:PORT, not {conf['broker']!r}")
    outbox = Outbox(conf["outbox"], max_messages=int(conf["outbox_max_messages"]))
    tls = {"ca": conf.get("ca")} if url.scheme == "mqtts" else False
    return MqttLink(host=url.hostname, port=url.port or (8883 if tls else 1883), device_id=conf["device_id"],
                    fleet=conf["fleet"], outbox=outbox, username=conf.get("username"),
                    password=conf.get("password"), tls=tls)


def cmd_agent(args, stop: threading.Event | None = None) -> int:
    from .agent import Agent
    from .runtime import Runtime
    from .server import AgentServer
    conf = settings(args)
    rt = Runtime.open(conf["bundle"], backend=conf.get("backend"), num_threads=conf.get("threads"))
    link = make_link(conf) if conf.get("broker") else None
    sampler = None
    if conf.get("sample_dir"):
        from .sampler import RawSampler
        sampler = RawSampler(conf["sample_dir"], per_minute=float(conf.get("sample_per_minute", 6)),
                             max_bytes=int(float(conf.get("sample_max_mb", 100)) * 2 ** 20))
    agent = Agent(rt, link=link, telemetry_interval=float(conf["telemetry_interval"]),
                  queue_size=int(conf["queue_size"]), cache_size=int(conf["cache_size"]),
                  max_batch=int(conf["max_batch"]), max_wait_ms=float(conf["max_wait_ms"]),
                  drift_window=int(conf["drift_window"]), sampler=sampler)
    server = AgentServer(agent, conf["http_host"], int(conf["http_port"]))
    stop = stop or threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, lambda *_: stop.set())
        except ValueError:  # not the main thread (tests)
            pass
    with agent:
        server.start()
        print(f"edgepack agent: {rt.bundle.manifest['model']['name']} on {rt.backend_name}, "
              f"http://{conf['http_host']}:{server.port}/v1/infer"
              + (f", mqtt {conf['broker']} as {conf['fleet']}/{conf['device_id']}" if link else ""), flush=True)
        stop.wait()
        server.stop()
    return 0
