"""Mixed precision for the qualcomm target: which layers get 16-bit activations ("a16") or stay unquantized
("float") so that the accuracy gate passes.

    qdq, summary = search(model, job, precision="w8a8")

The shared search (``edgepack.mixed``) does the choosing, in two passes over the layer ranking of
``debug.layer_rows`` (``edgepack.verify.layers.rank``, worst first):

1. a16 (w8a8 only): layers that break the gate move to 16-bit activations, the cheap step (the node stays
   in the HTP graph, its activations take twice the bytes);
2. float, only if pass 1 did not reach the gate (or at w8a16, where 16 bits are already the default): the
   layer and its readers stay unquantized, so its output is never rounded (``Layers.floats``). The QNN EP
   runs float nodes on HTP at fp16 where the HTP has fp16 (``enable_htp_fp16_precision``, on by default; the
   simulator does), else on onnxruntime's CPU: the placement in the summary says which.
Between the passes, a16 layers that HTP does not place (the node fell back to CPU anyway) become float:
there they cost the same and lose nothing. Nodes the user names with ``--keep-float`` are float throughout.

Where each measurement runs: the plain model's gate and every result the search returns are measured on
the HTP simulator configured as the device the build compiles for (``device_options``; onnxruntime CPU when
onnxruntime-qnn is missing). The search itself measures its candidates (the sensitivity scan and each step)
as QDQ arithmetic on onnxruntime's CPU provider, which computes the same quantization grid at a small fraction
of the simulator's cost (a step on a 200-node CNN: seconds instead of minutes), and confirms its answer on
HTP. When that grid passes where HTP fails (the loss is in HTP's own kernels, which the CPU cannot see:
``htp_kernel_loss``), or the confirmation fails, the search runs on the simulator instead, ranking first the
layers where HTP departs from the CPU (``debug.layer_rows``' HTP column), ``KERNEL_SAMPLES`` samples per
suspect in the scan. The summary records the result and its cost: the QDQ model's size against the plain
quantization's, and the nodes placed off HTP against it.
"""
from __future__ import annotations

import numpy as np
import onnx
from edgepack_runtime.compare import compare_runs, summarize

from ... import mixed as shared
from ...verify.layers import rank
from ..base import Job
from . import htp
from .debug import DEBUG_SAMPLES, final_figures, layer_rows, pinned_nodes
from .preprocess import prepare
from .quantize import PRECISIONS, calibrate, quantize


def when_needed(model: onnx.ModelProto, qdq: onnx.ModelProto, job: Job) -> tuple[onnx.ModelProto, dict | None]:
    """What ``convert`` calls after the plain quantization: (``qdq`` and None) when mixed precision is off
    or the gate passes on the hold-out, else ``search``'s result."""
    if not job.quant.mixed_precision or not job.calibration.holdout:
        return qdq, None
    runner = _Runner(model, job, *PRECISIONS[job.precision], set())
    job.progress(f"checking the {job.precision} QDQ model against the gate ({len(job.calibration.holdout)} "
                 f"held-out samples{'' if htp.available() else ', onnxruntime CPU'})")
    figures = runner.on_htp(qdq)
    if figures["passed"]:
        return qdq, None
    return search(model, job, precision=job.precision, base=(qdq, figures))


