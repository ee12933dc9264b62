"""``python -m edgepack.testing fetch NAME``: fetch a corpus model into the cache and print its path."""
from __future__ import annotations

import sys

from ..errors import EdgepackError
from .corpus import entries, fetch


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "fetch":
        try:
            print(fetch(argv[1]))
        except EdgepackError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code
        return 0
    if argv == ["list"]:
        for e in entries():
            print(f"{e.name}\t{e.format}\t{e.source}")
        return 0
    print("usage: python -m edgepack.testing fetch NAME | list", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
