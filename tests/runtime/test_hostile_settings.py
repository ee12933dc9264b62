"""Agent settings and inputs that used to be accepted silently (issue #11, item 8): every numeric setting has a
stated floor and ceiling (TOML and flags), and NaN/Inf inputs are counted and, on request, refused."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edgepack_runtime import agentcli
from edgepack_runtime.agent import Agent
from edgepack_runtime.cli import build_parser, main
from edgepack_runtime.errors import EdgepackError, InputError


def _settings(tmp_path, toml: str = "", *flags: str) -> dict:
    argv = ["agent", "--bundle", "b.edgepack", *flags]
    if toml:
        (tmp_path / "a.toml").write_text(toml)
        argv += ["--config", str(tmp_path / "a.toml")]
    return agentcli.settings(build_parser().parse_args(argv))


def test_every_numeric_setting_has_bounds_and_its_default_is_within():
    for key, (kind, default, _) in agentcli.SETTINGS.items():
        if kind in (int, float):
            assert key in agentcli.BOUNDS, f"agent setting {key} has no floor/ceiling in agentcli.BOUNDS"
            lo, hi = agentcli.BOUNDS[key]
            assert default is None or lo <= default <= hi, key


@pytest.mark.parametrize("value", ["1e-9", "0", "-1", "nan", "inf", "1e12"])
def test_telemetry_interval_out_of_bounds_is_refused_in_toml(tmp_path, value):
    with pytest.raises(EdgepackError, match=r"telemetry_interval .*must be in \[0\.1, 86400\]"):
        _settings(tmp_path, f"telemetry_interval = {value}\n")


@pytest.mark.parametrize("flag,value", [("--telemetry-interval", "1e-9"), ("--queue-size", "0"),
                                        ("--max-batch", "100000"), ("--http-port", "70000"),
                                        ("--outbox-max-mb", "-5"), ("--max-wait-ms", "nan"),
                                        ("--command-rate", "0"), ("--threads", "0")])
def test_flags_out_of_bounds_are_refused_naming_the_flag(tmp_path, flag, value):
    with pytest.raises(EdgepackError, match=flag):
        _settings(tmp_path, "", flag, value)


def test_the_cli_exits_1_with_one_line(tmp_path, capsys):
    assert main(["agent", "--bundle", "b", "--telemetry-interval", "1e-9"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "0.1" in err and "86400" in err


def test_values_within_bounds_pass(tmp_path):
    conf = _settings(tmp_path, "telemetry_interval = 0.5\nqueue_size = 8\nrefuse_nonfinite = true\n",
                     "--max-batch", "4", "--command-rate", "2")
    assert conf["telemetry_interval"] == 0.5 and conf["queue_size"] == 8 and conf["max_batch"] == 4
    assert conf["refuse_nonfinite"] is True and conf["command_rate"] == 2.0


def test_the_readme_states_every_bound():
    from pathlib import Path
    readme = (Path(agentcli.__file__).parents[1] / "README.md").read_text()
    for key, (lo, hi) in agentcli.BOUNDS.items():
        assert f"`{key}`" in readme and agentcli.describe_bounds(key) in readme, key


# --- NaN / Inf inputs --------------------------------------------------------------------------------------------
class _Bundle:
    manifest = {"model": {"name": "stub", "version": "1"}}
    manifest_bytes = b"{}"


class StubRuntime:
    backend_name, inputs, bundle = "stub", [{"name": "x", "shape": [2], "dtype": "float32"}], _Bundle()

    def run(self, inputs):
        return {"y": np.asarray(inputs["x"]) * 2}


@pytest.mark.parametrize("bad", [[math.nan, 1.0], [1.0, math.inf], np.array([-np.inf, 0], np.float32)])
def test_nonfinite_inputs_are_counted(bad):
    with Agent(StubRuntime(), drift=False) as agent:
        agent.infer({"x": bad})
        agent.infer({"x": [1.0, 2.0]})
        snap = agent.telemetry.snapshot()
    assert snap["nonfinite_inputs"] == 1 and snap["requests"] == 2


def test_nonfinite_inputs_are_refused_when_asked():
    with Agent(StubRuntime(), drift=False, refuse_nonfinite=True) as agent:
        with pytest.raises(InputError, match=r"input 'x' holds 1 NaN/Inf value"):
            agent.infer({"x": [math.nan, 1.0]})
        assert agent.infer({"x": [1.0, 2.0]})["y"].tolist() == [2.0, 4.0]
        snap = agent.telemetry.snapshot()
    assert snap["nonfinite_inputs"] == 1 and snap["input_errors"] == 1
