"""Every background thread of the agent survives its own errors (issue #11): it is restarted with backoff and,
while it is down, ``/v1/health`` lists it in ``problems`` with its name, last error and restart count."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from edgepack_runtime.agent import Agent
from edgepack_runtime.link import MqttLink
from edgepack_runtime.outbox import Outbox
from edgepack_runtime.sink import JsonLinesSink

RESTART = {"restart_base": 0.05, "restart_cap": 0.2}


class _Bundle:
    manifest = {"model": {"name": "stub", "version": "1"}}
    manifest_bytes = b"{}"


class StubRuntime:
    backend_name, inputs, bundle = "stub", [], _Bundle()

    def run(self, inputs):
        return {"y": inputs["x"]}


class FakeDrift:
    note = None

    def window_full(self):
        return True

    def observe(self, inputs, outputs):
        pass

    def summary(self):
        return {"calls": 0, "tensors": {}, "alerts": []}


def _wait(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _problem_in(health, thread):
    return next((p for p in health["problems"] if thread in p), None)


def _problem(agent, thread):
    return _problem_in(agent.health(), thread)


def _kill_then_heal(agent, thread, patch, heal):
    """Break ``thread`` with ``patch()``; it must show up in problems (name, error, restarts), then recover."""
    before = agent.health()["threads"][thread]["restarts"]
    patch()
    seen = []
    assert _wait(lambda: seen.append(agent.health()) or _problem_in(seen[-1], thread)), seen[-1]   # seen down
    down = seen[-1]
    text = _problem_in(down, thread)
    assert "boom in " + thread in text and "restarted" in text and down["status"] == "degraded", down
    assert _wait(lambda: agent.health()["threads"][thread]["restarts"] >= before + 2), agent.health()["threads"]
    heal()
    assert _wait(lambda: agent.health()["threads"][thread]["running"] and _problem(agent, thread) is None), \
        agent.health()
    state = agent.health()["threads"][thread]
    assert state["restarts"] >= before + 2 and "boom in " + thread in state["last_error"]


def _raiser(thread):
    def fail(*a, **k):
        raise RuntimeError(f"boom in {thread}")
    return fail


@pytest.fixture
def agent(tmp_path):
    a = Agent(StubRuntime(), sink=JsonLinesSink(tmp_path / "t.jsonl"), telemetry_interval=0.05, **RESTART)
    a.drift = FakeDrift()
    a.start()
    yield a
    a.stop()


def test_health_lists_every_thread(agent):
    threads = agent.health()["threads"]
    assert {"edgepack-worker", "edgepack-telemetry", "edgepack-drift"} <= set(threads)
    assert all(t["running"] and t["restarts"] == 0 and t["last_error"] is None for t in threads.values())


def test_the_telemetry_thread_is_restarted(agent, monkeypatch):
    real = agent.publish_telemetry
    _kill_then_heal(agent, "edgepack-telemetry",
                    lambda: monkeypatch.setattr(agent, "publish_telemetry", _raiser("edgepack-telemetry")),
                    lambda: monkeypatch.setattr(agent, "publish_telemetry", real))
    n = agent.sink.written
    assert _wait(lambda: agent.sink.written > n + 2)               # publishing again


def test_the_drift_thread_is_restarted(agent, monkeypatch):
    real = agent.publish_drift
    _kill_then_heal(agent, "edgepack-drift",
                    lambda: monkeypatch.setattr(agent, "publish_drift", _raiser("edgepack-drift")),
                    lambda: monkeypatch.setattr(agent, "publish_drift", real))


def test_a_failing_worker_answers_its_requests_and_is_restarted(agent, monkeypatch):
    real = agent._serve
    monkeypatch.setattr(agent, "_serve", _raiser("edgepack-worker"))
    with pytest.raises(Exception, match="boom in edgepack-worker"):
        agent.infer({"x": 1}, timeout=10)                      # the request in hand is answered, not lost
    assert _wait(lambda: agent.health()["threads"]["edgepack-worker"]["restarts"] == 1)
    monkeypatch.setattr(agent, "_serve", real)
    assert agent.infer({"x": 2}, timeout=10) == {"y": 2}
    state = agent.health()["threads"]["edgepack-worker"]
    assert state["running"] and "boom in edgepack-worker" in state["last_error"]


@pytest.mark.parametrize("thread", ["edgepack-worker", "edgepack-telemetry", "edgepack-drift"])
def test_each_thread_killed_inside_its_loop_comes_back(agent, thread):
    """``supervisor.kill`` raises inside the thread's loop at its next heartbeat, past any ``except Exception``."""
    _kill_then_heal(agent, thread, lambda: agent.supervisor.kill(thread, f"boom in {thread}", times=10 ** 6),
                    lambda: agent.supervisor.spare(thread))


