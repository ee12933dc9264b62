"""Throughput and memory of ``--via`` delivery against the plain tools, same file, same run.

    python benchmarks/bench_via.py [--mb 100] [--rounds 3]

ssh: ``deliver("ssh://...", install=False)`` (streamed through ``ssh host 'cat > .part'``, progress per MiB,
free-space check, rename) against ``scp`` of the same file to the same loopback sshd with the same options.
dir: ``deliver("dir:...")`` (copy + fsync + rename) against ``shutil.copyfile`` + fsync. Rounds alternate
(ours, baseline, ...); the figure is the median. Memory: tracemalloc's peak of Python allocations during
one delivery (the bundle is never held in memory).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from edgepack.fleet.via import deliver  # noqa: E402
from tests.via.sshd import start_sshd  # noqa: E402


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def copy_fsync(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    with open(dst, "rb+") as fh:
        os.fsync(fh.fileno())


def run(mb: int, rounds: int, work: Path) -> None:
    blob = work / "bundle.edgepack"
    with open(blob, "wb") as fh:
        for _ in range(mb):
            fh.write(os.urandom(2**20))
    size = blob.stat().st_size
    state = work / "state"
    state.mkdir()
    (work / "sshd").mkdir()
    server = start_sshd(work / "sshd")
    try:
        scp = ["scp", "-q", *server.ssh_args(), "-P", str(server.port)]
        cases = {
            "ssh": (lambda: deliver(server.url(state), blob, install=False),
                    lambda: subprocess.run([*scp, str(blob), f"{server.user}@127.0.0.1:{state}/scp.bin"],
                                           check=True), "scp"),
            "dir": (lambda: deliver(f"dir:{state}", blob),
                    lambda: copy_fsync(blob, state / "copy.bin"), "copyfile+fsync"),
        }
        print(f"file: {size / 2**20:.0f} MiB; {rounds} alternating rounds; median seconds")
        for name, (ours, base, base_name) in cases.items():
            t_ours, t_base = [], []
            for _ in range(rounds):
                t_ours.append(timed(ours))
                t_base.append(timed(base))
                for p in (state / "inbox").iterdir():
                    p.unlink()
            a, b = statistics.median(t_ours), statistics.median(t_base)
            tracemalloc.start()
            ours()
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(f"{name}: ours {a:.3f} s ({size / a / 2**20:.0f} MiB/s) | {base_name} {b:.3f} s "
                  f"({size / b / 2**20:.0f} MiB/s) | time ratio ours/baseline {a / b:.2f} | "
                  f"Python peak during one delivery {peak / 2**20:.1f} MiB")
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-via-") as tmp:
        run(args.mb, args.rounds, Path(tmp))


if __name__ == "__main__":
    main()
