"""The agent with trust keys: it refuses to start on a bundle that fails verification, serves a verified one
(and says which key), and without keys says nothing was checked; trust_keys in TOML, --trust-key flags."""
from __future__ import annotations

import json
import re
import threading
import time
import urllib.request

import pytest

from edgepack_runtime import agentcli, wire
from edgepack_runtime.agentcli import cmd_agent
from edgepack_runtime.cli import build_parser, main
from edgepack_runtime.errors import EdgepackError
from edgepack_runtime.signing import NOT_CHECKED, sign_bundle


def _serve_once(argv, capsys) -> tuple[str, list]:
    """Start the agent, wait for its start line, run one request on its local API, stop it."""
    stop = threading.Event()
    t = threading.Thread(target=cmd_agent, args=(build_parser().parse_args(argv), stop))
    t.start()
    try:
        line, deadline = "", time.monotonic() + 30
        while "edgepack agent:" not in line and time.monotonic() < deadline and t.is_alive():
            line += capsys.readouterr().out
            time.sleep(0.05)
        port = re.search(r"http://127\.0\.0\.1:(\d+)/v1/infer", line).group(1)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/infer", method="POST",
                                     data=json.dumps({"inputs": {"x": [[1, 2, 3, 4]]}}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return line, wire.decode("y", json.loads(resp.read())["outputs"]["y"], "float32").tolist()
    finally:
        stop.set()
        t.join(10)


def test_agent_refuses_bad_bundles_at_start(bundle, keys, tmp_path, capsys):
    base = ["agent", "--bundle", str(bundle), "--http-port", "0", "--outbox", str(tmp_path / "o.db")]
    assert main(base + ["--trust-key", str(keys["a"]["public"])]) == 6            # unsigned
    assert "is not signed, and this device accepts only signed bundles" in capsys.readouterr().err
    sign_bundle(bundle, keys["b"]["private"])
    assert main(base + ["--trust-key", str(keys["a"]["public"])]) == 6            # untrusted key
    assert f"signed by key {keys['b']['key_id']}, which is not a trusted key" in capsys.readouterr().err
    (tmp_path / "agent.toml").write_text(f'trust_keys = ["{keys["a"]["public"]}"]\n')
    assert main(base + ["--config", str(tmp_path / "agent.toml")]) == 6          # the same from TOML
    assert keys["b"]["key_id"] in capsys.readouterr().err
    assert main(base + ["--trust-key", str(tmp_path / "missing.pub")]) == 1      # a bad key file: a config error
    assert "cannot read trust key" in capsys.readouterr().err


def test_agent_serves_a_verified_bundle_and_says_so(bundle, keys, tmp_path, capsys):
    sign_bundle(bundle, keys["a"]["private"])
    base = ["agent", "--bundle", str(bundle), "--http-port", "0", "--outbox", str(tmp_path / "o.db")]
    line, answer = _serve_once(base + ["--trust-key", str(keys["b"]["public"]),
                                       "--trust-key", str(keys["a"]["public"])], capsys)
    assert f"signature verified: key {keys['a']['key_id']} (a.pub)" in line
    assert answer == [[2.0, 3.0, 4.0, 5.0]]
    line, answer = _serve_once(base, capsys)
    assert NOT_CHECKED in line and answer == [[2.0, 3.0, 4.0, 5.0]]


def test_trust_keys_setting_types(tmp_path):
    (tmp_path / "a.toml").write_text('bundle = "b"\ntrust_keys = "one.pub"\n')
    with pytest.raises(EdgepackError, match="trust_keys .* must be a list of file paths"):
        agentcli.settings(build_parser().parse_args(["agent", "--config", str(tmp_path / "a.toml")]))
    (tmp_path / "a.toml").write_text('bundle = "b"\ntrust_keys = ["one.pub"]\n')
    args = build_parser().parse_args(["agent", "--config", str(tmp_path / "a.toml")])
    assert agentcli.settings(args)["trust_keys"] == ["one.pub"]
    args = build_parser().parse_args(["agent", "--config", str(tmp_path / "a.toml"), "--trust-key", "x.pub",
                                      "--trust-key", "y.pub"])
    assert agentcli.settings(args)["trust_keys"] == ["x.pub", "y.pub"]          # flags win, as for every key
