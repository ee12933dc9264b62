"""The coreml target object: preflight, packaging (metadata, names, deployment target), loading back."""
import io
import tempfile
import zipfile

import coremltools as ct
import numpy as np
import pytest
from onnx import helper as h

from edgepack.errors import EdgepackError, UnsupportedOpsError
from edgepack.targets.coreml.convert import unzip_package
from edgepack.targets.coreml.target import TARGET

from .harness import make, weight
from .kit import job, profile


def _model():
    nodes = [h.make_node("Conv", ["x:0", "w"], ["c"], pads=[1, 1, 1, 1]), h.make_node("Relu", ["c"], ["out/prob"])]
    return make(nodes, {"x:0": [1, 3, 8, 8]}, ["out/prob"], [weight("w", (4, 3, 3, 3))])


def test_preflight_lists_every_unsupported_node():
    nodes = [h.make_node("Relu", ["x"], ["a"]), h.make_node("Hardmax", ["a"], ["b"], name="hm"),
             h.make_node("Det", ["b"], ["c"], name="det"),
             h.make_node("Resize", ["a", "", "s"], ["d"], mode="cubic", name="cubic"),
             h.make_node("Add", ["c", "d"], ["y"])]
    from onnx import numpy_helper as nh
    m = make(nodes[:3], {"x": [1, 1, 4, 4]}, ["c"])
    m2 = make(nodes[:1] + nodes[3:4], {"x": [1, 1, 4, 4]}, ["d"], [nh.from_array(np.array([1, 1, 2, 2], np.float32), "s")])
    with pytest.raises(UnsupportedOpsError) as err:
        TARGET.preflight(m)
    text = str(err.value)
    assert "Hardmax" in text and "hm" in text and "Det" in text and "det" in text
    with pytest.raises(UnsupportedOpsError, match="resize mode 'cubic'"):
        TARGET.preflight(m2)


def test_registry_covers_the_foundation_op_list():
    ops = {e.op_type for e in TARGET.registry().entries()}
    wanted = """Conv ConvTranspose Gemm MatMul Add Sub Mul Div Pow Sqrt Exp Log Abs Neg Reciprocal Max Min Relu
    LeakyRelu PRelu Clip Sigmoid HardSigmoid HardSwish Tanh Erf Gelu Softmax LogSoftmax BatchNormalization
    InstanceNormalization LayerNormalization LRN MaxPool AveragePool GlobalAveragePool GlobalMaxPool Reshape
    Flatten Transpose Squeeze Unsqueeze Concat Split Slice Gather Pad Resize ReduceMean ReduceSum ReduceMax
    ReduceMin Sum Cast Where Equal Less Greater Not Expand Tile ArgMax TopK""".split()
    assert not set(wanted) - ops, set(wanted) - ops
    assert all(e.doc for e in TARGET.registry().entries())      # the generated support table's notes


@pytest.mark.parametrize("profiles,deployment,spec_version", [
    ((), "iOS16", 7), ((profile("iOS17"),), "iOS17", 8), ((profile("macOS15"),), "macOS15", 9),
    ((profile("iOS18"), profile("iOS17")), "iOS17", 8),     # the oldest of the profiles asking for the target
])
def test_package(profiles, deployment, spec_version):
    m = _model()
    done = TARGET.convert(m, job(m, "fp16", profiles))
    assert done.file == "models/coreml/model.mlpackage.zip" and set(done.files) == {done.file}
    assert done.info["deployment_target"] == deployment and done.info["compute_precision"] == "fp16"
    assert done.io["inputs"] == [{"name": "x:0", "perm": None, "coreml_name": "x_0"}]
    assert done.io["outputs"] == [{"name": "out/prob", "perm": None, "coreml_name": "out_prob"}]
    with zipfile.ZipFile(io.BytesIO(done.files[done.file])) as zf:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        assert "model.mlpackage/Manifest.json" in zf.namelist()
    with tempfile.TemporaryDirectory() as tmp:
        mlmodel = ct.models.MLModel(str(unzip_package(done.files[done.file], tmp)), skip_model_load=True)
        spec = mlmodel.get_spec()
    assert spec.WhichOneof("Type") == "mlProgram" and spec.specificationVersion == spec_version
    assert spec.description.metadata.author == "edgepack"
    assert spec.description.metadata.versionString == "1"
    assert "converted from ONNX by edgepack" in spec.description.metadata.shortDescription
    assert done.info["mil_ops"]["conv"] == 1 and done.info["mil_ops"]["cast"] == 2   # fp32 I/O around fp16


def test_fp32_has_no_casts():
    m = _model()
    done = TARGET.convert(m, job(m, "fp32"))
    assert "cast" not in done.info["mil_ops"] and done.info["compute_precision"] == "fp32"


def test_unknown_deployment_target_is_a_clear_error():
    m = _model()
    with pytest.raises(EdgepackError, match="unknown Core ML deployment target 'iOS12'"):
        TARGET.convert(m, job(m, "fp16", [profile("iOS12")]))


def test_profile_of_the_repository_names_a_known_deployment_target():
    from edgepack.devices import profiles
    from edgepack.targets.coreml.deploy import from_profiles
    apple = [p for p in profiles().values() if "coreml" in p["targets"]]
    assert apple and from_profiles(apple) in ("iOS16", "iOS17", "iOS18", "macOS13", "macOS14", "macOS15")


def _i64(name, values):
    from onnx import numpy_helper as nh
    return nh.from_array(np.asarray(values, np.int64), name)


@pytest.mark.parametrize("nodes,inputs,outputs,inits,reason", [
    ([h.make_node("Pad", ["x", "p"], ["y"], mode="reflect")], {"x": ([1, 2, 4, 4], 6)}, ["y"],
     [_i64("p", [0, 0, 1, 1, 0, 0, 1, 1])], "integer Pad"),
    ([h.make_node("ReduceMax", ["x"], ["y"])], {"x": ([2, 3], 9)}, ["y"], [], "reduction of a boolean tensor"),
    ([h.make_node("Relu", ["x"], ["y"])], {"x": [2, 0, 3]}, ["y"], [], "zero-size tensor 'x' [2, 0, 3]"),
    ([h.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2])], {"x": ([1, 1, 4, 4], 6)}, ["y"], [],
     "integer pooling"),
    ([h.make_node("Resize", ["x", "", "s"], ["y"], mode="linear")], {"x": [1, 1, 2, 4]}, ["y"],
     [__import__("onnx").numpy_helper.from_array(np.array([1, 1, 0.6, 0.6], np.float32), "s")],
     "linear resize to a size that is not input x scale"),
])
def test_preflight_reasons(nodes, inputs, outputs, inits, reason):
    m = make(nodes, inputs, outputs, inits, opset=19)
    with pytest.raises(UnsupportedOpsError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        TARGET.preflight(m)
