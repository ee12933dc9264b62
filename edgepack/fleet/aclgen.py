"""``edgepack fleet acl``: mosquitto credentials and ACLs for a fleet, one user per device (docs/operator.md).

Writes into ``out``:
  ``acl``               mosquitto ``acl_file``: each device may publish only under ``edgepack/v1/<fleet>/<id>/#``
                        and read only its own ``cmd/#`` and update topics (``ota/offer``, ``ota/data/#``); the
                        host user (monitor, flash, rollout) reads everything and writes commands and updates
  ``passwd``            mosquitto ``password_file``, hashed by ``mosquitto_passwd -U`` (user name = device id)
  ``credentials.json``  the generated passwords (mode 0600): ``{"fleet", "host": {...}, "devices": {id: pw}}``
  ``agents/<id>.toml``  each device's agent settings (``device_id``, ``fleet``, ``username``, ``password``;
                        ``--config`` it together with ``--bundle``/``--broker`` flags), mode 0600
  ``mosquitto.conf``    a listener using both files (``include_dir`` it, or copy its lines)
Passwords already in ``credentials.json`` are kept, so adding devices does not change the others'.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path

from ..errors import EdgepackError

ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
ROOT = "edgepack/v1"
MAX_DEVICES = 100_000


def device_ids(spec: str, *, prefix: str = "dev-") -> list[str]:
    """``"25"`` -> prefix0001..prefix0025 (the simulator's ids); ``"a,b"`` -> those; ``"@FILE"`` -> one per line."""
    spec = spec.strip()
    if spec.startswith("@"):
        try:
            ids = [line.strip() for line in Path(spec[1:]).read_text().splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise EdgepackError(f"cannot read device ids from {spec[1:]!r}: {exc}",
                                hint="@FILE names a text file with one device id per line") from None
    elif spec.isascii() and spec.isdigit():
        if not 1 <= int(spec) <= MAX_DEVICES:
            raise EdgepackError(f"device count must be in [1, {MAX_DEVICES}], not {spec}")
        ids = [f"{prefix}{i:04d}" for i in range(1, int(spec) + 1)]
    else:
        ids = [p.strip() for p in spec.split(",") if p.strip()]
    bad = [i for i in ids if not ID.fullmatch(i)]
    if bad or not ids:
        raise EdgepackError("device ids must be 1-64 letters, digits, '_', '.', '-' (no '/', '+', '#'): "
                            f"{bad[:5] or spec!r}",
                            hint="pass --devices N (with --prefix), a comma list, or @FILE with one id per line")
    if len(ids) > MAX_DEVICES:
        raise EdgepackError(f"{len(ids)} device ids: at most {MAX_DEVICES} per ACL file")
    if len(set(ids)) != len(ids):
        raise EdgepackError("device ids repeat", hint="each device needs its own id (and MQTT user)")
    return ids


def acl_text(fleet: str, ids: list[str], host_user: str) -> str:
    """The ``acl_file`` for ``fleet``'s devices and the host user."""
    lines = [f"# edgepack ACL for fleet {fleet!r} (written by `edgepack fleet acl`; see docs/operator.md)",
             "# the host (monitor, flash, rollout): reads every device, writes commands and updates",
             f"user {host_user}", f"topic read {ROOT}/#", f"topic write {ROOT}/+/+/cmd/#",
             f"topic write {ROOT}/+/+/ota/offer", f"topic write {ROOT}/+/+/ota/data/#", ""]
    for dev in ids:
        base = f"{ROOT}/{fleet}/{dev}"
        lines += [f"user {dev}", f"topic write {base}/#", f"topic read {base}/cmd/#", f"topic read {base}/ota/offer",
                  f"topic read {base}/ota/data/#", ""]
    return "\n".join(lines) + "\n"          # ends with an empty line (VerneMQ's vmq_acl reader wants one)


def write_acl(out: Path, *, fleet: str, ids: list[str], host_user: str = "edgepack-host", port: int = 1883,
              mosquitto_passwd: str | None = None) -> dict:
    """Write the files listed in the module docstring; returns ``{"files": {...}, "devices": n, ...}``."""
    if not ID.fullmatch(fleet) or not ID.fullmatch(host_user) or host_user in ids:
        raise EdgepackError(f"fleet {fleet!r} and host user {host_user!r} must be plain names (letters, digits, "
                            "'_', '.', '-'), and the host user cannot also be a device id")
    tool = mosquitto_passwd or shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not os.access(tool, os.X_OK):
        raise EdgepackError("mosquitto_passwd not found: it hashes the password file",
                            hint="install the broker's tools (apt-get install mosquitto), or pass its path")
    out = Path(out)
    (out / "agents").mkdir(parents=True, exist_ok=True)
    creds = _credentials(out / "credentials.json", fleet, ids, host_user)
    _private(out / "credentials.json", json.dumps(creds, indent=1) + "\n")
    _private(out / "passwd", "".join(f"{u}:{p}\n" for u, p in
                                     [(host_user, creds["host"]["password"]), *creds["devices"].items()]))
    run = subprocess.run([tool, "-U", str(out / "passwd")], capture_output=True, text=True)
    if run.returncode != 0:
        (out / "passwd").unlink()                  # never leave plain passwords in a file meant for the broker
        raise EdgepackError(f"mosquitto_passwd -U failed: {(run.stderr or run.stdout).strip()[:300]}")
    (out / "acl").write_text(acl_text(fleet, ids, host_user))
    for dev in ids:
        _private(out / "agents" / f"{dev}.toml", f'device_id = "{dev}"\nfleet = "{fleet}"\nusername = "{dev}"\n'
                                                 f'password = "{creds["devices"][dev]}"\n')
    (out / "mosquitto.conf").write_text(f"# edgepack fleet {fleet}: per-device users and ACLs (docs/operator.md)\n"
                                        f"listener {port}\nallow_anonymous false\n"
                                        f"password_file {(out / 'passwd').resolve()}\n"
                                        f"acl_file {(out / 'acl').resolve()}\n")
    return {"fleet": fleet, "devices": len(ids), "host_user": host_user,
            "files": {k: str(out / k) for k in ("acl", "passwd", "credentials.json", "mosquitto.conf", "agents")}}


def _credentials(path: Path, fleet: str, ids: list[str], host_user: str) -> dict:
    """Known passwords from an earlier run (same fleet), new ones for new users."""
    old = json.loads(path.read_text()) if path.exists() else {}
    if old and old.get("fleet") != fleet:
        raise EdgepackError(f"{path} holds fleet {old.get('fleet')!r}, not {fleet!r}",
                            hint="write each fleet's files into their own folder")
    new = lambda: secrets.token_urlsafe(18)  # noqa: E731
    host = old.get("host") if (old.get("host") or {}).get("username") == host_user else None
    known = old.get("devices", {})
    return {"fleet": fleet, "host": host or {"username": host_user, "password": new()},
            "devices": {d: known.get(d) or new() for d in ids}}


def _private(path: Path, text: str) -> None:
    """Write ``text`` readable by its owner only (it holds passwords)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
