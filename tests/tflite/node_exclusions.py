"""ONNX backend node tests excluded from the TFLite target's conformance run, each with its reason.

Keys are node test names (onnx 1.22.0 wheel, onnx/backend/test/data/node/<name>).
"""
EXCLUDED: dict[str, str] = {
    # --- conv family (ops/conv.py) ---
    "test_convtranspose_3d": "3-D ConvTranspose is not converted yet (TFLite has CONV_3D_TRANSPOSE; rare on edge)",
    # --- pool, norm, matmul, softmax, reduce, resize families (ops/pool.py, norm.py, matmul.py, softmax.py,
    # reduce.py, resize.py): no hand exclusions. Every test of these ops passes except those the preflight refuses
    # with a reason: BatchNormalization training_mode=1 (2), MaxPool's Indices output (2), float64 inputs (8).
    # --- shape & data-movement family (ops/shape.py, gather.py, slice.py, pad.py, index.py): no hand exclusions.
    # 300 tests touch these ops; 280 pass, 20 are refused at preflight with a reason: run-time pads/slice bounds
    # (6 CenterCropPad expansions), run-time Range lengths (6 window expansions), zero-sized outputs (3),
    # float16/bfloat16/float64/uint64 tensors (5).
    # --- elementwise family (ops/elementwise.py, math.py, activation.py, logic.py): no hand exclusions.
    # 669 tests use these ops (and only claimed ones); 471 pass, 198 are refused at preflight/intake with a reason:
    # tensor types TFLite lacks or that only Cast may carry (float64, float16, bfloat16, float8/float4, int4/int2,
    # uint2/uint4, uint16/uint32/uint64, string: 181), other families' run-time pads/Range/empty slices (14),
    # opset-1 models refused by intake (3: test_not_2d/3d/4d).
}

# Node tests whose int8 build still has to build, load and run with the right shapes and dtypes, but whose
# numbers are not compared with the float outputs (tests/e2e/test_node_conformance.py::test_node_int8), each
# with its measured error (max |int8 - float| / max |float|) and the reason.
INT8_NUMERIC_EXCLUDED: dict[str, str] = {
    # --- int8 cannot represent the input: not a converter defect ---
    "test_isinf": "±inf inputs saturate to finite int8 values, so IsInf finds none (3 of 6 outputs differ)",
    "test_softmax_large_number_expanded": "inputs near 1e4 that differ by 1: one int8 step of the input range "
                                          "is larger than the differences softmax depends on (error 0.95)",
    "test_softmax_large_number_expanded_ver18": "as test_softmax_large_number_expanded (error 0.95)",
    "test_logsoftmax_large_number_expanded": "as test_softmax_large_number_expanded (error 0.87)",
    "test_logsoftmax_large_number_expanded_ver18": "as test_softmax_large_number_expanded (error 0.87)",
    "test_attention_4d_softcap_neginf_mask_poison_expanded": "the mask holds -inf, which an int8 tensor cannot "
                                                             "hold (error 1.0)",
    "test_flexattention_causal_mask_expanded_ver26": "error 0.40; the causal mask's large negative fill "
                                                     "likely swamps the scores' int8 range (not yet "
                                                     "investigated)",
    "test_hardmax_axis_0": "int8 rounding ties or reorders close maxima, so the one-hot moves (1.0)",
    "test_hardmax_axis_1": "as test_hardmax_axis_0 (error 1.0)",
    "test_reduce_min_default_axes_keepdims_example": "the minimum (1) is small against the input's range (60): "
                                                     "one input step is 0.06 of the output (error 0.059)",
    # --- int8 defects to fix (measured; an exclusion here is a to-do, not a tolerance) ---
    "test_erf": "DEFECT: int8 Erf errs by 0.53 of its output range (Gelu, which contains erf, is fine)",
    "test_lppool_1d_default": "DEFECT: int8 LpPool errs by 0.17 of its output range",
    "test_lppool_2d_default": "DEFECT: int8 LpPool errs by 0.32 of its output range",
    "test_lppool_2d_pads": "DEFECT: int8 LpPool errs by 0.22 of its output range",
    "test_lppool_2d_same_lower": "DEFECT: int8 LpPool errs by 0.32 of its output range",
    "test_lppool_2d_same_upper": "DEFECT: int8 LpPool errs by 0.089 of its output range (AveragePool: 0.045)",
    "test_lppool_3d_default": "DEFECT: int8 LpPool errs by 0.19 of its output range",
}
