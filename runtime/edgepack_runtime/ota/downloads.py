"""The download hooks of the Updater (used by the MQTT flash receiver, ``ota/transfer.py``): a transfer marks
its update ``downloading`` while it writes ``staging_path(update_id)``, ``downloaded`` when the file is whole,
or ``abort`` with a reason; ``report_progress`` tells ``on_status`` how far it is. All optional: ``install``
works from any resting state and from ``downloading``.
"""
from __future__ import annotations

from .checks import checked_id, checked_meta
from .errors import OtaError


class DownloadHooks:
    """Mixed into ``Updater``."""

    def begin_download(self, update_id: str, meta: dict | None = None) -> dict:
        """A transfer starts writing ``staging_path(update_id)``: state ``downloading``."""
        with self._exclusive():
            self._writable()
            self._fire("download", update_id=checked_id(update_id), source=str(self.staging_path(update_id)),
                       meta=checked_meta(meta), reason=None, resumes={}, health=None, target_slot=None)
            return self.status()

    def downloaded(self, update_id: str) -> dict:
        """The staged file is complete (``downloading`` -> ``downloaded``)."""
        return self._event_for(update_id, "downloaded")

    def abort(self, update_id: str, reason: str) -> dict:
        """The transfer was given up: ``failed`` with ``reason``, the staging file removed."""
        return self._event_for(update_id, "abort", reason=reason)

    def report_progress(self, update_id: str, progress: float) -> None:
        """Tell ``on_status`` how far a download is (not persisted)."""
        self.on_status(dict(self.status(), progress=float(progress), update_id=update_id))

    def _event_for(self, update_id: str, event: str, **fields) -> dict:
        with self._exclusive():
            self._writable()
            if self.doc["update_id"] != update_id:
                raise OtaError(f"update {update_id!r} is not the one in progress ({self.doc['update_id']!r})")
            self._fire(event, **fields)
            return self.status()
