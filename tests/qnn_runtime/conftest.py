import os

import pytest

# The qnn backend tests run real models on the HTP simulator that onnxruntime-qnn ships for Linux x86-64.
# Elsewhere they skip; under CI the test extra installs it, so a missing one is a broken setup: fail, not skip.
from qnn_kit import HAVE_QNN, needs_qnn  # noqa: F401  (tests import them from qnn_kit: "conftest" is ambiguous)

if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"} and not HAVE_QNN:
    raise ImportError("CI=true but onnxruntime_qnn cannot be imported, so the qnn backend tests would skip: "
                      "pip install -e ./runtime -e '.[test]' (scripts/test.sh does it)")



@pytest.fixture(scope="session")
def qdq8():
    import qnn_kit
    return qnn_kit.qdq_model("uint8")


@pytest.fixture(scope="session")
def ctx75(qdq8):
    import qnn_kit
    return qnn_kit.compile_context(qdq8, "75", "57")


@pytest.fixture(autouse=True)
def _no_device_arch(monkeypatch):
    """Tests state the device's HTP architecture themselves; one set in the environment must not leak in."""
    monkeypatch.delenv("EDGEPACK_QNN_HTP_ARCH", raising=False)
