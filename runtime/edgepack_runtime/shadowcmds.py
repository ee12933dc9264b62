"""The shadow verbs of the agent's command table (``cmd/shadow-status``, ``cmd/shadow-stop``,
``cmd/shadow-promote``); registered into ``agentcmds.COMMANDS`` when that module is imported."""
from __future__ import annotations

from .agentcmds import COMMANDS
from .cmdschema import Arg
from .commands import BadCommand


def _installer(agent):
    installer = getattr(agent, "shadows", None)
    if installer is None:
        raise BadCommand("this agent runs no shadows (it runs without a state folder); start it with --state-dir")
    return installer


@COMMANDS.command("shadow-status")
def shadow_status(agent, args: dict) -> dict:
    """Answer `shadow_status` with the shadow's figures since it started (`shadow`: null when none runs)."""
    installer = _installer(agent)
    shadow = agent.shadow
    return {"type": "shadow_status", "shadow": shadow.block(reset=False) if shadow is not None else None,
            "promoting": installer.promoting}


@COMMANDS.command("shadow-stop", request_id=Arg("string", max_len=64, doc="echoed in the answer"))
def shadow_stop(agent, args: dict) -> dict:
    """Stop the shadow and remove it from the device; answers `shadow_stopped` (`stopped` false when none ran)."""
    event = _installer(agent).stop("stopped by the host", publish=False)
    return {**event, "request_id": args.get("request_id")}


@COMMANDS.command("shadow-promote", request_id=Arg("string", max_len=64, doc="echoed in the answers"))
def shadow_promote(agent, args: dict) -> None:
    """Make the shadow the serving model through the normal update path (verify, slot, health check, switch)
    in the background; answers `shadow_promote_started`, then `shadow_promoted` with the final `state`."""
    _installer(agent).promote(args.get("request_id"))      # publishes both answers itself, in order