def search(model: onnx.ModelProto, job: Job, *, precision: str, base=None) -> tuple[onnx.ModelProto, dict]:
    """(QDQ model, summary) after mixed precision at ``precision`` (w8a8 | w8a16).

    ``base``: (QDQ model, HTP gate figures) of the plain quantization, when the caller has it already. The
    summary (the manifest's ``mixed_precision``): ``a16`` / ``float`` (node names and what each is),
    ``passed``, ``figures``, ``tried`` (every full measurement), ``cost``. When the gate is never met the
    best candidate seen comes back with ``passed`` False."""
    activations, weights = PRECISIONS[precision]
    prepared = prepare(model)
    pinned = pinned_nodes(prepared, job.quant.keep_float)
    runner = _Runner(model, job, activations, weights, pinned)
    qdq, figures = base or runner.measure_on_htp(runner.build({}))
    summary = {"enabled": True, "precision": precision, "a16": [], "float": sorted(pinned), "tried": []}
    if figures["passed"]:
        return qdq, _finish(summary, runner, qdq, qdq, figures)
    job.progress("ranking the layers of the QDQ model against their fp32 twins")
    cpu_figures = runner.htp_only_loss(qdq, figures)
    summary["htp_kernel_loss"] = runner.kernels
    rows = layer_rows(prepared, qdq, job.calibration.holdout[:DEBUG_SAMPLES], runner.device if runner.kernels else None)
    layers = Layers(prepared, qdq)
    ranked = [r for r in rank(rows) if r["origin"] and not set(layers.chain(r["tensor"])) & pinned]
    if runner.kernels:          # HTP's kernels lose it: the layers where HTP departs from the CPU come first
        ranked.sort(key=lambda r: -round(r.get("htp_added_db", 0.0)))
    a16: list[str] = []
    start = (qdq, figures if runner.kernels else cpu_figures)
    best = (qdq, figures)
    if activations == "uint8":
        trial = runner.trial(lambda keep: dict.fromkeys(layers.chains(keep), "a16"))
        keep, cand, fig = shared.search(trial, [], [], ranked, job.quant.max_float_fraction, *start, job.progress)
        a16 = layers.chains(keep)
        moved = [n for n in a16 if n in runner.off_htp(cand)]     # HTP did not take them at 16 bits
        if moved:
            a16 = [n for n in a16 if n not in moved]
            runner.pinned = pinned = pinned | set(moved)
            cand, fig = runner.measure(runner.build(dict.fromkeys(a16, "a16")))
        start, best = (cand, fig), runner.confirm(cand, fig)
    if not best[1]["passed"]:
        if start[1]["passed"]:      # the CPU said it passes, HTP says no: from now on HTP decides
            runner.kernels, start = True, best
        left = [r for r in ranked if not set(layers.chain(r["tensor"])) & pinned]
        trial = runner.trial(lambda keep: {**dict.fromkeys(a16, "a16"), **dict.fromkeys(layers.floats(keep), "float")})
        keep, cand, fig = shared.search(trial, [], [], left, job.quant.max_float_fraction, *start, job.progress)
        floated = set(layers.floats(keep))
        a16 = [n for n in a16 if n not in floated]
        pinned = pinned | floated
        best = runner.confirm(cand, fig)
    summary["searched_on"] = "htp" if runner.kernels else "onnxruntime-cpu, the result confirmed on htp"
    if _score(best[1]) <= _score(figures):      # nothing helped on HTP: the plain quantization, nothing kept
        best, a16, pinned = (qdq, figures), [], pinned_nodes(prepared, job.quant.keep_float)
    summary.update(a16=a16, float=sorted(pinned))
    return best[0], _finish(summary, runner, qdq, *best)


KERNEL_SAMPLES = 2           # held-out samples per sensitivity trial on the simulator
PASS_THROUGH = ("Relu", "Clip", "LeakyRelu", "PRelu", "MaxPool", "Identity")


class Layers:
    """Which prepared-model nodes an override needs so that a quantized tensor changes precision.

    ``chain(T)``: T's producer, and upstream through nodes the quantizer folded away (a Relu/Clip absent from
    the QDQ model) or that pass values through unchanged in range (Relu, Clip, MaxPool...), up to the first
    other node: 16 bits on T alone would leave the outliers already rounded at 8 bits one node earlier.
    ``floats(T)``: the chain and T's consumers: onnxruntime quantizes an excluded node's output whenever a
    consumer is quantized, so T stays float only when its readers are float too."""

    def __init__(self, prepared: onnx.ModelProto, qdq: onnx.ModelProto):
        self.producer = {o: n for n in prepared.graph.node for o in n.output}
        self.readers: dict[str, list[str]] = {}
        for n in prepared.graph.node:
            for i in n.input:
                self.readers.setdefault(i, []).append(n.name)
        self.in_qdq = {n.name for n in qdq.graph.node}

    def chain(self, tensor: str) -> list[str]:
        out, node = [], self.producer.get(tensor)
        while node is not None and len(out) < 8:
            out.append(node.name)
            if node.name in self.in_qdq and node.op_type not in PASS_THROUGH:
                break
            node = self.producer.get(node.input[0]) if node.input else None
        return out

    def chains(self, tensors) -> list[str]:
        return list(dict.fromkeys(n for t in tensors for n in self.chain(t)))

    def floats(self, tensors) -> list[str]:
        return list(dict.fromkeys(n for t in tensors for n in self.chain(t) + self.readers.get(t, [])))


