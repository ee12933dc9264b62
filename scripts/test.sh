#!/usr/bin/env bash
# Install everything the test suite needs (mosquitto included) and run the whole suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k conv`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v mosquitto >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mosquitto >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e ./runtime -e '.[test]'
python3 -m pytest -q -p no:cacheprovider "$@"
