"""The Qualcomm tests run on onnxruntime-qnn's HTP simulator. Under CI=true it is installed (the test extra on
Linux x86-64), so a missing one is a broken setup and fails here instead of skipping every HTP test."""
import os
import platform

from edgepack_runtime.backends import qnn_ep

CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
if CI and platform.system() == "Linux" and platform.machine() == "x86_64" and not qnn_ep.installed():
    raise ImportError("CI=true but onnxruntime-qnn cannot be imported, so the HTP simulator tests would skip: "
                      "pip install -e '.[test]' (scripts/test.sh does it)")
