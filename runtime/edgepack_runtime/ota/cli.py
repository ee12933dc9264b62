"""``edgepack-device install | rollback | ota-status``: the OTA state folder from the command line.

    edgepack-device install BUNDLE --state-dir DIR [--trust-key PUB ...] [--profile P] [--budget-ms MS] [--json]
    edgepack-device rollback --state-dir DIR [--json]
    edgepack-device ota-status --state-dir DIR [--json] [--table]

``install`` first recovers the folder (an update a crash interrupted is finished or undone, ``inbox/`` is
installed), then installs BUNDLE: verify, copy into the inactive slot, health check, switch. It exits 0 when
the update is committed and with ``OtaError.exit_code`` (11) when it was refused or rolled back; ``--json``
prints the final status either way. A running agent on the same folder waits for the command (and the
command for it): one update at a time, across processes.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..errors import OtaError

COMMANDS = ("install", "rollback", "ota-status")


def add_parsers(sub) -> None:
    """Add the three subcommands to the ``edgepack-device`` argparse subparsers."""
    def common(p):
        p.add_argument("--state-dir", required=True, type=Path, help="the device's OTA state folder")
        p.add_argument("--json", action="store_true", help="print the status as JSON")
        p.add_argument("--verbose", "-v", action="store_true", help="show tracebacks on errors")
    p = sub.add_parser("install", help="install a bundle into the inactive A/B slot: verify, health check, switch")
    p.add_argument("bundle", type=Path, help="bundle file (.edgepack) or folder")
    common(p)
    p.add_argument("--trust-key", dest="trust_keys", action="append", default=[], metavar="PUB",
                   help="accept only bundles signed by this public key (repeatable)")
    p.add_argument("--profile", help="this device's profile: bundles built for other profiles are refused")
    p.add_argument("--budget-ms", type=float, help="latency budget of the health check (median ms per call)")
    p.add_argument("--update-id", help="id of this update in the status (default: from the file name and time)")
    p.add_argument("--backend", help="force the backend the health check uses")
    common(sub.add_parser("rollback", help="go back to the previous A/B slot (health-checked first)"))
    st = sub.add_parser("ota-status", help="show the OTA state, the active slot and the last update")
    common(st)
    st.add_argument("--table", action="store_true", help="print the OTA state table (Markdown) and exit")


def run(args) -> int:
    """Run one of ``COMMANDS``; returns the exit code."""
    from .updater import Updater
    if args.command == "ota-status" and args.table:
        from .table import TABLE
        print(TABLE.render(), end="")
        return 0
    up = Updater(args.state_dir, trust_keys=getattr(args, "trust_keys", ()), profile=getattr(args, "profile", None),
                 backend=getattr(args, "backend", None))
    if args.command == "ota-status":
        st = up.status()
    elif args.command == "rollback":
        up.recover()
        st = up.rollback()
    else:
        up.recover()
        uid = args.update_id or _update_id(args.bundle)
        st = up.install(args.bundle, update_id=uid, budget_ms=args.budget_ms)
    _show(st, args.json)
    ok = args.command == "ota-status" or st["state"] in ("committed",) or (
        args.command == "rollback" and st["state"] == "rolled_back")
    return 0 if ok else OtaError.exit_code


def _update_id(bundle: Path) -> str:
    stem = "".join(c if c.isalnum() or c in "._-" else "-" for c in bundle.name.removesuffix(".edgepack"))
    return f"{stem.strip('.-_')[:40] or 'bundle'}-{time.strftime('%Y%m%dT%H%M%S')}"


def _show(st: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(st, indent=1, default=str))
        return
    model = st.get("model") or {}
    print(f"state {st['state']}  update {st.get('update_id') or '-'}  active slot {st.get('active_slot') or '-'}"
          + (f"  serving {model.get('name')} {model.get('version')}" if model else ""))
    health = st.get("health") or {}
    if health.get("latency_ms"):
        print(f"  health check: {health['samples']} samples on {health['backend']}/{health['target']}, "
              f"latency {health['latency_ms']['median']:.3f} ms median"
              + (f" (budget {health['budget_ms']:g} ms)" if health.get("budget_ms") is not None else ""))
    if st.get("reason"):
        print(f"  reason: {st['reason']}", file=sys.stderr if st["state"] in ("failed", "unknown") else sys.stdout)