def test_the_mqtt_link_thread_is_restarted(broker, tmp_path):
    dev = f"wd-{uuid.uuid4().hex[:8]}"
    link = MqttLink(host="127.0.0.1", port=broker.port, device_id=dev, outbox=Outbox(tmp_path / "o.db"),
                    backoff_base=0.05, **RESTART)
    agent = Agent(StubRuntime(), sink=link, telemetry_interval=0.1, drift=False, **RESTART).start()
    try:
        assert link.connected.wait(10)
        assert "edgepack-mqtt" in agent.health()["threads"]
        _kill_then_heal(agent, "edgepack-mqtt",
                        lambda: link.supervisor.kill("edgepack-mqtt", "boom in edgepack-mqtt", times=10 ** 6),
                        lambda: link.supervisor.spare("edgepack-mqtt"))
        assert link.connected.wait(10)
        acked = link.counters["acked"]
        assert _wait(lambda: link.counters["acked"] > acked + 2)      # telemetry flows again
    finally:
        agent.stop()


CHILD = textwrap.dedent("""
    import json, os, socket, sys, threading, time
    sys.path.insert(0, {tests!r})
    from test_watchdog import StubRuntime
    from edgepack_runtime.agent import Agent
    from edgepack_runtime.server import AgentServer
    from edgepack_runtime.sink import JsonLinesSink

    sink = JsonLinesSink({out!r})
    agent = Agent(StubRuntime(), sink=sink, telemetry_interval=0.05, drift=False,
                  restart_base=0.05, restart_cap=0.2).start()
    server = AgentServer(agent, "127.0.0.1", 0).start()
    time.sleep(0.3)
    held = []
    try:                                   # idle connections to the API until file descriptors run out
        while len(held) < 200:
            held.append(socket.create_connection(("127.0.0.1", server.port), timeout=1))
    except OSError:
        pass
    try:                                   # and whatever descriptors are left
        while len(held) < 1000:
            held.append(open(os.devnull))
    except OSError:
        pass
    time.sleep(1.0)                        # several telemetry periods without a free descriptor
    for s in held:
        s.close()
    written = sink.written
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (sink.written < written + 3 or agent.supervisor.problems()):
        time.sleep(0.05)
    print(json.dumps({{"held": len(held), "before": written, "after": sink.written,
                      "threads": agent.health()["threads"], "problems": agent.supervisor.problems()}}))
    server.stop()
    agent.stop()
""")


def test_telemetry_survives_running_out_of_file_descriptors(tmp_path):
    """``ulimit -n 64`` and idle connections to the API: the telemetry thread fails for a while, then is back."""
    import resource
    from pathlib import Path
    script = CHILD.format(tests=str(Path(__file__).parent), out=str(tmp_path / "t.jsonl"))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["held"] >= 20, report                      # descriptors did run out
    assert report["after"] >= report["before"] + 3, report   # telemetry is published again
    assert all(t["running"] for t in report["threads"].values()) and not report["problems"], report
