"""A device disk that fills up in mid-transfer, on a real small filesystem (a tmpfs mounted for the test; needs
root, or sudo as on CI runners): without preallocation the write fails, the update ends ``failed`` with the reason,
the staging file is gone and the previous model still serves; with preallocation (the default) the download
cannot lose its blocks, and the install that then finds no room for its slot copy is refused: nothing is
half-installed either way."""
from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

from .bundles import make_bundle
from .harness import Loop


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MiB tmpfs at tmp_path/disk, unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    root = [] if os.geteuid() == 0 or not shutil.which("sudo") else ["sudo", "-n"]     # CI runners: sudo
    done = subprocess.run(root + ["mount", "-t", "tmpfs", "-o", "size=8m,mode=1777", f"tmpfs-{uuid.uuid4().hex[:6]}",
                                  str(disk)], capture_output=True, text=True)
    if done.returncode != 0:
        why = f"cannot mount a tmpfs for the disk-full test (needs root or sudo): {done.stderr.strip()}"
        if _under_ci():
            pytest.fail(f"CI=true and {why}", pytrace=False)
        pytest.skip(why)
    yield disk
    subprocess.run(root + ["umount", "-l", str(disk)], check=False)


def _fill(disk) -> None:
    """Take every free byte of the filesystem."""
    with open(disk / "filler", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    d = tmp_path_factory.mktemp("disk")
    return {"v1": make_bundle(d / "v1.edgepack", "1", 1.0), "big": make_bundle(d / "big.edgepack", "9", 9.0,
                                                                                pad=2_500_000)}


def test_a_disk_that_fills_up_mid_transfer_fails_cleanly(small_disk, bundles):
    loop = Loop(small_disk / "state", bundles["v1"], window=8, preallocate=False)
    offer = loop.offer(bundles["big"], chunk_size=65536)
    loop.rx.on_offer("ota/offer", offer.to_bytes())
    loop.deliver(limit=10)
    assert loop.rx.counters["received"] == 10
    _fill(small_disk)                                        # someone else takes the rest of the disk
    loop.deliver()
    final = loop.reports[-1]
    assert final["state"] == "failed" and "No space left on device" in final["reason"], final
    assert "nothing was installed" in final["reason"] and loop.rx.counters["write_errors"] == 1
    assert not list((small_disk / "state" / "staging").glob("*")), "staging left behind"
    status = loop.updater.status()
    assert status["state"] == "failed" and status["model"]["version"] == "1"          # v1 still serves
    assert loop.updater.active() is not None and loop.rx.dl is None
    (small_disk / "filler").unlink()
    newer = loop.offer(bundles["big"], chunk_size=65536)      # space freed: the next flash goes through
    loop.rx.on_offer("ota/offer", newer.to_bytes())
    loop.deliver()
    assert loop.wait_final()["state"] == "committed", (loop.reports[-1]["state"], loop.reports[-1]["reason"])


def test_with_preallocation_the_download_keeps_its_blocks_and_nothing_is_half_installed(small_disk, bundles):
    loop = Loop(small_disk / "state", bundles["v1"], window=8)
    offer = loop.offer(bundles["big"], chunk_size=65536)
    loop.rx.on_offer("ota/offer", offer.to_bytes())
    loop.deliver(limit=10)
    _fill(small_disk)
    loop.deliver()
    final = loop.wait_final()
    assert loop.rx.counters["received"] == offer.chunks and loop.rx.counters["write_errors"] == 0
    assert final["state"] == "failed" and ("not enough disk space to install" in final["reason"]
                                         or "No space left on device" in final["reason"]), final
    status = loop.updater.status()                           # the slot copy found no room: v1 still serves
    assert status["model"]["version"] == "1" and loop.updater.active() is not None
    assert not list((small_disk / "state" / "staging").glob("*")), "staging left behind"
    assert not list((small_disk / "state" / "slots").glob("*/.*tmp*")), "a half-written slot"
