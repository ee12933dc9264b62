"""Over-the-air model updates on the device: a persisted state machine over A/B slots.

Layout of a state folder::

    <state_dir>/ota.json             the update state (store.py: versioned JSON, atomic writes)
    <state_dir>/slots/a|b/           one bundle each (bundle.edgepack, or bundle/ for a folder)
    <state_dir>/slots/active -> a    the slot the device serves (a symbolic link replaced by rename)
    <state_dir>/staging/ID.edgepack  downloads in progress (ota/transfer.py writes them)
    <state_dir>/inbox/*.edgepack     bundles dropped by `--via dir:` / ssh, installed by Updater.recover()

``Updater`` (updater.py, with the download hooks of downloads.py) is the API; ``table.TABLE`` the
(state, event) -> (next state, action) table; ``actions`` the actions it names; ``store`` the ota.json
parser and atomic writer; ``slots`` the A/B folders and the pointer; ``health`` the health check and the
device-profile rule; ``verify`` the checks before a slot is written (hashes, signature, profile, disk
space); ``checks`` the argument checks; ``agentota`` the agent's wiring (hot swap, ota/status, the folder
watcher); ``cli`` ``edgepack-device install | rollback | ota-status``; ``faults`` the test-only crash
point. ``transfer``, ``chunks`` and ``staged`` are the MQTT flash receiver.
"""
from .errors import NewerStateError, OtaError, StateError

__all__ = ["NewerStateError", "OtaError", "StateError", "TABLE", "Updater"]


def __getattr__(name):  # lazy: the agent imports the package before it needs the updater
    if name == "Updater":
        from .updater import Updater
        return Updater
    if name == "TABLE":
        from .table import TABLE
        return TABLE
    raise AttributeError(f"module 'edgepack_runtime.ota' has no attribute {name!r}")
