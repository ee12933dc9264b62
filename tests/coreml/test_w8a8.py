"""``--precision coreml=w8a8``: int8 weights and int8 activations (iOS17 quantize / dequantize pairs placed by
coremltools' passes at ranges the reference executor measured), verified in the reference executor, with
mixed precision leaving the activations that lose most in fp16. Real coremltools, real executor."""
import numpy as np
import onnx
import pytest
from onnx import helper as h

from edgepack.build import build
from edgepack.errors import EdgepackError, ParityError
from edgepack.targets.base import QuantOptions
from edgepack.targets.coreml.convert import load_program
from edgepack_runtime import Runtime
from edgepack_runtime.backends.coreml_ref.ops.quant import dequantize, quantize
from edgepack_runtime.bundle import Bundle

from .harness import make, weight
from .kit import heavy_model



def test_quantize_and_dequantize_follow_the_mil_definition():
    x = np.array([[-1.0, -0.25, 0.25, 0.75, 1.25, 100.0]], np.float32)
    q = quantize(x, np.float32(0.5), "int8")
    assert q.dtype == np.int8 and q.tolist() == [[-2, 0, 0, 2, 2, 127]]        # half to even, clipped
    u = quantize(x, np.float32(0.5), "uint8", zero_point=np.uint8(128))
    assert u.dtype == np.uint8 and u.tolist() == [[126, 128, 128, 130, 130, 255]]
    assert dequantize(u, np.float32(0.5), zero_point=np.uint8(128)).tolist() == [[-1.0, 0, 0, 1.0, 1.0, 63.5]]
    per = quantize(np.ones((1, 2, 2), np.float32), np.array([0.5, 0.25], np.float32), "int8", axis=1)
    assert per[0, :, 0].tolist() == [2, 4]


def _calib(path, model, n=40, seed=1, spike=None):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, 16, 12, 12)).astype(np.float32)
    if spike is not None:
        x[:, :, 0] *= spike                      # one input channel far wider than the others
    np.savez(path, x=x)
    return path


def _build(tmp_path, model, precision="coreml=w8a8,cpu=fp32", spike=None, **kw):
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    return build(path, targets=["apple-a17-m3"], precision=precision,
                 calibration=_calib(tmp_path / "c.npz", model, spike=spike), holdout=0.4,
                 out=tmp_path / "m.edgepack", **kw)


def test_w8a8_build_quantizes_activations_and_verifies(coreml_in_table, tmp_path):
    r = _build(tmp_path, heavy_model())
    entry = next(e for e in r.manifest["targets"] if e["name"] == "coreml")
    assert entry["precision"] == "w8a8" and entry["info"]["deployment_target"] == "iOS17"
    p = entry["parity"]
    assert p["passed"] and p["backend"] == "coreml-reference" and p["min_cosine"] > 0.99, p
    a = entry["activations"]
    assert a["mode"] == "linear_symmetric" and a["calibration_samples"] == 24 and a["fp16_activations"] == []
    assert a["quantized_ops"] == 3        # 2 convs and the linear (the global pool is a reduce_mean)
    assert entry["compression"]["compressed_ops"] == {"constexpr_affine_dequantize": 3}
    ops = entry["info"]["mil_ops"]
    assert ops["quantize"] >= 3 and ops["dequantize"] >= 3
    assert not [f for f in entry["ane"]["findings"] if f["rule"] == "integer-tensors"]
    data = Bundle.open(r.path).read(entry["file"])
    _, program = load_program(data)
    kinds = [op.op_type for op in program.functions["main"].operations]
    first_conv = kinds.index("conv")
    assert kinds[first_conv - 1] == "dequantize"                       # the conv reads int8 activations
    x = {"x": np.random.default_rng(9).standard_normal((1, 16, 12, 12)).astype(np.float32)}
    with Runtime.open(r.path, backend="coreml-reference", target="coreml") as rt:
        assert rt.run(x)["y"].shape == (1, 256) and rt.self_check()["passed"]


