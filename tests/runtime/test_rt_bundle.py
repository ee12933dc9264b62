import hashlib
import io
import json
import os
import tarfile

import numpy as np
import pytest

import rt_helpers as h
from edgepack_runtime import BundleError
from edgepack_runtime.bundle import Bundle, unpack_bundle, write_bundle
from edgepack_runtime.manifest import dumps


def _members(path):
    with tarfile.open(path) as tar:
        return [(m, tar.extractfile(m).read() if m.isreg() else None) for m in tar.getmembers()]


def _retar(path, members):
    """Write a tar with the given (TarInfo, bytes or None) members, no checks."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _info(name, data=b"", kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, linkname, len(data)
    return info


def test_round_trip_file(add_bundle):
    b = Bundle.open(add_bundle)
    names = [m.name for m, _ in _members(add_bundle)]
    assert names[0] == "manifest.json"
    assert sorted(names[1:]) == sorted(b.manifest["files"])
    model = h.tflite_add_model()
    assert b.read("models/cpu/model.tflite") == model
    assert b.manifest["files"]["models/cpu/model.tflite"] == {
        "sha256": hashlib.sha256(model).hexdigest(), "size": len(model)}
    assert b.manifest["format"] == "edgepack-bundle" and b.manifest["format_version"] == "1.0"
    assert b.manifest["signature"] is None
    assert b.manifest_bytes == dumps(b.manifest)
    assert b.target("ref")["format"] == "onnx"
    samples = b.samples()
    assert len(samples) == 2
    x, y = samples[0]
    assert list(x) == ["x"] and list(y) == ["y"]
    np.testing.assert_array_equal(y["y"], x["x"] + h.BIAS.reshape(1, -1, 1, 1))


def test_manifest_bytes_are_sorted_indent_1(add_bundle):
    raw = Bundle.open(add_bundle).manifest_bytes
    assert raw == (json.dumps(json.loads(raw), sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


def test_unpack_and_open_folder(add_bundle, tmp_path):
    folder = unpack_bundle(add_bundle, tmp_path / "unpacked")
    assert (folder / "manifest.json").read_bytes() == Bundle.open(add_bundle).manifest_bytes
    b = Bundle.open(folder)
    assert b.path == folder
    assert b.read("models/ref/model.onnx") == h.onnx_add_model()
    assert len(b.samples()) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_unpack_refuses_non_empty_dest(add_bundle, tmp_path):
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "keep.txt").write_text("x")
    with pytest.raises(BundleError, match="not an empty folder"):
        unpack_bundle(add_bundle, tmp_path / "dest")


def test_unknown_target_lists_targets(add_bundle):
    with pytest.raises(BundleError, match="no target 'gpu'; it has: cpu, ref"):
        Bundle.open(add_bundle).target("gpu")


def test_flipped_byte_names_the_member(add_bundle, tmp_path):
    data = bytearray(add_bundle.read_bytes())
    model = h.tflite_add_model()
    at = bytes(data).index(model) + len(model) // 2
    data[at] ^= 0xFF
    bad = tmp_path / "bad.edgepack"
    bad.write_bytes(bytes(data))
    with pytest.raises(BundleError) as err:
        Bundle.open(bad)
    assert "bundle member models/cpu/model.tflite is corrupt: sha256 mismatch" in str(err.value)
    assert "rebuild or re-download the bundle" in str(err.value)
    assert err.value.exit_code == 6


def test_corrupt_member_in_folder(add_bundle, tmp_path):
    folder = unpack_bundle(add_bundle, tmp_path / "u")
    (folder / "samples" / "sample_001.npz").write_bytes(b"garbage")
    with pytest.raises(BundleError, match="samples/sample_001.npz is corrupt: size 7 != 708"):
        Bundle.open(folder)


def test_missing_member(add_bundle, tmp_path):
    folder = unpack_bundle(add_bundle, tmp_path / "u")
    (folder / "models" / "ref" / "model.onnx").unlink()
    with pytest.raises(BundleError, match="member models/ref/model.onnx is missing"):
        Bundle.open(folder)


def _data_end(path):
    with tarfile.open(path) as tar:
        last = tar.getmembers()[-1]
    return last.offset_data + last.size


@pytest.mark.parametrize("where", ["mid-member", "mid-header", "after-data", "in-end-marker"])
def test_truncated_tar(add_bundle, tmp_path, where):
    data = add_bundle.read_bytes()
    end = _data_end(add_bundle)
    cut = {"mid-member": end - 100, "mid-header": 700, "after-data": end, "in-end-marker": end + 700}[where]
    bad = tmp_path / "cut.edgepack"
    bad.write_bytes(data[:cut])
    with pytest.raises(BundleError, match="truncated|not a readable bundle") as err:
        Bundle.open(bad)
    assert err.value.hint == "rebuild or re-download the bundle"


def test_not_a_tar(tmp_path):
    bad = tmp_path / "x.edgepack"
    bad.write_bytes(b"PK\x03\x04 definitely not a tar" * 40)
    with pytest.raises(BundleError, match="not a readable bundle"):
        Bundle.open(bad)


def test_missing_path(tmp_path):
    with pytest.raises(BundleError, match="no bundle at"):
        Bundle.open(tmp_path / "nope.edgepack")


def test_unknown_major_version(add_bundle, tmp_path):
    members = _members(add_bundle)
    manifest = json.loads(members[0][1])
    manifest["format_version"] = "2.0"
    raw = dumps(manifest)
    members[0] = (_info("manifest.json", raw), raw)
    with pytest.raises(BundleError, match=r"format version 2.0 is not supported.*reads 1.x"):
        Bundle.open(_retar(tmp_path / "v2.edgepack", members))


def test_newer_minor_version_is_read(add_bundle, tmp_path):
    members = _members(add_bundle)
    manifest = json.loads(members[0][1])
    manifest["format_version"] = "1.7"
    raw = dumps(manifest)
    members[0] = (_info("manifest.json", raw), raw)
    assert Bundle.open(_retar(tmp_path / "v17.edgepack", members)).manifest["format_version"] == "1.7"


@pytest.mark.parametrize("name", ["../evil", "models/../../evil", "/etc/evil", "a\\b"])
def test_unsafe_member_path(add_bundle, tmp_path, name):
    members = _members(add_bundle) + [(_info(name, b"x"), b"x")]
    with pytest.raises(BundleError, match="unsafe bundle member path"):
        Bundle.open(_retar(tmp_path / "evil.edgepack", members))


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE])
def test_link_and_device_members(add_bundle, tmp_path, kind):
    members = _members(add_bundle) + [(_info("models/link", kind=kind, linkname="manifest.json"), None)]
    with pytest.raises(BundleError, match="models/link is a link or special file"):
        Bundle.open(_retar(tmp_path / "link.edgepack", members))


def test_symlink_in_folder(add_bundle, tmp_path):
    folder = unpack_bundle(add_bundle, tmp_path / "u")
    os.symlink("/etc/passwd", folder / "samples" / "passwd")
    with pytest.raises(BundleError, match="samples/passwd is a link"):
        Bundle.open(folder)


def test_extra_unlisted_member(add_bundle, tmp_path):
    members = _members(add_bundle) + [(_info("models/cpu/extra.bin", b"abc"), b"abc")]
    with pytest.raises(BundleError, match="not listed in its manifest: models/cpu/extra.bin"):
        Bundle.open(_retar(tmp_path / "extra.edgepack", members))


def test_signature_member_is_optional_extra(add_bundle, tmp_path):
    sig = b'{"alg": "ed25519"}'
    members = _members(add_bundle) + [(_info("signature.json", sig), sig)]
    b = Bundle.open(_retar(tmp_path / "signed.edgepack", members))
    assert b.has("signature.json") and b.read("signature.json") == sig
    assert not Bundle.open(add_bundle).has("signature.json")


def test_duplicate_member(add_bundle, tmp_path):
    members = _members(add_bundle)
    with pytest.raises(BundleError, match="appears twice"):
        Bundle.open(_retar(tmp_path / "dup.edgepack", members + [members[-1]]))


def test_member_size_cap(add_bundle):
    with pytest.raises(BundleError, match=r"over the 100-byte member cap"):
        Bundle.open(add_bundle, max_member_size=100)


def test_no_manifest(tmp_path):
    with pytest.raises(BundleError, match="has no manifest.json"):
        Bundle.open(_retar(tmp_path / "m.edgepack", [(_info("a.bin", b"1"), b"1")]))


@pytest.mark.parametrize("rel", ["../x", "/abs", "a\\b", "a//b", "manifest.json"])
def test_write_bundle_rejects_bad_paths(tmp_path, rel):
    with pytest.raises(BundleError):
        write_bundle(tmp_path / "b.edgepack", {}, {rel: b"x"})
    assert list(tmp_path.iterdir()) == []


def test_write_bundle_validates_manifest(tmp_path):
    m = h.base_manifest([h.tensor("x", [1])], [h.tensor("y", [1])],
                        [h.target("cpu", "tflite", "models/cpu/m.tflite", [("x", None)], [("y", None)])])
    with pytest.raises(BundleError, match="refers to 'models/cpu/m.tflite', which is not listed"):
        write_bundle(tmp_path / "b.edgepack", m, {})
    m["targets"][0]["io"]["inputs"][0]["name"] = "z"
    with pytest.raises(BundleError, match=r"io.inputs names \['z'\] do not match"):
        write_bundle(tmp_path / "b.edgepack", m, {"models/cpu/m.tflite": b"m"})
    m["targets"][0]["io"]["inputs"][0] = {"name": "x", "perm": [0, 0]}
    with pytest.raises(BundleError, match="not a permutation of 1 axes"):
        write_bundle(tmp_path / "b.edgepack", m, {"models/cpu/m.tflite": b"m"})
    del m["tools"]
    with pytest.raises(BundleError, match="missing manifest.tools"):
        write_bundle(tmp_path / "b.edgepack", m, {"models/cpu/m.tflite": b"m"})
    assert list(tmp_path.iterdir()) == []


def test_write_bundle_replaces_atomically(tmp_path):
    out = h.add_bundle(tmp_path / "a.edgepack", tflite=False)
    first = out.read_bytes()
    h.add_bundle(out, tflite=False, samples=1)
    assert out.read_bytes() != first and len(Bundle.open(out).samples()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.edgepack"]
