"""``edgepack-device``: verify, inspect and run bundles on a device (argparse, numpy only).

    edgepack-device run BUNDLE --input NAME=FILE.npy ... [--output-dir DIR] [--backend B] [--threads N]
    edgepack-device check BUNDLE      verify hashes and run the bundle's own samples
    edgepack-device info BUNDLE       show the manifest and which backend would run it
    (run, check, info: --trust-key PUB, repeatable, accepts only bundles signed by one of those keys)
    edgepack-device agent --bundle B [--broker mqtt://HOST:PORT --device-id ID] [--config agent.toml]
    edgepack-device install BUNDLE --state-dir DIR   (also: rollback, ota-status; see ota/cli.py)
    edgepack-device bench BUNDLE [--backend B] [--threads 1,2,4] [--seconds S]   cost per prediction (bench.py)

Errors print one line ``error: ...`` on stderr and exit with the error class's exit code
(``--verbose`` prints the traceback).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import traceback
from pathlib import Path

import numpy as np

from . import __version__
from .backends import BACKENDS, candidates, ordered, passed_over
from .bundle import Bundle
from .errors import BackendError, EdgepackError, InputError


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("bundle", help="bundle file (.edgepack tar) or unpacked bundle folder")
    common.add_argument("--json", action="store_true", help="print machine-readable JSON")
    common.add_argument("--verbose", "-v", action="store_true", help="show tracebacks on errors")
    common.add_argument("--trust-key", dest="trust_keys", action="append", default=[], metavar="PUB",
                        help="accept only bundles signed by this public key (repeatable)")
    backend = argparse.ArgumentParser(add_help=False)
    backend.add_argument("--backend", help=f"force a backend ({', '.join(BACKENDS)})")
    backend.add_argument("--target", help="force a target entry of the bundle by name")
    backend.add_argument("--threads", type=int, help="number of CPU threads for the backend")
    parser = argparse.ArgumentParser(prog="edgepack-device", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"edgepack-runtime {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", parents=[common, backend], help="run the model on .npy inputs")
    run.add_argument("--input", "-i", action="append", default=[], metavar="NAME=FILE.npy",
                     help="an input array; NAME= may be omitted for single-input models")
    run.add_argument("--output-dir", "-o", type=Path, help="write <output>.npy files here")
    sub.add_parser("check", parents=[common, backend], help="verify and self-check with the samples")
    sub.add_parser("info", parents=[common], help="show what the bundle holds")
    from .agentcli import add_parser as add_agent
    add_agent(sub)
    from .ota.cli import add_parsers as add_ota
    add_ota(sub)
    from .bench import add_parser as add_bench
    add_bench(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, EdgepackError.exit_code on failure)."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "agent":
            from .agentcli import cmd_agent
            return cmd_agent(args)
        if args.command == "bench":
            from .bench import cmd_bench
            return cmd_bench(args)
        if args.command in ("install", "rollback", "ota-status"):
            from .ota.cli import run as run_ota
            return run_ota(args)
        return {"run": cmd_run, "check": cmd_check, "info": cmd_info}[args.command](args)
    except EdgepackError as exc:
        return _fail(args, str(exc), exc.exit_code)
    except (OSError, ValueError) as exc:
        return _fail(args, f"{type(exc).__name__}: {exc}", 1)


def _fail(args, message: str, code: int) -> int:
    if args.verbose:
        traceback.print_exc()
    print(f"error: {message}", file=sys.stderr)
    return code


def _open_runtime(args):
    from .runtime import Runtime
    bundle = _open_bundle(args)
    return Runtime.open(bundle, args.backend, num_threads=args.threads, target=args.target)


def _open_bundle(args) -> Bundle:
    """The bundle, hashes and signature checked (``--trust-key``); what was found goes to ``args.signature``."""
    from .signing import open_verified
    bundle, args.signature = open_verified(args.bundle, args.trust_keys)
    return bundle


def cmd_run(args) -> int:
    with _open_runtime(args) as rt:
        outputs = rt.run(_load_inputs(args.input, [s["name"] for s in rt.inputs]))
        files = _write_outputs(outputs, args.output_dir) if args.output_dir else {}
        report = {"backend": rt.backend_name, "target": rt.target["name"], "backend_detail": rt.backend_detail,
                  "backend_reason": rt.backend_reason, "outputs": {
            name: {"shape": list(a.shape), "dtype": str(a.dtype), "size": int(a.size),
                   "head": a.ravel()[:8].tolist(),
                   "file": files.get(name)} for name, a in outputs.items()}, "signature": args.signature}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"ran on {report['backend']} (target {report['target']}){_how(report)}")
    for name, out in report["outputs"].items():
        head = ", ".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in out["head"])
        print(f"  {name}: shape {out['shape']} {out['dtype']}  [{head}{', ...' if out['size'] > 8 else ''}]"
              + (f"  -> {out['file']}" if out["file"] else ""))
    return 0


def _load_inputs(specs: list[str], names: list[str]) -> dict[str, np.ndarray]:
    if not specs:
        raise InputError(f"no inputs given; the model takes: {', '.join(names)}",
                         hint="pass --input NAME=FILE.npy for each")
    arrays = {}
    for item in specs:
        name, sep, file = item.partition("=")
        if not sep or name not in names:
            if sep and not Path(item).exists():
                raise InputError(f"unknown input name {name!r} in --input {item}; the model takes: "
                                 f"{', '.join(names)}", hint="use --input NAME=FILE.npy")
            if len(names) != 1 or len(specs) != 1:
                raise InputError(f"--input {item!r} does not start with an input name; the model "
                                 f"takes: {', '.join(names)}", hint="use --input NAME=FILE.npy")
            name, file = names[0], item
        if name in arrays:
            raise InputError(f"input {name!r} is given twice (--input {item})",
                             hint="pass each input once")
        arrays[name] = read_npy(file)
    return arrays


def read_npy(file: str) -> np.ndarray:
    """One array from a .npy file, or an InputError naming the file: empty, not .npy, or a header whose
    shape claims more bytes than the file holds (checked before numpy allocates them)."""
    fmt = np.lib.format
    try:
        size = Path(file).stat().st_size
        if size == 0:
            raise InputError(f"input file {file} is empty", hint="pass a .npy file written with numpy.save")
        with open(file, "rb") as fh:
            version = fmt.read_magic(fh)
            header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
            if header is not None:
                shape, _, dtype = header(fh)
                need = int(np.prod(shape, dtype=object)) * dtype.itemsize if shape else dtype.itemsize
                if dtype.hasobject or need > size - fh.tell():
                    raise InputError(f"input file {file} claims shape {list(shape)} {dtype} ({need} bytes) but holds "
                                     f"{size - fh.tell()} bytes of data", hint="the file is truncated or corrupt")
        array = np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError, MemoryError, OverflowError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"cannot read input file {file}: {type(exc).__name__}: {str(exc)[:200]}",
                         hint="pass a .npy file written with numpy.save") from None
    if not isinstance(array, np.ndarray):       # an .npz archive
        raise InputError(f"input file {file} is not a .npy file (an .npz archive?)",
                         hint="save each input with numpy.save")
    return array


def _write_outputs(outputs: dict[str, np.ndarray], out_dir: Path) -> dict[str, str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files, used = {}, set()
    for name, array in outputs.items():
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "output"
        candidate, n = stem, 1
        while candidate in used:
            candidate, n = f"{stem}_{n}", n + 1
        used.add(candidate)
        path = out_dir / f"{candidate}.npy"
        np.save(path, array)
        files[name] = str(path)
    return files


def cmd_check(args) -> int:
    with _open_runtime(args) as rt:
        report = rt.self_check()
    report["bundle"], report["signature"] = str(args.bundle), args.signature
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"bundle {args.bundle}: hashes ok; backend {report['backend']} (target {report['target']}){_how(report)}")
    print(f"  signature: {args.signature['note']}")
    if not report["samples"]:
        print("  no samples in the bundle: nothing to self-check")
    for name, s in report["outputs"].items():
        print(f"  {name}: max_abs {s['max_abs']:.3g}  max_rel {s['max_rel']:.3g}  cosine {s['cosine']:.6f}")
    print(f"self-check passed on {report['samples']} sample(s)")
    return 0


def _how(report: dict) -> str:
    """What follows the backend's name: ", as qnn-qdq; <why not the context binary>" and the like."""
    detail, reason = report.get("backend_detail"), report.get("backend_reason")
    shown = f", as {detail}" if detail and detail != report.get("backend") else ""
    return shown + (f"; {reason}" if reason else "")


