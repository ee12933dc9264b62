"""Small ONNX models with a meaningful accuracy, built with ``onnx.helper`` and fitted with numpy only.

They exist to measure what a conversion or a quantization does to *accuracy*, not just to parity on random
inputs. Each builder returns a :class:`Fitted`: the model (opset 17, static shapes, one float32 input ``x``
with batch dimension 1, one output ``logits``), its train/test data as ``[samples, *input shape]`` arrays
(so one sample ``x_test[i]`` is exactly one model input), integer labels and the fp32 test accuracy measured
with onnxruntime.

- :func:`small_cnn` -- sklearn's bundled 8x8 digits upsampled to ``[1, 1, 16, 16]``; Conv+BatchNorm+Relu,
  strided Conv, depthwise Conv, 1x1 Conv, GlobalAveragePool, Gemm. The first two convs are data-driven
  (PCA filters of image/feature patches, BatchNorm statistics from the data); the 1x1 conv and the Gemm are
  trained with a hand-written numpy backward pass (Adam).
- :func:`small_transformer` -- a two-block pre-LN transformer encoder over ``[1, 16, 32]`` token embeddings
  on a synthetic counting task; attention/FFN weights are random but properly scaled, the head is fitted by
  softmax regression.
- :func:`outlier_cnn` -- :func:`small_cnn` with one channel of ``conv2``'s output scaled by 1000 (and
  compensated in the depthwise conv that follows), fp32-equivalent but hostile to per-tensor int8.

Nothing is downloaded: the digits ship inside scikit-learn. Fitting is deterministic given the seed and takes
a few seconds; :func:`build_all` can cache the results on disk.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
INPUT = "x"
OUTPUT = "logits"
# Bump when a builder changes what it produces: cached files carry it in their names.
CACHE_VERSION = 1

# The outlier model: which conv2 output channel is blown up, and by how much.
OUTLIER_CHANNEL = 5
OUTLIER_SCALE = 1000.0


_F = TypeVar("_F", bound=Callable)


def _single_threaded(fn: _F) -> _F:
    """Run ``fn`` with BLAS limited to one thread: the same bits on any machine, and no oversubscription
    stalls when the host is busy (threadpoolctl ships with scikit-learn; without it this is a no-op)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            return fn(*args, **kwargs)
        with threadpool_limits(limits=1):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------------------------
# The result type and its helpers


@dataclass
class Fitted:
    """A fitted model with its data. ``x_*`` are float32 ``[n, *input_shape]`` (``input_shape[0] == 1``)."""

    name: str
    model: onnx.ModelProto
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    fp32_test_accuracy: float
    culprit_node: str | None = None      # outlier_cnn only: the node whose output breaks per-tensor int8
    culprit_tensor: str | None = None    # ... and that output's value name
    info: dict = field(default_factory=dict)

    @property
    def input_name(self) -> str:
        return self.model.graph.input[0].name

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(d.dim_value for d in self.model.graph.input[0].type.tensor_type.shape.dim)

    @property
    def num_classes(self) -> int:
        return int(self.model.graph.output[0].type.tensor_type.shape.dim[-1].dim_value)

    def accuracy(self, logits: np.ndarray | list, labels: np.ndarray | None = None) -> float:
        """Top-1 accuracy of per-sample logits (``[n, 1, C]``, ``[n, C]`` or a list of ``[1, C]``) against
        ``labels`` (default ``y_test``)."""
        labels = self.y_test if labels is None else np.asarray(labels)
        return accuracy(logits, labels)

    def predict(self, x: np.ndarray | None = None, model: onnx.ModelProto | None = None) -> np.ndarray:
        """Logits ``[n, 1, C]`` of ``model`` (default: this one) over ``x`` (default ``x_test``), onnxruntime."""
        return run_onnx(self.model if model is None else model, self.x_test if x is None else x)

    def calibration(self, n: int, split: str = "test") -> list[dict[str, np.ndarray]]:
        """The first ``n`` samples of ``split`` ("test" or "train") as per-sample input dicts."""
        x = self._split(split)[:n]
        return [{self.input_name: s} for s in x]

    def save_calibration(self, path: str | os.PathLike, n: int, split: str = "test") -> Path:
        """Write an edgepack calibration ``.npz``: ``{"x": x_<split>[:n]}``, shaped ``[n, *input_shape]``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            np.savez(f, **{self.input_name: np.ascontiguousarray(self._split(split)[:n], np.float32)})
        return path

    def _split(self, split: str) -> np.ndarray:
        if split not in ("test", "train"):
            raise ValueError(f"split must be 'test' or 'train', not {split!r}")
        return self.x_test if split == "test" else self.x_train


def accuracy(logits: np.ndarray | list, labels: np.ndarray) -> float:
    labels = np.asarray(labels).reshape(-1)
    arr = np.asarray(logits).reshape(len(labels), -1)
    return float(np.mean(np.argmax(arr, axis=-1) == labels))


def session(model: onnx.ModelProto):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def run_onnx(model: onnx.ModelProto, x: np.ndarray, output: str | None = None) -> np.ndarray:
    """Run a single-input model over samples ``x`` (``[n, *input_shape]``); returns ``[n, *output_shape]``."""
    sess = session(model)
    name = sess.get_inputs()[0].name
    outs = [output] if output else [sess.get_outputs()[0].name]
    return np.stack([sess.run(outs, {name: np.ascontiguousarray(s, np.float32)})[0] for s in x])


# --------------------------------------------------------------------------------------------------------------
# Simulated activation quantization (numpy), to show what a per-tensor int8 scale does to one tensor


def fake_quant(t: np.ndarray, scale: np.ndarray | float) -> np.ndarray:
    """Symmetric int8 fake quantization: ``clip(round(t / scale), -127, 127) * scale``."""
    scale = np.maximum(np.asarray(scale, np.float64), np.finfo(np.float32).tiny)
    return (np.clip(np.round(t / scale), -127, 127) * scale).astype(np.float32)


def _value_info(model: onnx.ModelProto, tensor: str) -> onnx.ValueInfoProto:
    inferred = onnx.shape_inference.infer_shapes(model)
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        if vi.name == tensor:
            return vi
    raise KeyError(f"no intermediate tensor {tensor!r} in {model.graph.name}")


def with_output(model: onnx.ModelProto, tensor: str) -> onnx.ModelProto:
    """A copy of ``model`` that also outputs ``tensor`` (after the original outputs)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.graph.output.append(_value_info(model, tensor))
    return m


