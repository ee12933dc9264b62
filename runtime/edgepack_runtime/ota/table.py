"""The OTA state machine as data: ``(state, event) -> (next state, action)``.

Every change of the update state goes through ``TABLE.step(state, event)``; a pair that is not in the table
is refused (``BadTransition``), so an update can never wander into an undefined state. The ``Updater`` runs
the named action after persisting the next state, which is what makes a crash at any point recoverable:
``recover()`` finds the persisted state and fires ``interrupted`` (or ``give_up`` once the loop guard trips),
and the row says what to do. ``render()`` writes the table as Markdown for ``runtime/README.md``
(``python -m edgepack_runtime.ota.table``).

Resting states (an update may start from them): idle, committed, rolled_back, failed.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import OtaError

RESTING = ("idle", "committed", "rolled_back", "failed")
STATES = ("idle", "downloading", "downloaded", "verifying", "installing", "health_check", "switching",
          "committed", "rolling_back", "rolled_back", "failed")
# states in which the active slot may differ from the slot the persisted document last agreed on
PROGRESS = {"downloading": 0.0, "downloaded": 0.05, "verifying": 0.1, "installing": 0.3, "health_check": 0.6,
            "switching": 0.9, "committed": 1.0, "rolling_back": None, "rolled_back": None, "failed": None,
            "idle": None}


class BadTransition(OtaError):
    """An event the current state does not accept (e.g. ``rollback`` while an update is installing)."""


@dataclass(frozen=True)
class Row:
    state: str
    event: str
    next: str
    action: str
    doc: str


def _rows() -> list[Row]:
    rows = []
    for s in RESTING:
        rows += [Row(s, "download", "downloading", "none", "a transfer starts writing the staging file"),
                 Row(s, "install", "verifying", "verify", "install a bundle file (CLI, inbox, after download)"),
                 Row(s, "rollback", "rolling_back", "restore_previous",
                     "operator asks for the previous slot: health-check it, then switch back"),
                 Row(s, "interrupted", s, "none", "restart while resting: nothing to finish")]
    rows += [
        Row("downloading", "download", "downloading", "none", "a new or restarted transfer"),
        Row("downloading", "downloaded", "downloaded", "none", "whole file received, sha256 checked"),
        Row("downloading", "install", "verifying", "verify", "install called without `downloaded`"),
        Row("downloading", "abort", "failed", "discard_staging", "transfer given up (reason recorded)"),
        Row("downloading", "interrupted", "downloading", "none",
            "restart mid-transfer: the staging file and its chunk map stay for the transfer to resume"),
        Row("downloaded", "install", "verifying", "verify", "install the staged file"),
        Row("downloaded", "abort", "failed", "discard_staging", "install refused before it began"),
        Row("downloaded", "interrupted", "verifying", "verify", "restart: install the staged file now"),
        Row("verifying", "verified", "installing", "copy_to_slot",
            "hashes, signature and device profile are good: copy into the inactive slot"),
        Row("verifying", "refused", "failed", "discard_staging", "bad bundle: nothing was installed"),
        Row("verifying", "interrupted", "verifying", "verify", "restart: verify again from the source file"),
        Row("verifying", "give_up", "failed", "discard_staging", "loop guard: too many restarts"),
        Row("installing", "installed", "health_check", "health_check",
            "slot written and fsynced: run the samples through the real backend"),
        Row("installing", "error", "failed", "clear_slot", "copy failed (disk full...): inactive slot cleared"),
        Row("installing", "interrupted", "verifying", "verify", "restart: start again from verification"),
        Row("installing", "give_up", "failed", "clear_slot", "loop guard: too many restarts"),
        Row("health_check", "healthy", "switching", "switch",
            "samples match, latency within budget: point `slots/active` at the new slot"),
        Row("health_check", "unhealthy", "rolling_back", "restore_previous",
            "samples or latency off: the previous slot keeps serving"),
        Row("health_check", "interrupted", "health_check", "health_check",
            "restart (perhaps the check itself crashed the device): check again"),
        Row("health_check", "give_up", "rolling_back", "restore_previous",
            "loop guard: the check crashed the device too many times in a row"),
        Row("switching", "switched", "committed", "commit", "the served Runtime was replaced"),
        Row("switching", "switch_failed", "rolling_back", "restore_previous",
            "the new slot would not load in the agent: back to the previous one"),
        Row("switching", "interrupted", "switching", "switch",
            "restart: the new slot passed its check, so finish the switch"),
        Row("switching", "give_up", "rolling_back", "restore_previous", "loop guard: too many restarts"),
        Row("rolling_back", "restored", "rolled_back", "none", "the previous slot is active again"),
        Row("rolling_back", "restore_failed", "failed", "none",
            "the previous slot failed its check: the current slot keeps serving"),
        Row("rolling_back", "interrupted", "rolling_back", "restore_previous", "restart: finish going back"),
        Row("rolling_back", "give_up", "failed", "none", "loop guard: keep whatever slot is active"),
    ]
    return rows


class Table:
    """The transition table; ``step`` looks a pair up, ``render`` writes Markdown."""

    def __init__(self, rows: list[Row]):
        self.rows: dict[tuple[str, str], Row] = {}
        for row in rows:
            if (row.state, row.event) in self.rows:
                raise ValueError(f"OTA table: ({row.state}, {row.event}) is listed twice")
            if row.state not in STATES or row.next not in STATES:
                raise ValueError(f"OTA table: unknown state in {row}")
            self.rows[(row.state, row.event)] = row

    def step(self, state: str, event: str) -> Row:
        """The row for ``(state, event)``; ``BadTransition`` naming the events ``state`` accepts otherwise."""
        row = self.rows.get((state, event))
        if row is None:
            accepted = sorted(e for s, e in self.rows if s == state)
            raise BadTransition(f"OTA: event {event!r} is not accepted in state {state!r}; "
                                f"it accepts: {', '.join(accepted) or 'nothing'}",
                                hint="wait for the update in progress to finish, or see `edgepack-device ota-status`")
        return row

    def events(self) -> set[str]:
        return {e for _, e in self.rows}

    def states(self) -> list[str]:
        """Every state that appears in the table, in ``STATES`` order."""
        seen = {s for s, _ in self.rows} | {r.next for r in self.rows.values()}
        return [s for s in STATES if s in seen]

    def render(self) -> str:
        """The table in Markdown (state, event, next state, action, when), as the runtime README shows it."""
        out = ["| state | event | next state | action | when |", "|---|---|---|---|---|"]
        for r in self.rows.values():
            out.append(f"| `{r.state}` | `{r.event}` | `{r.next}` | `{r.action}` | {r.doc.replace('|', '/')} |")
        return "\n".join(out) + "\n"


TABLE = Table(_rows())
ACTIONS = frozenset(r.action for r in TABLE.rows.values())

if __name__ == "__main__":
    print(TABLE.render(), end="")
