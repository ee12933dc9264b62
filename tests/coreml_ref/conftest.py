import importlib.util
import os

import pytest

CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}

# coremltools (protobuf classes + MIL builder) is what these tests build programs with. Under CI it is
# installed, so missing it is a broken setup: fail loudly instead of skipping.
if importlib.util.find_spec("coremltools") is None:
    if CI:
        raise ImportError("CI=true but coremltools cannot be imported: pip install -e './runtime[coreml]'")
    pytest.skip("coremltools is not installed", allow_module_level=True)


@pytest.fixture(scope="session")
def mil_tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("mil")
