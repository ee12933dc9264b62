"""Op implementations by family; importing this package fills ``registry.OPS``."""
from . import (activation, constexpr, conv, elementwise, gather, linear, logic, misc, norm,  # noqa: F401
               pool, quant, reduce, resize, shape)
