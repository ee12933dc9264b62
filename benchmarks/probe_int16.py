"""Which LiteRT kernels take TFLite's 16x8 mode (int16 activations): one-op models, with and without XNNPACK.

    python benchmarks/probe_int16.py [--json]

Prints per op: the verdict with the default delegates (XNNPACK) and without (builtin kernels), the max error
as a share of the float output's range (int8 beside it), then the QUANTIZE/DEQUANTIZE conversions, and the
``INT16_OPS`` line for ``edgepack/targets/tflite/quant/int16.py`` (ops supported under both).
"""
from __future__ import annotations

import json
import sys

import ai_edge_litert

from edgepack.targets.tflite.quant.int16_probe import RESOLVERS, conversions, probe_all, supported


def _cell(v: dict) -> str:
    return v["verdict"] + (f" {v['error']:.1e}" if "error" in v else f" ({v.get('why', '')[:60]})")


def main() -> None:
    results, conv = probe_all(), conversions()
    if "--json" in sys.argv:
        print(json.dumps({"ops": results, "conversions": conv}, indent=1, default=str))
        return
    print(f"ai-edge-litert {getattr(ai_edge_litert, '__version__', '?')}")
    print(f"{'op':26s} {'xnnpack':32s} {'builtin':32s} int8 error")
    for op, r in results.items():
        i8 = r.get("int8_error")
        print(f"{op:26s} {_cell(r['xnnpack']):32s} {_cell(r['builtin']):32s} "
              f"{'' if i8 is None else f'{i8:.1e}'}")
    for name, r in conv.items():
        print(f"{name:26s} " + " ".join(f"{_cell(r[x]):32s}" for x in RESOLVERS))
    print(f"INT16_OPS = frozenset({supported(results)})")


if __name__ == "__main__":
    main()
