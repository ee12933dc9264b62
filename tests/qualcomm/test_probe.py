"""The probe behind the measured op table (``probe.py``) on a few ONNX node tests, and the table it wrote."""
from __future__ import annotations

from edgepack.targets.qualcomm import ops
from edgepack.targets.qualcomm.probe import candidates, probe_one

from .kit import needs_htp

WANTED = ("test_relu", "test_erf", "test_layer_normalization_4d_axis_negative_1")


@needs_htp
def test_the_probe_tells_what_htp_runs_and_why_not():
    rows = {r["test"]: r for r in (probe_one(t) for t in candidates() if t.name in WANTED)}
    assert rows["test_relu"]["htp"] is True and rows["test_relu"]["since"] == 14
    assert rows["test_erf"] == {"test": "test_erf", "op": "Erf", "since": 13, "htp": False,
                                "why": "Erf: Operators of type `Erf` are not supported by QNN EP."}
    assert rows["test_layer_normalization_4d_axis_negative_1"]["htp"] is True   # once Mean/InvStdDev are dropped


def test_the_committed_table_agrees():
    t = ops.table()
    assert t["versions"]["onnxruntime_qnn"] and t["precision"] == "w8a8" and t["htp_arch"] == "75"
    assert ops.takes("Conv") and ops.takes("LayerNormalization") and not ops.takes("Erf")
    assert not ops.takes("Conv", domain="com.microsoft")
    assert sum(1 for row in t["ops"].values() if row["htp"]) > 90