def with_override(model: onnx.ModelProto, tensor: str, new_input: str | None = None) -> onnx.ModelProto:
    """A copy of ``model`` whose consumers of ``tensor`` read a new, second graph input instead (named
    ``new_input``, default ``<tensor>_override``): feed it a modified version of the tensor."""
    new_input = new_input or f"{tensor}_override"
    vi = _value_info(model, tensor)
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for node in m.graph.node:
        for i, name in enumerate(node.input):
            if name == tensor:
                node.input[i] = new_input
    m.graph.input.append(helper.make_tensor_value_info(new_input, vi.type.tensor_type.elem_type,
                                                       [d.dim_value for d in vi.type.tensor_type.shape.dim]))
    return m


def fake_quant_accuracy(fitted: Fitted, tensor: str, per_channel_axis: int | None = None,
                        calib: np.ndarray | None = None) -> float:
    """Test accuracy when ``tensor`` alone is int8 fake-quantized (in numpy) with a static ``max|t| / 127`` scale
    taken over ``calib`` samples (default: the first 256 training samples); per tensor unless
    ``per_channel_axis`` (an axis of the tensor itself, batch included) is given."""
    probe = with_output(fitted.model, tensor)
    calib = fitted.x_train[:256] if calib is None else calib
    t_cal = run_onnx(probe, calib, output=tensor)     # [n, *tensor_shape]
    if per_channel_axis is None:
        scale: np.ndarray | float = float(np.abs(t_cal).max()) / 127.0
    else:
        ax = per_channel_axis + 1                     # skip the sample axis
        red = tuple(i for i in range(t_cal.ndim) if i != ax)
        scale = np.abs(t_cal).max(axis=red, keepdims=True)[0] / 127.0
    t_test = run_onnx(probe, fitted.x_test, output=tensor)
    sess = session(with_override(fitted.model, tensor, "fq_override"))
    logits = [sess.run([OUTPUT], {fitted.input_name: x, "fq_override": fake_quant(t, scale)})[0]
              for x, t in zip(fitted.x_test, t_test)]
    return fitted.accuracy(logits)


# --------------------------------------------------------------------------------------------------------------
# ONNX building helpers


