import importlib.util
import os

import pytest

import rt_helpers

# test_rt_runtime.py and test_rt_cli.py skip when a backend is missing (a device-like install may lack one).
# Under CI the suite installs both, so a missing one is a broken setup: fail loudly instead of skipping.
if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
    _missing = [m for m in ("ai_edge_litert", "onnxruntime") if importlib.util.find_spec(m) is None]
    if _missing:
        raise ImportError(f"CI=true but {', '.join(_missing)} cannot be imported, so the runtime tests would "
                          "skip: pip install -e ./runtime -e '.[test]' (scripts/test.sh does it)")


@pytest.fixture(scope="module")
def add_bundle(tmp_path_factory):
    """A bundle of y = x + bias with a TFLite target (NHWC inside) and an ONNX target."""
    return rt_helpers.add_bundle(tmp_path_factory.mktemp("bundle") / "add.edgepack")


@pytest.fixture(scope="module")
def two_io_bundle(tmp_path_factory):
    return rt_helpers.two_io_bundle(tmp_path_factory.mktemp("bundle") / "two.edgepack")
