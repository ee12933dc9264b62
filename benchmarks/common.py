"""Shared helpers for the benchmark scripts: timing, LiteRT loading, TFLite op counting."""
from __future__ import annotations

import statistics
import time

import numpy as np
from ai_edge_litert import schema_py_generated as fb
from ai_edge_litert.interpreter import Interpreter

_OP_NAMES = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}


def op_histogram(tflite_bytes: bytes) -> dict[str, int]:
    """Operator counts of the first subgraph of a .tflite file."""
    model = fb.ModelT.InitFromPackedBuf(tflite_bytes, 0)
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    out: dict[str, int] = {}
    for op in model.subgraphs[0].operators:
        name = _OP_NAMES.get(codes[op.opcodeIndex], str(codes[op.opcodeIndex]))
        out[name] = out.get(name, 0) + 1
    return out


def interpreter(tflite_bytes: bytes, input_shapes: list[list[int]] | None = None, threads: int = 1) -> Interpreter:
    it = Interpreter(model_content=tflite_bytes, num_threads=threads)
    if input_shapes:
        for det, shape in zip(it.get_input_details(), input_shapes):
            if list(det["shape"]) != list(shape):
                it.resize_tensor_input(det["index"], shape)
    it.allocate_tensors()
    return it


def invoke(it: Interpreter, arrays: list[np.ndarray]) -> list[np.ndarray]:
    for det, x in zip(it.get_input_details(), arrays):
        it.set_tensor(det["index"], np.ascontiguousarray(x, dtype=det["dtype"]))
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


def median_latency(fn, *, warmup: int = 5, runs: int = 50, budget_s: float = 20.0) -> float:
    """Median wall time of ``fn()`` in milliseconds (bounded by ``runs`` and ``budget_s``)."""
    for _ in range(warmup):
        fn()
    times = []
    end = time.perf_counter() + budget_s
    while len(times) < runs and time.perf_counter() < end:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def cosine(a, b) -> float:
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    d = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / d) if d else float(np.array_equal(a, b))


def paired_latency(fn_a, fn_b, *, warmup: int = 5, rounds: int = 30, per_round: int = 5,
                   budget_s: float = 30.0) -> tuple[float, float]:
    """Median per-call milliseconds of two callables measured in alternating rounds (A, B, A, B...),
    so that drift in machine load affects both sides alike."""
    for _ in range(warmup):
        fn_a()
        fn_b()
    a_times, b_times = [], []
    end = time.perf_counter() + budget_s
    while len(a_times) < rounds and time.perf_counter() < end:
        for fn, sink in ((fn_a, a_times), (fn_b, b_times)):
            t0 = time.perf_counter()
            for _ in range(per_round):
                fn()
            sink.append((time.perf_counter() - t0) * 1e3 / per_round)
    return statistics.median(a_times), statistics.median(b_times)
