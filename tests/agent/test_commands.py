"""The command table without a broker: registry rules, each class of validation error, payload bounds, and
the README's table kept in step with the registry."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgepack_runtime.agentcmds import COMMANDS
from edgepack_runtime.commands import (MAX_COMMAND_BYTES, Arg, BadCommand, Command, Registry, UnknownVerb,
                                       parse_payload, validate)

README = Path(__file__).resolve().parents[2] / "runtime" / "README.md"
BEGIN, END = "<!-- commands table: begin -->", "<!-- commands table: end -->"


def _refusal(fn, *args) -> BadCommand:
    with pytest.raises(BadCommand) as info:
        fn(*args)
    return info.value


def test_the_agent_table_lists_its_verbs_and_schemas():
    assert COMMANDS.verbs == ["config", "ota-cancel", "ota-rollback", "ota-status", "ping", "shadow-promote",
                              "shadow-status", "shadow-stop", "telemetry"]
    schemas = {c.verb: {name: (arg.kind, arg.required) for name, arg in c.schema.items()} for c in COMMANDS}
    assert schemas == {"config": {"telemetry_interval": ("number", True)}, "ping": {"echo": ("any", False)},
                       "telemetry": {}, "ota-cancel": {}, "ota-rollback": {"request_id": ("string", False)},
                       "ota-status": {}, "shadow-status": {}, "shadow-stop": {"request_id": ("string", False)},
                       "shadow-promote": {"request_id": ("string", False)}}
    assert all(c.doc for c in COMMANDS)


def test_registering_a_verb_twice_raises():
    table = Registry()

    @table.command("ping")
    def first(ctx, args):
        """First."""
    with pytest.raises(ValueError, match="'ping' is already registered.*first"):
        table.add(Command("ping", {}, lambda ctx, args: None))
    with pytest.raises(ValueError, match="already registered"):
        Registry([Command("x", {}, print), Command("x", {}, print)])
    assert table.verbs == ["ping"] and table.dispatch("ping", {}, None) is None


@pytest.mark.parametrize("verb", ["", "Ping", "ota/flash", "cmd+", "#", "a" * 40])
def test_a_verb_must_be_one_plain_topic_level(verb):
    with pytest.raises(ValueError, match="must match"):
        Command(verb, {}, print)


def test_schemas_are_checked_when_declared():
    with pytest.raises(ValueError, match="kind"):
        Arg("float")
    with pytest.raises(ValueError, match="numbers only"):
        Arg("string", gt=0)
    with pytest.raises(ValueError, match="strings and arrays"):
        Arg("number", max_len=3)
    with pytest.raises(TypeError, match="cmdschema.Arg"):
        Command("x", {"n": int}, print)


def test_unknown_verb_lists_the_known_ones():
    exc = _refusal(COMMANDS.dispatch, "reboot", {}, None)
    assert isinstance(exc, UnknownVerb)
    event = exc.event("reboot")
    assert event["type"] == "unknown_command" and event["known"] == COMMANDS.verbs
    assert "reboot" in event["error"] and ", ".join(COMMANDS.verbs) in event["error"]


SCHEMA = {"interval": Arg("number", required=True, gt=0, le=60), "mode": Arg("string", choices=("a", "b")),
          "count": Arg("integer", ge=1, lt=10), "tags": Arg("array", max_len=2), "name": Arg("string", max_len=3),
          "flag": Arg("boolean", default=False)}


@pytest.mark.parametrize("body,fields,needle", [
    ({"interval": 1, "colour": "red", "size": 2}, ["colour", "size"], "unknown fields 'colour', 'size' (known: "),
    ({}, ["interval"], "missing field 'interval' (a number in (0, 60])"),
    ({"interval": "soon"}, ["interval"], "field 'interval' must be a number in (0, 60], not str \"soon\""),
    ({"interval": True}, ["interval"], "not bool true"),
    ({"interval": 0}, ["interval"], "must be a number in (0, 60], not int 0"),
    ({"interval": 61.5}, ["interval"], "not float 61.5"),
    ({"interval": 1, "count": 2.0}, ["count"], "field 'count' must be an integer in [1, 10)"),
    ({"interval": 1, "count": 10}, ["count"], "not int 10"),
    ({"interval": 1, "mode": "c"}, ["mode"], 'field \'mode\' must be a string among "a", "b", not str "c"'),
    ({"interval": 1, "tags": [1, 2, 3]}, ["tags"], "a JSON array of at most 2 items"),
    ({"interval": 1, "name": "long"}, ["name"], "a string of at most 3 characters"),
    ({"interval": 1, "flag": 1}, ["flag"], "must be true or false, not int 1"),
    ({"x": 1, "interval": -1, "flag": "no"}, ["x", "interval", "flag"], "; "),   # every problem at once
])
def test_each_validation_error_names_the_field_and_the_problem(body, fields, needle):
    exc = _refusal(validate, SCHEMA, body)
    assert exc.fields == fields and needle in str(exc)
    event = exc.event("v")
    assert event["type"] == "bad_command" and event["verb"] == "v" and event["fields"] == fields


def test_valid_arguments_pass_with_defaults_filled():
    assert validate(SCHEMA, {"interval": 60, "count": 1}) == {"interval": 60, "count": 1, "flag": False}
    assert validate({}, {}) == {}
    with pytest.raises(BadCommand, match="unknown field 'a' \\(known: none\\)"):
        validate({}, {"a": 1})
    with pytest.raises(BadCommand, match="unknown fields 1, 'b'"):          # a caller's dict, not JSON
        validate({}, {"b": 1, 1: 2})


@pytest.mark.parametrize("raw,needle", [
    (b"x" * (MAX_COMMAND_BYTES + 1), "exceeds"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"{not json", "not JSON"),
    (b"[1, 2]", "must be a JSON object, not list [1, 2]"),
    (b'"text"', "must be a JSON object, not str"),
    (b"null", "not NoneType null"),
    (b"[" * 30000 + b"]" * 30000, "nests deeper than 32 levels"),        # 60 KB: no RecursionError
    (b'{"a": ' * 40 + b"1" + b"}" * 40, "nests deeper"),
    (b'{"a": NaN}', "NaN is not a JSON number"),
    (b'{"a": -Infinity}', "-Infinity"),
    (b'{"a": 1e400}', "out of range"),
    (b'{"a": ' + b"9" * 5000 + b"}", "not JSON"),                        # past int's digit limit
    (b'{"a": 1, "a": 2}', "duplicate field 'a'"),
    (b" ", "not JSON"),
])
def test_malformed_payloads_are_bad_commands(raw, needle):
    assert needle in str(_refusal(parse_payload, raw))


def test_payload_edge_cases_that_are_fine():
    assert parse_payload(b"") == {}
    assert parse_payload(b'{"s": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\"{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{"}') \
        == {"s": "[" * 44 + '"' + "{" * 36}                             # brackets inside strings do not count
    deep = {"a": 1}
    for _ in range(31):
        deep = {"a": deep}
    assert parse_payload(json.dumps(deep).encode()) == deep           # 32 levels: the limit itself
    assert parse_payload(memoryview(b'{"n": 1}')) == {"n": 1}


def test_render_matches_the_readme():
    text = README.read_text()
    assert BEGIN in text and END in text, f"{README} needs the markers {BEGIN} / {END}"
    section = text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"
    assert section == COMMANDS.render(), "regenerate with: edgepack-device agent --list-commands"


def test_render_escapes_pipes_and_says_none():
    table = Registry([Command("x", {"a": Arg("string", doc="a|b")}, print, "one | two")])
    row = table.render().splitlines()[2]
    assert row == "| `x` | `a` (optional): a string, a\\|b | one \\| two |"
    assert "| none |" in Registry([Command("y", {}, print, "d")]).render()


def test_command_modules_import_nothing_heavy():
    code = ("import sys, edgepack_runtime.agentcmds, edgepack_runtime.commands, edgepack_runtime.payload; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'edgepack', 'paho', 'numpy', 'onnx'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_table_can_be_printed(capsys):
    from edgepack_runtime.cli import main
    assert main(["agent", "--list-commands"]) == 0                   # no bundle needed
    assert capsys.readouterr().out == COMMANDS.render()
    out = subprocess.run([sys.executable, "-m", "edgepack_runtime.agentcmds"], capture_output=True, text=True,
                         check=True)
    assert out.stdout == COMMANDS.render() and re.search(r"^\| `ping` \|", out.stdout, re.M)
