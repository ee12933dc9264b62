"""The ops HTP takes, as an op registry built from measured data: ``htp_ops.json``, written by
``python -m edgepack.targets.qualcomm.probe`` (every single-op ONNX node test quantized w8a8 and compiled for
HTP by onnxruntime-qnn). ``edgepack ops --target qualcomm`` lists it; the placement estimate made without
onnxruntime-qnn reads it. Nothing here is a hand-kept list: rerun the probe to refresh it.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

from ..registry import Registry

DATA = Path(__file__).with_name("htp_ops.json")


@functools.lru_cache(maxsize=1)
def table() -> dict:
    """The probe's output: {"versions", "precision", "htp_arch", "ops": {op: {since, tests, htp, refused}}}."""
    return json.loads(DATA.read_text())


def takes(op_type: str, domain: str = "") -> bool:
    """Whether HTP took ``op_type`` in at least one of the probe's node tests."""
    row = table()["ops"].get(op_type)
    return domain in ("", "ai.onnx") and bool(row and row["htp"])


def _registry() -> Registry:
    reg = Registry("qualcomm")
    for op, row in table()["ops"].items():
        if not row["htp"]:
            continue
        note = f"ran wholly on HTP in {row['htp']} of {row['tests']} ONNX node tests (after prepare)"
        if row["refused"]:
            note += f"; refused in others: {row['refused']}"
        reg.converts(op, since=min(row["since"]))(_placeholder(note))
    return reg


def _placeholder(note: str):
    def runs_on_htp(node, ctx):
        """QNN EP runs the QDQ node unit on HTP (nothing to convert: the model stays ONNX)."""
    runs_on_htp.__doc__ = note
    return runs_on_htp


HTP_OPS = _registry()
