# Sourced by demo.sh and test.sh: apt_install, and use_python, which picks the interpreter.
# Outside a virtual environment, everything goes into ./.venv (created on first use): stock Debian, Ubuntu
# and Raspberry Pi OS refuse `pip install` into the system Python (PEP 668, "externally-managed-environment").

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
