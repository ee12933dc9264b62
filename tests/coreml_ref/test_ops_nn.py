"""conv, conv_transpose, pooling, norms, linear/matmul, resizing against onnxruntime (fp32 and fp16)."""
from __future__ import annotations

import numpy as np
import pytest

from tests.coreml_ref import mil_kit as k
from tests.coreml_ref.onnx_ref import run_node

TOL = {"fp32": (1e-5, 1e-5), "fp16": (4e-3, 4e-3)}   # rtol, atol relative to max |ref|


def _mb():
    from coremltools.converters.mil import Builder as mb
    return mb


def _compare(got, ref, precision):
    rtol, atol = TOL[precision]
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=atol * max(1.0, float(np.abs(ref).max())))


def _run(mil_tmp, fn, x, precision):
    prog = k.load(k.build(mil_tmp, fn, {"x": list(x.shape)}, precision=precision))
    assert prog.compute_precision == precision
    return list(prog.run({"x": x}).values())


CONV_CASES = [  # (x shape, w shape, mil kwargs, onnx attrs)
    ([1, 3, 9, 9], [4, 3, 3, 3], {"pad_type": "valid"}, {}),
    ([1, 3, 9, 9], [4, 3, 3, 3], {"pad_type": "same"}, {"auto_pad": "SAME_UPPER"}),
    ([1, 4, 10, 7], [6, 2, 3, 2], {"pad_type": "custom", "pad": [1, 2, 0, 1], "strides": [2, 1], "groups": 2},
     {"pads": [1, 0, 2, 1], "strides": [2, 1], "group": 2}),
    ([1, 4, 11, 11], [4, 1, 3, 3], {"pad_type": "custom", "pad": [2, 2, 2, 2], "dilations": [2, 2], "groups": 4},
     {"pads": [2, 2, 2, 2], "dilations": [2, 2], "group": 4}),
    ([2, 2, 20], [3, 2, 5], {"pad_type": "valid", "strides": [3]}, {"strides": [3]}),
    ([1, 2, 5, 6, 4], [3, 2, 2, 3, 2], {"pad_type": "valid"}, {}),
]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_conv(case, precision, mil_tmp):
    xs, ws, kw, attrs = CONV_CASES[case]
    r = k.rng(case)
    x, w = r.standard_normal(xs).astype(np.float32), r.standard_normal(ws).astype(np.float32)
    b = r.standard_normal(ws[0]).astype(np.float32)
    (got,) = _run(mil_tmp, lambda x: _mb().conv(x=x, weight=w, bias=b, **kw), x, precision)
    (ref,) = run_node("Conv", {"x": x}, attrs, {"w": w, "b": b})
    _compare(got, ref, precision)


CONVT_CASES = [
    ([1, 3, 5, 5], [3, 4, 3, 3], {"pad_type": "valid", "strides": [2, 2]}, {"strides": [2, 2]}),
    ([1, 4, 4, 6], [4, 2, 3, 3], {"pad_type": "custom", "pad": [1, 1, 0, 1], "strides": [2, 1], "groups": 2},
     {"pads": [1, 0, 1, 1], "strides": [2, 1], "group": 2}),
    ([1, 2, 7], [2, 3, 4], {"pad_type": "valid", "strides": [3], "dilations": [2]},
     {"strides": [3], "dilations": [2]}),
]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("case", range(len(CONVT_CASES)))
def test_conv_transpose(case, precision, mil_tmp):
    xs, ws, kw, attrs = CONVT_CASES[case]
    r = k.rng(10 + case)
    x, w = r.standard_normal(xs).astype(np.float32), r.standard_normal(ws).astype(np.float32)
    (got,) = _run(mil_tmp, lambda x: _mb().conv_transpose(x=x, weight=w, **kw), x, precision)
    (ref,) = run_node("ConvTranspose", {"x": x}, attrs, {"w": w})
    _compare(got, ref, precision)


