"""The target seam: a target is a folder plus one table line; precisions are chosen per target.

``fp16onnx`` below is a target written the way a new one is: a package (made in a temporary folder, outside
``edgepack/``) whose object subclasses ``targets.base.Target``, registered with one table line. Nothing else
in edgepack is touched, and ``build``, the CLI, ``edgepack targets`` and the runtime handle it.
"""
from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh
from typer.testing import CliRunner

from edgepack import targets as table
from edgepack.build import build
from edgepack.cli.main import app
from edgepack.errors import EdgepackError
from edgepack_runtime import Runtime
from edgepack_runtime.bundle import Bundle

RUNNER = CliRunner()

TARGET_PACKAGE = '''
"""A test target: the ONNX model with float weights stored as float16 (Cast back to float32 in the graph)."""
import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgepack.targets.base import Converted, Requirement, Target


class Fp16Onnx(Target):
    name = "fp16onnx"
    format = "onnx"
    summary = "ONNX with float16 weights"
    precisions = ("fp32", "fp16")
    backend = "onnxruntime"
    requires = (Requirement("onnxruntime", "onnxruntime", "verification"),)

    def convert(self, model, job):
        m = onnx.ModelProto()
        m.CopyFrom(model)
        if job.precision == "fp16":
            casts = []
            for init in m.graph.initializer:
                if init.data_type == onnx.TensorProto.FLOAT:
                    half = numpy_helper.to_array(init).astype(np.float16)
                    init.CopyFrom(numpy_helper.from_array(half, init.name + "_h"))
                    casts.append(helper.make_node("Cast", [init.name], [init.name[:-2]], to=onnx.TensorProto.FLOAT))
            nodes = casts + list(m.graph.node)
            del m.graph.node[:]
            m.graph.node.extend(nodes)
        file = self.path("model.onnx")
        io = {"inputs": [{"name": v.name, "perm": None} for v in m.graph.input],
              "outputs": [{"name": v.name, "perm": None} for v in m.graph.output]}
        job.progress("fp16onnx: done")
        return Converted({file: m.SerializeToString()}, file, io, {"casts": len(m.graph.node) - len(model.graph.node)})


class Unavailable(Fp16Onnx):
    name = "needs-missing"
    requires = (Requirement("edgepack_no_such_module", "edgepack-no-such-package", "converting"),)


TARGET = Fp16Onnx()
MISSING = Unavailable()
'''


@pytest.fixture
def new_target(tmp_path, monkeypatch):
    pkg = tmp_path / "site" / "ep_test_target"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(TARGET_PACKAGE))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    table.register("fp16onnx", "ep_test_target:TARGET")          # the one line a new target adds
    table.register("needs-missing", "ep_test_target:MISSING")
    yield
    table.unregister("fp16onnx")
    table.unregister("needs-missing")
    sys.modules.pop("ep_test_target", None)


def _mlp(path):
    rng = np.random.default_rng(3)
    w = nh.from_array(rng.standard_normal((16, 8)).astype(np.float32), "W")
    b = nh.from_array(rng.standard_normal(8).astype(np.float32), "B")
    nodes = [h.make_node("MatMul", ["x", "W"], ["m"], name="mm"), h.make_node("Add", ["m", "B"], ["a"], name="add"),
             h.make_node("Tanh", ["a"], ["y"], name="tanh")]
    g = h.make_graph(nodes, "mlp", [h.make_tensor_value_info("x", TP.FLOAT, [2, 16])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [2, 8])], [w, b])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), path)
    return path


def _invoke(*args):
    result = RUNNER.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_a_new_target_builds_verifies_and_runs(new_target, tmp_path):
    result = build(_mlp(tmp_path / "m.onnx"), targets=["fp16onnx", "cpu"], precision="fp16")
    entries = {t["name"]: t for t in result.manifest["targets"]}
    ours = entries["fp16onnx"]
    assert ours["format"] == "onnx" and ours["file"] == "models/fp16onnx/model.onnx" and ours["precision"] == "fp16"
    assert ours["info"]["casts"] == 2 and ours["info"]["size"] > 0
    assert ours["parity"]["backend"] == "onnxruntime" and ours["parity"]["passed"]
    assert ours["parity"]["thresholds"]["min_cosine"] == 0.999        # fp16's gate from the one precision table
    assert 1e-6 < ours["parity"]["max_rel_error"] < 1e-2               # really fp16 weights, really close
    assert entries["cpu"]["precision"] == "fp16"
    stored = onnx.load_model_from_string(Bundle.open(result.path).read(ours["file"]))
    assert {i.data_type for i in stored.graph.initializer} == {TP.FLOAT16}
    with Runtime.open(result.path, target="fp16onnx") as rt:
        x = np.ones((2, 16), np.float32)
        assert rt.backend_name == "onnxruntime" and rt.run({"x": x})["y"].shape == (2, 8)
        assert rt.self_check()["passed"]


