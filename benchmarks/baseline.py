"""What the same-run baselines of the benchmarks share: the Mongo commands a handler sent, recorded with pymongo's
command monitoring so that a baseline can send them again as they were (bench_export.py, bench_live.py).

Register `MongoCommands` before the layer's Mongo client is made (`caches.reset()` after registering), so the
client carries the listener.
"""

from __future__ import annotations

import contextlib

from pymongo import monitoring
from pymongo.errors import OperationFailure


class MongoCommands(monitoring.CommandListener):
    """The commands sent while `recording` is a list, and the time they took (pymongo's own measure)."""

    def __init__(self):
        self.recording: list | None = None
        self.micros = 0

    def started(self, event) -> None:
        if self.recording is not None:
            command = {k: v for k, v in event.command.items() if not k.startswith("$") and k != "lsid"}
            self.recording.append((event.database_name, command))

    def succeeded(self, event) -> None:
        if self.recording is not None:
            self.micros += event.duration_micros

    def failed(self, event) -> None:
        pass


def replay(client, recorded: list) -> None:
    """Send the recorded commands again; a write refused the second time (a duplicate key) still made its round
    trip, which is what the baseline counts."""
    for name, command in recorded:
        with contextlib.suppress(OperationFailure):
            client[name].command(command)