class _Runner:
    """Builds QDQ candidates (``pinned`` nodes always float) and measures them."""

    def __init__(self, model, job: Job, activations: str, weights: str, pinned: set[str]):
        self.model, self.job, self.pinned = model, job, pinned
        self.activations, self.weights = activations, weights
        self.names = [o.name for o in model.graph.output]
        self.kinds = {n.name: n.op_type for n in prepare(model).graph.node}
        self.tried: list[dict] = []
        self.kernels = False         # the loss is HTP's kernels, not the quantization grid (see htp_only_loss)
        self.device = device_options(job)
        self.calibrated = None       # quantize.Calibrated, made by the first build

    def build(self, overrides: dict[str, str]) -> onnx.ModelProto:
        """A candidate: prepared and calibrated once per search (``quantize.calibrate``), quantized each time."""
        over = {**overrides, **{n: "float" for n in self.pinned}}
        if self.calibrated is None:
            method = {"auto": "minmax"}.get(self.job.quant.method, self.job.quant.method)
            self.calibrated = calibrate(self.model, self.job.calibration.calib, method, self.job.model_ranges)
        cal = self.calibrated
        return quantize(cal.prepared, cal.samples, activations=self.activations, weights=self.weights,
                        overrides=over, method=cal.method, calibrated=cal)

    def measure(self, qdq: onnx.ModelProto) -> tuple[onnx.ModelProto, dict]:
        return qdq, self.evaluate(qdq, None)

    def measure_on_htp(self, qdq: onnx.ModelProto) -> tuple[onnx.ModelProto, dict]:
        return qdq, self.on_htp(qdq)

    def evaluate(self, qdq: onnx.ModelProto, n: int | None) -> dict:
        """Gate figures of a candidate on the first ``n`` held-out samples (all: ``n`` None). The QDQ
        arithmetic on onnxruntime CPU, unless HTP's own kernels lose accuracy (``kernels``): then the simulator,
        on ``KERNEL_SAMPLES`` samples for the sensitivity scan."""
        if self.kernels:
            return self.on_htp(qdq, n and min(n, KERNEL_SAMPLES))
        holdout, reference = self.job.calibration.holdout, self.job.reference
        got = cpu_run(qdq, holdout[:n])
        return summarize(compare_runs(got, reference[:len(got)], self.names), self.job.gate)

    def on_htp(self, qdq: onnx.ModelProto, n: int | None = None) -> dict:
        """Gate figures on the simulator configured as the device (CPU without onnxruntime-qnn). A candidate
        HTP cannot compose (a float node next to a 16-bit one can give QNN a Quantize it refuses) is a failed
        candidate, never the end of the search: the plain quantization composed, so there is one to fall
        back on."""
        from edgepack_runtime.errors import BackendError
        holdout, reference = self.job.calibration.holdout, self.job.reference
        try:
            got = htp.run(qdq, holdout[:n], allow_cpu=True, provider_options=self.device)
        except BackendError as exc:
            return uncomposable(exc.message, self.names)
        return final_figures(got, reference, self.names, self.job.gate)

    def confirm(self, qdq: onnx.ModelProto, figures: dict) -> tuple[onnx.ModelProto, dict]:
        """The candidate with its figures on HTP (measured now unless they are HTP's already)."""
        return qdq, figures if self.kernels else self.on_htp(qdq)

    def htp_only_loss(self, qdq: onnx.ModelProto, figures: dict) -> dict:
        """The CPU's figures of ``qdq``; sets ``kernels`` when the QDQ arithmetic (CPU) passes where HTP fails,
        or is 10 dB closer to fp32: then HTP's own kernels lose the accuracy and the CPU cannot rank remedies."""
        cpu = self.evaluate(qdq, None)
        self.kernels = htp.available() and (cpu["passed"] or cpu["min_snr_db"] > figures["min_snr_db"] + 10.0)
        return cpu

    def trial(self, overrides_of) -> shared.Trial:
        trial = shared.Trial(lambda keep: self.build(overrides_of(keep)), self.evaluate,
                             lambda qdq: qdq.ByteSize())
        trial.tried = self.tried
        return trial

    def off_htp(self, qdq: onnx.ModelProto) -> set[str]:
        """Names of the non-Q/DQ nodes of ``qdq`` that onnxruntime does not assign to the QNN EP."""
        return off_htp(qdq, self.device)


