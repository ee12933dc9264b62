"""Sorting out what a calibration folder holds: .npy files, images, or one subfolder per input."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .checks import CalibrationError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
LAYOUTS_HINT = ("a calibration folder holds either .npy files (one per input named '<input>.npy', "
                "or one per sample), or images, or one subfolder per input of per-sample .npy files")


def natural_key(path: Path) -> list:
    """Sort key where 'img2' comes before 'img10'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


@dataclass
class Contents:
    folder: Path
    subfolders: list[Path] = field(default_factory=list)
    npy: list[Path] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    other: list[Path] = field(default_factory=list)

    def kinds(self) -> list[str]:
        named = [("subfolders", self.subfolders), (".npy files", self.npy), ("images", self.images)]
        return [name for name, items in named if items]


def scan(folder: Path) -> Contents:
    """Classify the visible entries of ``folder`` (names starting with '.' are ignored), naturally sorted."""
    found = Contents(folder)
    for entry in sorted(folder.iterdir(), key=natural_key):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            found.subfolders.append(entry)
        elif entry.suffix.lower() == ".npy":
            found.npy.append(entry)
        elif entry.suffix.lower() in IMAGE_SUFFIXES:
            found.images.append(entry)
        else:
            found.other.append(entry)
    return found


def require_one_kind(found: Contents) -> str:
    """'subfolders', '.npy files' or 'images'; raises on an empty, mixed or unknown-content folder."""
    if found.other:
        names = ", ".join(p.name for p in found.other[:5]) + (" ..." if len(found.other) > 5 else "")
        raise CalibrationError(f"calibration folder {found.folder} holds files that are neither .npy nor "
                               f"images ({'/'.join(IMAGE_SUFFIXES)}): {names}",
                               hint="move them out of the folder; " + LAYOUTS_HINT)
    kinds = found.kinds()
    if not kinds:
        raise CalibrationError(f"no .npy or image files in {found.folder}", hint=LAYOUTS_HINT)
    if len(kinds) > 1:
        raise CalibrationError(f"calibration folder {found.folder} mixes {' and '.join(kinds)}",
                               hint="keep one kind per folder; " + LAYOUTS_HINT)
    return kinds[0]
