"""The remote side of ``--via ssh://`` without ssh: the generated sh script run by the local ``sh`` on hostile
folder names (quoting), and the parsers of what the device prints (any text: a status dict or None)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgepack.fleet.via import Via
from edgepack.fleet.via_ssh import _MARK, _split, remote_script
from edgepack.fleet.via_ssh_errors import status_of

NASTY = st.text(st.sampled_from(list("aZ09 ._-'\"$`;|&*?()[]{}<>!#~\\%=+,:@^")), min_size=1, max_size=24)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(folder=NASTY.filter(lambda s: s not in (".", "..") and "/" not in s), data=st.binary(max_size=3000))
def test_hostile_folder_names_stay_data(tmp_path, folder, data):
    """Whatever the state folder is called, the bytes land in <it>/inbox/<name> and nowhere else."""
    base = tmp_path / "t"
    base.mkdir(exist_ok=True)
    state = base / folder
    script = remote_script(Via("ssh", str(state), host="h"), "n.edgepack", len(data), None)
    proc = subprocess.run(["sh", "-c", script], input=data, capture_output=True, cwd=base)
    assert proc.returncode == 0, proc.stderr
    landed = state / "inbox" / "n.edgepack"
    assert proc.stdout.decode() == f"{_MARK}{landed}\n"
    assert landed.read_bytes() == data
    assert os.listdir(base) == [folder] and os.listdir(state / "inbox") == ["n.edgepack"]
    landed.unlink()
    (state / "inbox").rmdir()
    state.rmdir()


def test_short_stream_leaves_nothing(tmp_path):
    script = remote_script(Via("ssh", str(tmp_path / "s"), host="h"), "n.edgepack", 100, None)
    proc = subprocess.run(["sh", "-c", script], input=b"x" * 60, capture_output=True)
    assert proc.returncode == 70 and b"stopped after 60 of 100 bytes" in proc.stderr
    assert os.listdir(tmp_path / "s" / "inbox") == []


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200) | st.builds(
    lambda d: json.dumps(d), st.dictionaries(st.text(max_size=5), st.none() | st.integers() | st.text(max_size=5))))
def test_device_output_parses_to_a_status_or_none(out):
    path, body = _split(out)
    assert path is None or out.startswith(_MARK)
    status = status_of(body)
    assert status is None or isinstance(status, dict)


def test_install_arguments_arrive_intact(tmp_path):
    """The device command gets exactly: install FILE --state-dir DIR --json --update-id ID --trust-key K..."""
    echo = [sys.executable, "-c", "import sys, json; print(json.dumps({'state': 'committed', 'argv': sys.argv[1:]}))"]
    keys = ["/k/it's $HOME `x`.pub", "-dash.pub"]
    state = tmp_path / "st ate"
    script = remote_script(Via("ssh", str(state), host="h"), "20260101T000000000000Z-m.edgepack", 5, echo, keys)
    proc = subprocess.run(["sh", "-c", script], input=b"hello", capture_output=True)
    assert proc.returncode == 0, proc.stderr
    path, body = _split(proc.stdout.decode())
    landed = f"{state}/inbox/20260101T000000000000Z-m.edgepack.install"
    assert path == landed
    assert json.loads(body)["argv"] == ["install", landed, "--state-dir", str(state), "--json", "--update-id",
                                        "via-20260101T000000000000Z-m", "--trust-key", keys[0], "--trust-key", keys[1]]
    assert os.listdir(state / "inbox") == []      # the echo did not take the file: the script removed it
