"""Commands answered twice (``ota-rollback``, ``shadow-promote``): the device's first answer (``..._started``)
always comes before the outcome, and the host's rollback keeps the outcome whatever order answers arrive in.

The device once returned the first answer from the handler, to be published after the handler returned, while
the handler's thread published the outcome: a rollback refused at once ("no previous slot") often won, and
``edgepack rollback`` then went back to waiting and reported "no answer" after its timeout. The tests hold the
first answer while the handler's thread runs, which reproduces the old loss every time."""
from __future__ import annotations

import argparse
import json
import threading

from hypothesis import given
from hypothesis import strategies as st

from edgepack.fleet.rollback import _Rollback
from edgepack_runtime.agentcli import make_agent
from edgepack_runtime.agentcli import settings as agent_settings

from .shadow_kit import CANDIDATE, SERVING, make_bundle


def _agent(tmp_path, bundle):
    ns = argparse.Namespace(bundle=str(bundle), state_dir=str(tmp_path / "state"), http_port=0,
                            telemetry_file=str(tmp_path / "events.jsonl"), telemetry_interval=3600.0)
    return make_agent(agent_settings(ns))


def _events(tmp_path) -> list[dict]:
    path = tmp_path / "events.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [r for r in rows if r["kind"] == "events"]


def _hold_first_answer(agent, started: str, thread_name: str) -> None:
    """The sink publishes ``started`` only after a running ``thread_name`` (the command's work) has ended: the
    worst case of the race between the handler's return and its thread."""
    publish = agent.sink.publish

    def held(kind, body, **kw):
        if body.get("type") == started:
            for t in [t for t in threading.enumerate() if t.name == thread_name]:
                t.join(30)
        return publish(kind, body, **kw)
    agent.sink.publish = held


def _run(agent, verb, rid, thread_name):
    """Send ``verb`` as the link would, then wait for the work it started to end."""
    agent.on_command(verb, {"request_id": rid})
    for t in [t for t in threading.enumerate() if t.name == thread_name]:
        t.join(60)


def test_a_rollback_refused_at_once_still_answers_started_first(tmp_path):
    agent = _agent(tmp_path, make_bundle(tmp_path / "v1.edgepack", "1", SERVING))
    try:
        _hold_first_answer(agent, "ota_rollback_started", "edgepack-ota-rollback")
        _run(agent, "ota-rollback", "r1", "edgepack-ota-rollback")
    finally:
        agent.stop()
    events = [e for e in _events(tmp_path) if e["type"].startswith("ota_rollback")]
    assert [(e["type"], e["request_id"]) for e in events] == [("ota_rollback_started", "r1"),
                                                              ("ota_rollback", "r1")], events
    assert events[1]["state"] == "failed" and "no previous slot" in events[1]["reason"]
    assert events[1]["seq"] > events[0]["seq"]


def test_a_shadow_promotion_answers_started_before_promoted(tmp_path):
    agent = _agent(tmp_path, make_bundle(tmp_path / "v1.edgepack", "1", SERVING))
    try:
        assert agent.shadows.install(make_bundle(tmp_path / "v2.edgepack", "2", CANDIDATE),
                                     update_id="u2")["state"] == "shadowing"
        _hold_first_answer(agent, "shadow_promote_started", "edgepack-shadow-promote")
        _run(agent, "shadow-promote", "p1", "edgepack-shadow-promote")
        answers = [(e["type"], e["request_id"]) for e in _events(tmp_path)
                   if e["type"] in ("shadow_promote_started", "shadow_promoted")]
        assert answers == [("shadow_promote_started", "p1"), ("shadow_promoted", "p1")], answers
        assert _events(tmp_path)[-1]["state"] == "committed"
    finally:
        agent.stop()


def _message(run: _Rollback, body: dict) -> None:
    run.message(f"{run.base}/cam-1/events", json.dumps(body).encode())


ANSWERS = st.sampled_from([
    {"type": "ota_rollback_started", "request_id": "r1"},
    {"type": "ota_rollback", "request_id": "r1", "state": "rolled_back", "reason": None},
    {"type": "ota_rollback", "request_id": "r1", "state": "failed", "reason": "no previous slot"},
    {"type": "bad_command", "verb": "ota-rollback", "error": "bad request_id"},
    {"type": "ota_rollback", "request_id": "other", "state": "rolled_back"},
    {"type": "pong", "echo": None}])


@given(st.lists(ANSWERS, max_size=8))
def test_the_host_keeps_the_first_outcome_whatever_the_order_of_answers(answers):
    run = _Rollback("f")
    run.seen["cam-1"] = {"state": "online"}
    run.rows["cam-1"] = {"device": "cam-1", "ok": False, "state": "sent", "reason": None, "request_id": "r1",
                         "status": None}
    for body in answers:
        _message(run, body)
    finals = [a for a in answers if a["type"] == "bad_command"
              or (a["type"] == "ota_rollback" and a["request_id"] == "r1")]
    row = run.rows["cam-1"]
    if finals:
        want = "failed" if finals[0]["type"] == "bad_command" else finals[0]["state"]
        assert row["state"] == want and row["ok"] == (want == "rolled_back"), (answers, row)
        run.wait(30)                          # returns at once: nothing left to wait for
    elif any(a["type"] == "ota_rollback_started" for a in answers):
        assert row["state"] == "started"
    else:
        assert row["state"] == "sent"


def test_the_outcome_before_started_is_kept():
    run = _Rollback("f")
    run.seen["cam-1"] = {"state": "online"}
    request = json.loads(run.ask("cam-1"))
    rid = request["request_id"]
    _message(run, {"type": "ota_rollback", "request_id": rid, "state": "failed", "reason": "no previous slot"})
    _message(run, {"type": "ota_rollback_started", "request_id": rid})       # late: delivered second
    run.wait(30)
    (row,) = run.results(30)
    assert row["state"] == "failed" and row["reason"] == "no previous slot" and not row["ok"], row
