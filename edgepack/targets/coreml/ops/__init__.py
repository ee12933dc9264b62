"""Converters, one module per op family; importing this package registers them all."""
from . import (activation, conv, elementwise, logic, matmul, norm, pool, reduce, resize,  # noqa: F401
               shape, slice)
