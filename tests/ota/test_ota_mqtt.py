"""The agent with a state folder on a real mosquitto: every update state is published retained on ota/status."""
from __future__ import annotations

import argparse
import uuid

from edgepack_runtime.agentcli import make_agent, settings


def test_update_states_are_published_on_ota_status(tmp_path, bundles, broker, subscribe):
    device = f"dev-{uuid.uuid4().hex[:8]}"
    conf = settings(argparse.Namespace(broker=f"mqtt://127.0.0.1:{broker.port}", device_id=device, fleet="ota",
                                       outbox=str(tmp_path / "outbox.db"), state_dir=str(tmp_path / "state"),
                                       bundle=str(bundles["v1"]), profile="raspberry-pi-5", telemetry_interval=60.0))
    sub = subscribe(f"edgepack/v1/ota/{device}/ota/status")
    agent = make_agent(conf)
    with agent:
        assert agent.sink.connected.wait(10)
        assert agent.updater.install(bundles["v2"], update_id="u2")["state"] == "committed"
        assert agent.updater.install(bundles["bad"], update_id="u3")["state"] == "rolled_back"
        assert sub.wait_for(lambda: any(m.get("state") == "rolled_back" for m in sub.on("ota/status")))
    msgs = [m for m in sub.on("ota/status") if m.get("update_id") in ("u2", "u3")]
    assert [m["state"] for m in msgs if m["update_id"] == "u2"] == \
        ["verifying", "installing", "health_check", "switching", "committed"]
    last = [m for m in msgs if m["update_id"] == "u3"][-1]
    assert last["active_slot"] == "b" and last["model"] == {"name": "adder", "version": "2"}
    assert "self-check failed" in last["reason"] and last["device"] == device and isinstance(last["seq"], int)
