"""Compressed weights: packages compressed by coremltools.optimize.coreml (iOS16 and iOS18 constexpr forms)
decompress in the executor to exactly the weights coremltools' own ``decompress_weights`` yields, and stay
within the compression's own error of the original weights."""
from __future__ import annotations

import numpy as np
import pytest

from tests.coreml_ref import mil_kit as k

W = np.random.default_rng(0).standard_normal((16, 8, 3, 3)).astype(np.float32)
X = np.random.default_rng(1).standard_normal((1, 8, 6, 6)).astype(np.float32)


def _configs():
    import coremltools.optimize.coreml as cto
    return {
        "int8": (cto.linear_quantize_weights, cto.OpLinearQuantizerConfig(mode="linear_symmetric", weight_threshold=0)),
        "int4_block": (cto.linear_quantize_weights, cto.OpLinearQuantizerConfig(
            mode="linear", dtype="int4", granularity="per_block", block_size=4, weight_threshold=0)),
        "lut4": (cto.palettize_weights, cto.OpPalettizerConfig(mode="uniform", nbits=4, weight_threshold=0)),
        "lut2_grouped": (cto.palettize_weights, cto.OpPalettizerConfig(
            mode="uniform", nbits=2, granularity="per_grouped_channel", group_size=4, weight_threshold=0)),
        "prune": (cto.prune_weights, cto.OpThresholdPrunerConfig(threshold=0.5, minimum_sparsity_percentile=0.0,
                                                                 weight_threshold=0)),
    }


CASES = [("iOS16", "int8", "constexpr_affine_dequantize"), ("iOS16", "lut4", "constexpr_lut_to_dense"),
         ("iOS16", "prune", "constexpr_sparse_to_dense"), ("iOS18", "int8", "constexpr_blockwise_shift_scale"),
         ("iOS18", "int4_block", "constexpr_blockwise_shift_scale"), ("iOS18", "lut4", "constexpr_lut_to_dense"),
         ("iOS18", "lut2_grouped", "constexpr_lut_to_dense"), ("iOS18", "prune", "constexpr_sparse_to_dense"),
         ("iOS18", "prune_lut4", "constexpr_lut_to_sparse")]


def _dense_weight(prog):
    found = [v for v in prog._consts.values() if isinstance(v, np.ndarray) and v.shape == W.shape]
    assert found, "no decompressed weight of the conv's shape"
    return found[-1].astype(np.float32)


@pytest.mark.parametrize("target,mode,op_type", CASES)
def test_compressed_weights_decompress_like_coremltools(target, mode, op_type, mil_tmp):
    import coremltools as ct
    import coremltools.optimize.coreml as cto
    from coremltools.converters.mil import Builder as mb
    path = k.build(mil_tmp, lambda x: mb.conv(x=x, weight=W), {"x": list(X.shape)}, target=target)
    model = ct.models.MLModel(str(path), skip_model_load=True)
    if mode == "prune_lut4":    # joint: 4-bit palettes of the values pruning kept
        fn, config = _configs()["prune"]
        model = fn(model, cto.OptimizationConfig(global_config=config))
        fn, config = _configs()["lut4"]
        compressed = fn(model, cto.OptimizationConfig(global_config=config), joint_compression=True)
    else:
        fn, config = _configs()[mode]
        compressed = fn(model, cto.OptimizationConfig(global_config=config))
    cpath, dpath = mil_tmp / f"{path.stem}_{mode}.mlpackage", mil_tmp / f"{path.stem}_{mode}_dense.mlpackage"
    compressed.save(str(cpath))
    cto.decompress_weights(compressed).save(str(dpath))
    prog, dense = k.load(cpath), k.load(dpath)
    assert op_type in prog.op_counts and not any(t.startswith("constexpr_") for t in dense.op_counts)
    np.testing.assert_array_equal(_dense_weight(prog), _dense_weight(dense))
    (got,), (ref,) = prog.run({"x": X}).values(), dense.run({"x": X}).values()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    w = _dense_weight(prog)
    if mode == "prune":
        np.testing.assert_array_equal(w, np.where(np.abs(W) > 0.5, W, 0))
    if mode == "prune_lut4":
        assert ((w == 0) == (np.abs(W) <= 0.5)).all() and len(np.unique(w[w != 0])) <= 16
    if mode == "int8":   # symmetric per output channel: within half a step of max|w| / 127
        step = np.abs(W).reshape(16, -1).max(axis=1) / 127
        assert (np.abs(w - W).reshape(16, -1).max(axis=1) <= 0.51 * step).all()
    if mode == "lut4":
        assert len(np.unique(w)) <= 16
    if mode == "lut2_grouped":
        assert all(len(np.unique(w[g:g + 4])) <= 4 for g in range(0, 16, 4))
