"""``--via dir:PATH``: an atomic copy into the device's inbox (a mounted SD card or a shared folder)."""
from __future__ import annotations

import os
import re
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgepack.errors import DeliveryError
from edgepack.fleet.via import deliver, inbox_name
from edgepack_runtime.bundle import Bundle, unpack_bundle

from .bundles import active_bias, add_bundle


@pytest.fixture
def state(tmp_path):
    (tmp_path / "state").mkdir()
    return tmp_path / "state"


def test_copy_lands_whole_in_the_inbox(tmp_path, state):
    bundle = add_bundle(tmp_path / "add.edgepack")
    seen = []
    result = deliver(f"dir:{state}", bundle, progress=lambda done, total: seen.append((done, total)))
    landed = state / "inbox" / os.path.basename(result["path"])
    assert result == {"via": "dir", "path": str(landed), "installed": False, "status": None}
    assert landed.read_bytes() == bundle.read_bytes()
    assert re.fullmatch(r"\d{8}T\d{12}Z-add\.edgepack", landed.name)
    assert seen[-1] == (bundle.stat().st_size,) * 2
    assert sorted(p.name for p in (state / "inbox").iterdir()) == [landed.name]     # no .part left


def test_big_file_copies_in_chunks_and_names_sort_in_delivery_order(tmp_path, state):
    blob = tmp_path / "big.edgepack"
    blob.write_bytes(os.urandom(3 * 2**20 + 5))
    seen = []
    first = deliver(f"dir:{state}", blob, progress=lambda d, t: seen.append(d))
    second = deliver(f"dir:{state}", blob)
    assert seen == [2**20, 2 * 2**20, 3 * 2**20, 3 * 2**20 + 5]
    names = sorted(p.name for p in (state / "inbox").iterdir())
    assert names == [os.path.basename(first["path"]), os.path.basename(second["path"])]


def test_bundle_folder_travels_as_one_file(tmp_path, state):
    bundle = add_bundle(tmp_path / "add.edgepack", (3.0, 4.0))
    folder = unpack_bundle(bundle, tmp_path / "unpacked")
    result = deliver(f"dir:{state}", folder)
    delivered, original = Bundle.open(result["path"]), Bundle.open(bundle)
    assert delivered.manifest == original.manifest
    assert delivered.read("models/ref/model.onnx") == original.read("models/ref/model.onnx")


def test_interrupted_copy_leaves_nothing(tmp_path, state):
    blob = tmp_path / "big.edgepack"
    blob.write_bytes(os.urandom(3 * 2**20))

    def cut(done, total):
        if done >= 2**20:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        deliver(f"dir:{state}", blob, progress=cut)
    assert list((state / "inbox").iterdir()) == []


def test_missing_folder_and_missing_bundle(tmp_path, state):
    bundle = add_bundle(tmp_path / "add.edgepack")
    with pytest.raises(DeliveryError, match="not a folder .is the SD card mounted"):
        deliver(f"dir:{tmp_path / 'nowhere'}", bundle)
    with pytest.raises(DeliveryError, match="no bundle at"):
        deliver(f"dir:{state}", tmp_path / "nothing.edgepack")
    assert not (tmp_path / "nowhere").exists()


def test_no_space_is_refused_before_copying(tmp_path, state):
    """A (sparse) bundle larger than the free space: refused up front, nothing written."""
    huge = tmp_path / "huge.edgepack"
    with open(huge, "wb") as fh:
        fh.truncate(shutil.disk_usage(state).free + 2**30)
    with pytest.raises(DeliveryError, match="no space in .*free some space") as err:
        deliver(f"dir:{state}", huge)
    assert err.value.exit_code == 10
    assert list((state / "inbox").iterdir()) == []


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=300).filter(lambda s: "/" not in s and "\x00" not in s))
def test_inbox_names_are_safe(tmp_path_factory, name):
    got = inbox_name(tmp_path_factory.getbasetemp() / name)
    assert re.fullmatch(r"\d{8}T\d{12}Z-[A-Za-z0-9._-]{1,80}\.edgepack", got)
    assert not got.split("Z-", 1)[1].startswith(".")      # never a hidden file


# --- end to end with the device's Updater: what the device does on its next start ---------------------------

def test_device_installs_the_delivered_bundle_on_its_next_start(tmp_path, device):
    from edgepack_runtime.ota import Updater
    assert active_bias(device) == [10.0, 20.0]
    deliver(f"dir:{device}", add_bundle(tmp_path / "v2.edgepack", (1.0, 2.0), version="2"))
    status = Updater(device).recover()                      # the device restarts
    assert status["state"] == "committed" and status["model"]["version"] == "2"
    assert status["update_id"].startswith("inbox-") and status["update_id"].endswith("-v2")
    assert active_bias(device) == [1.0, 2.0]
    assert list((device / "inbox").iterdir()) == []         # consumed


def test_a_delivered_bundle_that_fails_on_the_device_changes_nothing(tmp_path, device):
    from edgepack_runtime.ota import Updater
    # its samples disagree with its model: the device's health check fails
    unhealthy = add_bundle(tmp_path / "bad.edgepack", (1.0, 2.0), version="2", sample_bias=(5.0, 5.0))
    deliver(f"dir:{device}", unhealthy)
    status = Updater(device).recover()
    assert status["state"] == "rolled_back" and "health check failed" in status["reason"], status
    assert active_bias(device) == [10.0, 20.0]
    assert [p.suffix for p in (device / "inbox").iterdir()] == [".rejected"]     # kept aside, not retried
