"""What the AC client's tests share (tests/unit/test_ac_client.py for its retry policy in-process,
tests/integration/test_ac_client_retries.py for its retry loop over HTTP): the key, the back-off bounds, a client
on a fake clock and a request budget on that clock."""

from __future__ import annotations

from acexport import caches
from acexport.ac import client as ac_client
from acexport.ac.client import ACClient
from acexport.ac.ratelimit import SlidingWindowLimiter

KEY = "sandbox-key"


def backoff_bounds(attempt: int) -> tuple[float, float]:
    """`_backoff(attempt)` is 0.25 s doubling per attempt, capped at 4 s, times a jitter in [0.5, 1]."""
    base = min(4.0, 0.25 * 2 ** (attempt - 1))
    return base / 2, base


def total_backoff_bounds(attempts: int) -> tuple[float, float]:
    bounds = [backoff_bounds(a) for a in range(1, attempts + 1)]
    return sum(low for low, _ in bounds), sum(high for _, high in bounds)


def make_client(clock, base_url="https://acme.api-us1.com", *, seconds=30.0) -> ACClient:
    return ACClient(base_url, KEY, deadline=clock() + seconds, clock=clock, sleep=clock.sleep)


def budget_on(monkeypatch, clock):
    """A new container whose request budget runs on the same fake clock as the client (a generator for an
    autouse fixture: it yields the budget, then forgets the container's caches)."""
    for name in ("ACTIVECAMPAIGN_API_VERSION", "AC_CONNECT_TIMEOUT", "AC_READ_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    # the stand-in is on loopback: the local switch lets the client connect there (the second security round's
    # address check)
    monkeypatch.setenv("ACTIVECAMPAIGN_ALLOW_LOCAL_BASE_URL", "true")
    caches.reset()
    budget = SlidingWindowLimiter(5, clock=clock, sleep=clock.sleep)
    monkeypatch.setattr(ac_client, "_limiter", budget)
    # validations' lane too (else it is the Mongo one: this file needed MONGODB_URI from an earlier test)
    monkeypatch.setattr(ac_client, "_validation_lane", SlidingWindowLimiter(1, clock=clock, sleep=clock.sleep))
    yield budget
    caches.reset()
