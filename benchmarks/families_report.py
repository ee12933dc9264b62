"""The markdown table of ``bench_int8_families.py`` from its json (``python benchmarks/families_report.py out.json``)."""
from __future__ import annotations

import json
import sys

HEADER = ("| model | precision | runtime | cosine (worst output) | max err / range | verdict | SNR dB | task figures "
          "| size / fp32 | latency / fp32 (ms) | QUANTIZE / DEQUANTIZE, partitions | notes |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")


PREFERRED = ("text_agreement", "iou_50", "max_prob_error", "top1_agreement", "top5_agreement")


def _task(task: dict) -> str:
    """Numeric task figures, the preferred ones first; output names only when there are several outputs."""
    outputs = {k.rpartition(":")[0] for k in task}
    items = [(k.rpartition(":")[0], k.rpartition(":")[2], v) for k, v in task.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool)]
    items.sort(key=lambda t: PREFERRED.index(t[1]) if t[1] in PREFERRED else len(PREFERRED))
    parts = []
    for out, fig, v in items[:4]:
        short = out if len(out) <= 14 else out[:6] + "…" + out[-6:]
        parts.append((f"{short} " if len(outputs) > 1 else "") + f"{fig} {v:.3g}")
    return "; ".join(parts) or "—"


def _notes(r: dict) -> str:
    notes = []
    if r.get("method"):
        notes.append(f"method {r['method']}")
    if r.get("float_layers"):
        fl = r["float_layers"]
        notes.append(f"float: {len(fl)} ({', '.join(fl[:3])}{'…' if len(fl) > 3 else ''})")
    if r.get("int16_layers"):
        notes.append(f"int16: {len(r['int16_layers'])}")
    if r.get("mixed_tried"):
        notes.append(f"{r['mixed_tried']} tried")
    if r.get("culprits") and not r.get("passed"):
        notes.append(f"worst layers: {', '.join(r['culprits'][:2])}")
    outs = r.get("outputs") or {}
    if not r.get("passed") and r.get("cosine_output") and len(outs) > 1:
        same = r["cosine_output"] == r["range_error_output"]
        notes.append(f"worst output {r['cosine_output']}" if same else
                     f"worst output: cos {r['cosine_output']}, err {r['range_error_output']}")
    if r.get("float_nodes") is not None and r.get("runtime") == "onnxruntime":
        notes.append(f"{r['float_nodes']} nodes float in QDQ")
    notes += r.get("notes", [])
    if r.get("seconds"):
        notes.append(f"{r['seconds']:.0f} s")
    return "; ".join(notes)


def row(r: dict) -> str:
    head = f"| {r['model']} | {r['precision']} | {r.get('runtime', '')} "
    if r.get("skipped"):
        return head + f"| — | — | — | — | — | — | — | — | {r['skipped']} |"
    if r.get("error"):
        return head + f"| — | — | fail | — | — | — | — | — | error: {r['error']} ({r.get('seconds', 0):.0f} s) |"
    size = f"{r['size'] / r['fp32_size']:.3f}" if r.get("fp32_size") else "—"
    lat = r.get("latency")
    lat_s = f"{lat['ratio']:.2f} ({lat['fp32_ms']:.3g} → {lat['ms']:.3g})" if lat else "—"
    ops = "—"
    if "quantize_ops" in r:
        ops = f"{r['quantize_ops']} / {r['dequantize_ops']}"
        if r.get("partitions") is not None:
            ops += f", {r['partitions']} part. ({r['delegated']}/{r['ops']} ops)"
    return (head + f"| {r['cosine']:.4f} | {100 * r['range_error']:.1f}% | {'pass' if r['passed'] else 'fail'} "
            f"| {r['snr_db']:.1f} | {_task(r.get('task', {}))} | {size} | {lat_s} | {ops} | {_notes(r)} |")