def test_w8a8_needs_ios17(coreml_in_table, tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(heavy_model(), str(path))
    with pytest.raises(EdgepackError, match="'w8a8' needs deployment target iOS17 or newer; this build targets "
                                            "iOS16"):
        build(path, targets=["coreml"], precision="w8a8", out=tmp_path / "m.edgepack")


def outlier_model():
    """conv -> relu -> conv -> add(skip) -> pool -> linear, whose first conv output has one channel 300x the
    rest (nothing downstream reads it but the add's per-tensor range): at int8 the add's other 31 channels
    get under half a step."""
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((32, 16, 3, 3)) * 0.1).astype(np.float32)
    w1[0] *= 300.0
    w2 = (rng.standard_normal((32, 32, 1, 1)) * 0.2).astype(np.float32)
    w2[:, 0] = 0.0
    fc = (rng.standard_normal((10, 32)) * 0.3).astype(np.float32)
    nodes = [h.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]), h.make_node("Relu", ["c1"], ["r1"]),
             h.make_node("Conv", ["r1", "w2"], ["c2"]), h.make_node("Add", ["c2", "r1"], ["s"]),
             h.make_node("Mul", ["s", "mask"], ["m"]),
             h.make_node("GlobalAveragePool", ["m"], ["g"]), h.make_node("Flatten", ["g"], ["f"]),
             h.make_node("Gemm", ["f", "fc"], ["y"], transB=1)]
    mask = np.ones((1, 32, 1, 1), np.float32)
    mask[0, 0] = 0.0                                                     # the wide channel never reaches y
    inits = [weight("w1", w1.shape, 1, 0.1), weight("w2", w2.shape, 2, 0.1), weight("fc", fc.shape, 3, 0.1)]
    inits[0] = onnx.numpy_helper.from_array(w1, "w1")
    inits[1] = onnx.numpy_helper.from_array(w2, "w2")
    inits[2] = onnx.numpy_helper.from_array(fc, "fc")
    inits.append(onnx.numpy_helper.from_array(mask, "mask"))
    return make(nodes, {"x": [1, 16, 12, 12]}, ["y"], inits)


def test_mixed_precision_leaves_the_wide_activation_in_fp16(coreml_in_table, tmp_path):
    gate = dict(min_cosine=0.999, max_rel_error=0.05, cosine_over="min")
    with pytest.raises(ParityError):
        _build(tmp_path, outlier_model(), gate_overrides=gate, quant=QuantOptions(mixed_precision=False))
    r = _build(tmp_path, outlier_model(), gate_overrides=gate, quant=QuantOptions(max_float_fraction=1.0))
    entry = next(e for e in r.manifest["targets"] if e["name"] == "coreml")
    a = entry["activations"]
    assert entry["parity"]["passed"] and a["fp16_activations"], a
    assert a["quantized_ops"] >= 1 and a["mixed_precision"]["tried"]
    assert entry["parity"]["min_cosine"] >= 0.999


def test_the_build_command_prints_the_activations(coreml_in_table, tmp_path):
    from typer.testing import CliRunner

    from edgepack.cli.main import app
    path = tmp_path / "m.onnx"
    onnx.save(heavy_model(), str(path))
    result = CliRunner().invoke(app, ["build", str(path), "--target", "apple-a17-m3", "--precision",
                                      "coreml=w8a8,cpu=fp32", "--calibration",
                                      str(_calib(tmp_path / "c.npz", None)), "--holdout", "0.4"])
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "coreml mlpackage w8a8" in text
    assert "int8 activations into 3 ops (ranges from 24 calibration samples); fp16: none" in text


def test_debug_quant_examines_w8a8_for_a_device(coreml_in_table, tmp_path):
    from typer.testing import CliRunner

    from edgepack.cli.main import app
    path = tmp_path / "m.onnx"
    onnx.save(heavy_model(), str(path))
    cal = str(_calib(tmp_path / "c.npz", None))
    args = ["debug-quant", str(path), "--target", "coreml", "--precision", "w8a8", "--calibration", cal]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code != 0 and "needs deployment target iOS17" in " ".join(refused.stderr.split())
    result = CliRunner().invoke(app, args + ["--device", "apple-a17-m3"])
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "coreml w8a8 (w8a8) on" in text and "passes the w8a8 gate" in text
    assert "Conv_0" in text and "Conv_2" in text and "Gemm_6" in text
    unknown = CliRunner().invoke(app, args + ["--device", "no-such-phone"])
    assert unknown.exit_code != 0 and "not a device profile" in unknown.stderr


