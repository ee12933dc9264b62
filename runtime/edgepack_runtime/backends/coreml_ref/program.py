"""Load an ML Program and run it op by op in numpy.

Numerics (the "fp16-faithful" choice): every op computes in float32 on float32 copies of its float
inputs, and its results are cast to the dtype the program declares for them. Where the program keeps a
tensor in fp16 (compute precision fp16: coremltools inserts ``cast`` ops at the edges and types every
intermediate fp16), each op result is therefore rounded to fp16 at the op boundary, as on device.
For single elementwise ops (add, mul, div, sqrt) on fp16 inputs, float32 then one rounding gives the
correctly rounded fp16 result; conv, matmul, linear, reductions and norms accumulate in float32 and
round once at the end (Core ML's GPU/ANE kernels accumulate in at least fp16 and often fp32, so this is
the optimistic but reproducible end of what a device does). Programs in fp32 run in fp32 throughout.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from ...errors import BackendError
from .package import Package, open_package
from .registry import OPS
from .values import TensorType, decode, tensor_type

CONSTANT_OPS = ("const",)
ATTRIBUTES_IGNORED = ("name",)
FOLDED_PREFIX = "constexpr_"


class Step:
    __slots__ = ("type", "impl", "inputs", "outputs", "types")

    def __init__(self, type_, impl, inputs, outputs, types):
        self.type, self.impl, self.inputs, self.outputs, self.types = type_, impl, inputs, outputs, types


class Program:
    """One function of an ML Program, ready to run: ``run({input name: array}) -> {output name: array}``.

    ``input_names`` / ``output_names`` follow the model description's order (the order the bundle's
    io table uses); ``compute_precision`` is "fp16" when any op produces an fp16 tensor, else "fp32".
    """

    def __init__(self, package: Package, function: str = "main"):
        from coremltools.proto import Model_pb2  # the protobuf classes only; nothing is compiled
        from . import ops  # noqa: F401  (fills the op table)
        spec = Model_pb2.Model()
        try:
            spec.ParseFromString(package.spec_bytes)
        except Exception as exc:
            raise BackendError(f"{package.origin}: the model spec does not parse: {exc}",
                               hint="the package is corrupt; rebuild it") from None
        if spec.WhichOneof("Type") != "mlProgram":
            raise BackendError(f"{package.origin} holds a {spec.WhichOneof('Type')} model, not an ML Program",
                               hint="the reference executor runs ML Programs (convert_to='mlprogram') only")
        functions = spec.mlProgram.functions
        if function not in functions:
            raise BackendError(f"{package.origin}: no function {function!r}; it has {', '.join(functions)}")
        fn = functions[function]
        block = fn.block_specializations[fn.opset]
        self.opset, self.origin, self._package = fn.opset, package.origin, package
        preflight(block, package.origin)
        self.input_types = {i.name: tensor_type(i.type) for i in fn.inputs}
        described = [i.name for i in spec.description.input]
        self.input_names = described if set(described) == set(self.input_types) else list(self.input_types)
        block_outputs = list(block.outputs)
        described = [o.name for o in spec.description.output]
        self.output_names = described if set(described) == set(block_outputs) else block_outputs
        self.metadata = dict(spec.description.metadata.userDefined)
        self._consts: dict[str, object] = {}
        self._steps: list[Step] = []
        self._build(block)
        self.compute_precision = "fp16" if any(t is not None and t.name == "fp16" for s in self._steps
                                               for t in s.types) else "fp32"
        self.op_counts = Counter(op.type for op in block.operations)
        self._free = self._plan_frees()

    def _plan_frees(self) -> list[list[str]]:
        """Per step, the values no later step reads (dropped during run unless keep_all)."""
        last = {}
        for i, step in enumerate(self._steps):
            for _, binds in step.inputs:
                for b in binds:
                    if isinstance(b, str):
                        last[b] = i
        keep = set(self.output_names) | set(self._consts)
        frees: list[list[str]] = [[] for _ in self._steps]
        for name, i in last.items():
            if name not in keep:
                frees[i].append(name)
        return frees

    def _build(self, block) -> None:
        for mil_op in block.operations:
            impl = OPS[mil_op.type]
            inputs = []
            for name, arg in mil_op.inputs.items():
                binds = [b.name if b.WhichOneof("binding") == "name"
                         else _Immediate(decode(b.value, self._package.blob)) for b in arg.arguments]
                inputs.append((name, binds))
            for name, value in mil_op.attributes.items():   # const's val; iOS16 constexpr_* parameters
                if name not in ATTRIBUTES_IGNORED and name not in mil_op.inputs:
                    inputs.append((name, [_Immediate(decode(value, self._package.blob))]))
            step = Step(mil_op.type, impl, inputs, [o.name for o in mil_op.outputs],
                        [tensor_type(o.type) for o in mil_op.outputs])
            if mil_op.type in CONSTANT_OPS or mil_op.type.startswith(FOLDED_PREFIX):
                self._execute(step, self._consts)   # weights: decoded (and decompressed) once, at load
            else:
                self._steps.append(step)

    @property
    def constants(self) -> dict:
        """Every constant by value name, compressed weights already decompressed (what the ops read)."""
        return dict(self._consts)

    def operations(self) -> list[tuple[str, list[str], list[str]]]:
        """(op type, names of the values it reads, names of the values it writes) of every op ``run``
        executes, in order (weights' ``constexpr_*`` ops are folded into ``constants`` at load)."""
        return [(s.type, [b for _, binds in s.inputs for b in binds if isinstance(b, str)], list(s.outputs))
                for s in self._steps]

    def run(self, feeds: dict, *, keep_all: bool = False) -> dict[str, np.ndarray]:
        """Run once. ``feeds``: input name -> array (cast to the declared input dtype; shapes must match
        the declared ones where they are fixed). ``keep_all=True`` returns every named value (a trace)."""
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise BackendError(f"{self.origin}: missing inputs {', '.join(missing)}; the program takes "
                               f"{', '.join(self.input_names)}")
        env = dict(self._consts)
        for name in self.input_names:
            env[name] = _conform(np.asarray(feeds[name]), self.input_types[name], f"input {name}")
        for step, frees in zip(self._steps, self._free):
            self._execute(step, env)
            if not keep_all:
                for name in frees:
                    env.pop(name, None)
        if keep_all:
            return env
        return {name: env[name] for name in self.output_names}

    def _execute(self, step: Step, env: dict) -> None:
        args = {}
        for name, binds in step.inputs:
            values = [_widen(b.value if isinstance(b, _Immediate) else env[b]) for b in binds]
            args[name] = values if name in step.impl.variadic else values[0]
        where = f"{step.type} -> {step.outputs[0] if step.outputs else '?'}"
        try:
            result = step.impl.fn(**args)
        except BackendError:
            raise
        except (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError) as exc:
            raise BackendError(f"{self.origin}: op {where} failed: {type(exc).__name__}: {exc}",
                               hint="the program is malformed or uses an unsupported form of the op") from None
        results = result if isinstance(result, tuple) else (result,)
        if len(results) != len(step.outputs):
            raise BackendError(f"{self.origin}: op {where} produced {len(results)} outputs, "
                               f"the program declares {len(step.outputs)}")
        for name, t, value in zip(step.outputs, step.types, results):
            env[name] = _conform(value, t, f"op {step.type} -> {name}", self.origin)


class _Immediate:
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def _widen(value):
    if isinstance(value, np.ndarray) and value.dtype == np.float16:
        return value.astype(np.float32)
    if isinstance(value, list):
        return [_widen(v) for v in value]
    return value


def _conform(value, t: TensorType | None, where: str, origin: str = "program"):
    if t is None or isinstance(value, str):
        return value
    value = np.asarray(value)
    if t.shape is not None and tuple(value.shape) != t.shape:
        raise BackendError(f"{origin}: {where} has shape {list(value.shape)} but the program declares "
                           f"{list(t.shape)}", hint="a reference op disagrees with the program's type inference")
    if t.dtype.kind == "O":
        return value
    return value.astype(t.dtype, copy=False)


def preflight(block, origin: str = "program") -> None:
    """Raise one BackendError listing every op type the executor lacks (with counts and a first use)."""
    missing: dict[str, list[str]] = {}
    for op in _walk(block):
        if op.type not in OPS:
            missing.setdefault(op.type, []).append(op.outputs[0].name if op.outputs else "?")
    if missing:
        listed = "; ".join(f"{t} x{len(n)} (first: {n[0]})" for t, n in sorted(missing.items()))
        raise BackendError(f"{origin}: {len(missing)} MIL op type(s) not supported by the reference "
                           f"executor: {listed}",
                           hint="add them to edgepack_runtime/backends/coreml_ref/ops, or verify on macOS "
                                "with backend='coreml'")


def _walk(block):
    for op in block.operations:
        yield op
        for inner in op.blocks:   # control flow (cond, while_loop) has no implementation: listed above
            yield from _walk(inner)


def load(source, function: str = "main") -> Program:
    """A Program from an ``.mlpackage`` folder, a zip of one (path or bytes)."""
    return Program(open_package(source), function)
