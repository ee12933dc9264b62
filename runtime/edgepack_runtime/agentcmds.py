"""The agent's command table: what a host may send on ``edgepack/v1/<fleet>/<device>/cmd/<verb>``.

Each handler gets the ``Agent`` and arguments already checked against its schema, and returns the event it
answers with on ``events`` (or None). A new verb is one decorated function here (or in its own module
registering into ``COMMANDS``), and a row in the README table, which ``python -m
edgepack_runtime.agentcmds`` prints and a test keeps in step.
"""
from __future__ import annotations

from .agentcli import BOUNDS
from .cmdschema import Arg
from .commands import Registry

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


if __name__ == "__main__":
    print(COMMANDS.render(), end="")
