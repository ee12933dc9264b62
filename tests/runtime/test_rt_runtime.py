import numpy as np
import pytest

import rt_helpers as h
from edgepack_runtime import BackendError, BundleError, InputError, Runtime
from edgepack_runtime.backends import BACKENDS, PREFERENCE, BackendSpec, candidates, register

pytest.importorskip("ai_edge_litert")
pytest.importorskip("onnxruntime")


def _x(seed=1, shape=h.NCHW):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _expected(x):
    return x + h.BIAS.reshape(1, -1, 1, 1)


def test_auto_prefers_litert_on_tflite_target(add_bundle):
    with Runtime.open(add_bundle) as rt:
        assert (rt.backend_name, rt.target["name"]) == ("litert", "cpu")
        assert [s["name"] for s in rt.inputs] == ["x"] and [s["name"] for s in rt.outputs] == ["y"]
        assert rt.bundle.manifest["model"]["name"] == "tiny"


@pytest.mark.parametrize("backend,target", [("litert", "cpu"), ("onnxruntime", "ref")])
def test_perm_handling_is_numerically_right(add_bundle, backend, target):
    x = _x()
    with Runtime.open(add_bundle, backend, num_threads=1) as rt:
        assert rt.target["name"] == target
        y = rt.run({"x": x})["y"]
    assert y.shape == (1, 2, 3, 4) and y.dtype == np.float32
    np.testing.assert_allclose(y, _expected(x), rtol=0, atol=1e-6)
    assert y[0, 1, 2, 3] == pytest.approx(x[0, 1, 2, 3] + 20.0)


def test_perm_table_is_what_makes_tflite_right(tmp_path):
    """Same TFLite model without perms in the io table: the NCHW input no longer fits the NHWC model."""
    files = {"models/cpu/model.tflite": h.tflite_add_model()}
    m = h.base_manifest([h.tensor("x", [1, 3, 4, 2])], [h.tensor("y", [1, 3, 4, 2])],
                        [h.target("cpu", "tflite", "models/cpu/model.tflite", [("x", None)], [("y", None)])])
    x = _x(shape=[1, 3, 4, 2])
    with Runtime.open(h.write_bundle(tmp_path / "nhwc.edgepack", m, files)) as rt:
        np.testing.assert_allclose(rt.run(x)["y"], x + h.BIAS, atol=1e-6)


def test_input_forms_agree(add_bundle):
    x = _x(3)
    with Runtime.open(add_bundle) as rt:
        outs = [rt.run({"x": x})["y"], rt.run([x])["y"], rt.run((x,))["y"], rt.run(x)["y"],
                rt.run(x.tolist())["y"]]
    for y in outs:
        np.testing.assert_allclose(y, _expected(x), atol=1e-6)


def test_target_option_and_forced_backend(add_bundle):
    with Runtime.open(add_bundle, target="ref") as rt:
        assert (rt.backend_name, rt.target["name"]) == ("onnxruntime", "ref")
    with pytest.raises(BackendError, match=r"onnxruntime runs onnx/qnn targets but the bundle has cpu \("):
        Runtime.open(add_bundle, "onnxruntime", target="cpu")


def test_unknown_backend(add_bundle):
    with pytest.raises(BackendError) as err:
        Runtime.open(add_bundle, "tensorrt")
    assert "unknown backend 'tensorrt'; known backends: litert, tflite-runtime, onnxruntime" in str(err.value)
    assert err.value.exit_code == 8


def test_backend_not_installed(add_bundle):
    spec = BACKENDS["tflite-runtime"]
    if spec.available():
        pytest.skip("tflite_runtime is installed here")
    with pytest.raises(BackendError, match=r"tflite-runtime is not installed \(pip install tflite-runtime"):
        Runtime.open(add_bundle, "tflite-runtime")


def test_missing_target_for_forced_backend(tmp_path):
    path = h.add_bundle(tmp_path / "onnx_only.edgepack", tflite=False, samples=0)
    with pytest.raises(BackendError) as err:
        Runtime.open(path, "litert")
    assert "backend litert runs tflite targets but the bundle has ref (onnx)" in str(err.value)
    assert "pip install onnxruntime" in str(err.value)
    with Runtime.open(path) as rt:
        assert rt.backend_name == "onnxruntime"


def test_unknown_target_name(add_bundle):
    with pytest.raises(BackendError, match=r"no target 'gpu'; it has cpu \(tflite\), ref \(onnx\)"):
        Runtime.open(add_bundle, target="gpu")


def test_no_backend_for_any_target():
    targets = [{"name": "npu", "format": "qnn-context"}]
    with pytest.raises(BackendError, match=r"no installed backend runs this bundle's targets \(npu \(qnn"):
        candidates(targets)


def test_selection_order_follows_preference():
    targets = [{"name": "ref", "format": "onnx"}, {"name": "cpu", "format": "tflite"}]
    names = [(s.name, t["name"]) for s, t in candidates(targets)]
    assert names[0] == ("litert", "cpu") and names[-1] == ("onnxruntime", "ref")
    assert PREFERENCE.index("litert") < PREFERENCE.index("onnxruntime")


