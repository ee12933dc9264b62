"""``--via ssh://``: the bundle streamed through the system OpenSSH client to a real sshd on loopback."""
from __future__ import annotations

import os
import shutil
import sys
import time

import pytest

from edgepack.errors import DeliveryError
from edgepack.fleet.via import deliver

from .bundles import add_bundle


@pytest.fixture
def state(tmp_path):
    (tmp_path / "state").mkdir()
    return tmp_path / "state"


@pytest.fixture
def blob(tmp_path):
    path = tmp_path / "big.edgepack"
    path.write_bytes(os.urandom(3 * 2**20 + 7))
    return path


def inbox(state):
    return sorted(p.name for p in (state / "inbox").iterdir()) if (state / "inbox").exists() else []


def test_upload_is_byte_identical_with_progress(sshd, state, blob):
    seen = []
    result = deliver(sshd.url(state), blob, install=False, progress=lambda d, t: seen.append((d, t)))
    assert result["via"] == "ssh" and result["installed"] is False and result["status"] is None
    assert result["path"].startswith(f"{state}/inbox/") and result["path"].endswith("-big.edgepack")
    assert open(result["path"], "rb").read() == blob.read_bytes()
    total = blob.stat().st_size
    assert [d for d, _ in seen] == [2**20, 2 * 2**20, 3 * 2**20, total] and {t for _, t in seen} == {total}
    assert inbox(state) == [os.path.basename(result["path"])]          # renamed: no .part left


def test_keyword_options_instead_of_the_query(sshd, state, tmp_path):
    bundle = add_bundle(tmp_path / "add.edgepack")
    result = deliver(f"ssh://{sshd.user}@127.0.0.1:{sshd.port}{state}", bundle, install=False,
                     identity_file=sshd.key, known_hosts=sshd.known_hosts, ssh_config=os.devnull)
    assert open(result["path"], "rb").read() == bundle.read_bytes()


def test_cut_upload_leaves_no_part(sshd, state, blob):
    def cut(done, total):
        if done >= 2**20:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        deliver(sshd.url(state), blob, install=False, progress=cut)
    deadline = time.monotonic() + 10         # the remote shell notices the closed channel and cleans up
    while inbox(state) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert inbox(state) == []


def test_wrong_key_is_an_authentication_error(sshd, state, blob):
    with pytest.raises(DeliveryError, match=r"authentication failed: .*Permission denied.*identity=KEY") as err:
        deliver(sshd.url(state, key=sshd.other_key), blob, install=False)
    assert err.value.exit_code == 10 and inbox(state) == []


def test_unreachable_port(sshd, state, blob):
    from .sshd import free_port
    with pytest.raises(DeliveryError, match=r"host unreachable: .*Connection refused.*sshd runs"):
        deliver(sshd.url(state, port=free_port()), blob, install=False)


def test_unknown_host_key_is_refused(sshd, state, blob, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(DeliveryError, match=r"host key is unknown or changed.*known_hosts"):
        deliver(sshd.url(state, known_hosts=empty), blob, install=False)
    assert inbox(state) == []


def test_state_folder_that_cannot_hold_an_inbox(sshd, tmp_path, blob):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(DeliveryError, match=r"cannot create .*/file/inbox.*permissions"):
        deliver(sshd.url(tmp_path / "file"), blob, install=False)


def test_no_space_is_refused_before_sending(sshd, state, tmp_path):
    """A (sparse) bundle larger than the device's free space: the remote check refuses it up front."""
    huge = tmp_path / "huge.edgepack"
    with open(huge, "wb") as fh:
        fh.truncate(shutil.disk_usage(state).free + 2**30)
    sent = []
    with pytest.raises(DeliveryError, match=r"no space on .*KiB are free.*nothing was installed"):
        deliver(sshd.url(state), huge, install=False, progress=lambda d, t: sent.append(d))
    assert inbox(state) == [] and (not sent or sent[-1] < 2**30)


def test_missing_device_command(sshd, state, tmp_path):
    bundle = add_bundle(tmp_path / "add.edgepack")
    with pytest.raises(DeliveryError, match=r"device command .*/nonexistent/edgepack-device.* was not found "
                                            r"\(nothing was sent\).*device_cmd=") as err:
        deliver(sshd.url(state), bundle, device_cmd="/nonexistent/edgepack-device")
    assert "/nonexistent/edgepack-device" in err.value.remote_error and inbox(state) == []
    # a Python without the runtime: found only once the upload is there, which is then removed
    with pytest.raises(DeliveryError, match=r"was not found \(the upload was removed\)"):
        deliver(sshd.url(state), bundle, device_cmd=f"{sys.executable} -I -S -m edgepack_runtime.cli")
    assert inbox(state) == []


def test_no_ssh_client_on_this_machine(monkeypatch, tmp_path, blob):
    monkeypatch.setenv("PATH", str(tmp_path))           # a PATH without ssh
    with pytest.raises(DeliveryError, match=r"no ssh client on this machine.*openssh-client"):
        deliver("ssh://pi@127.0.0.1:1/state", blob, install=False)
