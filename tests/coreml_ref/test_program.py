"""The executor itself: preflight, weight blobs, package forms, fp16 faithfulness, type checks."""
from __future__ import annotations

import numpy as np
import pytest

from edgepack_runtime.errors import BackendError
from tests.coreml_ref import mil_kit as k


def _mb():
    from coremltools.converters.mil import Builder as mb
    return mb


def test_unsupported_ops_are_listed_all_at_once(mil_tmp):
    mb = _mb()

    def fn(x):
        s = mb.argsort(x=x, axis=-1)
        c = mb.crop(x=mb.expand_dims(x=x, axes=[0]), crop_height=[0, 0], crop_width=[1, 1])
        o = mb.one_hot(indices=mb.cast(x=x, dtype="int32"), one_hot_vector_size=3)
        return mb.relu(x=x), s, c, o, mb.argsort(x=x, axis=0)

    path = k.build(mil_tmp, fn, {"x": [2, 2, 4]}, passes=False)
    with pytest.raises(BackendError) as err:
        k.load(path)
    msg = str(err.value)
    assert "3 MIL op type(s) not supported" in msg
    for name in ("argsort x2", "crop x1", "one_hot x1"):
        assert name in msg
    assert "relu" not in msg.split("executor:")[1].split("(")[0]


def test_blob_reader_matches_coremltools_writer(tmp_path):
    from coremltools.libmilstoragepython import _BlobStorageWriter

    from edgepack_runtime.backends.coreml_ref.blob import BlobFile
    r = k.rng(5)
    arrays = {"float": r.standard_normal(7).astype(np.float32),
              "fp16": r.standard_normal(9).astype(np.float16),
              "int8": r.integers(-128, 128, 11).astype(np.int8), "uint8": r.integers(0, 256, 5).astype(np.uint8),
              "int16": r.integers(-999, 999, 3).astype(np.int16), "uint16": r.integers(0, 9999, 3).astype(np.uint16),
              "int32": r.integers(-99999, 99999, 4).astype(np.int32),
              "int4": r.integers(-8, 8, 13).astype(np.int8), "uint4": r.integers(0, 16, 13).astype(np.uint8),
              "uint1": r.integers(0, 2, 19).astype(np.uint8), "uint2": r.integers(0, 4, 7).astype(np.uint8),
              "uint3": r.integers(0, 8, 10).astype(np.uint8), "uint6": r.integers(0, 64, 6).astype(np.uint8)}
    writer = _BlobStorageWriter(str(tmp_path / "w.bin"))
    offsets = {}
    for kind, a in arrays.items():
        data = a.view(np.uint16) if kind == "fp16" else a
        offsets[kind] = getattr(writer, f"write_{kind}_data")(np.ascontiguousarray(data))
    del writer
    blob = BlobFile((tmp_path / "w.bin").read_bytes())
    for kind, a in arrays.items():
        np.testing.assert_array_equal(blob.read(offsets[kind], a.size), a, err_msg=kind)
    with pytest.raises(BackendError, match="no blob at offset"):
        blob.read(offsets["float"] + 8, 1)


@pytest.fixture(scope="module")
def small(mil_tmp):
    mb = _mb()
    w = k.rng(6).standard_normal((5, 6)).astype(np.float32)
    return k.build(mil_tmp, lambda x: mb.relu(x=mb.linear(x=x, weight=w)), {"x": [2, 6]}), w


@pytest.mark.parametrize("form", ["folder", "zip_top", "zip_root", "zip_file"])
def test_package_forms(form, small, tmp_path):
    path, w = small
    source = {"folder": path, "zip_top": k.zip_package(path), "zip_root": k.zip_package(path, top=None)}.get(form)
    if form == "zip_file":
        source = tmp_path / "m.zip"
        source.write_bytes(k.zip_package(path))
    x = k.rng(7).standard_normal((2, 6)).astype(np.float32)
    (got,) = k.load(source).run({"x": x}).values()
    np.testing.assert_allclose(got, np.maximum(x @ w.T, 0), rtol=1e-5, atol=1e-5)


def test_broken_packages_fail_clearly(small, tmp_path):
    path, _ = small
    with pytest.raises(BackendError, match="no Manifest.json"):
        k.load(b"PK\x05\x06" + b"\0" * 18)
    (tmp_path / "x.bin").write_bytes(b"not a package")
    with pytest.raises(BackendError, match="neither an .mlpackage folder nor a zip"):
        k.load(tmp_path / "x.bin")
    prog = k.load(path)
    with pytest.raises(BackendError, match="missing inputs x"):
        prog.run({})


def test_fp16_program_rounds_at_every_op(mil_tmp):
    mb = _mb()
    fn = lambda x: mb.add(x=mb.mul(x=x, y=np.float32(1 / 3)), y=np.float32(1000.0))  # noqa: E731
    p16 = k.load(k.build(mil_tmp, fn, {"x": [64]}, precision="fp16"))
    p32 = k.load(k.build(mil_tmp, fn, {"x": [64]}, precision="fp32"))
    x = k.rng(8).uniform(-4, 4, 64).astype(np.float32)
    trace = p16.run({"x": x}, keep_all=True)
    inner = [v for n, v in trace.items() if isinstance(v, np.ndarray) and v.shape == (64,) and n not in ("x",)
             and n not in p16.output_names]
    assert inner and all(v.dtype == np.float16 for v in inner)
    (got16,), (got32,) = p16.run({"x": x}).values(), p32.run({"x": x}).values()
    # fp16 arithmetic, op by op: x -> fp16, times fp16(1/3) -> fp16, plus 1000 -> fp16 (spacing 0.5 at 1000)
    xh = x.astype(np.float16).astype(np.float32)
    third = np.float32(np.float16(1 / 3))
    want = (np.float16(xh * third).astype(np.float32) + 1000).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(got16, want)
    assert got16.dtype == np.float32 and 0 < np.abs(got16 - got32).max() <= 0.25 + 1e-6


def test_an_op_disagreeing_with_declared_shapes_is_caught(small, monkeypatch):
    from edgepack_runtime.backends.coreml_ref import OPS
    from edgepack_runtime.backends.coreml_ref.registry import OpImpl
    path, _ = small
    bad = OPS["relu"]
    monkeypatch.setitem(OPS, "relu", OpImpl("relu", lambda x: x[:1], (), bad.family))
    with pytest.raises(BackendError, match=r"op relu -> .* has shape \[1, 5\] but the program declares \[2, 5\]"):
        k.load(path).run({"x": np.zeros((2, 6), np.float32)})


def test_op_table_lists_the_families():
    from edgepack_runtime.backends.coreml_ref import supported_ops
    table = supported_ops()
    for name in ("conv", "conv_transpose", "linear", "matmul", "softmax", "layer_norm", "gather", "topk",
                 "constexpr_blockwise_shift_scale", "resize_bilinear", "einsum", "cumsum", "range_1d"):
        assert name in table
    assert table["conv"] == "conv" and table["relu"] == "activation"
