"""The agent's command table: what a host may send on ``edgepack/v1/<fleet>/<device>/cmd/<verb>``.

Each handler gets the ``Agent`` and arguments already checked against its schema, and returns the event it
answers with on ``events`` (or None). A new verb is one decorated function here (or in its own module
registering into ``COMMANDS``), and a row in the README table, which ``python -m
edgepack_runtime.agentcmds`` prints and a test keeps in step.
"""
from __future__ import annotations

from .agentcli import BOUNDS
from .cmdschema import Arg
from .commands import BadCommand, Registry, answer_then_run

COMMANDS = Registry()


@COMMANDS.command("ping", echo=Arg("any", doc="returned as is"))
def ping(agent, args: dict) -> dict:
    """Answer with a `pong` event carrying `echo` (null when not given)."""
    return {"type": "pong", "echo": args.get("echo")}


@COMMANDS.command("telemetry")
def telemetry(agent, args: dict) -> None:
    """Close the current telemetry period and publish it now on `telemetry`."""
    agent.publish_telemetry()


_PERIOD = BOUNDS["telemetry_interval"]        # the same floor and ceiling as the agent's own setting


@COMMANDS.command("config", telemetry_interval=Arg("number", required=True, ge=_PERIOD[0], le=_PERIOD[1],
                                                    doc="seconds per telemetry period"))
def config(agent, args: dict) -> dict:
    """Change the telemetry period from the next one on; answers `config_applied` with the value in force."""
    agent.interval = float(args["telemetry_interval"])
    return {"type": "config_applied", "telemetry_interval": agent.interval}


def _updater(agent):
    updater = getattr(agent, "updater", None)
    if updater is None:
        raise BadCommand("this agent does not take updates (it runs without a state folder); start it with "
                         "--state-dir")
    return updater


@COMMANDS.command("ota-rollback", request_id=Arg("string", max_len=64, doc="echoed in the answers"))
def ota_rollback(agent, args: dict) -> None:
    """Go back to the previous slot (health-checked first) in the background; answers `ota_rollback_started`,
    then `ota_rollback` with the final `state` and `reason` (the states also go to `ota/status`)."""
    updater, rid = _updater(agent), args.get("request_id")

    def work():
        try:
            st = updater.rollback()
            body = {"state": st.get("state"), "reason": st.get("reason"), "status": st}
        except Exception as exc:  # noqa: BLE001  (no previous slot, an update running: said in the answer)
            body = {"state": "failed", "reason": str(exc)}
        if agent.sink is not None:
            agent.sink.publish("events", {"type": "ota_rollback", "request_id": rid, **body})
    answer_then_run(agent.sink, {"type": "ota_rollback_started", "request_id": rid}, work,
                    name="edgepack-ota-rollback")


@COMMANDS.command("ota-status")
def ota_status(agent, args: dict) -> dict:
    """Answer `ota_status` with the update state and the transfer's counters."""
    receiver = getattr(agent, "receiver", None)
    return {"type": "ota_status", "status": _updater(agent).status(),
            "transfer": receiver.status() if receiver is not None else None}


@COMMANDS.command("ota-cancel")
def ota_cancel(agent, args: dict) -> dict:
    """Give up the download in progress (its staging file is removed; an install already running finishes);
    answers `ota_cancel` with `cancelled` and the `update_id`."""
    _updater(agent)
    receiver = getattr(agent, "receiver", None)
    result = receiver.cancel() if receiver is not None else {"cancelled": False, "update_id": None}
    return {"type": "ota_cancel", **result}


from . import shadowcmds  # noqa: E402,F401  (registers shadow-status, shadow-stop, shadow-promote)

if __name__ == "__main__":
    from .agentcmds import COMMANDS as TABLE      # run as __main__: the table as imported, shadow verbs included
    print(TABLE.render(), end="")
