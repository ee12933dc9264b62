#!/usr/bin/env bash
# Install everything the test suite needs (mosquitto and sshd included) and run the whole suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k conv`.
# Outside a virtual environment, everything goes into ./.venv (see scripts/env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/env.sh    # apt_install, use_python (PY, BIN): a .venv outside a virtual environment

# apt puts mosquitto in /usr/sbin, which a plain user's PATH may lack
case ":$PATH:" in *:/usr/sbin:*) ;; *) [ -d /usr/sbin ] && export PATH="$PATH:/usr/sbin" ;; esac
if ! command -v mosquitto >/dev/null 2>&1; then
  apt_install mosquitto
fi
# the --via ssh:// tests start a real sshd (Debian's openssh-server) on loopback; ssh/scp come with it
if ! command -v sshd >/dev/null 2>&1 || ! command -v ssh >/dev/null 2>&1; then
  apt_install openssh-server openssh-client
fi
# the fleet history tests start a real PostgreSQL server (initdb + pg_ctl, Debian's postgresql package)
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && ! command -v pg_ctl >/dev/null 2>&1; then
  apt_install postgresql
fi
# the monitor's web view is tested in a real headless Chromium (Debian's chromium package)
if ! command -v chromium >/dev/null 2>&1; then
  apt_install chromium
fi
use_python
"$PY" -m pip install -q --disable-pip-version-check -e ./runtime -e '.[test]'
# CI=true makes tests that lack their broker or data fail instead of skip (tests/agent/conftest.py, ...)
# One worker per core (at most 4: each may hold a large model build), a test file's tests on one worker.
# EDGEPACK_TEST_WORKERS=0 runs everything in this one process.
"$PY" -m pytest -q -p no:cacheprovider -n "${EDGEPACK_TEST_WORKERS:-auto}" --maxprocesses=4 --dist loadfile "$@"
