"""Property tests of the bundle readers (issue #11): arbitrary bytes and mutated valid bundles give a
``BundleError`` (exit 6) with a one-line message, never another exception or a hang.

Targets: the manifest reader (``manifest.loads`` + ``validate``) on arbitrary bytes and on valid manifests with
a subtree replaced by arbitrary JSON; the tar reader (``Bundle.open``) on arbitrary bytes, on valid bundles with
bytes overwritten (mostly in the tar headers) or cut, and on valid bundles with forged header size fields.
``EDGEPACK_FUZZ_EXAMPLES`` sets the examples per target (default 150); a hang is an example that takes more
than ``EDGEPACK_FUZZ_HANG_S`` seconds (default 60, SIGALRM).
"""
from __future__ import annotations

import copy
import io
import json
import os
import signal
import tarfile
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edgepack_runtime import manifest as mf
from edgepack_runtime.bundle import Bundle, write_bundle
from edgepack_runtime.errors import BundleError

EXAMPLES = int(os.environ.get("EDGEPACK_FUZZ_EXAMPLES", "150"))
HANG_S = int(os.environ.get("EDGEPACK_FUZZ_HANG_S", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
WORK = Path(tempfile.mkdtemp(prefix="edgepack-fuzz-"))


class Hang(Exception):
    pass


@contextmanager
def no_hang():
    def alarm(*_):
        raise Hang(f"the reader ran for more than {HANG_S} s")
    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(HANG_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _valid_bundle() -> tuple[bytes, dict, list[int]]:
    """A small valid bundle (fake model bytes: the reader never loads them), its manifest, its header offsets."""
    files = {"models/cpu/model.tflite": b"TFL3" + bytes(range(256)) * 3, "models/ref/model.onnx": b"\x08\x07" * 70,
             "samples/sample_000.npz": b"PK" + b"\x01" * 300}
    tensor = {"name": "x", "shape": [1, 2, 3, 4], "dtype": "float32", "layout": "NCHW"}
    out = {**tensor, "name": "y"}
    io_ = {"inputs": [{"name": "x", "perm": [0, 2, 3, 1]}], "outputs": [{"name": "y", "perm": [0, 2, 3, 1]}]}
    manifest = {"model": {"name": "tiny", "version": "1", "source_sha256": "0" * 64, "opsets": {"": 17}},
                "created": "2025-01-01T00:00:00Z", "tools": {"edgepack": "0.1.0"}, "inputs": [tensor],
                "outputs": [out], "samples": [{"file": "samples/sample_000.npz"}],
                "targets": [{"name": "cpu", "format": "tflite", "file": "models/cpu/model.tflite", "precision": "fp32",
                             "io": io_, "parity": {}, "info": {}},
                            {"name": "ref", "format": "onnx", "file": "models/ref/model.onnx", "precision": "fp32",
                             "io": {k: [{**e, "perm": None} for e in v] for k, v in io_.items()},
                             "parity": {}, "info": {}}]}
    path = write_bundle(WORK / "valid.edgepack", manifest, files)
    with tarfile.open(path) as tar:
        headers = [m.offset for m in tar.getmembers()]
    return path.read_bytes(), Bundle.open(path).manifest, headers


VALID, MANIFEST, HEADERS = _valid_bundle()
_case = iter(range(10 ** 9))


def _open_bytes(data: bytes) -> None:
    """``Bundle.open`` on ``data`` written to a file: success or a one-line BundleError, nothing else."""
    path = WORK / f"case-{next(_case)}.edgepack"
    path.write_bytes(data)
    try:
        with no_hang():
            Bundle.open(path)
    except BundleError as exc:
        _check_message(exc)
    finally:
        path.unlink()


def _check_message(exc: BundleError) -> None:
    text = str(exc)
    assert text and "\n" not in text and len(text) < 2000, text[:3000]
    assert exc.exit_code == 6


def _read_manifest(data: bytes) -> None:
    try:
        with no_hang():
            mf.validate(mf.loads(data))
    except BundleError as exc:
        _check_message(exc)


# --- the manifest reader ---------------------------------------------------------------------------------------
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
                    max_leaves=20)


@FUZZ
@given(st.binary(max_size=4096))
def test_manifest_reader_on_arbitrary_bytes(data):
    _read_manifest(data)


@FUZZ
@given(st.one_of(st.text(alphabet="[]{}\",:0123456789ae- \\", max_size=3000),
                 st.integers(1, 100_000).map(lambda n: "[" * n + "]" * n),
                 st.integers(1, 100_000).map(lambda n: '{"a":' * n + "1" + "}" * n)))
def test_manifest_reader_on_bracket_soup(text):
    _read_manifest(text.encode())


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


PATHS = [p for p in _paths(MANIFEST) if p]
_SAME: dict = {}


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(PATHS), JSON | st.sampled_from(["x", -1, 1.5, [], {}, None, True])),
                min_size=1, max_size=3))
