"""ota.json is untrusted on-disk input: whatever bytes it holds, ``store.parse`` returns a valid document or
raises ``StateError``, nothing else; valid documents survive a save/parse round trip; writes are atomic."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgepack_runtime.ota import store
from edgepack_runtime.ota.errors import NewerStateError, StateError
from edgepack_runtime.ota.table import STATES

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=4), max_leaves=20)
slot = st.sampled_from(["a", "b"])
record = st.none() | st.fixed_dictionaries({"model": st.none() | st.fixed_dictionaries(
    {"name": st.text(max_size=10), "version": st.text(max_size=5)}), "update_id": st.none() | st.text(max_size=10)})
valid_docs = st.fixed_dictionaries({
    "format": st.just(1), "state": st.sampled_from(STATES), "update_id": st.none() | st.text(max_size=64),
    "source": st.none() | st.text(max_size=50), "target_slot": st.none() | slot, "restore_to": st.none() | slot,
    "budget_ms": st.none() | st.floats(0, 1e6), "reason": st.none() | st.text(max_size=100),
    "resumes": st.dictionaries(st.sampled_from(STATES), st.integers(0, 100), max_size=3),
    "slots": st.fixed_dictionaries({"a": record, "b": record}), "meta": st.dictionaries(st.text(max_size=5), json_values,
                                                                                         max_size=3),
    "history": st.lists(st.fixed_dictionaries({"state": st.sampled_from(STATES)}), max_size=3)})


def _parse_or_state_error(raw: bytes):
    try:
        doc = store.parse(raw)
    except StateError as exc:
        assert str(exc) and exc.hint
        return None
    assert doc["format"] == 1 and doc["state"] in STATES
    assert doc["target_slot"] in (None, "a", "b") and doc["restore_to"] in (None, "a", "b")
    assert set(doc["slots"]) == {"a", "b"}
    return doc


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_state_error(raw):
    _parse_or_state_error(raw)


@given(valid_docs, st.dictionaries(st.sampled_from(sorted(store.empty())), json_values, max_size=3))
def test_any_field_values_parse_or_state_error(doc, changes):
    _parse_or_state_error(json.dumps({**doc, **changes}).encode())


@given(valid_docs)
def test_valid_documents_round_trip(doc):
    parsed = store.parse(json.dumps(doc).encode())
    assert {k: parsed[k] for k in doc} == doc
    again = store.parse(store.dumps(parsed))
    assert again == parsed


@given(st.integers(2, 10 ** 6) | st.integers(-(10 ** 6), 0))
def test_other_formats_are_refused_as_newer_or_corrupt(fmt):
    raw = json.dumps({"format": fmt, "state": "idle"}).encode()
    try:
        store.parse(raw)
    except NewerStateError as exc:
        assert f"format {fmt} is not supported" in exc.message
    else:
        raise AssertionError("parsed a foreign format")


def test_deep_and_huge_documents_are_refused_cheaply():
    for raw in (b"[" * 100_000, b'{"format": 1, "meta": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                b" " * (store.MAX_BYTES + 1), b'{"format": 1, "budget_ms": NaN}'):
        try:
            store.parse(raw)
        except StateError:
            continue
        raise AssertionError(raw[:40])


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(valid_docs)
def test_save_writes_atomically_and_leaves_no_temporary(tmp_path, doc):
    path = tmp_path / "ota.json"
    store.save(path, dict(doc))
    assert store.load(path)["state"] == doc["state"]
    assert [p.name for p in tmp_path.iterdir()] == ["ota.json"]
