"""Lambda SnapStart hooks, for a stack deployed with `SnapStart=PublishedVersions` (template parameter;
trade-offs in docs/architecture.md, "Cold start").

With SnapStart, Lambda runs a function's init once per published version, snapshots the memory and
restores new containers from it, so a cold start skips the imports. `register()` adds, through the Lambda
runtime's `snapshot_restore_py` (Python 3.12+ runtimes; absent elsewhere, then nothing happens):
- before the snapshot, `prime`: settings read and the AWS SDK imported (the layer imports boto3 only when a
  first request makes its first client, ~100 ms of that request here), plus what the registering modules
  ask for (`register(before=...)`: the AC client's pooled session), nothing that holds a socket, a secret
  or a credential (no SDK client or session is made: it would resolve credentials into the snapshot);
- after each restore, `restore`: every per-container cache forgotten (`caches.reset()`: a Mongo client,
  sessions or decrypted keys made before the snapshot would be shared by every restored container) and
  `random` reseeded (restored containers would otherwise draw the same numbers).

One place registers: `acexport.ac.client`, at import. Every function that calls AC imports it at init
(the handlers, or the modules they import: exports, jobs.worker, live.hooks, save_auth), so none can
forget the hooks (tests/integration/test_cold_start.py checks every function). A function that reaches AC only
from a later import (DELETE /auth's webhook removal) builds its AC state after the restore, and the
client's back-off jitter comes from `random.SystemRandom` (the OS), never from a state in the snapshot.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from acexport import caches

_before: list[Callable[[], object]] = []
_registered = False


def prime() -> None:
    import boto3  # noqa: F401 - its modules only, into the snapshot

    from acexport.settings import get_settings

    get_settings()
    for step in list(_before):
        step()


def restore() -> None:
    caches.reset()
    random.seed()


def register(*, before: Callable[[], object] | None = None) -> None:
    """Register `prime` and `restore` with the runtime, once per process; `before` runs in `prime` too."""
    global _registered
    if before is not None and before not in _before:
        _before.append(before)
    if _registered:
        return
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:       # not on Lambda (or a runtime without SnapStart hooks)
        return
    register_before_snapshot(prime)
    register_after_restore(restore)
    _registered = True
