"""``edgepack inspect``."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .common import handle_errors, out_console, print_json


@handle_errors
def inspect(
    bundle: Annotated[Path, typer.Argument(help="bundle file or unpacked bundle folder")],
    json_out: Annotated[bool, typer.Option("--json", help="print the manifest as JSON")] = False,
    trust_key: Annotated[list[Path], typer.Option("--trust-key", help="a trusted public key (repeatable): "
                                                  "the signature must verify against one")] = [],
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show tracebacks")] = False,
):
    """Verify a bundle (hashes, format, signature with --trust-key) and show what it holds and who signed it."""
    from edgepack_runtime.signing import open_verified
    b, sig = open_verified(bundle, trust_key)
    m = b.manifest
    if json_out:
        print_json({"bundle": str(bundle), "verified": True, "manifest": m, "signature": sig})
        return
    model = m["model"]
    out_console.print(f"[bold]{model['name']}[/] v{model['version']}  (format {m['format_version']}, "
                      f"created {m['created']}, signature: {'present' if sig['signed'] else 'none'})")
    out_console.print("hashes: [green]all members verified[/]")
    out_console.print(_signature_line(sig), markup=False)
    io = Table("", "name", "shape", "dtype", "layout", title="interface (as in the ONNX model)")
    for kind in ("inputs", "outputs"):
        for v in m[kind]:
            io.add_row(kind[:-1], v["name"], str(v["shape"]), v["dtype"], v.get("layout") or "")
    out_console.print(io)
    for f in m.get("frozen_inputs", []):        # --input-value: constants in the model, not inputs any more
        value = f.get("value", f"sha256 {f.get('sha256', '?')[:12]}")
        out_console.print(f"frozen input (not in the interface): {f['name']} = {value} ({f['dtype']} {f['shape']})",
                          markup=False, highlight=False)
    t = Table("target", "format", "precision", "file", "size", "cosine", "rel.err", "verdict", title="targets")
    for e in m["targets"]:
        p = e.get("parity") or {}
        size = m["files"][e["file"]]["size"]
        verdict = "[green]pass[/]" if p.get("passed") else "[red]FAIL[/]" if p else "unverified"
        t.add_row(e["name"], e["format"], e["precision"], e["file"], f"{size:,}",
                  f"{p.get('min_cosine', float('nan')):.6f}", f"{p.get('max_rel_error', float('nan')):.2e}", verdict)
    out_console.print(t)
    for e in m["targets"]:
        devices = ", ".join(e.get("devices", [])) or "-"
        out_console.print(f"{e['name']}: suits {devices}; info {e.get('info', {})}")
        q, lat, p = e.get("quantization"), e.get("latency_ms"), e.get("parity", {})
        if "min_snr_db" in p:
            top1 = f", top-1 agreement {p['min_top1_agreement']:.1%}" if "min_top1_agreement" in p else ""
            out_console.print(f"{e['name']}: accuracy on {p.get('samples')} {p.get('data')} samples: SNR "
                              f"{p['min_snr_db']:.1f} dB{top1}")
        for name, o in (p.get("outputs") or {}).items():     # task figures (edgepack_runtime.kinds)
            task = {k: o[k] for k in ("iou_50", "iou_30", "region_recall", "region_precision", "sequence_agreement",
                                      "text_agreement", "max_prob_error") if k in o}
            if o.get("kind") not in (None, "values") and task:
                out_console.print(f"{e['name']}: output {name} ({o['kind'].replace('_', ' ')}): " + ", ".join(
                    f"{k} {v:.3f}" for k, v in task.items()), markup=False, highlight=False)
        if lat:
            ratio = f" ({lat['ratio_to_fp32']:.2f}x fp32)" if "ratio_to_fp32" in lat else ""
            out_console.print(f"{e['name']}: latency on the build host {lat['mean']:.3f} ms{ratio}")
        if q:
            kept = ", ".join(f["origin"] or f["tensor"] for f in q.get("float_layers", [])) or "none"
            out_console.print(f"{e['name']}: int8 {q.get('method')} ({q.get('policy')} policy, {q.get('io')} I/O), "
                              f"kept in float: {kept}; most sensitive: {', '.join(q.get('culprits', [])[:3])}")
            ip = q.get("integer_path")
            if ip:
                out_console.print(f"{e['name']}: integer path: {ip['partitions']} delegate partition(s), "
                                  f"{ip['delegated']}/{ip['ops']} ops delegated, {ip['requantize']} requantize, "
                                  f"{ip['dequantize']} dequantize; outside the delegate: "
                                  f"{ip['not_delegated'] or 'none'}", markup=False, highlight=False)
        comp, ane = e.get("compression"), e.get("ane")
        if comp:
            out_console.print(f"{e['name']}: compression {comp.get('mode')}: {comp.get('summary', '')}")
        if ane:
            out_console.print(f"{e['name']}: Neural Engine: {ane.get('verdict')}")
            for f in ane.get("findings", []):
                where = ", ".join(f.get("where", [])[:3])
                out_console.print(f"    {f['severity']}: {f['rule']} ({f.get('count', '')}) {f.get('what', '')}"
                                  + (f": {where}" if where else ""))
        if e.get("format") == "qnn":
            _print_qnn(e, m["files"])
    out_console.print(f"samples for the on-device check: {len(m.get('samples', []))}")
    stages = (m.get("build") or {}).get("stages") or []
    if stages:
        out_console.print("build cost: " + ", ".join(
            f"{s['name']} {s['seconds']:.2f} s" + (f" ({s['peak_rss_mb']:.0f} MB)" if s.get("peak_rss_mb") else "")
            for s in stages))


def _print_qnn(entry: dict, files: dict) -> None:
    """A Qualcomm target's qnn block: quantization, context binary (HTP arch, QNN SDK) or why there is none,
    placement (fraction of nodes on HTP) and the nodes left on CPU."""
    from edgepack_runtime.backends.qnn_manifest import summary
    for line in summary(entry, files):
        out_console.print(f"{entry['name']}: {line}", markup=False, highlight=False)


def _signature_line(sig: dict) -> str:
    """Who signed and whether that was checked (``edgepack_runtime.signing.verify``'s report)."""
    if not sig["signed"] or sig["key_id"] is None:
        return f"signature: {'none' if not sig['signed'] else 'unreadable'} ({sig['note']})"
    who = f"key {sig['key_id']}" + (f" ({sig['signer']})" if sig["signer"] else "") + f", signed {sig['signed_at']}"
    return f"signature: verified, {who}" if sig["verified"] else f"signature: {who}; {sig['note']}"
