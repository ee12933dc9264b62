"""The ``qualcomm`` target: HTP-ready QDQ ONNX models (onnxruntime's QNN quantization helpers) and QNN context
binaries compiled on the host with onnxruntime-qnn, verified on the HTP simulator, with a placement report."""
