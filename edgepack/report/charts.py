"""Inline SVG charts (no JavaScript, no namespaces or external references; each one is valid XML).

Colours are set as attributes, not page CSS, so a chart copied out of the page still renders.
Hovering an element shows its ``<title>`` as a native tooltip.
"""
from __future__ import annotations

import math

from .fmt import as_dict, esc, num, short

FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" font-size="12"'
BAR = "#2a9d8f"
FLOAT = "#8c6bb1"
CULPRIT = "#d62728"
MEAN = "#264653"
GRID = "#e3e6ea"
AXIS = "#5c6670"


def _svg(width: float, height: float, label: str, body: list[str]) -> str:
    return (f'<svg class="chart" viewBox="0 0 {width:.0f} {height:.0f}" width="100%" '
            f'preserveAspectRatio="xMinYMin meet" role="img" aria-label="{esc(label)}" {FONT}>'
            f"<title>{esc(label)}</title>{''.join(body)}</svg>")


def op_histogram_svg(histogram: dict, *, max_rows: int = 30, width: int = 760) -> str:
    """Horizontal bars, most frequent op first; beyond ``max_rows`` the tail is one 'other' bar."""
    items = [(str(k), v) for k, raw in as_dict(histogram).items() if (v := num(raw)) is not None and 0 < v < math.inf]
    if not items:
        return ""
    items.sort(key=lambda kv: (-kv[1], kv[0]))
    if len(items) > max_rows:
        rest = items[max_rows - 1:]
        items = items[: max_rows - 1] + [(f"other ({len(rest)} op types)", sum(v for _, v in rest))]
    label_w, row_h, pad = 200, 22, 6
    bar_max = width - label_w - 70
    top, total = max(v for _, v in items), sum(v for _, v in items)
    body = []
    for i, (name, v) in enumerate(items):
        y = pad + i * row_h
        w = max(1.0, bar_max * v / top)
        body.append(
            f"<g><title>{esc(name)}: {v:,.0f} ({v / total:.1%} of ops)</title>"
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" fill="#1f2933">{short(name, 28)}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" rx="2" fill="{BAR}"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" fill="{AXIS}">{v:,.0f}</text></g>')
    return _svg(width, 2 * pad + len(items) * row_h, "Operator histogram", body)


def _nice_step(span: float, max_ticks: int = 8) -> float:
    step = 1.0
    while span / step > max_ticks:
        for mult in (2, 2.5, 2):  # 1, 2, 5, 10, 20, 50, ...
            step *= mult
            if span / step <= max_ticks:
                break
    return step


def layer_snr_svg(layers: list[dict], *, float_flags: list[bool], culprit: int | None,
                  threshold: float | None = None, max_bars: int = 240,
                  width: int = 900, height: int = 280) -> str:
    """SNR (dB) per layer in graph order; more than ``max_bars`` layers are bucketed.

    Unbucketed: one bar per layer.  Bucketed: the bar is the bucket's worst (minimum) SNR and a
    line traces its mean.  Culprit bar red, float-kept layers purple, optional dashed threshold.
    """
    n = len(layers)
    snr = [num(as_dict(layer).get("snr_db")) for layer in layers]
    finite = [v for v in snr if v is not None and math.isfinite(v)]
    if not any(v is not None for v in snr):
        return ""
    lo = min([0.0, *finite])
    hi = max([0.0, *finite, *([threshold] if threshold is not None else [])])
    step = _nice_step(max(hi - lo, 1.0))
    lo, hi = math.floor(lo / step) * step, math.ceil(hi / step) * step
    if hi <= lo or math.inf in snr:
        hi += step  # headroom so exact (infinite-SNR) layers stand out above every finite one

    k = max(1, math.ceil(n / max_bars))
    buckets = [range(i, min(i + k, n)) for i in range(0, n, k)]
    left, right, top, bottom = 52, 14, 14, 40
    pw, ph = width - left - right, height - top - bottom
    bw = pw / len(buckets)

    def y(v: float) -> float:
        v = min(max(v, lo), hi)
        return top + ph * (hi - v) / (hi - lo)

    body = []
    t = lo
    while t <= hi + 1e-9:
        body.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="{GRID}"/>'
                    f'<text x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end" fill="{AXIS}">{t:g}</text>')
        t += step
    mean_pts, culprit_x = [], None
    for b, idx in enumerate(buckets):
        vals = [snr[j] for j in idx if snr[j] is not None]
        x = left + b * bw
        is_culprit = culprit is not None and culprit in idx
        if is_culprit:
            culprit_x = x + bw / 2
        if not vals:
            continue
        worst_v = min(vals)
        colour = CULPRIT if is_culprit else (FLOAT if any(float_flags[j] for j in idx) else BAR)
        y0, y1 = sorted((y(0.0), y(worst_v)))
        if k == 1:
            layer = as_dict(layers[idx[0]])
            tip = (f"#{idx[0]} {layer.get('tensor') or '?'} ({layer.get('op') or '?'}): SNR {worst_v:.1f} dB"
                   + (f", added {a:.1f} dB" if (a := num(layer.get("added_db"))) is not None else "")
                   + (", kept float" if float_flags[idx[0]] else ""))
        else:
            mean_v = sum(min(max(v, lo), hi) for v in vals) / len(vals)  # clipped: inf-safe
            mean_pts.append(f"{x + bw / 2:.1f},{y(mean_v):.1f}")
            tip = f"layers #{idx[0]}–#{idx[-1]}: worst SNR {worst_v:.1f} dB, mean {mean_v:.1f} dB"
        gap = 1.0 if bw > 4 else 0.0
        body.append(f'<rect x="{x + gap / 2:.2f}" y="{y0:.1f}" width="{max(bw - gap, 0.6):.2f}" '
                    f'height="{max(y1 - y0, 0.8):.1f}" fill="{colour}"><title>{esc(tip)}</title></rect>')
    if len(mean_pts) > 1:
        body.append(f'<polyline points="{" ".join(mean_pts)}" fill="none" stroke="{MEAN}" stroke-width="1.5"/>')
    body.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(0.0):.1f}" y2="{y(0.0):.1f}" stroke="{AXIS}"/>')
    if threshold is not None and math.isfinite(threshold):
        ty = y(threshold)
        body.append(f'<line x1="{left}" x2="{left + pw}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="{CULPRIT}" '
                    f'stroke-dasharray="6 4"/><text x="{left + pw - 4}" y="{ty - 4:.1f}" text-anchor="end" '
                    f'fill="{CULPRIT}" stroke="#fff" stroke-width="3" paint-order="stroke">'
                    f"parity min SNR {threshold:.1f} dB</text>")
    if culprit_x is not None:
        body.append(f'<polygon points="{culprit_x - 6:.1f},{top - 10} {culprit_x + 6:.1f},{top - 10} '
                    f'{culprit_x:.1f},{top - 1}" fill="{CULPRIT}"><title>culprit</title></polygon>')
    x_step = max(1, int(_nice_step(max(n - 1, 1), 6)))
    for t_idx in range(0, n, x_step):
        tx = left + (t_idx // k + 0.5) * bw
        body.append(f'<text x="{tx:.1f}" y="{top + ph + 16}" text-anchor="middle" fill="{AXIS}">#{t_idx}</text>')
    note = f" — each bar is the worst of {k} layers, line is the mean" if k > 1 else ""
    body.append(f'<text x="{left + pw / 2:.1f}" y="{height - 6}" text-anchor="middle" fill="{AXIS}">'
                f"layer in graph order ({n:,} layers){esc(note)}</text>"
                f'<text transform="translate(14 {top + ph / 2:.1f}) rotate(-90)" text-anchor="middle" '
                f'fill="{AXIS}">SNR (dB)</text>')
    return _svg(width, height, "Per-layer SNR in graph order", body)
