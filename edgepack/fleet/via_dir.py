"""``--via dir:PATH``: copy a bundle into ``PATH/inbox/`` of a device's state folder reached as a local path (a
mounted SD card, a shared folder). The copy is atomic: ``<name>.part`` is written, fsynced, renamed to
``<name>`` and the folder fsynced, so the device's ``Updater.recover()`` sees a whole bundle or none.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from edgepack_runtime.atomic import fsync_dir

from edgepack.errors import DeliveryError

from .via import CHUNK, Progress


def deliver_dir(state_dir: Path, src: Path, name: str, progress: Progress | None) -> dict:
    """Copy ``src`` into ``state_dir/inbox/name`` atomically (``.part`` + fsync + rename + fsync of the folder)."""
    if not state_dir.is_dir():
        raise DeliveryError(f"dir: {state_dir} is not a folder (is the SD card mounted?)",
                            hint="pass the device's state folder, the one its agent uses as state_dir")
    inbox = state_dir / "inbox"
    total = src.stat().st_size
    try:
        inbox.mkdir(exist_ok=True)
        free = shutil.disk_usage(inbox).free
    except OSError as exc:
        raise DeliveryError(f"cannot use {inbox}: {exc.strerror or exc}",
                            hint="check the folder's permissions") from None
    if free < total:
        raise DeliveryError(f"no space in {inbox}: the bundle needs {total} bytes, {free} are free",
                            hint="free some space on the device's disk or card")
    part, final = inbox / f"{name}.part", inbox / name
    try:
        _copy(src, part, total, progress)
        os.replace(part, final)
        fsync_dir(inbox)
    except BaseException as exc:
        part.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise DeliveryError(f"copy into {inbox} failed: {exc.strerror or exc}",
                                hint="check the free space and permissions of the device's folder") from None
        raise
    return {"via": "dir", "path": str(final), "installed": False, "status": None}


def _copy(src: Path, dst: Path, total: int, progress: Progress | None) -> None:
    done = 0
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        while chunk := fin.read(CHUNK):
            fout.write(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
        fout.flush()
        os.fsync(fout.fileno())
    if done != total:
        raise OSError(f"{src} changed size while it was copied ({done} of {total} bytes)")
