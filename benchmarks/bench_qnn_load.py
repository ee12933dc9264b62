"""Opening a Qualcomm bundle on the HTP simulator: precompiled context binary vs the QDQ model (compiled at load).

    python benchmarks/bench_qnn_load.py [--repeat 5] [--models tiny,ppocr_cls,oww_embedding]

For each model: quantize with onnxruntime's QNN recipe (``get_qnn_qdq_config`` + ``quantize``, w8a8, random
calibration data: load time does not depend on the values), compile a context binary for HTP v75, then in the
same process time (median of ``--repeat``) the baseline, a QNN session from the QDQ model, against a session
from the context binary, and ``Runtime.open`` of a bundle holding both (context path) against one whose
manifest names another SDK (QDQ path). Also one inference on each. Figures are simulator figures on x86:
graph preparation is what a context binary saves, on a phone as here; inference times say nothing of HTP.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from edgepack.testing.corpus import fetch  # noqa: E402


def tiny() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32), "W")
    g = helper.make_graph([helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
                           helper.make_node("Relu", ["c"], ["y"])], "tiny",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def corpus(name: str, shape: list[int]) -> onnx.ModelProto:
    from onnx import version_converter
    m = onnx.load(str(fetch(name)))
    dims = m.graph.input[0].type.tensor_type.shape.dim
    for d, v in zip(dims, shape):
        d.Clear()
        d.dim_value = v
    if m.opset_import[0].version < 13:        # per-channel DequantizeLinear needs opset 13
        m = version_converter.convert_version(m, 13)
    return onnx.shape_inference.infer_shapes(m)


MODELS = {"tiny": tiny,
          "ppocr_cls": lambda: corpus("ocr_ppocr_mobile_v2_cls.onnx", [1, 3, 48, 192]),
          "oww_embedding": lambda: corpus("audio_oww_embedding_model.onnx", [1, 76, 32, 1])}


def quantize_qdq(model: onnx.ModelProto, tmp: Path) -> tuple[bytes, str, list[int]]:
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config
    inp = model.graph.input[0]
    shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    src, dst = tmp / "f.onnx", tmp / "q.onnx"
    onnx.save(model, str(src))
    rng = np.random.default_rng(0)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter({inp.name: rng.standard_normal(shape).astype(np.float32)} for _ in range(4))

        def get_next(self):
            return next(self._it, None)

    quantize(str(src), str(dst), get_qnn_qdq_config(str(src), Reader(), activation_type=QuantType.QUInt8,
                                                      weight_type=QuantType.QInt8, per_channel=True))
    return dst.read_bytes(), inp.name, shape


def compile_ctx(qdq: bytes, tmp: Path) -> bytes:
    import onnxruntime as ort
    from edgepack_runtime.backends import qnn_ep
    out = tmp / "ctx.onnx"
    opts = qnn_ep.session_options({"htp_arch": "75", "soc_model": "57"}, config={
        "ep.context_enable": "1", "ep.context_embed_mode": "1", "ep.context_file_path": str(out)})
    ort.InferenceSession(qdq, sess_options=opts)
    return out.read_bytes()


def timed(fn, repeat: int) -> tuple[float, object]:
    times, last = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        last = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), last


def bundle(tmp: Path, name: str, qdq: bytes, ctx: bytes, sdk: str, inp: str, shape, out_name: str) -> Path:
    from edgepack_runtime.bundle import write_bundle
    from edgepack_runtime.backends import qnn_ep
    v = qnn_ep.versions()
    entry = {"name": "qualcomm", "format": "qnn", "file": "models/qualcomm/model.qdq.onnx", "precision": "w8a8",
             "io": {"inputs": [{"name": inp, "perm": None}], "outputs": [{"name": out_name, "perm": None}]},
             "parity": {}, "info": {},
             "qnn": {"context": {"file": "models/qualcomm/model.ctx.onnx", "htp_arch": "75", "soc_model": "57",
                                 "sdk_version": sdk or f"v{v['qnn_sdk']}", "ort_qnn": v["onnxruntime_qnn"]}}}
    manifest = {"model": {"name": name, "version": "1", "source_sha256": "0" * 64, "opsets": {"ai.onnx": 13}},
                "created": "2026-01-01T00:00:00Z", "tools": {}, "samples": [], "signature": None,
                "inputs": [{"name": inp, "shape": shape, "dtype": "float32", "layout": None}],
                "outputs": [{"name": out_name, "shape": [-1], "dtype": "float32", "layout": None}],
                "targets": [entry]}
    return write_bundle(tmp / f"{name}-{'qdq' if sdk else 'ctx'}.edgepack", manifest,
                        {"models/qualcomm/model.qdq.onnx": qdq, "models/qualcomm/model.ctx.onnx": ctx})


def measure(name: str, repeat: int) -> dict:
    import onnxruntime as ort
    from edgepack_runtime.backends import qnn_ep
    from edgepack_runtime.runtime import Runtime
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        model = MODELS[name]()
        out_name = model.graph.output[0].name
        qdq, inp, shape = quantize_qdq(model, tmp)
        t0 = time.perf_counter()
        ctx = compile_ctx(qdq, tmp)
        compile_s = time.perf_counter() - t0
        x = {inp: np.random.default_rng(1).standard_normal(shape).astype(np.float32)}
        opts = lambda: qnn_ep.session_options({"htp_arch": "75"})  # noqa: E731
        qdq_load, s_qdq = timed(lambda: ort.InferenceSession(qdq, sess_options=opts()), repeat)
        qdq_run, _ = timed(lambda: s_qdq.run(None, x), repeat)
        ctx_load, s_ctx = timed(lambda: ort.InferenceSession(ctx, sess_options=opts()), repeat)
        ctx_run, _ = timed(lambda: s_ctx.run(None, x), repeat)
        s_qdq = s_ctx = None     # release both sessions before the Runtime.open rounds
        b_qdq = bundle(tmp, name, qdq, ctx, "v2.0.0", inp, shape, out_name)
        b_ctx = bundle(tmp, name, qdq, ctx, "", inp, shape, out_name)
        rt_qdq, detail_q = timed(lambda: _open(Runtime, b_qdq), repeat)
        rt_ctx, detail_c = timed(lambda: _open(Runtime, b_ctx), repeat)
        assert (detail_q, detail_c) == ("qnn-qdq", "qnn-context"), (detail_q, detail_c)
        return {"model": name, "qdq_kb": len(qdq) / 1024, "ctx_kb": len(ctx) / 1024, "compile_s": compile_s,
                "qdq_load": qdq_load, "ctx_load": ctx_load, "qdq_run": qdq_run, "ctx_run": ctx_run,
                "rt_qdq": rt_qdq, "rt_ctx": rt_ctx}


def _open(Runtime, path):
    with Runtime.open(path) as rt:
        return rt.backend_detail


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--models", default=",".join(MODELS))
    args = ap.parse_args()
    import logging
    logging.getLogger("edgepack_runtime.qnn").setLevel(logging.ERROR)   # the deliberate fallback, each time
    print("| model | QDQ KB | ctx KB | compile s | load QDQ ms (baseline) | load ctx ms | ratio | "
          "Runtime.open QDQ ms | Runtime.open ctx ms | ratio | run QDQ ms | run ctx ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.models.split(","):
        r = measure(name, args.repeat)
        print(f"| {r['model']} | {r['qdq_kb']:.0f} | {r['ctx_kb']:.0f} | {r['compile_s']:.2f} | "
              f"{r['qdq_load'] * 1e3:.1f} | {r['ctx_load'] * 1e3:.1f} | {r['ctx_load'] / r['qdq_load']:.2f} | "
              f"{r['rt_qdq'] * 1e3:.1f} | {r['rt_ctx'] * 1e3:.1f} | {r['rt_ctx'] / r['rt_qdq']:.2f} | "
              f"{r['qdq_run'] * 1e3:.1f} | {r['ctx_run'] * 1e3:.1f} |", flush=True)


if __name__ == "__main__":
    main()