POOL_CASES = [  # (mil op, kwargs, onnx op, attrs)
    ("max_pool", {"kernel_sizes": [3, 3], "strides": [2, 2], "pad_type": "valid"}, "MaxPool",
     {"kernel_shape": [3, 3], "strides": [2, 2]}),
    ("max_pool", {"kernel_sizes": [3, 2], "strides": [2, 2], "pad_type": "custom", "pad": [1, 1, 1, 1],
                  "ceil_mode": True}, "MaxPool",
     {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1}),
    ("avg_pool", {"kernel_sizes": [3, 3], "strides": [1, 1], "pad_type": "custom", "pad": [1, 1, 1, 1],
                  "exclude_padding_from_average": True}, "AveragePool",
     {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 0}),
    ("avg_pool", {"kernel_sizes": [2, 2], "strides": [2, 2], "pad_type": "custom", "pad": [1, 1, 1, 1],
                  "exclude_padding_from_average": False}, "AveragePool",
     {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1}),
]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("case", range(len(POOL_CASES)))
def test_pool(case, precision, mil_tmp):
    mil_op, kw, onnx_op, attrs = POOL_CASES[case]
    x = k.rng(20 + case).standard_normal([1, 3, 9, 8]).astype(np.float32)
    (got,) = _run(mil_tmp, lambda x: getattr(_mb(), mil_op)(x=x, **kw), x, precision)
    (ref,) = run_node(onnx_op, {"x": x}, attrs)
    _compare(got, ref, precision)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_norms(precision, mil_tmp):
    mb, r = _mb(), k.rng(30)
    x = r.standard_normal([2, 4, 5, 6]).astype(np.float32) * 3 + 1
    g, b = r.uniform(0.5, 1.5, 4).astype(np.float32), r.standard_normal(4).astype(np.float32)
    mean, var = r.standard_normal(4).astype(np.float32), r.uniform(0.5, 2, 4).astype(np.float32)
    lg, lb = r.uniform(0.5, 1.5, 6).astype(np.float32), r.standard_normal(6).astype(np.float32)

    def fn(x):
        return (mb.batch_norm(x=x, mean=mean, variance=var, gamma=g, beta=b, epsilon=1e-3),
                mb.instance_norm(x=x, gamma=g, beta=b, epsilon=1e-5),
                mb.layer_norm(x=x, axes=[-1], gamma=lg, beta=lb, epsilon=1e-5),
                mb.local_response_norm(x=x, size=3, alpha=1e-2, beta=0.75, k=2.0))

    got = _run(mil_tmp, fn, x, precision)
    refs = [run_node("BatchNormalization", {"x": x}, {"epsilon": 1e-3}, {"g": g, "b": b, "m": mean, "v": var})[0],
            run_node("InstanceNormalization", {"x": x}, {"epsilon": 1e-5}, {"g": g, "b": b})[0],
            run_node("LayerNormalization", {"x": x}, {"axis": -1, "epsilon": 1e-5}, {"g": lg, "b": lb})[0],
            run_node("LRN", {"x": x}, {"size": 3, "alpha": 1e-2, "beta": 0.75, "bias": 2.0})[0]]
    for a, ref in zip(got, refs):
        _compare(a, ref, precision)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_linear_matmul_einsum(precision, mil_tmp):
    mb, r = _mb(), k.rng(40)
    x = r.standard_normal([2, 5, 8]).astype(np.float32)
    w, b = r.standard_normal([3, 8]).astype(np.float32), r.standard_normal(3).astype(np.float32)
    m = r.standard_normal([2, 3, 8]).astype(np.float32)
    e = r.standard_normal([8, 5, 4]).astype(np.float32)   # MIL's einsum: matrices on axes -1 and -3

    def fn(x):
        return (mb.linear(x=x, weight=w, bias=b), mb.matmul(x=x, y=m, transpose_y=True),
                mb.einsum(values=(x, e), equation="chw,whr->chr"))

    got = _run(mil_tmp, fn, x, precision)
    f = x.astype(np.float16).astype(np.float32) if precision == "fp16" else x
    for a, ref in zip(got, [f @ w.T + b, f @ np.swapaxes(m, 1, 2), np.einsum("chw,whr->chr", f, e)]):
        _compare(a, ref, precision)


RESIZE_CASES = [  # (mil op, kwargs, onnx attrs, scales)
    ("upsample_nearest_neighbor", {"scale_factor_height": 2, "scale_factor_width": 3},
     {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, [1, 1, 2, 3]),
    ("upsample_bilinear", {"scale_factor_height": 2, "scale_factor_width": 2, "align_corners": True},
     {"mode": "linear", "coordinate_transformation_mode": "align_corners"}, [1, 1, 2, 2]),
    ("upsample_bilinear", {"scale_factor_height": 2, "scale_factor_width": 3, "align_corners": False},
     {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}, [1, 1, 2, 3]),
    ("resize_bilinear", {"target_size_height": 8, "target_size_width": 10, "sampling_mode": "DEFAULT"},
     {"mode": "linear", "coordinate_transformation_mode": "asymmetric"}, [1, 1, 2, 2]),
]


@pytest.mark.parametrize("case", range(len(RESIZE_CASES)))
def test_resize(case, mil_tmp):
    mil_op, kw, attrs, scales = RESIZE_CASES[case]
    x = k.rng(50 + case).standard_normal([1, 2, 4, 5]).astype(np.float32)
    (got,) = _run(mil_tmp, lambda x: getattr(_mb(), mil_op)(x=x, **kw), x, "fp32")
    (ref,) = run_node("Resize", {"x": x}, attrs, {"roi": np.zeros(0, np.float32),
                                                  "scales": np.array(scales, np.float32)})
    _compare(got, ref, "fp32")