def table(doc: dict) -> str:
    lines = [f"commit {doc.get('commit', '?')}; settings {doc.get('settings', {})}", "", HEADER]
    for key, run in doc.get("runs", {}).items():
        setup = next((r for r in run["rows"] if r["precision"] == "setup"), None)
        for r in run["rows"]:
            if r["precision"] != "setup":
                lines.append(row(r))
        if run.get("stopped"):
            lines.append(f"| {key} | — | — | — | — | — | — | — | — | — | — | stopped: {run['stopped']}"
                         f"{'' if setup else ' (before its data was ready)'} |")
    return "\n".join(lines)


def summary(doc: dict) -> str:
    """Pass counts per precision (the issue's verdict)."""
    counts: dict[str, list[int]] = {}
    for run in doc.get("runs", {}).values():
        for r in run["rows"]:
            if r["precision"] == "setup" or r.get("skipped"):
                continue
            c = counts.setdefault(r["precision"], [0, 0])
            c[0] += bool(r.get("passed"))
            c[1] += 1
    return "\n".join(f"- {p}: {a}/{b} pass" for p, (a, b) in counts.items())


SATURATED = 0.99          # a max error this close to the whole range says nothing more (a map's flipped pixel)
FLOOR_TASK = (":text_agreement", ":iou_50", ":top1_agreement")


def floor_summary(doc: dict) -> str:
    """Per model with an ``fp32-dither`` row (the reference on inputs moved by half an int8 step): that floor's
    verdict, and each quantized row against it: ``within`` when its worst cosine is at least the floor's, its
    max error at most the floor's (unless the floor's is already the whole range) and its same-text, IoU@0.5
    and top-1 figures at least the floor's (it is as close to the reference as the reference is to itself)."""
    lines = []
    for key, run in doc.get("runs", {}).items():
        rows = {r["precision"]: r for r in run["rows"] if r["precision"] != "setup" and not r.get("error")
                and not r.get("skipped") and r.get("cosine") is not None}
        f = rows.get("fp32-dither")
        if f is None:
            continue
        parts = []
        for p, r in rows.items():
            if p in ("fp32", "fp32-dither"):
                continue
            within = (r["cosine"] >= f["cosine"]
                      and (r["range_error"] <= f["range_error"] or f["range_error"] >= SATURATED)
                      and all(r.get("task", {}).get(k, 0.0) >= v for k, v in f.get("task", {}).items()
                              if k.endswith(FLOOR_TASK)))
            parts.append(f"{p} {r['cosine']:.4f} / {100 * r['range_error']:.1f}% "
                         f"({'within' if within else 'outside'})")
        lines.append(f"- {key}: floor {f['cosine']:.4f} / {100 * f['range_error']:.1f}% "
                     f"({'pass' if f['passed'] else 'fail'}); " + "; ".join(parts))
    return "\n".join(lines)


def merge(docs: list[dict]) -> dict:
    """One document from several runs: a later run's rows replace an earlier run's rows of the same model and
    precision (and say so in their notes); a model's ``stopped`` note stays only if rows are still missing."""
    out = {"commit": docs[0].get("commit"), "settings": docs[0].get("settings"), "runs": {}}
    for i, doc in enumerate(docs):
        for key, run in doc.get("runs", {}).items():
            have = out["runs"].setdefault(key, {"rows": [], "done": False})
            for r in run["rows"]:
                if i:
                    r = {**r, "notes": list(r.get("notes", [])) + [f"re-run at {doc.get('commit')}"]}
                    have["rows"] = [x for x in have["rows"] if x["precision"] != r["precision"]]
                have["rows"].append(r)
            if i and run.get("done") and not run.get("stopped"):
                have.pop("stopped", None)
            elif run.get("stopped"):
                have["stopped"] = run["stopped"]
    order = ("setup", "fp32", "fp32-dither", "ort-qdq", "ort-fused")
    for run in out["runs"].values():
        run["rows"].sort(key=lambda r: order.index(r["precision"]) if r["precision"] in order else len(order))
    return out


if __name__ == "__main__":
    doc = merge([json.loads(open(p).read()) for p in sys.argv[1:]])
    print(table(doc))
    print()
    print(summary(doc))
    floors = floor_summary(doc)
    if floors:
        print()
        print("Against the reference's floor (fp32 on inputs moved by half an int8 step):")
        print(floors)
