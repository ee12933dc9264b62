"""Inputs a user easily gets wrong on `edgepack build` fail at once with one clear line, before any work."""
from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from typer.testing import CliRunner

from edgepack.cli.main import app

RUNNER = CliRunner()


def _relu(path, shape):
    g = h.make_graph([h.make_node("Relu", ["x"], ["y"], name="relu")], "g",
                     [h.make_tensor_value_info("x", TP.FLOAT, shape)], [h.make_tensor_value_info("y", TP.FLOAT, shape)])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), path)
    return path


def _invoke(*args):
    result = RUNNER.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stderr


def _one_line(err):
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("INFO:")]
    assert len(lines) == 1, err
    return lines[0]


def test_an_output_that_is_a_directory(tmp_path):
    model = _relu(tmp_path / "m.onnx", [1, 3, 4, 4])
    (tmp_path / "out").mkdir()
    code, err = _invoke("build", model, "-o", tmp_path / "out")
    assert code == 1
    assert _one_line(err) == (f"error: output '{tmp_path / 'out'}' is a directory (give a file path, e.g. -o "
                              f"{tmp_path / 'out' / 'model.edgepack'})")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("where", ["missing/dir/m.edgepack", "afile/m.edgepack"])
def test_an_output_in_a_directory_that_does_not_exist(tmp_path, where):
    model = _relu(tmp_path / "m.onnx", [1, 3, 4, 4])
    (tmp_path / "afile").write_text("not a directory")
    out = tmp_path / where
    code, err = _invoke("build", model, "-o", out)
    assert code == 1
    assert _one_line(err) == f"error: cannot write '{out}': directory '{out.parent}' does not exist (create it first)"


def test_an_output_that_cannot_be_written(tmp_path):
    model = _relu(tmp_path / "m.onnx", [1, 3, 4, 4])
    code, err = _invoke("build", model, "-o", "/proc/m.edgepack")      # not writable, even for root
    assert code == 1
    line = _one_line(err)
    assert line.startswith("error: cannot write '/proc/m.edgepack': ") and "pick a writable output path" in line


def test_an_input_too_large_to_hold_names_the_tensor_and_its_size(tmp_path):
    hint = ("(edge runtimes cannot hold tensors this large: give smaller dynamic dimensions with --input-shape, "
            "or export the model with a smaller input)")
    code, err = _invoke("build", _relu(tmp_path / "huge.onnx", [1, 3, 100000, 100000]))
    assert code == 3
    assert _one_line(err) == f"error: 1 tensor(s) exceed 2.0 GiB: 'x' [1, 3, 100000, 100000] is 111.8 GiB per sample {hint}"
    dynamic = _relu(tmp_path / "dyn.onnx", ["N", 3, "H", "W"])
    code, err = _invoke("build", dynamic, "--input-shape", "x=2,3,60000,60000")
    assert code == 3
    assert _one_line(err) == f"error: 1 tensor(s) exceed 2.0 GiB: 'x' [2, 3, 60000, 60000] is 80.5 GiB per sample {hint}"
    code, err = _invoke("build", dynamic, "--input-shape", "x=1,3,64,64", "-o", tmp_path / "small.edgepack")
    assert code == 0, err
