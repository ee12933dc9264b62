"""Converters, one module per op family; importing this package registers them all."""
import logging

_log = logging.getLogger("coremltools")
_level = _log.level
_log.setLevel(logging.ERROR)        # its import logs what it cannot load on Linux; nothing we need
try:
    from . import (activation, conv, elementwise, logic, matmul, norm, pool, reduce, resize,  # noqa: F401
                   shape, slice)
finally:
    _log.setLevel(_level)