def masked_attention():
    """One attention head with a BERT-style additive mask input: ``(1 - mask) * finfo(float32).min`` (clamped
    to -65504 at fp16) added to the scores. At int8 over that range the scores' add loses everything."""
    rng = np.random.default_rng(4)

    def w(name, scale=0.3):
        return onnx.numpy_helper.from_array((rng.standard_normal((16, 16)) * scale).astype(np.float32), name)
    def proj(x, name):                                       # MatMul + bias: a MIL linear
        return [h.make_node("MatMul", [x, "w" + name], [name + "0"]),
                h.make_node("Add", [name + "0", "b" + name], [name])]
    nodes = proj("x", "q") + proj("x", "k") + proj("x", "v") + [
             h.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
             h.make_node("MatMul", ["q", "kt"], ["s"]), h.make_node("Mul", ["s", "quarter"], ["s2"]),
             h.make_node("Sub", ["one", "mask"], ["inv"]), h.make_node("Mul", ["inv", "lowest"], ["bias"]),
             h.make_node("Add", ["s2", "bias"], ["s3"]), h.make_node("Softmax", ["s3"], ["p"], axis=-1),
             h.make_node("MatMul", ["p", "v"], ["o"])] + proj("o", "y")
    consts = [onnx.numpy_helper.from_array(np.array(v, np.float32), n)
              for n, v in (("quarter", 0.25), ("one", 1.0), ("lowest", np.finfo(np.float32).min))]
    biases = [onnx.numpy_helper.from_array((rng.standard_normal(16) * 0.1).astype(np.float32), "b" + n)
              for n in "qkvy"]
    return make(nodes, {"x": [1, 8, 16], "mask": [1, 1, 8]}, ["y"],
                [w("wq"), w("wk"), w("wv"), w("wy")] + consts + biases)


def _masked_calib(path, n=40):
    rng = np.random.default_rng(5)
    mask = np.ones((n, 1, 1, 8), np.float32)
    for i in range(n):
        mask[i, ..., 8 - rng.integers(0, 4):] = 0.0              # up to 3 padded positions
    np.savez(path, x=rng.standard_normal((n, 1, 8, 16)).astype(np.float32), mask=mask)
    return path


def test_an_additive_mask_keeps_its_add_in_fp16(coreml_in_table, tmp_path, monkeypatch):
    from edgepack.targets.coreml import activations
    path = tmp_path / "m.onnx"
    onnx.save(masked_attention(), str(path))
    common = dict(targets=["apple-a17-m3"], precision="coreml=w8a8,cpu=fp32",
                  calibration=_masked_calib(tmp_path / "c.npz"), holdout=0.4, out=tmp_path / "m.edgepack",
                  quant=QuantOptions(mixed_precision=False))
    monkeypatch.setattr(activations, "WIDE", float("inf"))     # the rule off: the mask's add is int8
    with pytest.raises(ParityError):
        build(path, **common)
    monkeypatch.undo()
    r = build(path, **common)
    entry = next(e for e in r.manifest["targets"] if e["name"] == "coreml")
    a, p = entry["activations"], entry["parity"]
    assert p["passed"] and p["min_cosine"] > 0.99, p
    assert len(a["wide_inputs"]) == 1 and "s3" in a["wide_inputs"][0] and a["fp16_activations"] == [], a
    assert a["quantized_ops"] >= 4                              # the projections still read int8 activations


def test_the_build_command_names_the_wide_inputs(coreml_in_table, tmp_path):
    from typer.testing import CliRunner

    from edgepack.cli.main import app
    path = tmp_path / "m.onnx"
    onnx.save(masked_attention(), str(path))
    result = CliRunner().invoke(app, ["build", str(path), "--target", "apple-a17-m3", "--precision",
                                      "coreml=w8a8,cpu=fp32", "--calibration",
                                      str(_masked_calib(tmp_path / "c.npz")), "--holdout", "0.4"])
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "fp16: none; fp16 for inputs beyond +-1e4 (masks, near-overflow values): s3" in text


