"""Hostile files on the device side (issue #11): each gives one readable line and the error class's exit code,
never a traceback, exit 1 or a huge message."""
from __future__ import annotations

import os
import sys
import tarfile

import numpy as np
import pytest

import rt_helpers as h
from edgepack_runtime.bundle import Bundle, unpack_bundle, write_bundle
from edgepack_runtime.cli import main
from edgepack_runtime.errors import BundleError


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err[:500]
    return err


@pytest.fixture
def folder(add_bundle, tmp_path):
    return unpack_bundle(add_bundle, tmp_path / "unpacked")


# --- manifest nesting ------------------------------------------------------------------------------------------
def _deep_folder(tmp_path):
    d = tmp_path / "deep"
    d.mkdir()
    (d / "manifest.json").write_text("[" * 200_000 + "]" * 200_000)
    return d


@pytest.mark.parametrize("command", ["check", "info"])
def test_a_manifest_nested_200k_deep_is_a_bundle_error(tmp_path, capsys, command):
    code, _, err = _cli(capsys, command, _deep_folder(tmp_path))
    assert code == 6 and "nests deeper than" in _one_line(err) and "manifest.json" in err


def test_a_deep_manifest_in_a_tar_is_a_bundle_error(tmp_path):
    import io
    out = tmp_path / "deep.edgepack"
    data = b"{" + b'"a":[' * 100_000 + b"]" * 100_000 + b"}"
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(BundleError, match="nests deeper than"):
        Bundle.open(out)


def test_the_agent_refuses_a_deep_manifest_with_exit_6(tmp_path, capsys):
    code, _, err = _cli(capsys, "agent", "--bundle", _deep_folder(tmp_path), "--http-port", "0")
    assert code == 6 and "nests deeper than" in _one_line(err)


# --- .npy inputs -----------------------------------------------------------------------------------------------
pytest.importorskip("ai_edge_litert")


def test_an_empty_npy_is_an_input_error_naming_the_file(add_bundle, tmp_path, capsys):
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    code, _, err = _cli(capsys, "run", add_bundle, "--input", f"x={empty}")
    assert code == 7 and str(empty) in _one_line(err) and "empty" in err


def test_an_npy_claiming_10_to_the_15_elements_is_an_input_error(add_bundle, tmp_path, capsys):
    huge = tmp_path / "huge.npy"
    with open(huge, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10 ** 15,)})
    code, _, err = _cli(capsys, "run", add_bundle, "--input", f"x={huge}")
    assert code == 7 and str(huge) in _one_line(err) and "1000000000000000" in err


def test_an_npz_or_junk_given_as_npy_is_an_input_error(add_bundle, tmp_path, capsys):
    npz = tmp_path / "x.npz"
    np.savez(npz, x=np.zeros(3))
    code, _, err = _cli(capsys, "run", add_bundle, "--input", f"x={npz}")
    assert code == 7 and str(npz) in _one_line(err)


def test_the_same_input_twice_is_an_error(add_bundle, tmp_path, capsys):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros(h.NCHW, np.float32))
    code, _, err = _cli(capsys, "run", add_bundle, "--input", f"x={x}", "--input", f"x={x}")
    assert code == 7 and "'x'" in _one_line(err) and "twice" in err


def test_one_good_input_still_runs(add_bundle, tmp_path, capsys):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros(h.NCHW, np.float32))
    code, out, _ = _cli(capsys, "run", add_bundle, "--input", f"x={x}")
    assert code == 0 and "y: shape [1, 2, 3, 4]" in out


# --- tar headers -----------------------------------------------------------------------------------------------
def _forge_size(raw: bytearray, header: int, size: int) -> None:
    """Write ``size`` as a GNU base-256 number into the tar header at ``header`` and fix its checksum."""
    field = bytearray(12)
    field[0] = 0x80
    field[1:] = size.to_bytes(11, "big")
    raw[header + 124:header + 136] = field
    checksum = sum(raw[header:header + 148]) + 8 * 32 + sum(raw[header + 156:header + 512])
    raw[header + 148:header + 156] = b"%06o\0 " % checksum


def test_a_base256_size_of_10_to_the_15_is_a_bundle_error_naming_the_member(add_bundle, tmp_path, capsys):
    with tarfile.open(add_bundle) as tar:
        member = tar.getmembers()[2]
    raw = bytearray(add_bundle.read_bytes())
    _forge_size(raw, member.offset, 10 ** 15)
    bad = tmp_path / "b256.edgepack"
    bad.write_bytes(raw)
    code, _, err = _cli(capsys, "check", bad)
    assert code == 6 and member.name in _one_line(err), err


# --- folders ---------------------------------------------------------------------------------------------------
def test_20000_unlisted_members_give_a_short_message_with_the_count(folder, capsys):
    junk = folder / "junk"
    junk.mkdir()
    for i in range(20_000):
        (junk / f"f{i:05d}").touch()
    code, _, err = _cli(capsys, "info", folder)
    assert code == 6 and len(_one_line(err)) < 1000 and "20000" in err and "junk/f00000" in err


def test_a_folder_without_a_manifest_is_not_a_bundle_folder(tmp_path, capsys):
    d = tmp_path / "usr"
    (d / "share").mkdir(parents=True)
    (d / "share" / "real").write_text("x")
    os.symlink("real", d / "share" / "link")          # /usr has links: they are not the problem
    code, _, err = _cli(capsys, "info", d)
    assert code == 6 and "no manifest.json: not a bundle folder" in _one_line(err) and "link" not in err


def test_a_hard_linked_member_in_a_folder_is_refused(folder, tmp_path, capsys):
    os.link(folder / "samples" / "sample_000.npz", tmp_path / "elsewhere.npz")
    code, _, err = _cli(capsys, "check", folder)
    assert code == 6 and "samples/sample_000.npz" in _one_line(err) and "hard link" in err


# --- a model whose bytes are corrupt but whose hashes match (manifest rebuilt) -------------------------------
def test_a_corrupt_model_gives_one_consistent_hint(tmp_path, capsys):
    good = Bundle.open(h.add_bundle(tmp_path / "tfl.edgepack", onnx=False))
    files = {rel: good.read(rel) for rel in good.manifest["files"]}
    files["models/cpu/model.tflite"] = b"\0" * len(files["models/cpu/model.tflite"])
    manifest = {k: v for k, v in good.manifest.items() if k != "files"}
    bad = write_bundle(tmp_path / "corrupt.edgepack", manifest, files)
    code, _, err = _cli(capsys, "check", bad)
    assert code == 8 and "models/cpu/model.tflite" in _one_line(err)
    assert "reinstall" not in err and "onnxruntime" not in err, err


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
