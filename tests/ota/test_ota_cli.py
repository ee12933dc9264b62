"""``edgepack-device install | rollback | ota-status`` (argparse main, in process), exit codes and output."""
from __future__ import annotations

import json

from edgepack_runtime.cli import main
from edgepack_runtime.ota.table import TABLE
from ota_helpers import served_bias


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_install_rollback_status(tmp_path, bundles, capsys):
    state = str(tmp_path / "state")
    assert main(["install", str(bundles["v1"]), "--state-dir", state, "--json"]) == 0
    st = _json(capsys)
    assert st["state"] == "committed" and st["model"]["version"] == "1" and st["update_id"].startswith("v1-")
    assert main(["install", str(bundles["v2"]), "--state-dir", state, "--update-id", "u2"]) == 0
    out = capsys.readouterr().out
    assert "state committed  update u2  active slot b  serving adder 2" in out and "health check: 2 samples" in out
    assert main(["install", str(bundles["bad"]), "--state-dir", state, "--json"]) == 11
    st = _json(capsys)
    assert st["state"] == "rolled_back" and "self-check failed" in st["reason"] and st["active_slot"] == "b"
    assert main(["install", str(bundles["v3"]), "--state-dir", state, "--json", "--budget-ms", "0"]) == 11
    assert "over the 0 ms budget" in _json(capsys)["reason"]
    assert main(["install", str(bundles["other"]), "--state-dir", state, "--profile", "raspberry-pi-5"]) == 11
    assert "not built for device profile 'raspberry-pi-5'" in capsys.readouterr().err
    assert main(["install", str(bundles["v1"]), "--state-dir", state]) == 0           # into slot a again
    capsys.readouterr()
    assert main(["rollback", "--state-dir", state, "--json"]) == 0
    st = _json(capsys)
    assert st["state"] == "rolled_back" and st["active_slot"] == "b"
    assert main(["ota-status", "--state-dir", state, "--json"]) == 0
    st = _json(capsys)
    assert st["active_slot"] == "b" and st["model"]["version"] == "2"
    assert served_bias(tmp_path / "state" / "slots" / "active" / "bundle.edgepack") == 2.0


def test_errors_are_one_line_with_the_exit_code(tmp_path, capsys):
    state = str(tmp_path / "state")
    assert main(["rollback", "--state-dir", state]) == 11
    err = capsys.readouterr().err
    assert err.startswith("error: no previous slot to roll back to") and err.count("\n") == 1
    assert main(["install", "x.edgepack", "--state-dir", state, "--update-id", "../up"]) == 11
    assert "update id '../up' must be" in capsys.readouterr().err
    (tmp_path / "state" / "ota.json").write_text('{"format": 7}')
    assert main(["install", "x.edgepack", "--state-dir", state]) == 11
    assert "format 7 is not supported" in capsys.readouterr().err
    assert main(["ota-status", "--state-dir", state, "--json"]) == 0
    assert _json(capsys)["state"] == "unknown"


def test_table(tmp_path, capsys):
    assert main(["ota-status", "--state-dir", str(tmp_path), "--table"]) == 0
    assert capsys.readouterr().out == TABLE.render()