def test_the_layer_table_compares_a_rescaled_add_in_the_models_units(coreml_in_table):
    """coremltools' pipeline rescales a quantized add (its y dequantize gets scale 1, its result is 1 / s_y of
    the model's); the table that ranks ops for mixed precision compares that value times the factor."""
    from edgepack.targets.coreml import activations as A
    from edgepack.targets.coreml import compress
    from edgepack.targets.coreml.convert import lower, package, zip_package
    from edgepack_runtime.backends.coreml_ref.program import load
    from edgepack_runtime.compare import snr_db
    model = outlier_model()
    rng = np.random.default_rng(3)
    samples = [{"x": rng.standard_normal((1, 16, 12, 12)).astype(np.float32)} for _ in range(12)]
    w8 = compress.compress(package(lower(model, "iOS17", "fp16"), precision="fp16", deployment="iOS17"), "w8")
    w8_data = zip_package(w8)
    stats = A.ranges(w8_data, model, samples[:8])
    data = zip_package(A.quantize_activations(w8, stats))
    _, prog = load_program(data)
    add = next(op for op in prog.functions["main"].operations if op.op_type == "add")
    value = add.outputs[0].name
    assert add.name in A.quantized(prog)
    factor = A.gains(prog, stats).get(value, 1.0)
    y_scale = next(v for k, v in add.inputs.items() if k == "y").op.inputs["scale"].val
    assert float(np.asarray(y_scale)) == 1.0 and abs(factor - 1.0) > 0.5      # the pass did rescale it
    row = next(r for r in A.layer_rows(w8_data, data, prog, stats, model, samples[8:], [add.name]))
    assert row["snr_db"] > 20, row
    f, q = load(w8_data), load(data)
    raw = [(f.run(A._feeds(f, model, s), keep_all=True)[value], q.run(A._feeds(q, model, s), keep_all=True)[value])
           for s in samples[8:]]
    assert snr_db(np.concatenate([np.ravel(b) for _, b in raw]).astype(np.float64),
                  np.concatenate([np.ravel(a) for a, _ in raw]).astype(np.float64)) < 3    # raw: another value
    # a value read in the model's own units (the first conv's input) has factor 1
    assert A.gains(prog, stats).get(prog.functions["main"].operations[0].outputs[0].name, 1.0) == 1.0


def test_debug_quant_reads_a_rescaled_add_in_the_models_units(coreml_in_table, tmp_path):
    from edgepack.debug import debug_quant
    from edgepack.devices import profiles
    path = tmp_path / "m.onnx"
    onnx.save(outlier_model(), str(path))
    report = debug_quant(path, target="coreml", precision="w8a8", calibration=_calib(tmp_path / "c.npz", None),
                         holdout=0.4, profiles=(profiles()["apple-a17-m3"],))
    add = next(r for r in report.layers if r["op"] == "add")
    first = next(r for r in report.layers if r["op"] == "conv")
    assert report.parity["passed"] is not None and add["snr_db"] > 15, add    # raw, the rescaled add read ~1 dB
    assert first["snr_db"] > 15


def test_each_op_is_ranked_by_what_its_int8_input_alone_costs_at_the_output(coreml_in_table):
    """``isolated_rows``: each of the three ops touching the outlier model's wide tensor (the first conv's
    output pair, the second conv and the add reading it: one channel 300x the others in a per-tensor range)
    alone int8 costs the output everything; the final linear alone costs little."""
    from edgepack.mixed import Trial
    from edgepack.model.ort import reference_outputs
    from edgepack.targets.coreml import activations as A
    from edgepack.targets.coreml import compress
    from edgepack.targets.coreml.convert import lower, package, zip_package
    from edgepack.verify.layers import rank
    from edgepack_runtime.backends.coreml_ref.program import load
    from edgepack_runtime.compare import compare_runs, summarize
    from edgepack_runtime.precisions import gate
    model = outlier_model()
    rng = np.random.default_rng(3)
    samples = [{"x": rng.standard_normal((1, 16, 12, 12)).astype(np.float32)} for _ in range(12)]
    held = samples[8:]
    ref = reference_outputs(model, held)
    w8 = compress.compress(package(lower(model, "iOS17", "fp16"), precision="fp16", deployment="iOS17"), "w8")
    stats = A.ranges(zip_package(w8), model, samples[:8])

    def evaluate(data, n):
        p = load(data)
        got = [{"y": p.run(A._feeds(p, model, s))[p.output_names[0]]} for s in held[:n]]
        return summarize(compare_runs(got, ref[:len(got)], ["y"]), gate("w8a8"))
    trial = Trial(lambda keep: zip_package(A.quantize_activations(w8, stats, keep)), evaluate, len)
    _, prog = load_program(trial.make([]))
    ops = A.quantized(prog)
    seen = []
    rows = A.isolated_rows(trial, ops, seen.append)
    assert len(rows) == len(ops) == 4 and len(seen) == 4 and trial.cheap == 4 and not trial.tried
    by = {r["tensor"]: r["snr_db"] for r in rows}
    linear = next(op.name for op in prog.functions["main"].operations if op.op_type == "linear")
    assert rank(rows)[-1]["tensor"] == linear and by[linear] > 30, by
    assert all(snr < 5 for name, snr in by.items() if name != linear), by
