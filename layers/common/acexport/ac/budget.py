"""The request budget per AC account, shared by every container, function and job that calls it.

AC allows 5 requests per second per account, with no documented burst, and answers 429 beyond it
(docs/ac-behaviour.md, rate limits). A limiter inside one container
(`ratelimit.SlidingWindowLimiter`) keeps that container within it, but N warm containers together would
send N x 5. This budget lives in Mongo, which every function that calls AC already reaches.

How: `rate` slot documents per AC host in RATE_BUDGET_COLLECTION,

    {_id: "<host>#<k>", t: <wall-clock seconds of the last request sent through slot k>, expires: <date>}

A request takes, in one atomic find_one_and_update, any slot of its host whose `t` is at least `window`
old, and sets `t` to now. Each slot serves at most one request per window and there are `rate` slots, so
no window of that length ever holds more than `rate` requests from all containers together: a sliding
window, like AC's. (A counter per wall-clock second would let 2 x rate through across a second boundary:
5 at x.99 s and 5 more at x+1.01 s.) When no slot is free the caller reads the slots, sleeps until the
oldest one frees and tries again; a wait that would end past its deadline raises BudgetExhausted at once,
which ACClient answers as a 503 with Retry-After. A 429's Retry-After moves every slot of the host
forward (`penalise`), so every container holds off, not only the one that was told.

Cost: one round trip per AC request while a slot is free (about 0.7 ms on loopback with nx-27017; see
benchmarks/load/README.md), one more read per wait. Threads of one container first queue on a local lock
per host, so a container never has more than one thread polling Mongo for a host.

Clocks and margin: `t` is the wall clock (time.time()) of the container that took the slot. A container
whose clock runs d ahead of another's may reuse that one's slot d early. Lambda hosts keep time with
Amazon Time Sync (well under a millisecond apart). What varies more is the time between taking a slot and
AC receiving the request (the Mongo answer, thread scheduling, the network): two requests 1.05 s apart
when their slots were taken arrived 0.999 s apart at the AC stand-in in the load run on a busy 2-core
machine. AC_RATE_WINDOW_MARGIN_MS (default 50; docs/decisions.md 12) is added to the window to absorb
both; a 429 from AC may carry Retry-After: 30, which costs far more than the margin. With it the sustained
ceiling is 5 per 1.05 s (4.76/s); bursts of up to 5 still go at once.

Growth and clean-up: `rate` tiny documents per AC account ever called, never one per second. Every grant
sets `expires` a day ahead and a TTL index on `expires` (created at deploy time by
`python -m acexport.setup_db`, never in a request; nx-27017 honours TTL indexes too) drops the slots of
accounts idle for a day. Without the index the collection stays at `rate` documents per account; deleting
it is always safe: missing slots are recreated on the next request.

Mongo down or slow: every Mongo call is bounded by the caller's remaining time and MONGODB_TIMEOUT_MS and
fails as a 503 (`db.mongo_errors()`) like every other Mongo failure; it never hangs the request.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pymongo
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, PyMongoError

from acexport import db
from acexport.ac.ratelimit import BudgetExhausted
from acexport.errors import ServiceUnavailable
from acexport.settings import get_settings

logger = logging.getLogger(__name__)

EXPIRE_AFTER = timedelta(days=1)   # slots of an AC account idle this long are dropped by the TTL index
TTL_INDEX = "expires_ttl"
MIN_MONGO_SECONDS = 0.05           # the least time a Mongo call is given, even right at the deadline
MIN_SLEEP = 0.002                  # between tries when a slot looked free but another container won it
JITTER = 0.005                     # spread the containers that wake for the same slot


def _expiry(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC) + EXPIRE_AFTER


def create_indexes(coll: Any) -> None:
    """The TTL index that drops the slots of idle AC accounts (deploy time: acexport.setup_db)."""
    coll.create_index("expires", expireAfterSeconds=0, name=TTL_INDEX)


class MongoBudget:
    """At most `rate` requests per `window + margin` seconds per key (the AC host), across every process
    that uses the same collection. Same interface as ratelimit.SlidingWindowLimiter."""

    def __init__(self, rate: float, *, collection: str | Callable[[], Any] = "integrations_activecampaign_rate_budget",
                 window: float = 1.0, margin: float = 0.1, mongo_timeout: float | None = None,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.rate = max(1, int(rate))
        self.window = window + max(0.0, margin)
        if callable(collection):
            self._collection = collection
        else:
            self._collection = lambda: db.database()[collection]
        self._mongo_timeout = mongo_timeout
        self._clock, self._monotonic, self._sleep = clock, monotonic, sleep
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._ready: set[str] = set()          # hosts whose slot documents exist, as far as we know
        self._next_free: dict[str, float] = {}  # monotonic time a waiter expects the next slot, per host

    # ------------------------------------------------------------------ interface
    def acquire(self, key: str, deadline: float) -> None:
        now = self._monotonic()
        expected = self._next_free.get(key, 0.0) - now
        if expected > 0 and now + expected > deadline:
            raise BudgetExhausted(expected)  # a waiter already knows the next slot comes too late
        lock = self._lock_for(key)
        if not lock.acquire(timeout=max(0.0, deadline - now)):
            raise BudgetExhausted(max(self._next_free.get(key, 0.0) - self._monotonic(), self.window / self.rate))
        try:
            self._take(key, deadline)
        finally:
            lock.release()

    def penalise(self, key: str, seconds: float) -> None:
        """AC said 429 + Retry-After: no slot of this host frees before `seconds` from now, in any container.
        Best effort: if Mongo cannot be told, the next acquire reports Mongo's state anyway."""
        self._next_free[key] = max(self._next_free.get(key, 0.0), self._monotonic() + seconds)
        until = self._clock() + seconds - self.window
        try:
            with pymongo.timeout(self._timeout(self._mongo_timeout_seconds())):
                self._collection().update_many({"_id": {"$in": self._slots(key)}}, {"$max": {"t": until}})
        except (PyMongoError, ServiceUnavailable) as exc:
            logger.warning("rate budget: could not record AC's Retry-After",
                           extra={"ac_host": key, "error": type(exc).__name__})

    # ------------------------------------------------------------------ internals
    def _lock_for(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _slots(self, key: str) -> list[str]:
        return [f"{key}#{k}" for k in range(self.rate)]

    def _mongo_timeout_seconds(self) -> float:
        if self._mongo_timeout is not None:
            return self._mongo_timeout
        return get_settings().mongodb_timeout_ms / 1000.0

    @staticmethod
    def _timeout(seconds: float) -> float:
        return max(MIN_MONGO_SECONDS, seconds)

    def _take(self, key: str, deadline: float) -> None:
        slots = self._slots(key)
        while True:
            wait = self._try(key, slots, deadline)
            if wait is None:
                self._next_free.pop(key, None)
                return
            now = self._monotonic()
            self._next_free[key] = now + wait
            if now + wait > deadline:
                raise BudgetExhausted(wait)
            self._sleep(max(MIN_SLEEP, wait + random.uniform(0.0, JITTER)))

    def _try(self, key: str, slots: list[str], deadline: float) -> float | None:
        """Take a free slot (None), or say how long until the oldest slot frees."""
        remaining = deadline - self._monotonic()
        with db.mongo_errors(), pymongo.timeout(self._timeout(min(remaining, self._mongo_timeout_seconds()))):
            coll = self._collection()
            if key not in self._ready:
                self._prepare(coll, slots)
                self._ready.add(key)
            now = self._clock()
            taken = coll.find_one_and_update({"_id": {"$in": slots}, "t": {"$lte": now - self.window}},
                                             {"$set": {"t": now, "expires": _expiry(now)}},
                                             projection={"_id": True})
            if taken is not None:
                return None
            times = [float(doc.get("t") or 0.0) for doc in coll.find({"_id": {"$in": slots}}, {"t": True})]
        if len(times) < self.rate:
            self._ready.discard(key)  # slots were cleaned up (TTL or by hand): recreate them, then retry
            return 0.0
        return max(0.0, min(times) + self.window - self._clock())

    def _prepare(self, coll: Any, slots: list[str]) -> None:
        """Create the host's slot documents if missing (the TTL index is made at deploy time: create_indexes)."""
        fresh = {"t": 0.0, "expires": _expiry(self._clock())}
        try:
            coll.bulk_write([UpdateOne({"_id": slot}, {"$setOnInsert": fresh}, upsert=True) for slot in slots],
                            ordered=False)
        except BulkWriteError as exc:  # another container created them at the same moment
            if any(error.get("code") != 11000 for error in exc.details.get("writeErrors", [])):
                raise
