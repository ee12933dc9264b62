"""``edgepack build --target coreml`` end to end: convert, bundle, verify in the coreml-reference backend."""
import json

import numpy as np
import onnx
import pytest

from edgepack.build import build
from edgepack.errors import EdgepackError
from edgepack_runtime import Runtime

from .kit import heavy_model



@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("coreml") / "cnn.onnx"
    onnx.save(heavy_model(), str(path))
    return path


def test_build_verifies_in_the_reference_executor(coreml_in_table, model_path, tmp_path):
    r = build(model_path, targets=["coreml"], out=tmp_path / "m.edgepack")
    entry = r.manifest["targets"][0]
    assert entry["format"] == "mlpackage" and entry["file"] == "models/coreml/model.mlpackage.zip"
    assert entry["precision"] == "fp16" and entry["parity"]["passed"], entry["parity"]
    assert entry["parity"]["backend"] == "coreml-reference" and entry["parity"]["max_rel_error"] < 1e-2
    assert entry["ane"]["verdict"] == "ane-likely" and entry["info"]["deployment_target"] == "iOS16"
    json.dumps(r.manifest)                                         # the manifest stays plain JSON
    x = {"x": np.random.default_rng(3).standard_normal((1, 16, 12, 12)).astype(np.float32)}
    with Runtime.open(r.path, backend="coreml-reference") as rt:
        assert rt.run(x)["y"].shape == (1, 256)


def test_device_profile_sets_deployment_target_and_compression(coreml_in_table, model_path, tmp_path):
    r = build(model_path, targets=["apple-a17-m3"], precision="coreml=palettize4,cpu=fp32",
              out=tmp_path / "m.edgepack")
    entry = next(e for e in r.manifest["targets"] if e["name"] == "coreml")
    assert entry["info"]["deployment_target"] == "iOS17" and entry["parity"]["passed"], entry["parity"]
    assert entry["compression"]["compressed_ops"] == {"constexpr_lut_to_dense": 3}
    assert entry["compression"]["ratio"] == pytest.approx(0.25, abs=0.02)


def test_ios18_mode_for_an_ios17_profile_fails_before_the_bundle(coreml_in_table, model_path, tmp_path):
    with pytest.raises(EdgepackError, match="'w4-block' needs deployment target iOS18 or newer; this build "
                                            "targets iOS17"):
        build(model_path, targets=["apple-a17-m3"], precision="coreml=w4-block,cpu=fp32",
              out=tmp_path / "m.edgepack")
    assert not (tmp_path / "m.edgepack").exists()


def test_dynamic_shapes_and_unsupported_ops_are_named_before_any_work(coreml_in_table, tmp_path):
    from onnx import TensorProto as TP
    from onnx import helper as h

    from edgepack.errors import DynamicShapeError, UnsupportedOpsError
    x = h.make_tensor_value_info("x", TP.FLOAT, ["batch", 4])
    g = h.make_graph([h.make_node("Relu", ["x"], ["y"])], "g", [x], [h.make_tensor_value_info("y", TP.FLOAT, ["batch", 4])])
    dynamic = tmp_path / "dyn.onnx"
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), str(dynamic))
    with pytest.raises(DynamicShapeError, match="batch"):
        build(dynamic, targets=["coreml"], out=tmp_path / "d.edgepack")
    nodes = [h.make_node("Hardmax", ["x"], ["a"], name="hm"), h.make_node("Det", ["a"], ["y"], name="det")]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TP.FLOAT, [4, 4])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [])])
    bad = tmp_path / "bad.onnx"
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), str(bad))
    with pytest.raises(UnsupportedOpsError) as err:
        build(bad, targets=["coreml"], out=tmp_path / "b.edgepack")
    assert "'hm'" in str(err.value) and "'det'" in str(err.value)
