"""Other ways in: deliver a bundle to a device's state folder without MQTT (``edgepack flash --via URL``).

    dir:PATH                                    PATH is the device's state folder (a mounted SD card, a
                                                shared folder): the bundle lands in PATH/inbox/ and the
                                                device installs it on its next start (Updater.recover)
    ssh://[user@]host[:port]/STATE_DIR[?opts]   upload into STATE_DIR/inbox/ over the system OpenSSH client,
                                                then run ``edgepack-device install`` there (when install)

ssh options, in the URL's query or as keyword arguments of ``deliver``: ``identity=KEY`` (``identity_file``),
``known_hosts=FILE`` (``known_hosts``: also turns on strict host key checking), ``config=FILE``
(``ssh_config``: instead of ~/.ssh/config), ``timeout=SECONDS`` (``connect_timeout``), ``device_cmd=CMD``.
Without them, ssh reads ``~/.ssh/config`` and ``~/.ssh/known_hosts`` as usual; it never prompts (BatchMode).
``ssh://host/~/state`` names a folder relative to the remote home.

Both copy atomically: the bytes go to ``inbox/<name>.part`` and are renamed to ``inbox/<name>`` only when
complete, so a device never sees half a bundle; a failed copy leaves no ``.part`` behind. Over ssh with
install, the same session renames it ``inbox/<name>.install`` (a name the device's inbox processing skips, so
its agent does not race the command) and runs ``edgepack-device install`` on it, which consumes it.
"""
from __future__ import annotations

import contextlib
import os
import re
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import parse_qs, unquote, urlsplit

from edgepack.errors import DeliveryError

ACCEPTED = "dir:PATH or ssh://[user@]host[:port]/STATE_DIR[?identity=KEY&known_hosts=FILE&config=FILE&timeout=S]"
QUERY_KEYS = ("identity", "known_hosts", "config", "timeout", "device_cmd")
CHUNK = 1 << 20
Progress = Callable[[int, int], None]
_HOST = re.compile(r"[A-Za-z0-9_.:%-]+")
_USER = re.compile(r"[A-Za-z0-9_.+-]+")


@dataclass(frozen=True)
class Via:
    """A parsed ``--via`` URL: ``scheme`` "dir" or "ssh", ``path`` the device's state folder."""

    scheme: str
    path: str
    host: str | None = None
    user: str | None = None
    port: int | None = None
    options: dict = field(default_factory=dict)


def _bad(url: str, why: str) -> DeliveryError:
    return DeliveryError(f"bad --via {url[:200]!r}: {why}", hint=f"accepted forms: {ACCEPTED}")


