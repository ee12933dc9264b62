"""edgepack device runtime: verify and run edgepack bundles."""
from .errors import BackendError, BundleError, EdgepackError, InputError

__version__ = "0.1.0"

__all__ = ["BackendError", "Bundle", "BundleError", "EdgepackError", "InputError", "Runtime",
           "__version__", "unpack_bundle", "write_bundle"]

_LAZY = {"Runtime": "runtime", "Bundle": "bundle", "write_bundle": "bundle", "unpack_bundle": "bundle"}


def __getattr__(name):  # lazy: importing the package must stay cheap on devices
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'edgepack_runtime' has no attribute {name!r}")
