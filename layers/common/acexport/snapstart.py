"""Lambda SnapStart hooks, for a stack deployed with `SnapStart=PublishedVersions` (template parameter;
trade-offs in docs/architecture.md, "Cold start").

With SnapStart, Lambda runs a function's init once per published version, snapshots the memory and
restores new containers from it, so a cold start skips the imports. `register()` (called by the handler
modules at import) adds, through the Lambda runtime's `snapshot_restore_py` (Python 3.12+ runtimes;
absent elsewhere, then nothing happens):
- before the snapshot, `prime`: settings read, the pooled AC session created (what every request of an
  AC-calling function needs) and the AWS SDK imported (the layer imports boto3 only when a first request
  makes its first client, ~100 ms of that request here; issue 12), nothing that holds a socket, a secret
  or a credential (no SDK client or session is made: it would resolve credentials into the snapshot);
- after each restore, `restore`: every per-container cache forgotten (`caches.reset()`: a Mongo client,
  sessions or decrypted keys made before the snapshot would be shared by every restored container) and
  `random` reseeded (restored containers would otherwise draw the same numbers: back-off jitter).
"""

from __future__ import annotations

import random

from acexport import caches


def prime() -> None:
    import boto3  # noqa: F401 - its modules only, into the snapshot

    from acexport.ac import client
    from acexport.settings import get_settings

    get_settings()
    client.session()


def restore() -> None:
    caches.reset()
    random.seed()


def register() -> None:
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:       # not on Lambda (or a runtime without SnapStart hooks)
        return
    register_before_snapshot(prime)
    register_after_restore(restore)
