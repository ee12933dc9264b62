"""The report's sections, each a function from (parts of) the manifest to an HTML fragment."""
from __future__ import annotations

import heapq
import math
import shlex
from typing import Any

from . import fmt
from .charts import FLOAT, BAR, CULPRIT, layer_snr_svg, op_histogram_svg
from .fmt import DASH, as_dict, as_list, esc, num

WORST_LAYERS = 10


# -- small building blocks -----------------------------------------------------------------------

def card(title: str, body: str, *, anchor: str = "", cls: str = "card") -> str:
    ident = f' id="{anchor}"' if anchor else ""
    return f'<section class="{cls}"{ident}><h2>{title}</h2>{body}</section>'


def facts(pairs: list[tuple[str, str]]) -> str:
    """A definition list; labels are trusted text, values already-escaped HTML."""
    return '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def td(content: str, cls: str | None = None) -> str:
    return f'<td class="{cls}">{content}</td>' if cls else f"<td>{content}</td>"


def table(headers: list[str], rows: list[str], *, empty: str = "Nothing recorded.", cls: str = "") -> str:
    if not rows:
        return f'<p class="muted">{esc(empty)}</p>'
    head = "".join(f"<th>{h}</th>" for h in headers)
    klass = f' class="{cls}"' if cls else ""
    return (f'<div class="scroll"><table{klass}><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def tr(cells: list[str], cls: str | None = None) -> str:
    return (f'<tr class="{cls}">' if cls else "<tr>") + "".join(cells) + "</tr>"


def bullet_list(items: list[Any], *, cls: str = "warnings", empty: str = "None.") -> str:
    if not items:
        return f'<p class="muted">{esc(empty)}</p>'
    return f'<ul class="{cls}">' + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


def target_label(target: dict, index: int) -> str:
    return esc(target.get("name") if target.get("name") is not None else f"target {index + 1}")


# -- page-level sections -------------------------------------------------------------------------

def header(manifest: dict, extras: dict, targets: list[dict]) -> str:
    model = as_dict(manifest.get("model"))
    verdicts = [as_dict(t.get("parity")).get("passed") for t in targets]
    failed = sum(v is False for v in verdicts)
    if failed:
        status = f'{fmt.badge(False)} {failed} of {len(targets)} target(s) failed parity'
    elif targets and all(v is True for v in verdicts):
        status = f"{fmt.badge(True)} all {len(targets)} target(s) passed parity"
    elif targets:
        status = f"{fmt.badge(None)} {len(targets)} target(s), not all verified"
    else:
        status = f"{fmt.badge(None, missing='no targets')} nothing was built"
    sha = model.get("source_sha256")
    opsets = as_dict(model.get("opsets"))
    pairs = [
        ("Version", esc(model.get("version"))),
        ("Created", esc(manifest.get("created"))),
        ("Source SHA-256", f'<code title="{esc(sha)}">{fmt.short(sha, 17)}</code>' if sha else DASH),
        ("Opsets", ", ".join(f"{esc(d or 'ai.onnx')} {esc(v)}" for d, v in opsets.items()) or DASH),
    ]
    for key, value in extras.items():
        label = esc(str(key).replace("_", " ").capitalize())
        if key == "command" and isinstance(value, (list, tuple)):
            value = shlex.join(str(v) for v in value)
        pairs.append((label, fmt.code(value) if key == "command" else fmt.show(value)))
    tools = as_dict(manifest.get("tools"))
    chips = "".join(f'<span class="chip"><b>{esc(k)}</b> {esc(v)}</span>' for k, v in tools.items())
    pairs.append(("Tools", f'<div class="chips">{chips}</div>' if chips else DASH))
    return (f'<header class="card head"><p class="kicker">edgepack build report</p>'
            f'<h1>{esc(model.get("name"))}</h1><p class="status">{status}</p>{facts(pairs)}</header>')


def _summary_row(i: int, t: dict) -> str:
    info, parity = as_dict(t.get("info")), as_dict(t.get("parity"))
    outputs, lat = as_dict(parity.get("outputs")), as_dict(t.get("latency_ms"))
    min_cos = parity["min_cosine"] if "min_cosine" in parity else fmt.worst(outputs, "cosine")
    snr = parity["min_snr_db"] if "min_snr_db" in parity else fmt.worst(outputs, "snr_db")
    return tr([
        td(f'<a href="#target-{i}">{target_label(t, i)}</a>'), td(esc(t.get("format"))),
        td(esc(t.get("precision"))), td(fmt.size_vs(info.get("size"), info.get("fp32_size")), "num"),
        td(fmt.badge(parity.get("passed"))), td(fmt.cosine(min_cos), "num"), td(fmt.db(snr), "num"),
        td(fmt.pct(fmt.worst(outputs, "top1_agreement")), "num"), td(fmt.ms(lat.get("mean")), "num"),
        td(fmt.ratio(lat.get("ratio_to_fp32")), "num"),
    ])


def summary(targets: list[dict]) -> str:
    headers = ["Target", "Format", "Precision", "Size", "Parity", "Min cosine", "Min SNR", "Top-1",
               "Latency (mean)", "Latency vs fp32"]
    rows = [_summary_row(i, t) for i, t in enumerate(targets)]
    return card("Targets", table(headers, rows, empty="No targets were built."))


def calibration(cal: dict) -> str:
    if not cal:
        return card("Calibration data", '<p class="muted">No calibration information recorded.</p>')
    warn = ""
    if cal.get("synthetic") is True:
        warn = ('<div class="warn-synthetic" role="alert"><strong>⚠ Synthetic calibration data.</strong> '
                "Quantization ranges and parity were measured on generated inputs, not real data, so the "
                "accuracy figures in this report say little about real-world accuracy. Rebuild with a "
                "representative calibration set.</div>")
    pairs = [("Kind", esc(cal.get("kind"))), ("Source", fmt.code(cal.get("source"))),
             ("Calibration samples", fmt.count(cal.get("calib"))), ("Hold-out samples", fmt.count(cal.get("holdout"))),
             ("Synthetic", fmt.show(cal.get("synthetic")) if "synthetic" in cal else DASH)]
    warnings = as_list(cal.get("warnings"))
    extra = "<h3>Data warnings</h3>" + bullet_list(warnings) if warnings else ""
    return card("Calibration data", warn + facts(pairs) + extra)


def io_table(inputs: list, outputs: list) -> str:
    rows = [tr([td(kind), td(fmt.code(io.get("name"))), td(fmt.shape(io.get("shape"))),
                td(esc(io.get("dtype"))), td(esc(io.get("layout")))])
            for kind, group in (("input", inputs), ("output", outputs)) for io in map(as_dict, group)]
    return card("Inputs and outputs", table(["Direction", "Name", "Shape", "Dtype", "Layout"], rows))


def build_cost(build: dict) -> str:
    """Wall time, CPU time and peak RSS of each build stage (``manifest["build"]["stages"]``)."""
    stages = [as_dict(x) for x in as_list(build.get("stages"))]
    if not stages:
        return ""
    total = num(build.get("seconds"))
    rows = []
    for st in stages:
        sec = num(st.get("seconds"))
        share = sec / total if sec is not None and total else None
        rows.append(tr([td(fmt.code(st.get("name"))), td(fmt.seconds(st.get("seconds")), "num"),
                        td(fmt.pct(share), "num"), td(fmt.seconds(st.get("cpu_seconds")), "num"),
                        td(fmt.fixed(st.get("peak_rss_mb"), 0, " MB"), "num")]))
    rows.append(tr([td("<b>whole build</b>"), td(fmt.seconds(build.get("seconds")), "num"), td("", "num"),
                    td(fmt.seconds(build.get("cpu_seconds")), "num"),
                    td(fmt.fixed(build.get("peak_rss_mb"), 0, " MB"), "num")]))
    note = ('<p class="muted">Time is charged to the innermost stage (latency is not counted in the '
            "conversion). Peak RSS is the highest resident memory seen during the stage; the whole build's is "
            "the process' peak. Python's start-up and imports before the build began are not counted.</p>")
    return card("Build cost", table(["Stage", "Wall", "Share", "CPU", "Peak RSS"], rows) + note)


def warnings_section(build: dict, targets: list[dict]) -> str:
    items = list(as_list(build.get("warnings")))
    for i, t in enumerate(targets):
        items += [f"{t.get('name') or f'target {i + 1}'}: {w}" for w in as_list(t.get("warnings"))]
    return card(f"Build warnings ({len(items)})", bullet_list(items, empty="No build warnings."))


# -- per-target sections -------------------------------------------------------------------------

_THRESHOLDS = {  # threshold key -> (output metric, True if the metric must stay >= threshold, label)
    "min_cosine": ("cosine", True, "cosine ≥ {}"),
    "max_rel_error": ("rel_error", False, "relative error ≤ {}"),
    "min_snr_db": ("snr_db", True, "SNR ≥ {} dB"),
    "min_top1_agreement": ("top1_agreement", True, "top-1 ≥ {}"),
    "min_iou": ("iou_50", True, "map IoU ≥ {}"),
    "max_prob_error": ("max_prob_error", False, "max probability error ≤ {}"),
    "min_region": ("region_recall", True, "map regions ≥ {}"),
    "min_text": ("text_agreement", True, "same text ≥ {}"),
}


def _violates(metric: str, value: Any, thresholds: dict) -> bool:
    """True when an output metric breaks its parity threshold (NaN always does)."""
    if not fmt.is_real(value):
        return False
    v = float(value)
    for key, (m, at_least, _) in _THRESHOLDS.items():
        limit = num(thresholds.get(key))
        if m == metric and limit is not None and (math.isnan(v) or (v < limit if at_least else v > limit)):
            return True
    return False


def _parity(parity: dict) -> str:
    if not parity:
        return '<p class="muted">Parity was not measured for this target.</p>'
    thresholds = as_dict(parity.get("thresholds"))
    limits = ", ".join(_THRESHOLDS[k][2].format(fmt.show(v)) if k in _THRESHOLDS else f"{esc(k)} {fmt.show(v)}"
                       for k, v in thresholds.items())
    pairs = [("Verdict", fmt.badge(parity.get("passed"))), ("Data", esc(parity.get("data"))),
             ("Samples", fmt.count(parity.get("samples"))), ("Backend", esc(parity.get("backend"))),
             ("Thresholds", limits or DASH)]
    floor = as_dict(parity.get("floor"))
    if floor:        # the reference itself on inputs moved by half an int8 step (edgepack.verify.floor)
        missed = "; ".join(", ".join(esc(w) for w in as_list(why)) for why in as_dict(floor.get("failed")).values())
        pairs.append(("fp32, inputs moved by half an int8 step",
                      f"{fmt.badge(floor.get('passed'))} cosine {fmt.cosine(floor.get('min_cosine'))}, "
                      f"SNR {fmt.db(floor.get('min_snr_db'))}" + (f" ({missed})" if missed else "")))
    rows = []
    for name, o in as_dict(parity.get("outputs")).items():
        o = as_dict(o)

        def cell(metric: str, text: str) -> str:
            return td(text, "num bad" if _violates(metric, o.get(metric), thresholds) else "num")
        rows.append(tr([td(fmt.code(name)), cell("cosine", fmt.cosine(o.get("cosine"))),
                        td(fmt.cosine(o.get("cosine_mean")), "num"), td(fmt.sig(o.get("max_abs")), "num"),
                        cell("rel_error", fmt.sig(o.get("rel_error"))), cell("snr_db", fmt.db(o.get("snr_db"))),
                        cell("top1_agreement", fmt.pct(o.get("top1_agreement"))),
                        td(fmt.pct(o.get("top5_agreement")), "num"), _task(o, thresholds)]))
    headers = ["Output", "Cosine (min)", "Cosine (mean)", "Max abs error", "Rel. error", "SNR", "Top-1", "Top-5",
               "Task figures"]
    return facts(pairs) + table(headers, rows, empty="No per-output parity figures recorded.")


_TASK = (("iou_50", "IoU@0.5", fmt.pct), ("iou_30", "IoU@0.3", fmt.pct), ("region_recall", "regions found", fmt.pct),
         ("region_precision", "regions right", fmt.pct), ("sequence_agreement", "same sequence", fmt.pct),
         ("text_agreement", "same text", fmt.pct), ("max_prob_error", "max prob. error", fmt.sig))


def _task(o: dict, thresholds: dict) -> str:
    """The output's kind and its task figures (``edgepack_runtime.kinds``), a breach in red."""
    kind = o.get("kind")
    if kind in (None, "values"):
        return td(DASH)
    parts = []
    for key, label, show in _TASK:
        if key in o:
            text = f"{label} {show(o.get(key))}"
            parts.append(f'<span class="bad">{text}</span>' if _violates(key, o.get(key), thresholds) else text)
    return td(f"{esc(kind.replace('_', ' '))}: " + ", ".join(parts))


def rank_layers(layers: list[dict], k: int = WORST_LAYERS) -> list[int]:
    """Indices of the ``k`` worst layers: largest SNR lost at the layer (added_db) first,
    then lowest SNR; layers with neither figure are not ranked.  Exact for any layer count."""
    scored = []
    for idx, layer in enumerate(layers):
        snr, added = num(layer.get("snr_db")), num(layer.get("added_db"))
        if snr is None and added is None:
            continue
        scored.append(((added is None, -added if added is not None else 0.0,
                        snr if snr is not None else math.inf, idx), idx))
    return [idx for _, idx in heapq.nsmallest(k, scored)]


def _layers(quant: dict, precision: Any, threshold: float | None) -> str:
    layers = [as_dict(x) for x in as_list(quant.get("layers"))]
    if not layers:
        return '<p class="muted">No per-layer error analysis recorded.</p>'
    kept = set(_kept_names(quant))
    flags = [lay.get("float") is True or str(lay.get("tensor")) in kept or str(lay.get("origin")) in kept
             for lay in layers]
    worst = _culprit_order(layers, quant) or rank_layers(layers)
    culprit = worst[0] if worst else None
    chart = layer_snr_svg(layers, float_flags=flags, culprit=culprit, threshold=threshold)
    legend = ('<p class="legend">' + "".join(f'<span><i style="background:{c}"></i>{t}</span>' for c, t in
              ((BAR, "quantized"), (FLOAT, "kept in float"), (CULPRIT, "culprit (worst layer)"))) + "</p>")
    rows = []
    for rank, idx in enumerate(worst, 1):
        lay = layers[idx]
        tags = (' <span class="tag culprit-tag">culprit</span>' if idx == culprit else "") + \
               (' <span class="tag float-tag">float</span>' if flags[idx] else "")
        rows.append(tr([td(str(rank), "num"), td(fmt.code(lay.get("tensor")) + tags),
                        td(esc(lay.get("op"))), td(esc(lay.get("origin"))), td(f"#{idx}", "num"),
                        td(fmt.db(lay.get("snr_db")), "num"), td(fmt.db(lay.get("quant_snr_db")), "num"),
                        td(fmt.db(lay.get("added_db")), "num"),
                        td(fmt.cosine(lay.get("cosine")), "num"),
                        td("float (kept)" if flags[idx] else esc(precision))],
                       "culprit" if idx == culprit else ("float" if flags[idx] else None)))
    headers = ["Rank", "Layer (tensor)", "Op", "ONNX node", "Index", "SNR", "Own SNR", "Added", "Cosine",
               "Precision"]
    how = ("by the layer's own quantization SNR (its float values through its int8 parameters, per channel), "
           "then by SNR lost at the layer" if quant.get("culprits") else
           "by SNR lost at the layer (added dB), then by lowest SNR")
    note = (f'<p class="muted">{len(layers):,} layers analysed. Worst {min(WORST_LAYERS, len(worst))} ranked '
            f"{how}. SNR is accumulated error against the float model.</p>")
    return ((chart + legend if chart else '<p class="muted">No per-layer SNR values to plot.</p>')
            + f"<h4>Worst layers</h4>{note}" + table(headers, rows, cls="worst", empty="No layer has error figures."))


def _kept_names(quant: dict) -> list[str]:
    names = []
    for n in as_list(quant.get("float_layers")):
        if isinstance(n, dict):
            names.extend(str(n[k]) for k in ("tensor", "origin") if n.get(k))
        else:
            names.append(str(n))
    return names


def _culprit_order(layers: list[dict], quant: dict) -> list[int]:
    """The debugger's own ranking (``culprits``: tensor names, worst first) as layer indices."""
    index = {str(lay.get("tensor")): i for i, lay in enumerate(layers)}
    return [index[str(t)] for t in as_list(quant.get("culprits")) if str(t) in index][:WORST_LAYERS]


def _mixed(quant: dict) -> str:
    mp = as_dict(quant.get("mixed_precision"))
    kept = [n.get("origin") or n.get("tensor") if isinstance(n, dict) else n
            for n in as_list(quant.get("float_layers"))]
    if not mp and not kept:
        return ""
    kept_html = ("".join(f'<span class="chip float-chip">{esc(n)}</span>' for n in kept)
                 if kept else "none — every layer is quantized")
    pairs = [("Layers kept in float", kept_html), ("Size cost", fmt.cost(mp.get("size_cost"))),
             ("Latency cost", fmt.cost(mp.get("latency_cost")))]
    attempts = [as_dict(a) for a in as_list(mp.get("tried"))]
    rows = [tr([td(str(i), "num"), td(fmt.count(a.get("float_layers")), "num"), td(fmt.badge(a.get("passed"))),
                td(fmt.cosine(a.get("min_cosine")), "num")]) for i, a in enumerate(attempts, 1)]
    tried = table(["Attempt", "Float layers", "Parity", "Min cosine"], rows) if rows else ""
    return "<h3>Mixed precision</h3>" + facts(pairs) + tried


def target_section(i: int, t: dict) -> str:
    info, parity = as_dict(t.get("info")), as_dict(t.get("parity"))
    lat, quant = as_dict(t.get("latency_ms")), as_dict(t.get("quantization"))
    latency = DASH
    if lat:
        latency = (f"{fmt.ms(lat.get('mean'))} mean · p50 {fmt.ms(lat.get('p50'))} · p90 {fmt.ms(lat.get('p90'))}"
                   f" · {fmt.count(lat.get('runs'))} runs · {fmt.count(lat.get('threads'))} thread(s)"
                   f" · {fmt.ratio(lat.get('ratio_to_fp32'))} fp32")
    pairs = [("Format", esc(t.get("format"))), ("Precision", esc(t.get("precision"))),
             ("File", fmt.code(t.get("file"))),
             ("Size", fmt.size_vs(info.get("size"), info.get("fp32_size"))),
             ("fp32 size", fmt.size(info.get("fp32_size"))),
             ("Operators", fmt.count(info.get("ops"))), ("Convert time", fmt.seconds(info.get("convert_seconds"))),
             ("Latency", latency)]
    if quant:
        pairs += [("Quantization", esc(quant.get("method"))), ("Model I/O", esc(quant.get("io")))]
        ip = as_dict(quant.get("integer_path"))
        if ip:
            outside = ", ".join(f"{k} ×{v}" for k, v in as_dict(ip.get("not_delegated")).items()) or "none"
            pairs.append(("Integer path", esc(f"{ip.get('partitions')} XNNPACK partition(s), {ip.get('delegated')}/"
                                              f"{ip.get('ops')} ops delegated, {ip.get('requantize')} requantize, "
                                              f"{ip.get('dequantize')} dequantize; outside XNNPACK: {outside}")))
    hist = op_histogram_svg(as_dict(info.get("op_histogram")))
    threshold = num(as_dict(parity.get("thresholds")).get("min_snr_db"))
    body = (facts(pairs) + "<h3>Parity per output</h3>" + _parity(parity)
            + "<h3>Operators</h3>" + (hist or '<p class="muted">No operator histogram recorded.</p>'))
    if quant:
        body += "<h3>Per-layer quantization error</h3>" + _layers(quant, t.get("precision"), threshold) + _mixed(quant)
    title = f"Target {target_label(t, i)} {fmt.badge(parity.get('passed'))}"
    return card(title, body, anchor=f"target-{i}")
