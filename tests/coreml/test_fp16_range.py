"""Float constants beyond fp16's range at fp16 compute: clamped to +-65504 instead of +-inf. A BERT-style mask,
``(1 - mask) * finfo(float32).min``, made 0 * -inf = NaN on every valid token (MiniLM on Core ML fp16: NaN
outputs); clamped, valid tokens add exactly 0 and masked ones -65504. And an integer ``add`` (index arithmetic)
in a w8a8 program is left alone by the activation passes. Real coremltools, real executor."""
import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgepack.build import build

from .harness import convert, reference_executor, run_onnx


def masked_softmax() -> onnx.ModelProto:
    nodes = [h.make_node("Cast", ["mask"], ["mf"], to=TP.FLOAT), h.make_node("Sub", ["one", "mf"], ["inv"]),
             h.make_node("Mul", ["inv", "neg"], ["add_mask"]), h.make_node("Add", ["x", "add_mask"], ["s"]),
             h.make_node("Softmax", ["s"], ["y"], axis=-1)]
    g = h.make_graph(nodes, "m", [h.make_tensor_value_info("x", TP.FLOAT, [1, 6]),
                                  h.make_tensor_value_info("mask", TP.INT64, [1, 6])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, 6])],
                     [nh.from_array(np.array(1.0, np.float32), "one"),
                      nh.from_array(np.array(np.finfo(np.float32).min, np.float32), "neg")])
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17)])


FEEDS = {"x": np.array([[0.5, -1.0, 2.0, 0.1, 0.0, 3.0]], np.float32), "mask": np.array([[1, 1, 1, 1, 0, 0]])}


def test_a_float32_min_mask_runs_in_fp16():
    model = masked_softmax()
    ref = run_onnx(model, FEEDS)["y"]
    data, _, _ = convert(model, "fp16")
    program = reference_executor()(data)
    got = program.run({"x": FEEDS["x"], "mask": FEEDS["mask"].astype(np.int32)})["y"]
    assert np.isfinite(got).all() and np.abs(got - ref).max() < 2e-3
    assert got[0, 4:].tolist() == [0.0, 0.0]


def test_fp32_keeps_the_constant_and_the_build_records_the_clamp(coreml_in_table, tmp_path):
    from edgepack.targets.coreml.convert import lower
    model = onnx.shape_inference.infer_shapes(masked_softmax())
    assert lower(model, "iOS16", "fp32").edgepack_clamped == []
    assert lower(model, "iOS16", "fp16").edgepack_clamped == ["neg"]
    path = tmp_path / "m.onnx"
    onnx.save(masked_softmax(), str(path))
    rng = np.random.default_rng(0)
    mask = (rng.random((30, 1, 6)) < 0.7).astype(np.int64)
    mask[:, :, 0] = 1
    np.savez(tmp_path / "c.npz", x=rng.standard_normal((30, 1, 6)).astype(np.float32), mask=mask)
    r = build(path, targets=["coreml"], calibration=tmp_path / "c.npz", out=tmp_path / "m.edgepack")
    entry = r.manifest["targets"][0]
    assert entry["parity"]["passed"] and entry["info"]["fp16_clamped_constants"] == ["neg"], entry["parity"]


def index_model() -> onnx.ModelProto:
    """Token ids -> (ids + 0, integer add as exporters write index normalization) -> Gather -> Gemm."""
    rng = np.random.default_rng(0)
    nodes = [h.make_node("Add", ["ids", "zero"], ["idx"]), h.make_node("Gather", ["table", "idx"], ["e"], axis=0),
             h.make_node("Reshape", ["e", "rows"], ["e2"]), h.make_node("Gemm", ["e2", "w"], ["y"])]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("ids", TP.INT64, [1, 8])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [8, 64])],
                     [nh.from_array(np.zeros(1, np.int64), "zero"), nh.from_array(np.array([8, 64]), "rows"),
                      nh.from_array(rng.standard_normal((50, 64)).astype(np.float32), "table"),
                      nh.from_array((rng.standard_normal((64, 64)) * 0.2).astype(np.float32), "w")])
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17)])


def test_w8a8_leaves_integer_adds_alone(coreml_in_table, tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(index_model(), str(path))
    np.savez(tmp_path / "c.npz", ids=np.random.default_rng(1).integers(0, 50, (30, 1, 8)))
    r = build(path, targets=["apple-a17-m3"], precision="coreml=w8a8,cpu=fp32", calibration=tmp_path / "c.npz",
              out=tmp_path / "m.edgepack")
    entry = next(e for e in r.manifest["targets"] if e["name"] == "coreml")
    assert entry["parity"]["passed"] and entry["activations"]["quantized_ops"] >= 1, entry["activations"]
    assert entry["info"]["mil_ops"]["linear"] == 1, entry["info"]["mil_ops"]
