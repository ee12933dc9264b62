"""ONNX -> Core ML target (``coreml``): an op registry translating the normalized ONNX graph into a MIL
program with the coremltools builder (``ops/<family>.py``), serialization to an ML Program package
(``convert.py``), weight compression (``compress.py``), deployment targets as data (``deploy.py``) and the
Neural Engine compatibility report (``ane.py``). The target object is ``target.TARGET``; nothing here
imports coremltools until a model is converted."""