@example([(("inputs", 0, "dtype"), [])])                          # found: an unhashable dtype was a TypeError
@example([(("targets", 0, "io", "inputs", 0, "perm"), [True, False, 1, 0])])
@example([(("created",), _SAME), (("created", "name"), _SAME)])  # found: one {} object twice made a cycle
def test_manifest_reader_on_mutated_valid_manifests(edits):
    doc = copy.deepcopy(MANIFEST)
    for path, value in edits:
        node = doc
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = copy.deepcopy(value)   # sampled_from hands out one {} object: two edits could nest it
        except (KeyError, IndexError, TypeError):
            continue
    _read_manifest(json.dumps(doc).encode())


# --- the tar reader --------------------------------------------------------------------------------------------
@FUZZ
@given(st.binary(max_size=8192))
def test_tar_reader_on_arbitrary_bytes(data):
    _open_bytes(data)


@FUZZ
@given(st.binary(min_size=512, max_size=512))
def test_tar_reader_on_a_random_first_header_before_a_valid_tail(header):
    _open_bytes(header + VALID[512:])


_header_offset = st.sampled_from(HEADERS).flatmap(lambda h: st.integers(h, h + 511))
_any_offset = st.integers(0, len(VALID) - 1)


@FUZZ
@given(st.lists(st.tuples(_header_offset | _any_offset, st.binary(min_size=1, max_size=12)), min_size=1, max_size=8),
       st.none() | st.integers(0, len(VALID)))
def test_tar_reader_on_mutated_valid_bundles(edits, cut):
    data = bytearray(VALID)
    for offset, patch in edits:
        data[offset:offset + len(patch)] = patch
    _open_bytes(bytes(data[:cut] if cut is not None else data))


def _fix_checksum(raw: bytearray, h: int) -> None:
    checksum = sum(raw[h:h + 148]) + 8 * 32 + sum(raw[h + 156:h + 512])
    raw[h + 148:h + 156] = b"%06o\0 " % checksum


@FUZZ
@given(st.sampled_from(HEADERS), st.integers(0, 2 ** 88 - 1) | st.sampled_from([10 ** 15, 2 ** 63, 2 ** 64 + 1]),
       st.booleans())
def test_tar_reader_on_forged_sizes(header, size, base256):
    """Sizes far past the file, in octal or GNU base-256, with a correct checksum (so tarfile believes them)."""
    raw = bytearray(VALID)
    if base256 or size >= 8 ** 11:
        raw[header + 124:header + 136] = b"\x80" + (size % 2 ** 88).to_bytes(11, "big")
    else:
        raw[header + 124:header + 136] = b"%011o\0" % size
    _fix_checksum(raw, header)
    _open_bytes(bytes(raw))


@FUZZ
@given(st.dictionaries(st.sampled_from(["size", "path", "linkpath", "uid", "mtime", "hdrcharset", "GNU.sparse.size",
                                        "GNU.sparse.map", "GNU.sparse.major", "comment"]),
                       st.text(max_size=40) | st.integers(-10 ** 20, 10 ** 20).map(str), min_size=1, max_size=4))
@example({"path": "\n"})                  # found: a member name with a newline broke the one-line message
@example({"size": "-6144"})               # found: a negative size was an OSError
def test_tar_reader_on_hostile_pax_headers(pax):
    raw = io.BytesIO()
    data = VALID_MEMBERS["models/ref/model.onnx"]
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in VALID_MEMBERS.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            if content is data:
                info.pax_headers = pax
            try:
                tar.addfile(info, io.BytesIO(content))
            except (ValueError, UnicodeError, tarfile.TarError):
                return                   # tarfile refuses to write it: nothing to read
    _open_bytes(raw.getvalue())


with tarfile.open(fileobj=io.BytesIO(VALID)) as _tar:
    VALID_MEMBERS = {m.name: _tar.extractfile(m).read() for m in _tar.getmembers()}


def test_the_valid_bundle_opens():
    """The fixtures themselves are sound: the unmutated bundle and manifest are accepted."""
    path = WORK / "plain.edgepack"
    path.write_bytes(VALID)
    assert Bundle.open(path).manifest == MANIFEST
    mf.validate(copy.deepcopy(MANIFEST))


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "--hypothesis-show-statistics"]))
