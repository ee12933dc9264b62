"""What int8 weight rounding alone costs, nearest against ``sum_round`` (edgepack/transforms/sumround.py).

Per family model (``families_data``): every Conv and MatMul weight fake-quantized to symmetric per-channel
int8 (``transforms.stats.fake_quant_weight``), activations left float, run in onnxruntime on held-out inputs
(samples 40-47 of the family's data, as ``bench_int8_families.py`` holds them out), SNR against the fp32
model; once with nearest rounding, once after ``sum_round`` (whose weights are already on that grid, so the
fake quantization leaves them). Then, with ``--layers``, the layers whose nearest rounding alone costs most.

    python benchmarks/bench_weight_rounding.py [--models ppocr_rec,oww_embedding] [--layers 5]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import families_data  # noqa: E402
from edgepack.model import load_model  # noqa: E402
from edgepack.model.ort import reference_outputs  # noqa: E402
from edgepack.transforms.stats import fake_quant_weight  # noqa: E402
from edgepack.transforms.sumround import sum_round  # noqa: E402
from edgepack_runtime import compare  # noqa: E402

DEFAULT = ("oww_embedding", "ppocr_cls", "ppocr_rec", "basic_pitch", "magika", "ppocr_det")


def snr_db(got: list[dict], ref: list[dict]) -> float:
    """SNR over every output of every sample (``compare.snr_db`` of them all, flattened)."""
    flat = lambda runs: np.concatenate([np.ravel(run[k]) for run, r in zip(runs, ref) for k in r])  # noqa: E731
    return compare.snr_db(flat(got), flat(ref))


def weights(model: onnx.ModelProto) -> dict[str, tuple[str, int]]:
    """initializer -> (node, per-channel axis): Conv weights along axis 0, MatMul weights along their last."""
    inits = {t.name for t in model.graph.initializer}
    out = {}
    for n in model.graph.node:
        if n.op_type in ("Conv", "MatMul") and len(n.input) > 1 and n.input[1] in inits:
            out[n.input[1]] = (n.name, 0 if n.op_type == "Conv" else -1)
    return out


def rounded(model: onnx.ModelProto, only: set[str] | None = None) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    todo = weights(m)
    for t in m.graph.initializer:
        if t.name in todo and (only is None or t.name in only):
            w = numpy_helper.to_array(t)
            if w.ndim >= 2:
                axis = todo[t.name][1] % w.ndim
                t.CopyFrom(numpy_helper.from_array(fake_quant_weight(w, axis), t.name))
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(DEFAULT))
    ap.add_argument("--layers", type=int, default=0, help="also list the N costliest single layers (nearest)")
    args = ap.parse_args()
    print("| model | nearest (dB) | sum_round (dB) | kernels rounded by sum_round |")
    print("|---|---|---|---|")
    for key in args.models.split(","):
        case = families_data.case(key, 48, seed=0)
        model = load_model(case.path, input_shapes=case.input_shapes)
        held = case.samples[40:]
        ref = reference_outputs(model, held)
        summed = onnx.ModelProto()
        summed.CopyFrom(model)
        info = sum_round(summed)
        near, both = snr_db(reference_outputs(rounded(model), held), ref), \
            snr_db(reference_outputs(rounded(summed), held), ref)
        print(f"| {key} | {near:.1f} | {both:.1f} | {info['layers']} layers, {info['weights_moved']} weights moved |",
              flush=True)
        if args.layers:
            costs = sorted((snr_db(reference_outputs(rounded(model, {name}), held), ref), node)
                           for name, (node, _) in weights(model).items())
            for cost, node in costs[:args.layers]:
                print(f"|   {node} alone | {cost:.1f} | | |", flush=True)


if __name__ == "__main__":
    main()
