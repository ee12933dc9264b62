"""`edgepack flash BUNDLE --via ssh://...` end to end (CliRunner): the CLI, the delivery and the device's install."""
from __future__ import annotations

from typer.testing import CliRunner

from edgepack.cli.main import app

from .bundles import DEVICE, active_bias, add_bundle

RUNNER = CliRunner()


def flash(*args):
    result = RUNNER.invoke(app, ["flash", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


def test_flash_via_ssh_installs_and_reports_committed(sshd, device, tmp_path):
    v2 = add_bundle(tmp_path / "v2.edgepack", (1.0, 2.0), version="2")
    code, out, err = flash(v2, "--via", sshd.url(device, device_cmd=DEVICE.replace(" ", "%20")))
    assert code == 0, err
    assert "device state: committed" in out and active_bias(device) == [1.0, 2.0]


def test_flash_via_errors_are_one_line_with_exit_10(sshd, tmp_path):
    bundle = add_bundle(tmp_path / "v2.edgepack")
    code, out, err = flash(bundle, "--via", "scp://pi@cam/x")
    assert code == 10 and "accepted forms: dir:PATH or ssh://" in err and len(err.strip().splitlines()) <= 3
    code, out, err = flash(bundle, "--via", sshd.url(tmp_path, key=sshd.other_key))
    assert code == 10 and "authentication failed" in err
