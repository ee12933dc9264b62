#!/usr/bin/env bash
# Install edgepack and build a real model for the CPU target: PaddleOCR's text-direction classifier
# (from the rapidocr-onnxruntime wheel on PyPI), whose H/W are dynamic and fixed here on the command line.
# Outside a virtual environment, everything goes into ./.venv (created on first use): stock Debian, Ubuntu
# and Raspberry Pi OS refuse `pip install` into the system Python (PEP 668, "externally-managed-environment").
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {  # apt_install PKG...: as root, else through sudo
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

use_python() {  # sets PY (interpreter) and BIN (its scripts folder), both absolute, and puts BIN first on PATH
  local base="${PYTHON:-python3}"
  if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
    PY="$VIRTUAL_ENV/bin/python"
  elif "$base" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)'; then
    PY="$base"                                  # already inside a virtual environment: use it as is
  else
    if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
      rm -rf .venv
      if ! "$base" -m venv .venv >/dev/null 2>&1; then   # Debian/Ubuntu ship venv+ensurepip apart
        echo "python3 cannot create a virtual environment: installing python3-venv with apt-get" >&2
        rm -rf .venv
        apt_install python3-venv
        "$base" -m venv .venv
      fi
      echo "created .venv (activate it with: source .venv/bin/activate)" >&2
    fi
    PY="$PWD/.venv/bin/python"
  fi
  "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
    echo "error: edgepack needs Python >= 3.10; $("$PY" -V 2>&1) found at $PY" >&2; exit 1; }
  PY=$("$PY" -c 'import sys; print(sys.executable)')
  BIN=$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
  export PATH="$BIN:$PATH"
}

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
