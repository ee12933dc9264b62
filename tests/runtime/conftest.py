import pytest

import rt_helpers


@pytest.fixture(scope="module")
def add_bundle(tmp_path_factory):
    """A bundle of y = x + bias with a TFLite target (NHWC inside) and an ONNX target."""
    return rt_helpers.add_bundle(tmp_path_factory.mktemp("bundle") / "add.edgepack")


@pytest.fixture(scope="module")
def two_io_bundle(tmp_path_factory):
    return rt_helpers.two_io_bundle(tmp_path_factory.mktemp("bundle") / "two.edgepack")
