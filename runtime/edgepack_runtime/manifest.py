"""Manifest schema of an edgepack bundle: constants, (de)serialisation and structural checks.

The full format is described in ``edgepack_runtime.bundle`` and ``runtime/README.md``. This module only
knows about the JSON document; it never touches files.
"""
from __future__ import annotations

import json
import re

from .errors import BundleError
from .payload import too_deep

FORMAT = "edgepack-bundle"
FORMAT_VERSION = "1.0"
SUPPORTED_MAJOR = 1
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "signature.json"
RESERVED_NAMES = frozenset({MANIFEST_NAME, SIGNATURE_NAME})
DTYPES = frozenset({"float32", "float16", "float64", "int8", "uint8", "int16", "uint16",
                    "int32", "uint32", "int64", "uint64", "bool"})
LAYOUTS = frozenset({"NCHW", "NHWC", "NCW", "NWC", "NCDHW", "NDHWC"})

MAX_DEPTH = 64          # brackets nested in manifest.json; real manifests use fewer than 10
_REBUILD = "rebuild the bundle with `edgepack build`"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def dumps(manifest: dict) -> bytes:
    """Canonical bytes of a manifest: UTF-8 JSON, keys sorted, indent 1, trailing newline."""
    return (json.dumps(manifest, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def loads(data: bytes) -> dict:
    """Parse manifest bytes; BundleError if they are not a UTF-8 JSON object nested at most ``MAX_DEPTH`` deep."""
    try:
        text = data.decode("utf-8")
        if too_deep(text, MAX_DEPTH):     # counted before json.loads, which would exhaust the recursion limit
            raise BundleError(f"manifest.json nests deeper than {MAX_DEPTH} levels; it is not an edgepack "
                              "manifest", hint=_REBUILD)
        doc = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BundleError(f"manifest.json is not valid UTF-8 JSON: {exc}", hint=_REBUILD) from None
    if not isinstance(doc, dict):
        raise BundleError("manifest.json must hold a JSON object", hint=_REBUILD)
    return doc


def check_relpath(path: str) -> str:
    """Return ``path`` if it is a safe relative POSIX member path, else raise BundleError."""
    bad = None
    if not isinstance(path, str) or not path:
        bad = "empty or not a string"
    elif path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        bad = "absolute path"
    elif "\\" in path or _CONTROL.search(path):
        bad = "backslash or control character (NUL, newline, ...) in path"
    elif any(part in ("", ".", "..") for part in path.split("/")):
        bad = "'..', '.' or empty path component"
    if bad:
        raise BundleError(f"unsafe bundle member path {path!r}: {bad}",
                          hint="bundles may only hold relative paths inside the bundle")
    return path


def check_version(manifest: dict) -> None:
    """Reject manifests of another format or of an unsupported MAJOR format version."""
    if manifest.get("format") != FORMAT:
        raise BundleError(f"not an edgepack bundle: manifest format is {manifest.get('format')!r}, "
                          f"expected {FORMAT!r}", hint=_REBUILD)
    version = manifest.get("format_version")
    match = re.match(r"^(\d+)\.(\d+)$", version) if isinstance(version, str) else None
    if not match:
        raise BundleError(f"manifest format_version {version!r} is not 'MAJOR.MINOR'", hint=_REBUILD)
    if int(match.group(1)) != SUPPORTED_MAJOR:
        raise BundleError(f"bundle format version {version} is not supported by this runtime "
                          f"(it reads {SUPPORTED_MAJOR}.x)",
                          hint="upgrade edgepack-runtime or rebuild the bundle with a matching edgepack")


def validate(manifest: dict) -> dict:
    """Check required keys, types and cross-references; return ``manifest`` unchanged."""
    check_version(manifest)
    _need(manifest, "model", dict, "manifest")
    for key in ("name", "version", "source_sha256"):
        _need(manifest["model"], key, str, "model")
    _need(manifest["model"], "opsets", dict, "model")
    _need(manifest, "created", str, "manifest")
    _need(manifest, "tools", dict, "manifest")
    ranks = {}
    for kind in ("inputs", "outputs"):
        specs = _need(manifest, kind, list, "manifest")
        ranks[kind] = {}
        for i, spec in enumerate(specs):
            ranks[kind][_need(spec, "name", str, f"{kind}[{i}]")] = _check_tensor(spec, f"{kind}[{i}]")
        names = [s["name"] for s in specs]
        if len(set(names)) != len(names):
            raise BundleError(f"manifest {kind} has duplicate names: {names}", hint=_REBUILD)
    files = _need(manifest, "files", dict, "manifest")
    for rel, entry in files.items():
        _check_file_entry(rel, entry)
    targets = _need(manifest, "targets", list, "manifest")
    if not targets:
        raise BundleError("manifest lists no targets", hint=_REBUILD)
    for i, target in enumerate(targets):
        _check_target(manifest, target, f"targets[{i}]", ranks)
    for i, sample in enumerate(_need(manifest, "samples", list, "manifest")):
        _need_file(manifest, _need(sample, "file", str, f"samples[{i}]"), f"samples[{i}]")
    if "signature" not in manifest:
        raise BundleError("manifest has no 'signature' key (null when unsigned)", hint=_REBUILD)
    return manifest


def _need(obj, key, kind, where):
    if not isinstance(obj, dict) or key not in obj:
        raise BundleError(f"manifest is missing {where}.{key}", hint=_REBUILD)
    if not isinstance(obj[key], kind) or (kind is int and isinstance(obj[key], bool)):
        raise BundleError(f"manifest {where}.{key} must be {kind.__name__}, "
                          f"got {type(obj[key]).__name__}", hint=_REBUILD)
    return obj[key]


def _check_tensor(spec, where) -> int:
    shape = _need(spec, "shape", list, where)
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= -1 for d in shape):
        raise BundleError(f"manifest {where}.shape must be a list of ints (-1 = any), got {shape}",
                          hint=_REBUILD)
    if not isinstance(spec.get("dtype"), str) or spec["dtype"] not in DTYPES:
        raise BundleError(f"manifest {where}.dtype {spec.get('dtype')!r} is not one of "
                          f"{sorted(DTYPES)}", hint=_REBUILD)
    if spec.get("layout") is not None and not isinstance(spec["layout"], str):
        raise BundleError(f"manifest {where}.layout must be a string or null", hint=_REBUILD)
    return len(shape)


def _check_file_entry(rel, entry):
    check_relpath(rel)
    if rel in RESERVED_NAMES:
        raise BundleError(f"manifest files must not list {rel}", hint=_REBUILD)
    if not isinstance(entry, dict) or not _HEX64.match(str(entry.get("sha256", ""))):
        raise BundleError(f"manifest files[{rel!r}].sha256 must be 64 lowercase hex digits",
                          hint=_REBUILD)
    size = entry.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BundleError(f"manifest files[{rel!r}].size must be a non-negative int", hint=_REBUILD)


def _need_file(manifest, rel, where):
    if rel not in manifest["files"]:
        raise BundleError(f"manifest {where} refers to {rel!r}, which is not listed in files",
                          hint=_REBUILD)


def _check_target(manifest, target, where, ranks):
    for key in ("name", "format", "file", "precision"):
        _need(target, key, str, where)
    _need_file(manifest, target["file"], where)
    io = _need(target, "io", dict, where)
    for kind in ("inputs", "outputs"):
        entries = _need(io, kind, list, f"{where}.io")
        public = sorted(s["name"] for s in manifest[kind])
        got = [e.get("name") if isinstance(e, dict) else None for e in entries]
        if not all(isinstance(n, str) for n in got) or sorted(got) != public:
            raise BundleError(f"manifest {where}.io.{kind} names {got} do not match the public "
                              f"{kind} {public}", hint=_REBUILD)
        for entry in entries:
            perm = entry.get("perm")
            rank = ranks[kind][entry["name"]]
            ok = isinstance(perm, list) and all(isinstance(p, int) and not isinstance(p, bool) for p in perm)
            if perm is not None and not (ok and sorted(perm) == list(range(rank))):
                raise BundleError(f"manifest {where}.io perm {perm} of {entry['name']!r} is not a "
                                  f"permutation of {rank} axes", hint=_REBUILD)
