"""Host -> device commands as one table: verb -> argument schema -> handler.

A ``Registry`` holds ``Command(verb, schema, handler, doc)`` records; registering a verb twice is an error.
``dispatch(verb, body, context)`` looks the verb up, validates ``body`` against the schema
(``cmdschema.validate``) and only then calls ``handler(context, args)``, whose return value (a dict or None)
is the reply event. Refusals are ``BadCommand`` (``UnknownVerb`` for a verb not in the table, listing the
known ones); the transport turns them into ``bad_command`` / ``unknown_command`` events, and any other
exception into ``command_failed``. ``render()`` writes the table as Markdown for the runtime README.
A command that answers at once and again when its background work ends uses ``answer_then_run`` (the first
answer is queued before the work starts, so the host never sees the end before the start).

    table = Registry()

    @table.command("config", telemetry_interval=Arg("number", required=True, gt=0, le=86400))
    def config(agent, args):
        "Change the telemetry period."
        ...
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from .cmdschema import Arg, validate
from .payload import MAX_COMMAND_BYTES, MAX_DEPTH, BadCommand, parse_payload

__all__ = ["Arg", "BadCommand", "Command", "MAX_COMMAND_BYTES", "MAX_DEPTH", "Registry", "TokenBucket",
           "UnknownVerb", "answer_then_run", "parse_payload", "validate"]

VERB = re.compile(r"[a-z][a-z0-9_-]{0,31}")     # one MQTT topic level, no wildcards


class UnknownVerb(BadCommand):
    """A verb that is not in the table; the reply lists the known verbs."""
    event_type = "unknown_command"

    def __init__(self, verb: str, known: list[str]):
        super().__init__(f"unknown command {verb[:100]!r}; known commands: {', '.join(known) or 'none'}")
        self.known = list(known)

    def event(self, verb: str) -> dict:
        return {**super().event(verb), "known": self.known}


@dataclass(frozen=True, eq=False)
class Command:
    """One row of the table: ``handler(context, args) -> reply event | None`` runs on validated ``args``."""
    verb: str
    schema: dict[str, Arg]
    handler: Callable[[object, dict], dict | None]
    doc: str = ""

    def __post_init__(self):
        if not VERB.fullmatch(self.verb):
            raise ValueError(f"command verb {self.verb!r} must match {VERB.pattern} (one MQTT topic level)")
        bad = [name for name, arg in self.schema.items() if not isinstance(arg, Arg)]
        if bad:
            raise TypeError(f"command {self.verb!r}: schema fields {bad} must be cmdschema.Arg")


class Registry:
    """The command table: ``add(Command)`` or the ``@command(verb, **schema)`` decorator, then ``dispatch``."""

    def __init__(self, commands: tuple[Command, ...] | list[Command] = ()):
        self._commands: dict[str, Command] = {}
        for c in commands:
            self.add(c)

    def add(self, command: Command) -> Command:
        """Register ``command``; a verb registered twice is a ``ValueError``."""
        old = self._commands.get(command.verb)
        if old is not None:
            raise ValueError(f"command {command.verb!r} is already registered "
                             f"(by {getattr(old.handler, '__qualname__', old.handler)})")
        self._commands[command.verb] = command
        return command

    def command(self, verb: str, *, doc: str | None = None, **schema: Arg):
        """Decorator: register the function as the handler of ``verb``; its docstring is the doc by default."""
        def register(handler):
            text = doc if doc is not None else (handler.__doc__ or "").strip().split("\n\n")[0]
            self.add(Command(verb, dict(schema), handler, " ".join(text.split())))
            return handler
        return register

    def __contains__(self, verb: object) -> bool:
        return verb in self._commands

    def __iter__(self) -> Iterator[Command]:
        return iter(sorted(self._commands.values(), key=lambda c: c.verb))

    def __len__(self) -> int:
        return len(self._commands)

    @property
    def verbs(self) -> list[str]:
        return sorted(self._commands)

    def dispatch(self, verb: str, body: dict, context: object) -> dict | None:
        """Validate ``body`` for ``verb`` and run its handler; ``BadCommand``/``UnknownVerb`` when refused."""
        command = self._commands.get(verb)
        if command is None:
            raise UnknownVerb(verb, self.verbs)
        return command.handler(context, validate(command.schema, body))

    def render(self) -> str:
        """The table in Markdown (verb, arguments, what it does), as the runtime README shows it."""
        rows = ["| verb | arguments | what it does |", "|---|---|---|"]
        for c in self:
            args = "; ".join(f"`{name}` ({'required' if arg.required else 'optional'}): {arg.describe()}"
                             + (f", {arg.doc}" if arg.doc else "") for name, arg in c.schema.items())
            rows.append(f"| `{c.verb}` | {_cell(args or 'none')} | {_cell(c.doc)} |")
        return "\n".join(rows) + "\n"


def answer_then_run(sink, answer: dict, work: Callable[[], None], *, name: str) -> None:
    """Publish ``answer`` on ``events`` now, then run ``work()`` in a daemon thread called ``name``.

    For a command answered twice (``..._started`` now, the outcome when the work ends). Its handler returns
    None instead of the first answer: a returned answer is published only after the handler returns, and by
    then the thread may have published the outcome already (a rollback refused at once takes milliseconds),
    so the host saw the end before the start. Queued first, the start has the lower sequence number, and the
    link sends in that order (QoS 1 keeps it)."""
    if sink is not None:
        sink.publish("events", answer)
    threading.Thread(target=work, name=name, daemon=True).start()


class TokenBucket:
    """At most ``burst`` commands at once and ``rate`` per second on average: ``take()`` says whether one may run.

    The bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; each command takes one.
    A device answers what does not fit with a ``rate_limited`` event instead of running it, so a flood of
    ``cmd/*`` messages costs a counter, not the handlers' work."""

    def __init__(self, rate: float, burst: int, *, clock=time.monotonic):
        if not rate > 0 or burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1, not {rate!r}, {burst!r}")
        self.rate, self.burst, self._clock = float(rate), int(burst), clock
        self._tokens, self._last = float(burst), clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
