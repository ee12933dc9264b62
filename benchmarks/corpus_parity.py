"""Every ONNX model of the public corpus through `edgepack build --target cpu`: parity with onnxruntime
(fp32, 8 synthetic samples), TRANSPOSE count before/after the layout pass, size, build time.

    python benchmarks/corpus_parity.py
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from edgepack.build import build  # noqa: E402
from edgepack.testing.corpus import FROZEN, NOT_FOR_CPU, entries, fetch  # noqa: E402
from edgepack.testing.corpus import INPUT_SHAPES as SHAPES  # noqa: E402


def main() -> int:
    print(f"{'model':34} {'min cosine':>11} {'max rel err':>12} {'top1':>5} {'T before':>8} {'T after':>7} "
          f"{'ops':>5} {'tflite bytes':>12} {'build s':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for e in entries():
            if e.format != "onnx" or e.name in NOT_FOR_CPU:
                continue
            t0 = time.perf_counter()
            shapes, values = FROZEN.get(e.name, (SHAPES.get(e.name), None))
            r = build(fetch(e.name), targets=["cpu"], input_shapes=shapes, input_values=values,
                      out=Path(tmp) / "b.edgepack")
            secs = time.perf_counter() - t0
            cpu = r.manifest["targets"][0]
            p, info = cpu["parity"], cpu["info"]
            top1 = [o.get("top1_agreement") for o in p["outputs"].values() if "top1_agreement" in o]
            print(f"{e.name:34} {p['min_cosine']:11.7f} {p['max_rel_error']:12.2e} "
                  f"{(f'{min(top1):.2f}' if top1 else '-'):>5} {info['transpose_count_unoptimized']:8} "
                  f"{info['transpose_count']:7} {info['ops']:5} {info['size']:12,} {secs:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
