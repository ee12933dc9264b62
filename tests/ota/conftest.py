"""Fixtures of the OTA tests: tiny real bundles (ONNX y = x + bias, run by onnxruntime) and a state folder."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import ota_helpers  # noqa: E402

if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"} and importlib.util.find_spec("onnxruntime") is None:
    raise ImportError("CI=true but onnxruntime cannot be imported, so the OTA tests would not run: "
                      "pip install -e './runtime[onnxruntime]'")


@pytest.fixture(scope="session")
def bundles(tmp_path_factory):
    """v1 adds 1, v2 adds 2, `bad` ships wrong reference outputs, `other` is built for another profile."""
    d = tmp_path_factory.mktemp("bundles")
    make = ota_helpers.make_bundle
    return {"v1": make(d / "v1.edgepack", "1", 1.0), "v2": make(d / "v2.edgepack", "2", 2.0),
            "v3": make(d / "v3.edgepack", "3", 3.0),
            "bad": make(d / "bad.edgepack", "bad", 5.0, ref_bias=6.0),
            "other": make(d / "other.edgepack", "other", 7.0, devices=["apple-a17-m3"]),
            "mine": make(d / "mine.edgepack", "mine", 8.0, devices=["raspberry-pi-5"]),
            "nosamples": make(d / "nosamples.edgepack", "ns", 9.0, samples=0)}


@pytest.fixture
def state(tmp_path) -> Path:
    return tmp_path / "state"


from tests.agent.conftest import broker, mosquitto_bin, session_broker, subscribe  # noqa: E402,F401 - real mosquitto