class _Graph:
    """Accumulates nodes and initializers; every node gets a name, every output ``<name>_out`` unless given."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray, dtype=np.float32) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=dtype), name))
        return name

    def node(self, op: str, name: str, inputs: list[str], out: str | None = None, **attrs) -> str:
        out = out or f"{name}_out"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def model(self, graph_name: str, in_shape: list[int], out_shape: list[int], doc: str) -> onnx.ModelProto:
        g = helper.make_graph(
            self.nodes, graph_name,
            [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, in_shape)],
            [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, out_shape)],
            initializer=self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgepack.testing",
                              producer_version=str(CACHE_VERSION), doc_string=doc)
        m.ir_version = 8
        m = onnx.shape_inference.infer_shapes(m, strict_mode=True)
        onnx.checker.check_model(m, full_check=True)
        return m


# --------------------------------------------------------------------------------------------------------------
# numpy layers used for fitting (NCHW, float64 unless stated)


def _im2col(x: np.ndarray, k: int, stride: int, pad: int) -> tuple[np.ndarray, int, int]:
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    cols = np.empty((n, oh, ow, c, k, k), x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, :, :, :, i, j] = xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride].transpose(0, 2, 3, 1)
    return cols.reshape(n * oh * ow, c * k * k), oh, ow


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int = 1, pad: int = 1) -> np.ndarray:
    n = x.shape[0]
    cols, oh, ow = _im2col(x, w.shape[2], stride, pad)
    out = cols @ w.reshape(w.shape[0], -1).T
    if b is not None:
        out = out + b
    return out.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)


def _depthwise(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3x3 depthwise conv, pad 1, stride 1; ``w`` is ``[C, 1, 3, 3]``."""
    _, _, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros_like(x)
    for i in range(3):
        for j in range(3):
            out += w[None, :, 0, i, j, None, None] * xp[:, :, i:i + h, j:j + wd]
    return out + b[None, :, None, None]


