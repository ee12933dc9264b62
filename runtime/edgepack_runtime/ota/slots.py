"""A/B slots: ``<state_dir>/slots/a`` and ``slots/b`` each hold one bundle; ``slots/active`` says which serves.

The pointer is a symbolic link ``slots/active -> a`` (or ``b``), replaced atomically: a new link is made
under a temporary name and renamed over the old one, then the folder is fsynced. It is the one source of
truth for what the device serves, independent of ``ota.json``, so a corrupt state document never leaves the
device without a model. A slot's bundle is ``bundle.edgepack`` (a copied file) or ``bundle/`` (a copied
folder), always written under a temporary name and renamed into place.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..atomic import fsync_dir
from .store import SLOTS

POINTER = "active"
FILE, FOLDER = "bundle.edgepack", "bundle"


def other(slot: str | None) -> str:
    """The slot that is not ``slot`` (``a`` when there is no active slot yet)."""
    return "b" if slot == "a" else "a"


class Slots:
    """The slot folders under ``root`` (``<state_dir>/slots``)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def active(self) -> str | None:
        """The slot ``slots/active`` points at, or None (no pointer, or one that is not ``a``/``b``)."""
        try:
            target = os.readlink(self.root / POINTER)
        except OSError:
            return None
        return target if target in SLOTS else None

    def bundle(self, slot: str) -> Path | None:
        """The bundle held by ``slot`` (file or folder), or None when the slot is empty."""
        for name in (FILE, FOLDER):
            path = self.root / slot / name
            if path.exists():
                return path
        return None

    def point(self, slot: str) -> None:
        """Make ``slot`` the active one, atomically (rename of a new symbolic link over the old)."""
        if slot not in SLOTS:
            raise ValueError(f"no slot {slot!r}")
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{POINTER}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(slot, tmp)
        os.replace(tmp, self.root / POINTER)
        fsync_dir(self.root)

    def unpoint(self) -> None:
        (self.root / POINTER).unlink(missing_ok=True)
        fsync_dir(self.root)

    def write(self, slot: str, source: Path) -> Path:
        """Copy the bundle ``source`` (file or folder) into ``slot``, replacing what it held; return its path."""
        self.clear(slot)
        folder = self.root / slot
        folder.mkdir(parents=True, exist_ok=True)
        if Path(source).is_dir():
            tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".bundle.", suffix=".tmp"))
            shutil.copytree(source, tmp, dirs_exist_ok=True, symlinks=True)
            _fsync_tree(tmp)
            final = folder / FOLDER
        else:
            fd, name = tempfile.mkstemp(dir=folder, prefix=".bundle.", suffix=".tmp")
            tmp = Path(name)
            with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            final = folder / FILE
        os.chmod(tmp, 0o755 if tmp.is_dir() else 0o644)
        os.replace(tmp, final)
        fsync_dir(folder)
        return final

    def clear(self, slot: str) -> None:
        """Empty ``slot`` (its bundle and any half-written temporary); never the active slot."""
        if slot == self.active():
            raise ValueError(f"slot {slot} is active; it cannot be cleared")
        folder = self.root / slot
        if not folder.is_dir():
            return
        for entry in folder.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        fsync_dir(folder)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(Path(dirpath))