def cmd_info(args) -> int:
    bundle = _open_bundle(args)
    m = bundle.manifest
    plan = None
    try:
        spec, entry = candidates(m["targets"])[0]
        selected = {"backend": spec.name, "target": entry["name"]}
    except BackendError as exc:
        selected = {"error": str(exc)}
    else:
        try:
            detail, reason = spec.plan(entry, bundle)
        except BackendError as exc:
            detail, reason = None, f"cannot tell how it would run: {exc}"
        why = [reason, passed_over(spec, entry["format"], forced=False)]
        plan = {"backend_detail": detail, "backend_reason": "; ".join(w for w in why if w) or None}
    backends = {s.name: s.available() for s in ordered()}
    if args.json:
        print(json.dumps({"path": str(bundle.path), "manifest": m, "backends": backends,
                          "selected": selected, "plan": plan, "signature": args.signature}, indent=1))
        return 0
    print(f"{m['model']['name']} {m['model']['version']}  (bundle format {m['format_version']}, "
          f"created {m['created']})")
    for kind in ("inputs", "outputs"):
        for s in m[kind]:
            print(f"  {kind[:-1]:6} {s['name']}: {s['shape']} {s['dtype']} {s.get('layout') or ''}")
    for t in m["targets"]:
        size = m["files"][t["file"]]["size"]
        print(f"  target {t['name']}: {t['format']} {t['precision']}  {t['file']} ({size} bytes)")
        if t["format"] == "qnn":
            from .backends.qnn_manifest import summary
            print("".join(f"    {line}\n" for line in summary(t, m["files"])), end="")
    print(f"  samples: {len(m['samples'])}  signed: {'yes' if args.signature['signed'] else 'no'}")
    print(f"  signature: {args.signature['note']}")
    listed = [n + ("" if ok else " (not installed)") for n, ok in backends.items()]
    print(f"  backends: {', '.join(listed)}")
    print(f"  would run: {selected.get('backend', '-')}/{selected.get('target', '-')}"
          + _how({"backend": selected["backend"], **plan})
          if "backend" in selected else f"  cannot run here: {selected['error']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
