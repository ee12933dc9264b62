"""The ``qnn`` block of a Qualcomm target entry, read defensively (it comes from an untrusted manifest).

A Qualcomm target entry (``format: "qnn"``, ``file``: the portable QDQ ONNX model) carries::

    "qnn": {"activations": "uint8"|"uint16", "weights": "int8", "per_channel": bool,
            "versions": {"onnxruntime_qnn", "qnn_sdk", "onnxruntime"} | null,
            "context": {"file", "htp_arch", "soc_model", "sdk_version", "ort_qnn"} | null,
            "context_reason": str | null,
            "placement": {"htp_nodes", "cpu_nodes", "fraction_on_htp", "partitions",
                          "cpu": [{"name", "op_type", "why"}]},
            "overrides": {...}}

``read_context`` never raises on a malformed block: it returns no context and the reason, and the backend
runs the QDQ model (which needs nothing from this block). ``summary`` gives display lines for ``inspect``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import BundleError
from ..manifest import check_relpath

_SDK = re.compile(r"^v?(\d{1,4})\.(\d{1,4})\.(\d{1,4})(?:[.\-+][0-9A-Za-z.\-+]*)?$")
_ARCH = re.compile(r"^[vV]?(\d{2,3})$")
_SOC = re.compile(r"^\d{1,4}$")


@dataclass(frozen=True)
class Context:
    """A context binary a manifest names: member ``file``, compiled for HTP ``v{htp_arch}`` with QNN SDK ``sdk``."""

    file: str
    htp_arch: str            # "75"
    soc_model: str | None    # "57"
    sdk_version: str         # as written: "v2.51.0.260929181845"
    sdk: tuple[int, int, int]
    ort_qnn: str | None      # the onnxruntime-qnn version that compiled it

    def describe(self) -> str:
        soc = f", SoC {self.soc_model}" if self.soc_model else ""
        return f"HTP v{self.htp_arch}{soc}, QNN SDK {sdk_text(self.sdk)}"


def sdk_text(sdk: tuple[int, int, int]) -> str:
    return ".".join(map(str, sdk))


def parse_sdk(value) -> tuple[int, int, int] | None:
    """(major, minor, patch) of a QNN SDK version such as "v2.51.0.260929181845" or "2.51.0"; None if unreadable."""
    match = _SDK.match(value) if isinstance(value, str) else None
    return tuple(int(g) for g in match.groups()) if match else None


def parse_arch(value) -> str | None:
    """HTP architecture as digits ("75") from "75", "v75" or 75; None if unreadable."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    match = _ARCH.match(value.strip()) if isinstance(value, str) else None
    return match.group(1) if match else None


def block(entry) -> dict | None:
    """The entry's ``qnn`` block if it is a JSON object, else None."""
    qnn = entry.get("qnn") if isinstance(entry, dict) else None
    return qnn if isinstance(qnn, dict) else None


def read_context(entry, files=None) -> tuple[Context | None, str | None]:
    """(Context, None) when the entry names a usable context binary, else (None, why not).

    ``files``: the manifest's ``files`` table; the context file must be listed in it (None: not checked)."""
    qnn = block(entry)
    if qnn is None:
        return None, "the target entry has no qnn block (a bundle from an older edgepack?)"
    raw = qnn.get("context")
    if raw is None:
        why = qnn.get("context_reason")     # the build's own words, e.g. "no QNN context binary: ..."
        return None, why[:300] if isinstance(why, str) and why.strip() else "the bundle has no context binary"
    if not isinstance(raw, dict):
        return None, f"manifest qnn.context must be an object or null, got {type(raw).__name__}"
    file = raw.get("file")
    try:
        check_relpath(file)
    except BundleError as exc:
        return None, f"manifest qnn.context.file: {exc.message}"
    if files is not None and (not isinstance(files, dict) or file not in files):
        return None, f"manifest qnn.context.file {file[:200]!r} is not a member of the bundle"
    arch = parse_arch(raw.get("htp_arch"))
    if arch is None:
        return None, f"manifest qnn.context.htp_arch {_show(raw.get('htp_arch'))} is not an HTP version like \"75\""
    sdk = parse_sdk(raw.get("sdk_version"))
    if sdk is None:
        return None, (f"manifest qnn.context.sdk_version {_show(raw.get('sdk_version'))} is not a QNN SDK "
                      "version like \"v2.51.0\"")
    soc = raw.get("soc_model")
    soc = str(soc) if isinstance(soc, (str, int)) and not isinstance(soc, bool) and _SOC.match(str(soc)) else None
    ort_qnn = raw.get("ort_qnn") if isinstance(raw.get("ort_qnn"), str) else None
    return Context(file, arch, soc, raw["sdk_version"], sdk, ort_qnn and ort_qnn[:40]), None


def summary(entry, files=None) -> list[str]:
    """Human lines about a Qualcomm entry's qnn block (context binary, placement, CPU nodes); never raises."""
    qnn = block(entry)
    if qnn is None:
        return ["no qnn block"]
    lines = [_quant_line(qnn)]
    ctx, why = read_context(entry, files)
    if ctx is not None:
        by = f" (onnxruntime-qnn {ctx.ort_qnn})" if ctx.ort_qnn else ""
        lines.append(f"context binary {ctx.file}: {ctx.describe()}{by}")
    elif qnn.get("context") is None:
        lines.append(why)                    # the build's reason, or "the bundle has no context binary"
    else:
        lines.append(f"context binary not usable: {why}")
    lines.extend(_placement_lines(qnn.get("placement")))
    return lines


def _quant_line(qnn: dict) -> str:
    acts, weights = _text(qnn.get("activations")), _text(qnn.get("weights"))
    flag = qnn.get("per_channel")
    per = (", per channel" if flag else ", per tensor") if isinstance(flag, bool) else ""
    versions = qnn.get("versions")
    built = ""
    if isinstance(versions, dict):
        built = "; built with " + ", ".join(f"{k} {_text(v)}" for k, v in sorted(versions.items())[:5]
                                             if isinstance(k, str))
    return f"activations {acts}, weights {weights}{per}{built}"


def _placement_lines(placement) -> list[str]:
    if not isinstance(placement, dict):
        return ["placement: not recorded"]
    frac = placement.get("fraction_on_htp")
    htp, cpu, parts = (placement.get(k) for k in ("htp_nodes", "cpu_nodes", "partitions"))
    share = f"{frac:.1%}" if _number(frac) else "?"
    line = f"placement: {share} of nodes on HTP ({_count(htp)} on HTP, {_count(cpu)} on CPU"
    lines = [line + (f", {_count(parts)} HTP partition(s))" if parts is not None else ")")]
    nodes = placement.get("cpu")
    for node in (nodes if isinstance(nodes, list) else [])[:20]:
        if isinstance(node, dict):
            why = f": {_text(node.get('why'), 160)}" if node.get("why") else ""
            lines.append(f"  on CPU: {_text(node.get('name'))} ({_text(node.get('op_type'))}){why}")
    if isinstance(nodes, list) and len(nodes) > 20:
        lines.append(f"  ... and {len(nodes) - 20} more on CPU")
    return lines


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def _count(v) -> str:
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else "?"


def _text(v, limit: int = 80) -> str:
    return (v if isinstance(v, str) else "?" if v is None else str(v))[:limit]


def _show(v) -> str:
    return repr(v)[:80]
