"""``edgepack flash`` and ``edgepack rollback`` through typer's CliRunner against a real mosquitto and a real agent:
JSON results, exit codes when a device did not commit, clear errors for bad arguments, and --via dir:."""
from __future__ import annotations

import json
import uuid

import pytest
from typer.testing import CliRunner

from edgepack.cli.main import app

from .bundles import make_bundle
from .devices import Device

RUNNER = CliRunner()


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    return {"v1": make_bundle(d / "v1.edgepack", "1", 1.0), "v2": make_bundle(d / "v2.edgepack", "2", 2.0),
            "bad": make_bundle(d / "bad.edgepack", "bad", 5.0, ref_bias=6.0)}


@pytest.fixture
def device(broker, tmp_path, bundles):
    dev = Device(tmp_path, broker.port, "cam-cli", f"f{uuid.uuid4().hex[:8]}", bundles["v1"]).start()
    yield dev
    dev.stop()


def _run(*args):
    result = RUNNER.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_flash_json_then_rollback_json(broker, device, bundles):
    where = ["--broker", f"mqtt://127.0.0.1:{broker.port}", "--fleet", device.fleet, "--discovery", "1"]
    code, out, err = _run("flash", bundles["v2"], "--device", device.device_id, "--json", "--timeout", 30, *where)
    assert code == 0, (out, err)
    (r,) = json.loads(out)
    assert r["device"] == "cam-cli" and r["state"] == "committed" and r["ok"] and r["model"]["version"] == "2"
    assert device.bias() == 2.0
    code, out, err = _run("rollback", "--device", device.device_id, "--json", *where[:4])
    assert code == 0, (out, err)
    assert json.loads(out)[0]["state"] == "rolled_back" and device.bias() == 1.0


def test_flash_exits_non_zero_when_a_device_does_not_commit(broker, device, bundles):
    where = ["--broker", f"mqtt://127.0.0.1:{broker.port}", "--fleet", device.fleet, "--discovery", "1"]
    code, out, err = _run("flash", bundles["bad"], "--device", device.device_id, "--device", "ghost",
                          "--timeout", 30, *where)
    assert code == 11, (out, err)
    assert "cam-cli rolled_back" in out and "ghost unknown" in out and "never announced" in out
    assert "did not end in committed on 2 of 2 device(s)" in err
    assert device.bias() == 1.0                                           # the previous model serves


def test_bad_arguments_are_clear_errors(tmp_path, bundles):
    code, _, err = _run("flash", bundles["v2"], "--device", "x")
    assert code == 11 and "--broker is required" in err
    code, _, err = _run("flash", bundles["v2"], "--broker", "mqtt://127.0.0.1:1")
    assert code == 11 and "--device ID" in err and "--fleet NAME" in err
    code, _, err = _run("flash", tmp_path, "--broker", "mqtt://127.0.0.1:1", "--device", "x")
    assert code == 6 and "not a bundle file" in err
    code, _, err = _run("flash", bundles["v2"], "--broker", "http://h:1", "--device", "x")
    assert code == 1 and "mqtt://HOST:PORT" in err
    code, _, err = _run("rollback", "--broker", "mqtt://127.0.0.1:1", "--device", "x", "--connect-timeout", "0.5")
    assert code == 1 and "cannot reach the broker" in err.replace("\n", " ")
    code, _, err = _run("flash", bundles["v2"], "--broker", "mqtt://127.0.0.1:1", "--device", "x",
                        "--connect-timeout", "0.5")
    assert code == 1 and "within 0.5 s" in err.replace("\n", " ")


def test_flash_via_dir_drops_the_bundle_into_the_inbox(tmp_path, bundles):
    state = tmp_path / "state"
    state.mkdir()                                           # the device's state folder (an SD card, a share)
    code, out, err = _run("flash", bundles["v2"], "--via", f"dir:{state}")
    assert code == 0, (out, err)
    assert "installs it on its next start" in out
    (dropped,) = (state / "inbox").iterdir()
    assert dropped.suffix == ".edgepack" and dropped.read_bytes() == bundles["v2"].read_bytes()
