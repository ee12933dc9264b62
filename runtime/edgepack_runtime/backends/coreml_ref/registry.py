"""The op table: MIL op name -> numpy implementation.

An implementation is a plain function taking the op's inputs as keyword arguments (numpy arrays; 0-d
arrays for scalars; Python ``str`` for string constants; a list for variadic inputs such as concat's
``values``) with the MIL defaults as Python defaults, and returning one array (or a tuple for ops with
several outputs). Float inputs arrive as float32 (fp16 tensors are widened by the executor) and the
executor casts each result to the dtype the program declares, so implementations never round.

Adding an op is one decorated function in the family module of ``ops/``:

    @op("softsign")
    def softsign(x):
        return x / (1 + np.abs(x))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class OpImpl:
    name: str
    fn: Callable
    variadic: tuple[str, ...]
    family: str


OPS: dict[str, OpImpl] = {}


def op(*names: str, variadic: tuple[str, ...] = ()):
    """Register ``fn`` under each MIL op name; registering a name twice is an error."""
    def wrap(fn):
        for name in names:
            if name in OPS:
                raise ValueError(f"MIL op {name!r} is already registered (by {OPS[name].fn.__module__})")
            OPS[name] = OpImpl(name, fn, tuple(variadic), fn.__module__.rsplit(".", 1)[-1])
        return fn
    return wrap


def supported_ops() -> dict[str, str]:
    """Every op the executor runs -> its family (module), sorted by name."""
    from . import ops  # noqa: F401  (registers the families)
    return {name: OPS[name].family for name in sorted(OPS)}
