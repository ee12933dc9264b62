"""Suite-wide setup.

pytest-xdist's workers start with ``COLUMNS=80`` and ``LINES=24`` in their environment. Rich reads them
once, when the CLI's module-level consoles are created, and pins every table to 80 columns, while a test
that passes ``COLUMNS`` to ``CliRunner`` expects the width it asked for (as in one process, where the
variables are unset and rich reads them at print time). Remove them before anything imports the CLI.
"""
import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    for _name in ("COLUMNS", "LINES"):
        os.environ.pop(_name, None)
