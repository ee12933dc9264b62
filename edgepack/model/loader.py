"""``load_model``: read, check, fix shapes, fold constants, prune and annotate an ONNX model."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import onnx
from onnx import ModelProto

from edgepack.errors import ModelError
from edgepack.model.fold import fold_constants
from edgepack.model.freeze import freeze_inputs
from edgepack.model.graphutil import keep_only
from edgepack.model.infer import infer_shapes, skeleton
from edgepack.model.inline_if import explain_live_ifs, inline_constant_ifs
from edgepack.model.prune import remove_aliases, remove_dead, trim_unused_outputs
from edgepack.model.read import one_line, read_model
from edgepack.model.rnn import decompose_refused
from edgepack.model.shapes import (apply_input_shapes, drop_initializer_inputs, forget_shapes,
                                   require_reasonable_sizes, require_static_inputs)
from edgepack.model.validate import check_model, inline_functions, note_nonstandard
from edgepack.model.valueinfo import complete_value_info

log = logging.getLogger("edgepack.model")

MAX_ROUNDS = 10


def load_model(path: str | Path, *, input_shapes: dict[str, list[int]] | None = None,
               input_values: dict[str, list] | None = None,
               preflight: Callable[[ModelProto], None] | None = None) -> ModelProto:
    """Load an ONNX file and return a normalized model ready for the target converters.

    The result has only real inputs (initializers are not inputs), static input shapes (after
    ``input_shapes`` overrides of dynamic dims), constants folded into initializers, no
    Identity/Dropout/no-op/dead nodes or unused initializers, and a static shape and dtype in
    ``graph.value_info`` (or ``graph.output``) for every other tensor. Graph input and output
    names are unchanged, except that inputs named in ``input_values`` (``--input-value``) become
    constants: they leave the interface, and an ``If`` they decide is replaced by its taken branch.
    Raises ``ModelError`` / ``DynamicShapeError`` with what to do next.

    ``preflight`` (a target's op check) runs on the folded graph before onnxruntime is asked for
    missing shapes, so ops that nothing can run are reported as unsupported, all at once (an If it
    refuses is reported with the live inputs its condition reads). LSTM/GRU/RNN nodes it refuses are
    first unrolled into primitive ops (``edgepack.model.rnn``).
    """
    start = time.perf_counter()
    path = Path(path)
    model = read_model(path)
    check_model(model, path)
    model = inline_functions(model, path)
    note_nonstandard(model, path)
    nodes_before = len(model.graph.node)
    drop_initializer_inputs(model)
    apply_input_shapes(model, input_shapes or {}, path)
    freeze_inputs(model, input_values or {}, path)
    require_static_inputs(model)
    require_reasonable_sizes(model)
    forget_shapes(model)
    simplify(model)
    name_nodes(model)
    if preflight is not None:
        decomposed, preflight = decompose_refused(model, preflight)    # LSTM/GRU/RNN the target lacks
        if decomposed:
            simplify(model)
        explain_live_ifs(model, preflight)
    complete_value_info(model, path)
    require_reasonable_sizes(model, list(model.graph.value_info) + list(model.graph.output))
    _final_check(model, path)
    log.info("loaded %s: %d -> %d nodes in %.2f s", path, nodes_before, len(model.graph.node),
             time.perf_counter() - start)
    return model


def simplify(model: ModelProto) -> None:
    """Shape inference, constant folding and pruning, repeated until nothing changes."""
    for _ in range(MAX_ROUNDS):
        infer_shapes(model)
        changed = fold_constants(model)
        changed += inline_constant_ifs(model)
        changed += remove_aliases(model)
        changed += trim_unused_outputs(model)
        changed += remove_dead(model)
        if not changed:
            break
    infer_shapes(model)
    keep_only(model.graph.value_info, lambda vi: vi.type.WhichOneof("value") is not None)


def name_nodes(model: ModelProto) -> None:
    """Give every node a unique, non-empty name (error messages downstream refer to them)."""
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        name = node.name or f"{node.op_type}_{i}"
        while name in seen:
            name = f"{name}_{i}"
        node.name = name
        seen.add(name)


def _final_check(model: ModelProto, path: Path) -> None:
    try:  # weights were checked on reading; the light copy keeps this fast for big models
        onnx.checker.check_model(skeleton(model))
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as err:
        raise ModelError(f"{path}: the normalized model fails the ONNX checker ({one_line(err)})",
                         hint="please report this with the model; it is an edgepack bug") from err
