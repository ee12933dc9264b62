"""Weight compression modes: what coremltools actually compressed, size ratios against fp16, numerics
through the reference executor, and the iOS18-only modes on an older deployment target."""
import numpy as np
import pytest

from edgepack.errors import EdgepackError
from edgepack.targets.coreml.target import TARGET

from .harness import reference_executor, run_onnx
from .kit import heavy_model, job, profile

# mode -> (deployment, expected weight bytes / fp16 weight bytes, relative error bound vs onnxruntime)
MODES = {
    "w8": ("iOS16", 0.5, 0.05),
    "palettize6": ("iOS16", 0.375, 0.1),
    "palettize4": ("iOS16", 0.25, 0.25),
    "prune": ("iOS16", 0.56, 1.0),
    "w4-block": ("iOS18", 0.28, 0.25),
    "prune-palettize4": ("iOS18", 0.19, 1.0),
}


@pytest.fixture(scope="module")
def model():
    return heavy_model()


@pytest.fixture(scope="module")
def fp16(model):
    return TARGET.convert(model, job(model, "fp16"))


@pytest.mark.parametrize("mode", list(MODES))
def test_mode(model, fp16, mode):
    deployment, ratio, tol = MODES[mode]
    done = TARGET.convert(model, job(model, mode, [profile(deployment)]))
    c = done.extra["compression"]
    assert c["mode"] == mode and c["weights"] == 3 and c["left_uncompressed"] == 0, c
    assert sum(c["compressed_ops"].values()) >= 3 and all(k.startswith("constexpr_") for k in c["compressed_ops"])
    assert c["ratio"] == pytest.approx(ratio, abs=0.04), c
    package_ratio = done.info["weights_bytes"] / fp16.info["weights_bytes"]
    assert package_ratio == pytest.approx(ratio, abs=0.05), (package_ratio, done.info)
    assert done.info["fp16_size"] > len(done.files[done.file])
    load = reference_executor()
    from edgepack_runtime.backends.coreml_ref import supported_ops
    assert set(c["compressed_ops"]) <= set(supported_ops())
    x = {"x": np.random.default_rng(0).standard_normal((1, 16, 12, 12)).astype(np.float32)}
    got = list(load(done.files[done.file]).run(x).values())[0]
    ref = run_onnx(model, x)["y"]
    err = float(np.abs(got - ref).max() / np.abs(ref).max())
    assert err < tol, f"{mode}: relative error {err:.3g}"


@pytest.mark.parametrize("mode", ["w4-block", "prune-palettize4"])
@pytest.mark.parametrize("deployment", [None, "iOS17", "macOS14"])
def test_ios18_mode_on_older_target_is_a_clear_error(model, mode, deployment):
    profiles = [profile(deployment)] if deployment else []
    with pytest.raises(EdgepackError, match=f"'{mode}' needs deployment target iOS18 or newer; this build "
                                            f"targets {deployment or 'iOS16'}") as err:
        TARGET.convert(model, job(model, mode, profiles))
    assert "minimum_deployment_target" in err.value.hint


def test_fp16_halves_fp32(model, fp16):
    fp32 = TARGET.convert(model, job(model, "fp32"))
    assert fp32.info["compute_precision"] == "fp32" and "compression" not in fp32.extra
    assert fp16.info["weights_bytes"] / fp32.info["weights_bytes"] == pytest.approx(0.5, abs=0.02)


def test_palettize8_and_uniform_palettes_for_large_weights(monkeypatch):
    """palettize8 on a small model; weights above KMEANS_MAX get uniform palettes (bounded time)."""
    from onnx import helper as h

    from edgepack.targets.coreml import compress

    from .harness import make, weight
    m = make([h.make_node("MatMul", ["x", "w"], ["y"])], {"x": [2, 96]}, ["y"], [weight("w", (96, 64))])
    monkeypatch.setattr(compress, "KMEANS_MAX", 4096)       # 6144 values: uniform levels
    done = TARGET.convert(m, job(m, "palettize8"))
    c = done.extra["compression"]
    assert c["compressed_ops"] == {"constexpr_lut_to_dense": 1} and c["ratio"] == pytest.approx(0.5, abs=0.05)
    got = list(reference_executor()(done.files[done.file]).run({"x": np.ones((2, 96), np.float32)}).values())[0]
    ref = run_onnx(m, {"x": np.ones((2, 96), np.float32)})["y"]
    assert np.abs(got - ref).max() / np.abs(ref).max() < 0.05
