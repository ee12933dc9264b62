"""Properties of the command payload parser and validator: whatever arrives, the only exception is
``BadCommand``, and valid payloads come through unchanged."""
from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgepack_runtime.agentcmds import COMMANDS
from edgepack_runtime.commands import MAX_COMMAND_BYTES, MAX_DEPTH, BadCommand, parse_payload, validate
from edgepack_runtime.payload import nesting_depth

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner,
                                                                                                 max_size=4),
                           max_leaves=30)
any_values = st.recursive(scalars | st.floats(), lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(), inner, max_size=4), max_leaves=30)   # NaN and inf too
jsonish = st.text(alphabet='[]{}",:\\ 0123456789.eE-+truefalsnNI\x00\u00e9\ud800', max_size=200)


def depth(value) -> int:
    if isinstance(value, (list, dict)):
        return 1 + max((depth(v) for v in (value.values() if isinstance(value, dict) else value)), default=0)
    return 0


def finite(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, dict)):
        return all(finite(v) for v in (value.values() if isinstance(value, dict) else value))
    return True


def outcome(fn, *args):
    """The result, or the BadCommand; any other exception fails the test."""
    try:
        return fn(*args)
    except BadCommand as exc:
        assert str(exc) and exc.event("v")["type"] in ("bad_command", "unknown_command")
        return exc


@SETTINGS
@given(st.binary(max_size=512) | jsonish.map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_arbitrary_bytes_parse_to_an_object_or_a_bad_command(raw):
    body = outcome(parse_payload, raw)
    assert isinstance(body, (dict, BadCommand))
    for command in COMMANDS:
        if isinstance(body, dict):
            assert isinstance(outcome(validate, command.schema, body), (dict, BadCommand))


@SETTINGS
@given(any_values)
def test_arbitrary_json_values_round_trip_or_are_refused(value):
    raw = json.dumps(value).encode()
    body = outcome(parse_payload, raw)
    valid = isinstance(value, dict) and depth(value) <= MAX_DEPTH and len(raw) <= MAX_COMMAND_BYTES
    if valid and finite(value):
        assert body == value
    else:
        assert isinstance(body, BadCommand)
    for command in COMMANDS:                        # the validator too takes anything without crashing
        assert isinstance(outcome(validate, command.schema, value), (dict, BadCommand))
        assert isinstance(outcome(COMMANDS.dispatch, "no-such-verb", value, None), BadCommand)


@SETTINGS
@given(json_values)
def test_the_depth_scan_agrees_with_the_structure(value):
    assert nesting_depth(json.dumps(value)) == depth(value)


@settings(max_examples=50, deadline=None)
@given(st.integers(MAX_DEPTH + 1, 40_000), st.sampled_from("[{"), st.booleans())
def test_deep_nesting_is_refused_before_parsing(n, bracket, closed):
    raw = (bracket * n + ("" if not closed else ("]" if bracket == "[" else "}") * n)).encode()[:MAX_COMMAND_BYTES]
    exc = outcome(parse_payload, raw)
    assert isinstance(exc, BadCommand) and "nests deeper" in str(exc)


class Recorder:
    interval = None

    def publish_telemetry(self):
        self.published = True


@SETTINGS
@given(st.one_of(
    st.tuples(st.just("ping"), st.fixed_dictionaries({}, optional={"echo": json_values})),
    st.tuples(st.just("telemetry"), st.just({})),
    st.tuples(st.just("config"), st.fixed_dictionaries({"telemetry_interval": st.integers(1, 86400) | st.floats(
        0.1, 86400)}))))
def test_valid_commands_round_trip_to_their_handlers(verb_body):
    verb, body = verb_body
    parsed = parse_payload(json.dumps(body).encode())
    assert parsed == body
    agent = Recorder()
    reply = COMMANDS.dispatch(verb, parsed, agent)
    if verb == "ping":
        assert reply == {"type": "pong", "echo": body.get("echo")}
    elif verb == "config":
        assert agent.interval == body["telemetry_interval"] and reply["telemetry_interval"] == agent.interval
    else:
        assert reply is None and agent.published