def off_htp(qdq: onnx.ModelProto, device: dict | None = None) -> set[str]:
    """Nodes (other than QuantizeLinear/DequantizeLinear) of ``qdq`` not placed on the QNN EP (none known
    without onnxruntime-qnn)."""
    from edgepack_runtime.errors import BackendError
    if not htp.available():
        return set()
    try:
        sess = htp.session(qdq, provider_options=device, config={"session.record_ep_graph_assignment_info": "1"})
    except BackendError:        # a candidate HTP cannot compose (``uncomposable``): nothing placed to report
        return set()
    qdq_ops = ("QuantizeLinear", "DequantizeLinear")
    return {n.name for sub in sess.get_provider_graph_assignment_info() if sub.ep_name != htp.qnn_ep.EP_NAME
            for n in sub.get_nodes() if n.op_type not in qdq_ops}


def device_options(job: Job) -> dict:
    """The HTP the build compiles for (``device.for_profiles``) as QNN provider options. The simulator's results
    depend on them, and on what an earlier session of the process set: with ``soc_model`` 57 a float Sigmoid
    returns multiples of 2^-11 where it returns the exact value without it, and once a session has set it,
    sessions without it behave the same. Every measurement here names the device, as the context binary
    compilation and the build's verification do."""
    from .device import for_profiles
    device = for_profiles(job.profiles)
    return {"htp_arch": device["htp_arch"], "soc_model": device["soc_model"]}


def cpu_run(qdq: onnx.ModelProto, feeds: list[dict]) -> list[dict]:
    """Outputs of the QDQ model on onnxruntime's CPU provider, by name; unfused where the CPU's fused int8
    kernels saturate (``edgepack_runtime.backends.ort.cpu_options``: the HTP computes what the model defines)."""
    import onnxruntime as ort
    from edgepack_runtime.backends.ort import cpu_options
    data = qdq.SerializeToString()
    sess = ort.InferenceSession(data, cpu_options(data), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return [dict(zip(names, sess.run(names, f))) for f in feeds]


def _finish(summary: dict, runner: _Runner, base, qdq, figures) -> dict:
    kinds = runner.kinds
    off, base_off = runner.off_htp(qdq), runner.off_htp(base) if base is not qdq else None
    summary.update(passed=bool(figures["passed"]), figures=_brief(figures), tried=runner.tried,
                   layers=[{"node": n, "op": kinds.get(n, ""), "override": o}
                           for o in ("a16", "float") for n in summary[o]])
    summary["cost"] = {"size": qdq.ByteSize(), "plain_size": base.ByteSize(),
                       "size_ratio": qdq.ByteSize() / max(base.ByteSize(), 1), "nodes_off_htp": len(off),
                       "plain_nodes_off_htp": len(off if base_off is None else base_off), "off_htp": sorted(off)[:50]}
    return summary


def _score(figures: dict) -> tuple:
    return (figures["passed"], -len(figures.get("failed", {})), figures["min_snr_db"], figures["min_cosine"])


FAILED_SNR_DB = -100.0       # the SNR a candidate HTP refused is given: below any that ran


def uncomposable(message: str, names: list[str]) -> dict:
    """The gate figures of a candidate HTP refused (every output of ``names`` at FAILED_SNR_DB): failed, and
    ranked below every candidate that ran, in the figures' own shape (the searches read them per output)."""
    why = [f"HTP could not run it: {message[:300]}"]
    return {"passed": False, "min_cosine": -1.0, "mean_cosine": -1.0, "max_rel_error": float("inf"),
            "min_snr_db": FAILED_SNR_DB, "failed": {n: why for n in names}, "samples": 0,
            "outputs": {n: {"cosine": -1.0, "cosine_mean": -1.0, "rel_error": float("inf"), "snr_db": FAILED_SNR_DB}
                        for n in names}}


def _brief(figures: dict) -> dict:
    keys = ("passed", "min_cosine", "mean_cosine", "max_rel_error", "min_snr_db", "min_top1_agreement",
            "failed", "samples")
    return {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in figures.items() if k in keys}
