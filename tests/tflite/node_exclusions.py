"""ONNX backend node tests excluded from the TFLite target's conformance run, each with its reason.

Keys are node test names (onnx 1.22.0 wheel, onnx/backend/test/data/node/<name>).
"""
EXCLUDED: dict[str, str] = {
    # --- conv family (ops/conv.py) ---
    "test_convtranspose_3d": "3-D ConvTranspose is not converted yet (TFLite has CONV_3D_TRANSPOSE; rare on edge)",
}
