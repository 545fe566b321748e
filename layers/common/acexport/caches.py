"""Every per-container cache of the layer, and the one reset that forgets them all.

A warm Lambda container keeps what it built between invocations: the settings, the Mongo client, the
KMS client and the keys it decrypted, the AC session and rate limiter, AC reference data, the job
functions' AWS clients, Powertools' secret cache. Each module that keeps such a thing registers here how
to forget it (`@caches.register`); `reset()` forgets them all, as a new container would start. The tests
call it between cases and the local stack when it starts or stops (devstack/stack.py), so there is one
list, and a new cache cannot be missed by one of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

Forget = TypeVar("Forget", bound=Callable[..., object])

_resets: dict[str, Callable[[], object]] = {}


def register(forget: Forget) -> Forget:
    """Register `forget` (a function of no arguments, or an lru_cache-wrapped one: its cache_clear) to be called
    by `reset()`; returns it unchanged, with its type (so `get_settings()` stays typed for its callers)."""
    _resets[f"{forget.__module__}.{getattr(forget, '__qualname__', repr(forget))}"] = (
        getattr(forget, "cache_clear", forget))
    return forget


def reset() -> None:
    """Forget every per-container cache of the modules imported so far."""
    for forget in list(_resets.values()):
        forget()
