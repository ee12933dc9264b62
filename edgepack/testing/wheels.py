"""Download PyPI wheels into a local cache and read files out of them (nothing is installed).

The cache lives in ``$EDGEPACK_CACHE`` or ``~/.cache/edgepack``; wheels go to ``<cache>/wheels``.
Writes go through a temporary name and ``os.replace``, so concurrent test workers never see half files;
a folder that replaces an earlier one is filled under ``locked`` (one process at a time per folder).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from edgepack.errors import EdgepackError

# Tried when pip finds no wheel for this machine: the platform the corpus hashes were taken on.
FALLBACK_PLATFORM_ARGS = (
    "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
)


class CorpusError(EdgepackError):
    """A corpus model or wheel could not be fetched, or its bytes do not match the recorded hash."""

    exit_code = 9


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache_dir``, else ``$EDGEPACK_CACHE``, else ``~/.cache/edgepack``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("EDGEPACK_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "edgepack"


def split_source(source: str) -> tuple[str, str]:
    """``"basic-pitch==0.4.0"`` -> ``("basic-pitch", "0.4.0")``."""
    name, sep, version = source.partition("==")
    if not sep or not name or not version:
        raise CorpusError(f"corpus source {source!r} is not of the form 'package==version'")
    return name.strip(), version.strip()


def _wheel_prefix(source: str) -> str:
    name, version = split_source(source)
    return f"{name.replace('-', '_').replace('.', '_').lower()}-{version}-"


def _find_wheel(wheels: Path, source: str) -> Path | None:
    prefix = _wheel_prefix(source)
    found = sorted(p for p in wheels.glob("*.whl") if p.name.lower().startswith(prefix))
    return found[0] if found else None


def _pip_download(source: str, dest: Path, extra: tuple[str, ...]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
           "--disable-pip-version-check", "-d", str(dest), *extra, source]
    return subprocess.run(cmd, capture_output=True, text=True)


def wheel(source: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the cached wheel for ``source`` ("pkg==ver"), downloading it with pip if needed."""
    wheels = cache_root(cache_dir) / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    cached = _find_wheel(wheels, source)
    if cached is not None:
        return cached
    with tempfile.TemporaryDirectory(dir=wheels, prefix=".download-") as tmp:
        result = _pip_download(source, Path(tmp), ())
        if result.returncode != 0:
            result = _pip_download(source, Path(tmp), FALLBACK_PLATFORM_ARGS)
        got = _find_wheel(Path(tmp), source)
        if result.returncode != 0 or got is None:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise CorpusError(f"pip could not download a wheel for {source}: {' | '.join(tail)}",
                              hint="check that PyPI is reachable and that the version exists")
        final = wheels / got.name
        os.replace(got, final)
    return final


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _safe_relative(member: str, prefix: str) -> PurePosixPath:
    rel = PurePosixPath(member[len(prefix):])
    if rel.is_absolute() or ".." in rel.parts:
        raise CorpusError(f"unsafe path {member!r} inside wheel")
    return rel


def extract_file(whl: Path, member: str, dest: Path) -> None:
    """Copy one file out of a wheel to ``dest`` atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with zipfile.ZipFile(whl) as zf, zf.open(member) as src, os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(src, out)
        os.replace(tmp, dest)
    except KeyError:
        raise CorpusError(f"{member!r} is not inside {whl.name}",
                          hint="the corpus list and the wheel version disagree") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def extract_tree(whl: Path, prefix: str, dest: Path) -> Path:
    """Extract every member under ``prefix`` (ending in '/') into a new temporary folder beside ``dest``.

    Returns the temporary folder; the caller checks it and moves it into place with ``install_tree``.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    count = 0
    with zipfile.ZipFile(whl) as zf:
        for info in zf.infolist():
            if not info.filename.startswith(prefix) or info.is_dir():
                continue
            target = tmp.joinpath(*_safe_relative(info.filename, prefix).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            count += 1
    if count == 0:
        shutil.rmtree(tmp)
        raise CorpusError(f"no files under {prefix!r} inside {whl.name}",
                          hint="the corpus list and the wheel version disagree")
    return tmp


@contextmanager
def locked(dest: Path):
    """Hold an exclusive lock on ``dest`` (a file in ``.locks`` beside its folder, so the folder holds only
    what was fetched) while this process checks and fills it. pytest-xdist's workers fetch the same item at
    the same time on a cold cache: without it the second worker's ``install_tree`` moved the first one's
    finished folder away while the first listed it (the ONNX node tests: one worker collected 8 tests where
    the other collected 2,324, and xdist stopped the run). Advisory (``fcntl``); where that does not exist
    the fetch still works, only not serialized."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:      # Windows
        yield
        return
    locks = dest.parent.parent / ".locks"
    locks.mkdir(exist_ok=True)
    with open(locks / f"{dest.parent.name}-{dest.name}.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def install_tree(tmp: Path, dest: Path) -> None:
    """Move a freshly extracted folder to ``dest``, replacing whatever was there."""
    if dest.exists():
        trash = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old."))
        os.replace(dest, trash / dest.name)
        shutil.rmtree(trash, ignore_errors=True)
    try:
        os.replace(tmp, dest)
    except OSError:
        if not dest.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # another process installed it first
