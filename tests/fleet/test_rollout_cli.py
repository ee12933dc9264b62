"""edgepack rollout's refusals, each before anything is sent (no broker needed): bad plans and limits, a state
file that exists, is not a rollout or is in use, a changed bundle on --resume, --require-shadow without the
shadow module; and --resume of a finished rollout, which only reports it."""
from __future__ import annotations

import json
import sys

from typer.testing import CliRunner

from edgepack.cli.main import app
from edgepack.fleet.rollout import RolloutSettings, describe
from edgepack.fleet.rollout_state import StateLock, new_state, plan_waves, save

from .rollout_kit import make

BROKER = "mqtt://127.0.0.1:9"      # nothing listens there: these runs must stop before connecting


def run(*args):
    return CliRunner().invoke(app, ["rollout", *map(str, args)])


def test_bad_plans_and_limits_are_refused_with_what_to_change(tmp_path):
    bundle = make(tmp_path / "v2.edgepack", "2")
    base = [bundle, "--fleet", "f", "--broker", BROKER, "--state", tmp_path / "s.json"]
    for extra, words in [(["--waves", "50%,25%"], "--waves must increase"), (["--canary", "0%"], "--canary must be"),
                         (["--waves", "lots"], "percentage like 10%"), (["--max-drift", "2"], "--max-drift must be"),
                         (["--max-p95-ratio", "0"], "--max-p95-ratio must be"), (["--soak", "-1"], "--soak must be"),
                         (["--max-error-rate", "nan"], "--max-error-rate must be")]:
        result = run(*base, *extra)
        assert result.exit_code == 1 and words in result.stderr, (extra, result.stderr)
    assert not (tmp_path / "s.json").exists()
    result = run(bundle, "--broker", BROKER)
    assert result.exit_code == 11 and "needs BUNDLE, --fleet and --broker" in result.stderr
    result = run(tmp_path / "nope.edgepack", "--fleet", "f", "--broker", BROKER, "--state", tmp_path / "s.json")
    assert result.exit_code != 0 and "not a bundle file" in result.stderr


def _finished(tmp_path, status="completed"):
    bundle = make(tmp_path / "v2.edgepack", "2")
    doc = new_state(bundle=describe(bundle), fleet="f", broker=BROKER, settings=RolloutSettings().to_doc(),
                    waves=plan_waves(["a", "b"], 0.5, [1.0]), skipped=[])
    doc["status"] = status
    for w in doc["waves"]:
        w["state"] = "passed"
    path = tmp_path / "s.json"
    save(path, doc)
    return bundle, path, doc


def test_state_files_that_exist_are_foreign_or_busy_are_refused(tmp_path):
    bundle, path, doc = _finished(tmp_path)
    result = run(bundle, "--fleet", "f", "--broker", BROKER, "--state", path)
    assert result.exit_code == 1 and "exists already" in result.stderr and "--resume" in result.stderr
    result = run("--resume", "--state", path, "--json")              # finished: reported, nothing done
    assert result.exit_code == 0 and json.loads(result.stdout)["id"] == doc["id"]
    with StateLock(path):
        result = run("--resume", "--state", path)
    assert result.exit_code == 1 and "another edgepack rollout is running" in result.stderr
    junk = tmp_path / "junk.json"
    for text in ("{", "[]", json.dumps({**doc, "schema": 99}), json.dumps({**doc, "waves": [{"state": "odd"}]})):
        junk.write_text(text)
        result = run("--resume", "--state", junk)
        assert result.exit_code == 1 and str(junk.name) in result.stderr, result.stderr
    result = run("--resume")
    assert result.exit_code == 11 and "--resume needs --state" in result.stderr


def test_resume_refuses_a_changed_bundle_and_a_stopped_rollout_exits_11(tmp_path):
    bundle, path, doc = _finished(tmp_path, status="running")
    doc["waves"][-1]["state"] = "planned"
    save(path, doc)
    make(bundle, "3")                                                  # another bundle at the same path
    result = run("--resume", "--state", path)
    assert result.exit_code == 1 and "missing or changed since the rollout started" in result.stderr
    _, path, doc = _finished(tmp_path / "b", status="stopped")
    result = run("--resume", "--state", path)
    assert result.exit_code == 11 and "rollout stopped" in result.stderr


def test_require_shadow_says_when_shadow_testing_is_not_there(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "edgepack.fleet.shadow", None)     # as in an installation without it
    bundle = make(tmp_path / "v2.edgepack", "2")
    result = run(bundle, "--fleet", "f", "--broker", BROKER, "--state", tmp_path / "s.json", "--require-shadow", "60")
    assert result.exit_code == 1 and "shadow testing is not available in this installation yet" in result.stderr
    assert not (tmp_path / "s.json").exists()