def test_a_new_target_through_the_cli_and_the_targets_listing(new_target, tmp_path):
    model = _mlp(tmp_path / "m.onnx")
    code, out, err = _invoke("build", model, "--target", "fp16onnx", "--precision", "fp16onnx=fp16", "--json")
    assert code == 0, err
    (entry,) = json.loads(out)["manifest"]["targets"]
    assert (entry["name"], entry["precision"]) == ("fp16onnx", "fp16")
    code, out, err = _invoke("targets", "--json")
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["fp16onnx"]["precisions"] == ["fp32", "fp16"] and rows["fp16onnx"]["available"] is True
    missing = rows["needs-missing"]
    assert missing["available"] is False
    assert missing["why_not"] == "needs edgepack_no_such_module (converting): pip install edgepack-no-such-package"
    code, _, err = _invoke("build", model, "--target", "fp16onnx", "--precision", "int8")
    assert code == 1 and "precision 'int8' is not offered by target(s) fp16onnx (fp16onnx: fp32, fp16)" in err


def test_a_target_whose_dependencies_are_missing_says_what_to_install(new_target, tmp_path):
    model = _mlp(tmp_path / "m.onnx")
    code, _, err = _invoke("build", model, "--target", "cpu", "--target", "needs-missing")
    assert code == 1, err
    line = " ".join(err.split())
    assert ("target 'needs-missing' cannot be built on this host: needs edgepack_no_such_module (converting): "
            "pip install edgepack-no-such-package") in line, line
    assert not (tmp_path / "m.edgepack").exists()


def test_registering_a_target_twice_is_an_error(new_target):
    with pytest.raises(ValueError, match="already registered"):
        table.register("fp16onnx", "ep_test_target:TARGET")


@pytest.fixture
def planned_target(monkeypatch):
    """A target name device profiles may mention that this version does not build (none is planned today)."""
    monkeypatch.setitem(table.PLANNED, "tpu-x", "a test NPU target: not built by this version yet")
    return "tpu-x"


def test_targets_json_lists_every_target_with_precisions_and_availability(planned_target):
    code, out, err = _invoke("targets", "--json")
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert list(rows)[:3] == ["cpu", "onnx", "coreml"]
    cpu = rows["cpu"]
    assert cpu["format"] == "tflite" and cpu["aliases"] == ["tflite"] and cpu["default_precision"] == "fp32"
    assert cpu["precisions"] == ["fp32", "fp16", "int8-dynamic", "int8", "int16x8"] and cpu["available"] is True
    assert cpu["gates"]["int8"]["min_snr_db"] == 15.0 and cpu["debugger"] == "int8" and cpu["op_table"] is True
    assert rows["onnx"]["precisions"] == ["fp32"] and rows["onnx"]["backend"] == "onnxruntime"
    assert rows["coreml"]["format"] == "mlpackage" and rows["coreml"]["default_precision"] == "fp16"
    assert rows["coreml"]["backend"] in ("coreml-reference", "coreml") and rows["coreml"]["available"] is True
    assert rows["qualcomm"]["format"] == "qnn" and rows["qualcomm"]["precisions"] == ["w8a8", "w8a16"]
    assert rows["tpu-x"]["available"] is False and "not built by this version" in rows["tpu-x"]["why_not"]


@pytest.mark.parametrize("spec,expected", [
    ("int8-dynamic,onnx=fp32", {"cpu": "int8-dynamic", "onnx": "fp32"}),
    ("cpu=fp16", {"cpu": "fp16", "onnx": "fp32"}),
    ("tflite=fp16", {"cpu": "fp16", "onnx": "fp32"}),
    (None, {"cpu": "fp32", "onnx": "fp32"}),
])
def test_precision_per_target(spec, expected):
    from edgepack.plan import plan
    chosen = plan(["cpu", "onnx"], spec)
    assert {i.target.name: i.precision for i in chosen.items} == expected


@pytest.mark.parametrize("spec,message", [
    ("int9", "unknown precision 'int9'"),
    ("cpu=int8,cpu=fp16", "sets cpu twice"),
    ("coreml=fp16", "names target 'coreml', which is not being built"),
    ("coreml=int8", "names target 'coreml', which is not being built"),
    ("onnx=int8", "target 'onnx' has no precision 'int8'"),
    ("cpu=", "'cpu=' is not PRECISION or TARGET=PRECISION"),
])
def test_bad_precision_specs_say_what_is_wrong(spec, message):
    from edgepack.plan import plan
    with pytest.raises(EdgepackError) as err:
        plan(["cpu", "onnx"], spec)
    assert message in str(err.value)


def test_a_device_profile_sets_the_default_precision_of_its_targets():
    from edgepack.plan import plan
    chosen = plan(["apple-a17-m3"])
    assert [(i.target.name, i.precision) for i in chosen.items] == [("coreml", "fp16"), ("cpu", "fp16")]
    assert chosen.skipped == [] and chosen.profiles_named == ["apple-a17-m3"]
    assert [(i.target.name, i.precision) for i in plan(["apple-a17-m3"], "cpu=int8").items] == [("coreml", "fp16"),
                                                                                                ("cpu", "int8")]
    assert [(i.target.name, i.precision) for i in plan(["snapdragon-8-gen3"]).items] == [("qualcomm", "w8a8"),
                                                                                        ("cpu", "fp32")]
    assert plan(["snapdragon-8-gen3"]).skipped == []
    assert [(i.target.name, i.precision) for i in plan(["cpu", "apple-a17-m3"]).items] == [("cpu", "fp16"),
                                                                                           ("coreml", "fp16")]


def test_a_planned_target_asked_by_name_says_it_is_not_built_yet(planned_target):
    from edgepack.plan import plan
    with pytest.raises(EdgepackError, match="target 'tpu-x' is not built by this version"):
        plan(["tpu-x"])