def _pca(rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-``k`` principal directions ``[k, d]`` (sign-fixed), their variances and the mean of ``rows``."""
    mean = rows.mean(0)
    c = rows - mean
    ev, vec = np.linalg.eigh(c.T @ c / len(c))
    order = np.argsort(ev)[::-1][:k]
    v = vec[:, order].T
    v *= np.sign(v[np.arange(k), np.abs(v).argmax(1)])[:, None]   # deterministic signs
    return v, ev[order], mean


def _softmax_regression(f_train: np.ndarray, y: np.ndarray, classes: int, steps: int = 300, lr: float = 0.5,
                        wd: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Full-batch gradient descent on standardized features; returns ``(W [classes, d], b)`` acting on the raw
    features (the standardization folded in)."""
    m = f_train.mean(0)
    s = f_train.std(0) + 1e-6
    a = (f_train - m) / s
    w = np.zeros((a.shape[1], classes))
    b = np.zeros(classes)
    onehot = np.eye(classes)[y]
    for _ in range(steps):
        lo = a @ w + b
        p = np.exp(lo - lo.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / len(a)
        w -= lr * (a.T @ g + wd * w)
        b -= lr * g.sum(0)
    return (w / s[:, None]).T, b - (m / s) @ w


# --------------------------------------------------------------------------------------------------------------
# Digits data


def _upsample_matrix(src: int, dst: int) -> np.ndarray:
    """Bilinear resize matrix (half-pixel centres, edge clamped): ``dst x src``."""
    pos = np.clip((np.arange(dst) + 0.5) * src / dst - 0.5, 0, src - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, src - 1)
    f = pos - i0
    a = np.zeros((dst, src))
    a[np.arange(dst), i0] += 1 - f
    a[np.arange(dst), i1] += f
    return a


def digits_data(seed: int = 0, size: int = 16, test_fraction: float = 0.25):
    """sklearn's 1797 digits, bilinearly upsampled to ``size``x``size`` and standardized with the train split's
    mean/std: ``(x_train, y_train, x_test, y_test, info)`` with x as float32 ``[n, 1, 1, size, size]``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    img = d.images.astype(np.float64) / 16.0
    a = _upsample_matrix(8, size)
    up = np.einsum("ij,njk,lk->nil", a, img, a)
    perm = np.random.default_rng(seed).permutation(len(up))
    n_test = int(round(len(up) * test_fraction))
    te, tr = perm[:n_test], perm[n_test:]
    mean, std = float(up[tr].mean()), float(up[tr].std())
    x = ((up - mean) / std).astype(np.float32)[:, None, None]
    y = d.target.astype(np.int64)
    return x[tr], y[tr], x[te], y[te], {"norm_mean": mean, "norm_std": std}


# --------------------------------------------------------------------------------------------------------------
# The CNN


def _fit_cnn(seed: int) -> dict:
    """Fit the CNN's weights; returns the parameter dict and the data."""
    x_tr, y_tr, x_te, y_te, info = digits_data(seed)
    rng = np.random.default_rng(seed + 1000)
    xtr = x_tr[:, 0].astype(np.float64)                       # [n, 1, 16, 16]

    # conv1: 8 PCA filters of 3x3 image patches and their negatives (so Relu keeps both signs), no bias.
    cols, _, _ = _im2col(xtr, 3, 1, 1)
    v1, _, _ = _pca(cols, 8)
    w1 = np.concatenate([v1, -v1]).reshape(16, 1, 3, 3)
    # bn1: statistics of conv1's output over the training data, gamma/beta drawn like a trained net's.
    z1 = _conv(xtr, w1, None)
    bn_mean, bn_var = z1.mean((0, 2, 3)), z1.var((0, 2, 3))
    gamma = rng.uniform(0.6, 1.4, 16)
    beta = rng.uniform(-0.2, 0.2, 16)

    def block1(x):
        z = _conv(x, w1, None)
        z = (z - bn_mean[None, :, None, None]) / np.sqrt(bn_var[None, :, None, None] + 1e-5)
        return np.maximum(z * gamma[None, :, None, None] + beta[None, :, None, None], 0)

    h1 = block1(xtr)
    # conv2 (stride 2): 16 whitened PCA filters of 3x3x16 feature patches and their negatives, centred by bias.
    cols, _, _ = _im2col(h1, 3, 2, 1)
    v2, ev2, m2 = _pca(cols, 16)
    v2 = v2 / np.sqrt(ev2[:, None] + 1e-6)
    w2_flat = np.concatenate([v2, -v2])
    w2 = w2_flat.reshape(32, 16, 3, 3)
    b2 = -w2_flat @ m2
    # conv3_dw: a 3x3 blur per channel, jittered, with a small bias.
    w3 = (np.full((32, 1, 3, 3), 1 / 9) + rng.normal(0, 0.03, (32, 1, 3, 3)))
    b3 = rng.normal(0, 0.05, 32)

    def features(x):          # relu3 output, [n, 32, 8, 8]
        h2 = np.maximum(_conv(block1(x), w2, b2, 2, 1), 0)
        return np.maximum(_depthwise(h2, w3, b3), 0)

    f_tr = features(xtr)
    # conv4 (1x1) + GAP + fc: trained jointly with Adam on the (standardized) relu3 features.
    ch_mean, ch_std = f_tr.mean((0, 2, 3)), f_tr.std((0, 2, 3)) + 1e-6
    F = ((f_tr - ch_mean[None, :, None, None]) / ch_std[None, :, None, None])
    F = F.transpose(0, 2, 3, 1).reshape(len(F), -1, 32).astype(np.float32)     # [n, 64, 32]
    positions = F.shape[1]
    w4 = (rng.normal(size=(32, 32)) * np.sqrt(2 / 32)).astype(np.float32)       # [in, out]
    b4 = np.zeros(32, np.float32)
    w5 = np.zeros((32, 10), np.float32)
    b5 = np.zeros(10, np.float32)
    params = [w4, b4, w5, b5]
    m1 = [np.zeros_like(p) for p in params]
    m2_ = [np.zeros_like(p) for p in params]
    onehot = np.eye(10, dtype=np.float32)[y_tr]
    lr, wd, step = 0.01, 1e-4, 0
    for _ in range(60):
        order = rng.permutation(len(F))
        for k in range(0, len(order), 128):
            idx = order[k:k + 128]
            f = F[idx]
            z = f @ w4 + b4
            h = np.maximum(z, 0)
            g = h.mean(1)
            lo = g @ w5 + b5
            p = np.exp(lo - lo.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            dlo = (p - onehot[idx]) / len(idx)
            dg = dlo @ w5.T
            dz = np.broadcast_to(dg[:, None, :] / positions, z.shape) * (z > 0)
            grads = [f.reshape(-1, 32).T @ dz.reshape(-1, 32) + wd * w4, dz.sum((0, 1)),
                     g.T @ dlo + wd * w5, dlo.sum(0)]
            step += 1
            for i, (prm, gr) in enumerate(zip(params, grads)):
                m1[i] = 0.9 * m1[i] + 0.1 * gr
                m2_[i] = 0.999 * m2_[i] + 0.001 * gr * gr
                prm -= lr * (m1[i] / (1 - 0.9 ** step)) / (np.sqrt(m2_[i] / (1 - 0.999 ** step)) + 1e-8)
    # Fold the feature standardization into conv4.
    w4_raw = w4.astype(np.float64) / ch_std[:, None]
    conv4_w = w4_raw.T.reshape(32, 32, 1, 1)
    conv4_b = b4 - ch_mean @ w4_raw
    return dict(data=(x_tr, y_tr, x_te, y_te), info=info,
                conv1_w=w1, bn_scale=gamma, bn_bias=beta, bn_mean=bn_mean, bn_var=bn_var,
                conv2_w=w2, conv2_b=b2, conv3_w=w3, conv3_b=b3, conv4_w=conv4_w, conv4_b=conv4_b,
                fc_w=w5.T, fc_b=b5)


def _cnn_graph(p: dict, doc: str) -> onnx.ModelProto:
    g = _Graph()
    t = g.node("Conv", "conv1", [INPUT, g.const("conv1.weight", p["conv1_w"])], kernel_shape=[3, 3], pads=[1] * 4)
    t = g.node("BatchNormalization", "bn1", [t, g.const("bn1.weight", p["bn_scale"]), g.const("bn1.bias", p["bn_bias"]),
                                             g.const("bn1.running_mean", p["bn_mean"]),
                                             g.const("bn1.running_var", p["bn_var"])], epsilon=1e-5)
    t = g.node("Relu", "relu1", [t])
    t = g.node("Conv", "conv2", [t, g.const("conv2.weight", p["conv2_w"]), g.const("conv2.bias", p["conv2_b"])],
               kernel_shape=[3, 3], pads=[1] * 4, strides=[2, 2])
    t = g.node("Relu", "relu2", [t])
    t = g.node("Conv", "conv3_dw", [t, g.const("conv3_dw.weight", p["conv3_w"]), g.const("conv3_dw.bias", p["conv3_b"])],
               kernel_shape=[3, 3], pads=[1] * 4, group=32)
    t = g.node("Relu", "relu3", [t])
    t = g.node("Conv", "conv4", [t, g.const("conv4.weight", p["conv4_w"]), g.const("conv4.bias", p["conv4_b"])],
               kernel_shape=[1, 1])
    t = g.node("Relu", "relu4", [t])
    t = g.node("GlobalAveragePool", "gap", [t])
    t = g.node("Flatten", "flatten", [t], axis=1)
    g.node("Gemm", "fc", [t, g.const("fc.weight", p["fc_w"]), g.const("fc.bias", p["fc_b"])], out=OUTPUT, transB=1)
    return g.model("small_cnn", [1, 1, 16, 16], [1, 10], doc)


def _finish(name: str, model: onnx.ModelProto, data, info: dict, **extra) -> Fitted:
    x_tr, y_tr, x_te, y_te = data
    fitted = Fitted(name, model, x_tr, y_tr, x_te, y_te, 0.0, info=info, **extra)
    fitted.fp32_test_accuracy = fitted.accuracy(fitted.predict())
    return fitted


@_single_threaded
def small_cnn(seed: int = 0) -> Fitted:
    """Digits CNN, input ``x`` ``[1, 1, 16, 16]`` (standardized pixels), output ``logits`` ``[1, 10]``.

    Nodes: conv1 (3x3, 16) -> bn1 -> relu1 -> conv2 (3x3, 32, stride 2) -> relu2 -> conv3_dw (3x3, group 32)
    -> relu3 -> conv4 (1x1, 32) -> relu4 -> gap -> flatten -> fc (Gemm, 10). Test accuracy 97-99% (seed 0:
    98.7%, 449 test images).
    """
    p = _fit_cnn(seed)
    model = _cnn_graph(p, "small_cnn: sklearn digits 16x16; edgepack.testing.fitted")
    return _finish("small_cnn", model, p["data"], dict(p["info"], seed=seed))


@_single_threaded
def outlier_cnn(seed: int = 0) -> Fitted:
    """:func:`small_cnn` made hostile to per-tensor int8 activations; fp32 it computes the same function.

    The culprit is node ``conv2`` (output ``conv2_out``, and ``relu2_out`` after it, which a converter usually
    fuses with it): output channel ``OUTLIER_CHANNEL`` (5) of conv2 has its weights and bias multiplied by
    ``OUTLIER_SCALE`` (1000), so that channel's activations are ~1000x larger than the other 31. Relu is
    positively homogeneous, so the next node, the depthwise ``conv3_dw``, undoes it exactly by dividing its
    channel-5 weights by 1000 (its bias is unchanged); everything after conv3_dw is identical to small_cnn.

    A per-tensor int8 scale for ``conv2_out`` (``max|x| / 127``) is then ~1000x too coarse for the other
    channels, which all round to zero: accuracy collapses although the fp32 accuracy is unchanged. Per-channel
    activation scales (or per-tensor weights for conv2/conv3_dw, which per-channel weight quantization fixes)
    are what it tests. ``fake_quant_accuracy(fitted, "conv2_out")`` shows the collapse.
    """
    p = _fit_cnn(seed)
    k, s = OUTLIER_CHANNEL, OUTLIER_SCALE
    p["conv2_w"] = p["conv2_w"].copy()
    p["conv2_b"] = p["conv2_b"].copy()
    p["conv3_w"] = p["conv3_w"].copy()
    p["conv2_w"][k] *= s
    p["conv2_b"][k] *= s
    p["conv3_w"][k] /= s
    model = _cnn_graph(p, f"outlier_cnn: small_cnn with conv2 output channel {k} scaled by {s:g} "
                          "(compensated in conv3_dw); breaks per-tensor int8 activations")
    return _finish("outlier_cnn", model, p["data"], dict(p["info"], seed=seed, outlier_channel=k, outlier_scale=s),
                   culprit_node="conv2", culprit_tensor="conv2_out")


# --------------------------------------------------------------------------------------------------------------
# The transformer

SEQ, DIM, HEADS, FFN, VOCAB, CLASSES = 16, 32, 2, 64, 24, 6
_NOISE = 0.4


def sequence_data(seed: int = 0, n_train: int = 2400, n_test: int = 600):
    """The synthetic counting task: each sequence holds 16 tokens of a 24-token vocabulary whose embeddings
    (``[24, 32]``, N(0, 1)) are fixed by the seed. Tokens 0..5 are keywords: the class keyword occurs 3 times,
    a second keyword twice, a third once, the other 10 positions are fillers (tokens 6..23), all at random
    positions; the label is the most frequent keyword. Every embedding gets N(0, 0.4^2) noise.
    Returns ``(x_train, y_train, x_test, y_test)`` with x float32 ``[n, 1, 16, 32]``."""
    emb = np.random.default_rng(seed).normal(size=(VOCAB, DIM))

    def gen(n: int, rng: np.random.Generator):
        toks = rng.integers(CLASSES, VOCAB, size=(n, SEQ))
        y = rng.integers(0, CLASSES, size=n)
        for i in range(n):
            pos = rng.permutation(SEQ)
            others = rng.permutation([c for c in range(CLASSES) if c != y[i]])
            toks[i, pos[:3]] = y[i]
            toks[i, pos[3:5]] = others[0]
            toks[i, pos[5]] = others[1]
        x = emb[toks] + _NOISE * rng.normal(size=(n, SEQ, DIM))
        return x.astype(np.float32)[:, None], y.astype(np.int64)

    x_tr, y_tr = gen(n_train, np.random.default_rng([seed, 1]))
    x_te, y_te = gen(n_test, np.random.default_rng([seed, 2]))
    return x_tr, y_tr, x_te, y_te


def _orthogonal(rng: np.random.Generator, n: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return q * np.sign(np.diag(r))


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + 1e-5) * g + b


def _transformer_params(rng: np.random.Generator) -> dict:
    s = 1 / np.sqrt(DIM)
    p: dict = {"ln_in.weight": 1 + rng.normal(0, 0.05, DIM), "ln_in.bias": rng.normal(0, 0.02, DIM),
               "pos_embed": rng.normal(0, 0.1, (SEQ, DIM))}
    for b in range(2):
        # Queries and keys share an orthogonal map (plus noise): tokens attend to similar tokens, which
        # amplifies repeated ones -- the signal the counting task needs. Values/outputs are plain random.
        rot = _orthogonal(rng, DIM) * 2.0
        pre = f"block{b}."
        p.update({
            pre + "ln1.weight": 1 + rng.normal(0, 0.05, DIM), pre + "ln1.bias": rng.normal(0, 0.02, DIM),
            pre + "q.weight": rot + rng.normal(0, 0.3 * s, (DIM, DIM)), pre + "q.bias": rng.normal(0, 0.02, DIM),
            pre + "k.weight": rot + rng.normal(0, 0.3 * s, (DIM, DIM)), pre + "k.bias": rng.normal(0, 0.02, DIM),
            pre + "v.weight": rng.normal(0, s, (DIM, DIM)), pre + "v.bias": rng.normal(0, 0.02, DIM),
            pre + "o.weight": rng.normal(0, s, (DIM, DIM)), pre + "o.bias": rng.normal(0, 0.02, DIM),
            pre + "ln2.weight": 1 + rng.normal(0, 0.05, DIM), pre + "ln2.bias": rng.normal(0, 0.02, DIM),
            pre + "ffn1.weight": rng.normal(0, np.sqrt(2 / DIM), (DIM, FFN)), pre + "ffn1.bias": rng.normal(0, 0.02, FFN),
            pre + "ffn2.weight": rng.normal(0, 1 / np.sqrt(FFN), (FFN, DIM)), pre + "ffn2.bias": rng.normal(0, 0.02, DIM),
        })
    p["ln_f.weight"] = 1 + rng.normal(0, 0.05, DIM)
    p["ln_f.bias"] = rng.normal(0, 0.02, DIM)
    return p


def _transformer_features(p: dict, x: np.ndarray) -> np.ndarray:
    """numpy forward up to the pooled ``[n, DIM]`` features (float64), mirroring the ONNX graph."""
    from math import sqrt

    from scipy.special import erf

    dh = DIM // HEADS
    h = _layer_norm(x.reshape(len(x), SEQ, DIM).astype(np.float64), p["ln_in.weight"], p["ln_in.bias"]) + p["pos_embed"]
    n = len(h)
    for b in range(2):
        pre = f"block{b}."
        y = _layer_norm(h, p[pre + "ln1.weight"], p[pre + "ln1.bias"])
        q = (y @ p[pre + "q.weight"] + p[pre + "q.bias"]).reshape(n, SEQ, HEADS, dh).transpose(0, 2, 1, 3)
        k = (y @ p[pre + "k.weight"] + p[pre + "k.bias"]).reshape(n, SEQ, HEADS, dh).transpose(0, 2, 3, 1)
        v = (y @ p[pre + "v.weight"] + p[pre + "v.bias"]).reshape(n, SEQ, HEADS, dh).transpose(0, 2, 1, 3)
        a = (q @ k) * (1 / sqrt(dh))
        a = np.exp(a - a.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        h = h + (a @ v).transpose(0, 2, 1, 3).reshape(n, SEQ, DIM) @ p[pre + "o.weight"] + p[pre + "o.bias"]
        y = _layer_norm(h, p[pre + "ln2.weight"], p[pre + "ln2.bias"])
        f = y @ p[pre + "ffn1.weight"] + p[pre + "ffn1.bias"]
        f = 0.5 * f * (1 + erf(f / sqrt(2)))
        h = h + f @ p[pre + "ffn2.weight"] + p[pre + "ffn2.bias"]
    return _layer_norm(h, p["ln_f.weight"], p["ln_f.bias"]).mean(1)


def _transformer_graph(p: dict, doc: str) -> onnx.ModelProto:
    from math import sqrt

    dh = DIM // HEADS
    g = _Graph()
    for name, value in p.items():
        g.const(name, value)
    split_shape = g.const("shape_heads", np.array([1, SEQ, HEADS, dh]), np.int64)
    merge_shape = g.const("shape_merge", np.array([1, SEQ, DIM]), np.int64)
    scale = g.const("attn_scale", np.array(1 / sqrt(dh)))
    sqrt2 = g.const("gelu_sqrt2", np.array(sqrt(2)))
    one = g.const("gelu_one", np.array(1.0))
    half = g.const("gelu_half", np.array(0.5))

    def ln(name: str, t: str, prm: str) -> str:
        return g.node("LayerNormalization", name, [t, prm + ".weight", prm + ".bias"], axis=-1, epsilon=1e-5)

    def linear(name: str, t: str, prm: str) -> str:
        t = g.node("MatMul", name + "_matmul", [t, prm + ".weight"])
        return g.node("Add", name + "_add", [t, prm + ".bias"])

    h = ln("ln_in", INPUT, "ln_in")
    h = g.node("Add", "pos_add", [h, "pos_embed"])
    for b in range(2):
        pre, prm = f"block{b}_", f"block{b}."
        y = ln(pre + "ln1", h, prm + "ln1")
        heads = {}
        for which, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])):
            t = linear(pre + which, y, prm + which)
            t = g.node("Reshape", pre + which + "_split", [t, split_shape])
            heads[which] = g.node("Transpose", pre + which + "_transpose", [t], perm=perm)
        a = g.node("MatMul", pre + "attn_scores", [heads["q"], heads["k"]])
        a = g.node("Mul", pre + "attn_scale", [a, scale])
        a = g.node("Softmax", pre + "attn_softmax", [a], axis=-1)
        t = g.node("MatMul", pre + "attn_context", [a, heads["v"]])
        t = g.node("Transpose", pre + "attn_merge_transpose", [t], perm=[0, 2, 1, 3])
        t = g.node("Reshape", pre + "attn_merge", [t, merge_shape])
        t = linear(pre + "attn_out", t, prm + "o")
        h = g.node("Add", pre + "attn_residual", [h, t])
        y = ln(pre + "ln2", h, prm + "ln2")
        f = linear(pre + "ffn1", y, prm + "ffn1")
        e = g.node("Div", pre + "gelu_div", [f, sqrt2])
        e = g.node("Erf", pre + "gelu_erf", [e])
        e = g.node("Add", pre + "gelu_add", [e, one])
        e = g.node("Mul", pre + "gelu_mul", [f, e])
        f = g.node("Mul", pre + "gelu_half", [e, half])
        f = linear(pre + "ffn2", f, prm + "ffn2")
        h = g.node("Add", pre + "ffn_residual", [h, f])
    h = ln("ln_f", h, "ln_f")
    h = g.node("ReduceMean", "pool", [h], axes=[1], keepdims=0)
    g.node("Gemm", "head", [h, "head.weight", "head.bias"], out=OUTPUT, transB=1)
    return g.model("small_transformer", [1, SEQ, DIM], [1, CLASSES], doc)


@_single_threaded
def small_transformer(seed: int = 0) -> Fitted:
    """Two-block pre-LN transformer encoder, input ``x`` ``[1, 16, 32]`` (noisy token embeddings), output
    ``logits`` ``[1, 6]``; the task (see :func:`sequence_data`) is to name the most frequent keyword.

    Nodes: ln_in (LayerNormalization) -> pos_add -> 2 x [ln1 -> q/k/v MatMul+Add -> Reshape/Transpose into 2
    heads -> attn_scores MatMul -> attn_scale Mul -> attn_softmax -> attn_context MatMul -> merge -> attn_out
    MatMul+Add -> attn_residual Add -> ln2 -> ffn1 MatMul+Add -> GELU as Div/Erf/Add/Mul/Mul -> ffn2
    MatMul+Add -> ffn_residual Add] -> ln_f -> pool (ReduceMean over the 16 tokens) -> head (Gemm). Node
    names are prefixed ``block0_`` / ``block1_``. Test accuracy 87-90% (seed 0: 89.0% of 600; chance 17%).
    """
    x_tr, y_tr, x_te, y_te = sequence_data(seed)
    p = _transformer_params(np.random.default_rng([seed, 3]))
    w, b = _softmax_regression(_transformer_features(p, x_tr), y_tr, CLASSES)
    p["head.weight"], p["head.bias"] = w, b
    model = _transformer_graph(p, "small_transformer: most-frequent-keyword counting task; edgepack.testing.fitted")
    return _finish("small_transformer", model, (x_tr, y_tr, x_te, y_te), {"seed": seed, "noise": _NOISE})


# --------------------------------------------------------------------------------------------------------------
# All of them, optionally cached

BUILDERS: dict[str, Callable[[int], Fitted]] = {
    "small_cnn": small_cnn,
    "small_transformer": small_transformer,
    "outlier_cnn": outlier_cnn,
}


def _save(f: Fitted, stem: Path) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    tmp = stem.with_name(stem.name + f".tmp{os.getpid()}")
    onnx.save(f.model, str(tmp) + ".onnx")
    with open(str(tmp) + ".npz", "wb") as fh:
        np.savez(fh, x_train=f.x_train, y_train=f.y_train, x_test=f.x_test, y_test=f.y_test)
    meta = {"name": f.name, "fp32_test_accuracy": f.fp32_test_accuracy, "culprit_node": f.culprit_node,
            "culprit_tensor": f.culprit_tensor, "info": f.info}
    Path(str(tmp) + ".json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    for ext in (".onnx", ".npz", ".json"):         # the .json last: its presence marks a complete entry
        os.replace(str(tmp) + ext, str(stem) + ext)


def _load(stem: Path) -> Fitted | None:
    try:
        meta = json.loads(Path(str(stem) + ".json").read_text())
        model = onnx.load(str(stem) + ".onnx")
        with np.load(str(stem) + ".npz", allow_pickle=False) as d:
            arrays = {k: d[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, ValueError, KeyError):
        return None
    return Fitted(meta["name"], model, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                  float(meta["fp32_test_accuracy"]), meta.get("culprit_node"), meta.get("culprit_tensor"),
                  meta.get("info", {}))


def build(name: str, seed: int = 0, cache_dir: str | os.PathLike | None = None) -> Fitted:
    """One fitted model by name; with ``cache_dir``, reuse (or write) ``<cache_dir>/<name>-s<seed>-v<N>.*``."""
    if name not in BUILDERS:
        raise KeyError(f"unknown fitted model {name!r}; known: {sorted(BUILDERS)}")
    if cache_dir is None:
        return BUILDERS[name](seed)
    stem = Path(cache_dir) / f"{name}-s{seed}-v{CACHE_VERSION}"
    cached = _load(stem)
    if cached is not None:
        return cached
    fitted = BUILDERS[name](seed)
    _save(fitted, stem)
    return fitted


def build_all(cache_dir: str | os.PathLike | None = None, seed: int = 0) -> dict[str, Fitted]:
    """Every fitted model, by name (cached under ``cache_dir`` when given)."""
    return {name: build(name, seed, cache_dir) for name in BUILDERS}


if __name__ == "__main__":
    import sys
    import time

    for name in BUILDERS:
        t0 = time.perf_counter()
        fm = BUILDERS[name](0)
        line = f"{name:18} fp32 test accuracy {fm.fp32_test_accuracy:.4f}  ({time.perf_counter() - t0:.1f} s)"
        if fm.culprit_tensor:
            line += f"  per-tensor int8 on {fm.culprit_tensor}: {fake_quant_accuracy(fm, fm.culprit_tensor):.4f}"
        print(line, file=sys.stdout)
