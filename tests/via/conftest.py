"""The sshd fixture of the ``--via ssh://`` tests (a real OpenSSH server on loopback, see sshd.py).

Under CI=true a missing sshd (Debian's openssh-server; scripts/test.sh installs it) fails the tests.
"""
from __future__ import annotations

import os
import shutil

import pytest

from .sshd import sshd_path, start_sshd


def under_ci() -> bool:
    """CI=true (or 1/yes): a missing sshd is a broken setup, so the tests that need it fail, not skip."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def sshd_bin():
    path = sshd_path()
    if path is None or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        why = "sshd/ssh are not installed: apt-get install openssh-server (scripts/test.sh does it)"
        if under_ci():
            pytest.fail(f"CI=true and {why}", pytrace=False)
        pytest.skip(why)
    return path


@pytest.fixture(scope="session")
def sshd(tmp_path_factory, sshd_bin):
    server = start_sshd(tmp_path_factory.mktemp("sshd"), sshd_bin)
    yield server
    server.stop()


@pytest.fixture
def device(tmp_path):
    """A device state folder serving v1 (y = x + [10, 20]), installed as its first update."""
    from edgepack_runtime.ota import Updater

    from .bundles import add_bundle
    state = tmp_path / "state"
    v1 = add_bundle(tmp_path / "v1.edgepack", (10.0, 20.0), version="1")
    assert Updater(state).install(v1, update_id="first")["state"] == "committed"
    return state
