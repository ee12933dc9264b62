"""A real headless Chromium (Debian's ``chromium`` package) for the monitor's web-view tests.

``chromium`` (session fixture): the browser's path; missing, the tests skip, or fail under CI=true.
``dump_dom(path, url)``: the page's DOM after its scripts ran for ``budget_ms`` of virtual time
(``--virtual-time-budget``; the page must let its event stream end, e.g. ``?events=N``, or virtual time
never advances past the open request). Each run gets its own throw-away profile folder.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile

import pytest

from tests.agent.conftest import under_ci

__all__ = ["chromium", "chromium_path", "dump_dom"]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        why = "chromium is not installed: apt-get install chromium (scripts/test.sh does it)"
        if under_ci():
            pytest.fail(f"CI=true and {why}", pytrace=False)
        pytest.skip(why)
    return path


def dump_dom(path: str, url: str, *, budget_ms: int = 5000, timeout: float = 90.0) -> str:
    """``chromium --headless=new --dump-dom URL``: the serialized DOM (raises with Chromium's stderr if it fails).

    (A page with scripts off cannot be dumped this way: ``--blink-settings=scriptEnabled=false`` makes
    ``--dump-dom`` print nothing, and ``--disable-javascript`` is not a Chromium switch: scripts still run.)"""
    assert url.startswith(("http://127.0.0.1:", "http://[::1]:")), "tests only talk to loopback"
    with tempfile.TemporaryDirectory(prefix="edgepack-chromium-") as profile:
        proc = subprocess.run([path, "--headless=new", "--disable-gpu", "--no-sandbox", "--no-first-run",
                               "--disable-extensions", "--disable-background-networking", "--disable-sync",
                               f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                               "--dump-dom", url], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or "<html" not in proc.stdout:
        raise AssertionError(f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc.stdout
