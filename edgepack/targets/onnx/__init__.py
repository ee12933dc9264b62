"""The ``onnx`` target: the normalized fp32 ONNX model itself (static shapes, folded constants), run by
onnxruntime on the device. A passthrough: every op onnxruntime runs is supported."""
from __future__ import annotations

import onnx

from ..base import Converted, Job, Requirement, Target


class OnnxTarget(Target):
    name = "onnx"
    format = "onnx"
    summary = "the normalized fp32 ONNX model, for onnxruntime on the device"
    precisions = ("fp32",)
    backend = "onnxruntime"
    portable = True
    requires = (Requirement("onnxruntime", "onnxruntime", "runs and verifies the model"),)

    def convert(self, model: onnx.ModelProto, job: Job) -> Converted:
        data = model.SerializeToString()
        io = {"inputs": [{"name": i.name, "perm": None} for i in model.graph.input],
              "outputs": [{"name": o.name, "perm": None} for o in model.graph.output]}
        file = self.path("model.onnx")
        return Converted({file: data}, file, io, {"ops": len(model.graph.node)})


TARGET = OnnxTarget()
