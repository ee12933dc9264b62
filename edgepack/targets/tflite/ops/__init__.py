"""ONNX -> TFLite converters, one module per op family; importing this package registers them all."""
import importlib
import pkgutil

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_") and _mod.name != "common":
        importlib.import_module(f"{__name__}.{_mod.name}")
