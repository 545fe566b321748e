"""The request budget per AC account: AC allows 5 requests per second per account, shared by every
integration of that account, and answers 429 beyond it. Calls wait for a slot instead of collecting
429s; a call that cannot get a slot before its deadline is told so at once.

Two limiters share one interface (`Limiter`: `acquire(key, deadline)`, `now()`, `observe(...)`,
`penalise(key, seconds)`; the key is the AC host, `deadline` a time.monotonic() value):
- `acexport.ac.budget.MongoBudget` (AC_RATE_BUDGET=shared, the default): one budget per AC account shared by
  every container, function and job, kept in Mongo; concurrent Lambdas together stay within AC's limit.
- `SlidingWindowLimiter` (AC_RATE_BUDGET=local): within one process only (one warm container, or the
  local server). The fallback, and the reference the shared budget is tested against.
`acexport.ac.client.limiter()` picks one (AC_RATE_BUDGET) and holds it for the container.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Protocol


class BudgetExhausted(Exception):
    """No slot before the deadline; `wait` is how long the next slot is away."""

    def __init__(self, wait: float):
        super().__init__(f"next request slot in {wait:.2f}s")
        self.wait = wait


class Limiter(Protocol):
    def acquire(self, key: str, deadline: float) -> float | None:
        """Return when a request to `key` may be sent (with the slot's wall-clock stamp, if the limiter
        keeps one); raise BudgetExhausted if not before `deadline`."""

    def now(self) -> float:
        """This limiter's clock, the one its stamps are on (the client reads `sent` from it)."""

    def observe(self, key: str, *, stamp: float | None, sent: float, remaining: int | None) -> None:
        """The request of `stamp` left at `sent` (both on `now()`'s clock); AC's RateLimit-Remaining, if
        it sent one."""

    def penalise(self, key: str, seconds: float) -> None:
        """AC answered 429 + Retry-After: hold every caller of `key` for `seconds`."""


class SlidingWindowLimiter:
    """At most `rate` requests in any `window` seconds, per key (the AC host)."""

    def __init__(self, rate: float, window: float = 1.0, *, clock=time.monotonic, sleep=time.sleep):
        self.rate = max(1, int(rate))
        self.window = window
        self._clock, self._sleep = clock, sleep
        self._sent: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str, deadline: float) -> None:
        while True:
            with self._lock:
                now = self._clock()
                sent = self._sent.setdefault(key, deque())
                while sent and now - sent[0] >= self.window:
                    sent.popleft()
                if len(sent) < self.rate:
                    sent.append(now)
                    return
                wait = sent[0] + self.window - now + 0.005
            if now + wait > deadline:
                raise BudgetExhausted(wait)
            self._sleep(wait)

    def now(self) -> float:
        return self._clock()

    def observe(self, key: str, *, stamp: float | None, sent: float, remaining: int | None) -> None:
        """Nothing to adapt: this limiter's window is exact within its process."""

    def penalise(self, key: str, seconds: float) -> None:
        """AC said 429 with Retry-After: hold every caller of this account for that long."""
        with self._lock:
            until = self._clock() + seconds - self.window
            self._sent[key] = deque([until] * self.rate)