def test_register_twice_is_an_error():
    with pytest.raises(ValueError, match="already registered"):
        register(BackendSpec("litert", ("tflite",), "ai_edge_litert", "ai-edge-litert", ".tflite:x"))


def test_dynamic_batch_resizes_interpreter(tmp_path):
    path = h.add_bundle(tmp_path / "dyn.edgepack", onnx=False, samples=1, dynamic_batch=True)
    with Runtime.open(path, "litert") as rt:
        for batch in (3, 1, 2):
            x = _x(batch, shape=[batch, 2, 3, 4])
            y = rt.run(x)["y"]
            assert y.shape == (batch, 2, 3, 4)
            np.testing.assert_allclose(y, _expected(x), atol=1e-6)


def test_manifest_order_differs_from_model_order(two_io_bundle):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.full((2, 3), 10.0, dtype=np.float32)
    with Runtime.open(two_io_bundle) as rt:
        by_name = rt.run({"a": a, "b": b})
        by_order = rt.run([b, a])  # manifest order is (b, a)
    assert list(by_name) == ["prod", "diff"]
    for out in (by_name, by_order):
        np.testing.assert_array_equal(out["diff"], a - b)
        np.testing.assert_array_equal(out["prod"], a * b)


@pytest.mark.parametrize("inputs,message", [
    ({"a": 1, "b": 2, "c": 3}, "unknown input name(s) 'c'; the model's inputs are: b, a"),
    ({"a": np.zeros((2, 3), np.float32)}, "missing input(s) 'b'; the model's inputs are: b, a"),
    ([np.zeros((2, 3), np.float32)], "got 1 inputs but the model takes 2 (b, a)"),
    (np.zeros((2, 3), np.float32), "the model takes 2 inputs (b, a) but got one value"),
    ({"a": np.zeros((2, 3)), "b": np.zeros((2, 3), np.float32)},
     "input 'a' has dtype float64 but the model expects float32 (convert it with .astype(np.float32))"),
    ({"a": np.zeros((3, 2), np.float32), "b": np.zeros((2, 3), np.float32)},
     "input 'a' expects shape [2, 3] (rank 2) but got shape [3, 2] (rank 2)"),
    ({"a": np.zeros((2, 3, 1), np.float32), "b": np.zeros((2, 3), np.float32)},
     "input 'a' expects shape [2, 3] (rank 2) but got shape [2, 3, 1] (rank 3)"),
    ({"a": [[1, 2], [3]], "b": np.zeros((2, 3), np.float32)}, "input 'a' cannot be converted"),
])
def test_input_errors(two_io_bundle, inputs, message):
    with Runtime.open(two_io_bundle) as rt:
        with pytest.raises(InputError) as err:
            rt.run(inputs)
    assert message in str(err.value)
    assert "\n" not in str(err.value) and err.value.exit_code == 7


def test_lists_and_scalars_are_converted(two_io_bundle):
    with Runtime.open(two_io_bundle) as rt:
        out = rt.run({"a": [[1, 2, 3], [4, 5, 6]], "b": [[1.5] * 3] * 2})
    assert out["prod"].dtype == np.float32
    np.testing.assert_array_equal(out["prod"], np.array([[1.5, 3, 4.5], [6, 7.5, 9]], np.float32))


def test_missing_batch_dim_hint(add_bundle):
    with Runtime.open(add_bundle) as rt, pytest.raises(InputError, match=r"add the batch dimension"):
        rt.run(np.zeros((2, 3, 4), np.float32))


def test_self_check_passes(add_bundle):
    with Runtime.open(add_bundle) as rt:
        report = rt.self_check()
    assert report["passed"] is True and report["samples"] == 2
    assert report["backend"] == "litert" and report["target"] == "cpu"
    assert report["outputs"]["y"]["max_abs"] < 1e-5 and report["outputs"]["y"]["cosine"] > 0.99999
    assert report["tolerance"] == {"rtol": 1e-3, "atol": 1e-5, "min_cosine": 0.9999}


def test_self_check_fails_when_far_off(tmp_path):
    wrong = np.array([10.0, 21.0], dtype=np.float32)  # samples built with a different bias
    path = h.add_bundle(tmp_path / "off.edgepack", sample_bias=wrong)
    with Runtime.open(path) as rt:
        with pytest.raises(BundleError, match=r"self-check failed on litert/cpu: y \(max_abs 1,"):
            rt.self_check()
        report = rt.self_check(atol=1.01, min_cosine=0.999)  # explicit tolerance accepts it
    assert report["passed"] and report["outputs"]["y"]["max_abs"] == pytest.approx(1.0, abs=1e-5)


def test_closed_runtime(add_bundle):
    rt = Runtime.open(add_bundle)
    rt.close()
    rt.close()
    with pytest.raises(BackendError, match="closed"):
        rt.run(_x())