def parse_via(url: str) -> Via:
    """Parse a ``--via`` URL; DeliveryError naming the accepted forms when it is not one of them."""
    if not isinstance(url, str) or not url.strip():
        raise _bad(str(url), "empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise _bad(url, "holds control characters")
    if url.startswith("dir:"):
        path = url[4:]
        if path.startswith("//"):                  # the URL form dir:///mnt/sd (no host)
            if not path.startswith("///"):
                raise _bad(url, "dir:// takes no host: write dir:/PATH or dir:///PATH")
            path = unquote(path[2:])
        if not path.strip():
            raise _bad(url, "dir: needs the device's state folder, e.g. dir:/media/sd/edgepack")
        return Via("dir", os.path.expanduser(path))
    if not url.startswith("ssh://"):
        raise _bad(url, "unknown scheme")
    return _parse_ssh(url)


def _parse_ssh(url: str) -> Via:
    try:
        parts = urlsplit(url)
    except ValueError as exc:                       # "Invalid IPv6 URL"
        raise _bad(url, f"malformed host ({exc})") from None
    try:
        port = parts.port
    except ValueError:
        raise _bad(url, "the port must be a number from 1 to 65535") from None
    host, user = parts.hostname, unquote(parts.username) if parts.username else None
    if not host or not _HOST.fullmatch(host) or host.startswith("-"):
        raise _bad(url, "missing or malformed host")
    if user is not None and (not _USER.fullmatch(user) or user.startswith("-")):
        raise _bad(url, "malformed user name")
    if parts.password is not None:
        raise _bad(url, "passwords do not go in the URL; use a key (identity=KEY)")
    if port == 0:
        raise _bad(url, "the port must be a number from 1 to 65535")
    path = unquote(parts.path)
    if path.startswith("/~/"):
        path = path[3:]                              # relative to the remote home
    if path.strip("/") in ("", "~") or parts.fragment:
        raise _bad(url, "give the device's state folder after the host, e.g. ssh://pi@cam-1/var/lib/edgepack")
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise _bad(url, "malformed query") from None
    unknown = sorted(set(query) - set(QUERY_KEYS))
    if unknown or any(len(v) != 1 for v in query.values()):
        raise _bad(url, f"unknown or repeated option(s) {', '.join(unknown or query)}; known: "
                        f"{', '.join(QUERY_KEYS)}")
    options = {k: v[0] for k, v in query.items()}
    if "timeout" in options:
        try:
            options["timeout"] = float(options["timeout"])
            assert 0 < options["timeout"] < 1e6
        except (ValueError, AssertionError):
            raise _bad(url, "timeout must be a positive number of seconds") from None
    return Via("ssh", path, host=host, user=user, port=port, options=options)


def deliver(url: str, bundle: Path, *, install: bool = True, progress: Progress | None = None,
            device_cmd: str = "edgepack-device", trust_keys=(), identity_file: str | Path | None = None,
            known_hosts: str | Path | None = None, ssh_config: str | Path | None = None,
            connect_timeout: float | None = None) -> dict:
    """Deliver ``bundle`` (a .edgepack file or a bundle folder, sent as one file) to the device at ``url``.

    Returns ``{"via", "path", "installed", "status"}``: ``path`` is where the bundle landed on the device;
    over ssh with ``install``, ``edgepack-device install`` runs there (``device_cmd``, e.g. the full path
    of the device venv's script; ``trust_keys`` are public key paths *on the device*) and ``status`` is its
    OTA status, ``installed`` True once committed. ``dir:`` never installs: the device does it on its next
    start (``installed`` False, ``status`` None). ``progress(done, total)`` is called as bytes are copied.
    Raises DeliveryError (what went wrong and what to do) on any failure; a device that refused the bundle
    gives its status and error text in ``.status`` and ``.remote_error``.
    """
    via = parse_via(url)
    with bundle_file(Path(bundle)) as (path, name):
        if via.scheme == "dir":
            from .via_dir import deliver_dir
            return deliver_dir(Path(via.path), path, name, progress)
        from . import via_ssh
        opts = via_ssh.SshOptions.make(via, identity_file=identity_file, known_hosts=known_hosts,
                                       ssh_config=ssh_config, connect_timeout=connect_timeout)
        cmd = (via.options.get("device_cmd") or device_cmd or "edgepack-device") if install else None
        return via_ssh.send(via, opts, path, name, progress, device_cmd=cmd, trust_keys=[str(k) for k in trust_keys])


def inbox_name(bundle: Path) -> str:
    """``<UTC time>-<stem>.edgepack``: unique, sorts in delivery order, safe on any filesystem."""
    stem = bundle.name[:-len(".edgepack")] if bundle.name.endswith(".edgepack") else bundle.name
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem).strip("._")[:80] or "bundle"
    now = time.time()
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now % 1 * 1e6):06d}Z-{stem}.edgepack"


@contextlib.contextmanager
def bundle_file(bundle: Path) -> Iterator[tuple[Path, str]]:
    """Yield ``(file, inbox name)``: the bundle file itself, or a bundle folder packed into a temporary
    uncompressed tar (members streamed from disk, manifest first, as ``write_bundle`` lays them out)."""
    if bundle.is_file():
        yield bundle, inbox_name(bundle)
        return
    if not (bundle / "manifest.json").is_file():
        raise DeliveryError(f"no bundle at {bundle}", hint="pass a .edgepack file or an unpacked bundle folder")
    from edgepack_runtime.archive import open_source
    members = sorted(open_source(bundle).members, key=lambda n: (n != "manifest.json", n))
    with tempfile.TemporaryDirectory(prefix="edgepack-via-") as tmp:
        packed = Path(tmp) / f"{bundle.name}.edgepack"
        with tarfile.open(packed, "w", format=tarfile.PAX_FORMAT) as tar:
            for rel in members:
                info = tar.gettarinfo(bundle / rel, arcname=rel)
                info.mode, info.uid, info.gid, info.uname, info.gname = 0o644, 0, 0, "", ""
                with open(bundle / rel, "rb") as fh:
                    tar.addfile(info, fh)
        yield packed, inbox_name(packed)
