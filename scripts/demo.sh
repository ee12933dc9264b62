#!/usr/bin/env bash
# Install edgepack and build a real model for the CPU target: PaddleOCR's text-direction classifier
# (from the rapidocr-onnxruntime wheel on PyPI), whose H/W are dynamic and fixed here on the command line.
# Outside a virtual environment, everything goes into ./.venv (see scripts/env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/env.sh    # apt_install, use_python (PY, BIN): a .venv outside a virtual environment

use_python
"$PY" -m pip install -q --disable-pip-version-check -e ./runtime -e .
model=$("$PY" -m edgepack.testing fetch ocr_ppocr_mobile_v2_cls.onnx)
mkdir -p out
"$BIN/edgepack" build "$model" --target cpu --input-shape x=1,3,48,192 -o out/ppocr_cls.edgepack
"$BIN/edgepack" inspect out/ppocr_cls.edgepack
"$BIN/edgepack-device" check out/ppocr_cls.edgepack
# The same model in full-integer int8 (synthetic calibration here: pass --calibration with real images),
# with the HTML report: sizes, accuracy against fp32, latency on this machine, the per-layer error chart.
"$BIN/edgepack" build "$model" --target cpu --input-shape x=1,3,48,192 --precision int8 \
  -o out/ppocr_cls_int8.edgepack --report out/ppocr_cls_int8.html
"$BIN/edgepack-device" check out/ppocr_cls_int8.edgepack
