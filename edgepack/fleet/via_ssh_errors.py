"""Why a ``--via ssh://`` delivery failed, as a DeliveryError saying what to do: ssh's own failures (exit
255: unreachable, authentication, host key), the upload script's (exit codes below), the device command's
(missing, too old, or its refusal with the OTA status it printed).
"""
from __future__ import annotations

import json
import re

from edgepack.errors import DeliveryError

from .via import Via

# exit codes of the remote script (ssh itself uses 255, the device command its own small codes)
_SHORT, _NOSPACE, _MKDIR, _WRITE, _RENAME, _NOCMD = 70, 71, 72, 73, 74, 127


def host_of(via: Via) -> str:
    return f"{via.user + '@' if via.user else ''}{via.host}{':' + str(via.port) if via.port else ''}"


def _tail(text: str, n: int = 6) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])[:1200]


def _ssh_error(via: Via, errors: str) -> DeliveryError | None:
    """ssh's own failures (exit 255) as a clear DeliveryError, or None when it is not one."""
    where, low = host_of(via), errors.lower()
    if "host key verification failed" in low or "remote host identification has changed" in low:
        return DeliveryError(f"ssh to {where}: the host key is unknown or changed: {_tail(errors, 2)}",
                             hint="check the device's fingerprint, then add it to known_hosts "
                                  "(ssh-keyscan) or pass known_hosts=FILE")
    if "permission denied" in low or "too many authentication failures" in low:
        return DeliveryError(f"ssh to {where}: authentication failed: {_tail(errors, 1)}",
                             hint="pass the device's key with identity=KEY (or -i in ~/.ssh/config) and check "
                                  "its authorized_keys; passwords are not asked (BatchMode)")
    for marker in ("connection refused", "timed out", "no route to host", "could not resolve",
                   "network is unreachable", "connection closed", "connection reset", "name or service"):
        if marker in low:
            return DeliveryError(f"ssh to {where}: host unreachable: {_tail(errors, 1)}",
                                 hint="check the host name, the port and that sshd runs on the device")
    return None


def upload_error(via: Via, code: int, errors: str, device_cmd: str | None) -> DeliveryError:
    where, inbox = host_of(via), via.path.rstrip("/") + "/inbox"
    if code == 255 and (found := _ssh_error(via, errors)):
        return found
    if code == _NOCMD and "edgepack-via: device command not found" in errors:
        return _missing(via, device_cmd, errors, "nothing was sent")
    if code == _NOSPACE or "no space left" in errors.lower():
        return DeliveryError(f"no space on {where} for the bundle in {inbox}: {_tail(errors, 2)}",
                             hint="free some space on the device; nothing was installed")
    what = {_MKDIR: f"cannot create {inbox}", _WRITE: f"cannot write into {inbox}",
            _RENAME: f"cannot rename the upload in {inbox}", _SHORT: "the upload was cut short"}
    return DeliveryError(f"upload to {where} failed ({what.get(code, f'exit {code}')}): "
                         f"{_tail(errors) or 'no error text'}",
                         hint="check the state folder's path and permissions on the device; no .part is left")


def _missing(via: Via, device_cmd: str, errors: str, left: str) -> DeliveryError:
    return DeliveryError(f"{host_of(via)}: the device command {device_cmd!r} was not found ({left}): "
                         f"{_tail(errors, 2)}",
                         hint="install edgepack-runtime on the device, or pass device_cmd=/path/to/venv/bin/"
                              "edgepack-device (a non-interactive ssh session may not have the venv on PATH)",
                         remote_error=errors.strip())


def install_error(via: Via, code: int, errors: str, status: dict | None, device_cmd: str) -> DeliveryError:
    """The install ran (or tried to) after a whole upload: why it did not commit."""
    where = host_of(via)
    if code == 255 and (found := _ssh_error(via, errors)):
        found.message += " (during the install: see `edgepack-device ota-status` on the device)"
        return found
    if status is None and (code == _NOCMD or re.search(r"no module named '?edgepack_runtime", errors.lower())):
        return _missing(via, device_cmd, errors, "the upload was removed")
    if status is None and "invalid choice: 'install'" in errors:
        return DeliveryError(f"{where}: {device_cmd} has no install command (an older edgepack-runtime)",
                             hint="upgrade edgepack-runtime on the device", remote_error=errors.strip())
    state = status.get("state") if status else None
    reason = (status or {}).get("reason") or _tail(errors, 3) or f"exit {code}"
    return DeliveryError(f"{where}: the device did not install the bundle"
                         f"{f' (state {state})' if state else ''}: {reason}",
                         hint="the previous model keeps serving; fix the bundle (or the device's trust keys or "
                              "profile) and deliver it again",
                         status=status, remote_error=errors.strip() or None)


def status_of(out: str) -> dict | None:
    """The device's JSON status (``--json`` prints one document); None when there is none."""
    try:
        doc = json.loads(out)
    except ValueError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("status"), dict):
        return doc["status"]
    return doc if isinstance(doc, dict) else None
