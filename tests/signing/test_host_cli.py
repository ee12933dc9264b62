"""`edgepack keys generate`, `edgepack sign`, `edgepack build --sign-key`, `edgepack inspect --trust-key` (CliRunner)."""
from __future__ import annotations

import json
import stat

import onnx
from onnx import TensorProto as TP
from onnx import helper as h
from typer.testing import CliRunner

from edgepack.cli.main import app
from edgepack_runtime.bundle import Bundle
from edgepack_runtime.signing import PASSPHRASE_ENV, load_trust_keys, verify

RUNNER = CliRunner()


def _invoke(*args, env=None):
    result = RUNNER.invoke(app, [str(a) for a in args], env=env)
    return result.exit_code, result.stdout, result.stderr


def _relu(path):
    g = h.make_graph([h.make_node("Relu", ["x"], ["y"])], "g", [h.make_tensor_value_info("x", TP.FLOAT, [1, 4])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, 4])])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), path)
    return path


def test_keys_generate_refuses_to_overwrite(tmp_path):
    code, out, _ = _invoke("keys", "generate", "--out", tmp_path / "k", "--json", env={PASSPHRASE_ENV: ""})
    assert code == 0, out
    got = json.loads(out)
    assert got["private"].endswith("edgepack-signing.key") and got["public"].endswith("edgepack-signing.pub")
    assert stat.S_IMODE((tmp_path / "k" / "edgepack-signing.key").stat().st_mode) == 0o600
    assert got["key_id"] == load_trust_keys([got["public"]])[0].key_id
    code, _, err = _invoke("keys", "generate", "--out", tmp_path / "k")
    assert code == 1 and "refusing to overwrite existing key file(s)" in err and "--force" in err
    code, out, _ = _invoke("keys", "generate", "--out", tmp_path / "k", "--force")
    assert code == 0 and "key pair" in out and "--trust-key" in out
    code, out, _ = _invoke("keys", "id", tmp_path / "k" / "edgepack-signing.key")
    assert code == 0 and out.strip() == load_trust_keys([got["public"]])[0].key_id != got["key_id"]


def test_build_sign_key_end_to_end_then_resign_and_inspect(tmp_path, keys):
    model = _relu(tmp_path / "m.onnx")
    code, out, err = _invoke("build", model, "--target", "onnx", "-o", tmp_path / "m.edgepack",
                             "--sign-key", keys["a"]["private"], "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["signature"]["key_id"] == keys["a"]["key_id"]
    bundle = tmp_path / "m.edgepack"
    assert verify(Bundle.open(bundle), load_trust_keys([keys["a"]["public"]]))["verified"]
    code, out, err = _invoke("inspect", bundle, "--trust-key", keys["a"]["public"])
    assert code == 0, err
    assert f"signature: verified, key {keys['a']['key_id']}" in " ".join(out.split())
    code, out, err = _invoke("inspect", bundle, "--json")
    assert code == 0 and json.loads(out)["signature"]["key_id"] == keys["a"]["key_id"]
    assert json.loads(out)["signature"]["verified"] is False
    code, out, err = _invoke("sign", bundle, "--key", keys["b"]["private"], "--signer", "release")
    assert code == 0 and f"signed {bundle} with key {keys['b']['key_id']} (release)" in " ".join(out.split())
    code, _, err = _invoke("inspect", bundle, "--trust-key", keys["a"]["public"])
    assert code == 6 and f"signed by key {keys['b']['key_id']}, which is not a trusted key" in err
    code, out, _ = _invoke("inspect", bundle)
    flat = " ".join(out.split())
    assert f"signature: key {keys['b']['key_id']} (release)" in flat and "no trust key set" in flat


def test_build_with_a_bad_sign_key_fails_before_any_work(tmp_path, keys):
    model = _relu(tmp_path / "m.onnx")
    code, out, err = _invoke("build", model, "--target", "onnx", "--sign-key", keys["a"]["public"])
    assert code == 1 and "is a public key; signing needs the private key" in err
    code, _, err = _invoke("build", model, "--target", "onnx", "--sign-key", tmp_path / "nope.key")
    assert code == 1 and "cannot read signing key" in err
    assert not (tmp_path / "m.edgepack").exists()


def test_sign_refuses_a_bad_bundle(tmp_path, keys):
    (tmp_path / "junk.edgepack").write_bytes(b"not a tar" * 100)
    code, _, err = _invoke("sign", tmp_path / "junk.edgepack", "--key", keys["a"]["private"])
    assert code == 6 and "not a readable bundle" in err
