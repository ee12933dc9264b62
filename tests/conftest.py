"""Suite-wide setup.

The suite runs on pytest-xdist workers (``scripts/test.sh``: ``-n auto --dist loadfile``) when it is installed.
Tests marked ``forked`` fork a child per test so that a kernel abort fails that test, not the run. A worker
already is that boundary (xdist reports the test that crashed it as failed and starts a new worker), and
forking a worker, which runs execnet's threads, can deadlock the child (a forked MiniLM build sat on a futex
for 9 minutes): inside a worker the marker is removed and the test runs in the worker itself.

pytest-xdist's workers start with ``COLUMNS=80`` and ``LINES=24`` in their environment. Rich reads them
once, when the CLI's module-level consoles are created, and pins every table to 80 columns, while a test
that passes ``COLUMNS`` to ``CliRunner`` expects the width it asked for (as in one process, where the
variables are unset and rich reads them at print time). Remove them before anything imports the CLI.

Hypothesis: under ``CI=true`` the property tests are derandomized (examples follow from each test's own
source), so a CI run is reproducible and a red one is red again on the same commit; a counterexample found
on a random local run (the default elsewhere) is reported with its ``@reproduce_failure`` blob and becomes
an ``@example``. No deadline anywhere: two workers on two cores make example timings meaningless.
"""
import os

from hypothesis import settings as _hyp_settings

_hyp_settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
_hyp_settings.register_profile("dev", deadline=None, print_blob=True)
_hyp_settings.load_profile("ci" if os.environ.get("CI", "").lower() == "true" else "dev")

if os.environ.get("PYTEST_XDIST_WORKER"):
    for _name in ("COLUMNS", "LINES"):
        os.environ.pop(_name, None)


def pytest_collection_modifyitems(config, items):
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    seen = set()
    for item in items:
        for node in item.listchain():
            if id(node) not in seen:
                seen.add(id(node))
                node.own_markers[:] = [m for m in node.own_markers if m.name != "forked"]
