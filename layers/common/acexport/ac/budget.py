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
machine. A margin is added to the window to absorb both; a 429 from AC may carry Retry-After: 30, which
costs far more than the margin. With `adapt` (AC_RATE_MARGIN_ADAPT, the default) the margin is `Margin`
below: measured per host, never under AC_RATE_WINDOW_MARGIN_MS (default 25), widened after a 429
(decision 38); without it, AC_RATE_WINDOW_MARGIN_MS fixed. Bursts of up to `rate` still go at once.

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
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pymongo
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, PyMongoError

from acexport import db
from acexport.ac.ratelimit import BudgetExhausted
from acexport.errors import ServiceUnavailableError
from acexport.settings import get_settings

logger = logging.getLogger(__name__)

EXPIRE_AFTER = timedelta(days=1)   # slots of an AC account idle this long are dropped by the TTL index
TTL_INDEX = "expires_ttl"
MIN_MONGO_SECONDS = 0.05           # the least time a Mongo call is given, even right at the deadline
MIN_SLEEP = 0.002                  # between tries when a slot looked free but another container won it
JITTER = 0.005                     # spread the containers that wake for the same slot
_jitter = random.SystemRandom()   # from os.urandom: SnapStart-restored containers spread apart too
FOREIGN_SLACK = 0.5                # AC's window full and fewer than `rate` of ours in the 1.5 s before: not ours


def _expiry(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC) + EXPIRE_AFTER


def create_indexes(coll: Any) -> None:
    """The TTL index that drops the slots of idle AC accounts (deploy time: acexport.setup_db)."""
    coll.create_index("expires", expireAfterSeconds=0, name=TTL_INDEX)


class Margin:
    """What is added to AC's window for one AC host, in this container, when `adapt` is on.

    AC counts requests when they arrive; a slot is stamped when it is taken. Two requests through one
    slot arrive `window + margin + lag2 - lag1` apart, where lag is the time from the stamp to the
    request leaving (the Mongo answer, thread scheduling): the margin must cover the spread of lags,
    not the lags. So: START until FIRST_SAMPLES lags are known, then `least` (AC_RATE_WINDOW_MARGIN_MS,
    for what cannot be measured here: the network's jitter to AC) or SPREAD_FACTOR x the spread
    (max - min) of the last LAG_SAMPLES lags measured, if larger; plus, after a 429, an extra that
    doubles with each 429 (WIDEN_FIRST first) and halves after every DECAY_AFTER requests without one
    (a 429 costs AC's Retry-After, up to 30 s: far more than any margin). Never more than MOST."""

    LAG_SAMPLES = 64
    FIRST_SAMPLES = 16     # until then: START
    START = 0.05
    SPREAD_FACTOR = 2.0
    WIDEN_FIRST = 0.05
    DECAY_AFTER = 200
    MOST = 0.5

    def __init__(self, least: float):
        self.least = least
        self.extra = 0.0
        self._lags: deque[float] = deque(maxlen=self.LAG_SAMPLES)
        self._clean = 0

    @property
    def seconds(self) -> float:
        if len(self._lags) < self.FIRST_SAMPLES:
            return min(self.MOST, max(self.least, self.START) + self.extra)
        spread = max(self._lags) - min(self._lags)
        return min(self.MOST, max(self.least, self.SPREAD_FACTOR * spread) + self.extra)

    def lag(self, seconds: float) -> None:
        self._lags.append(max(0.0, seconds))
        self._clean += 1
        if self.extra and self._clean >= self.DECAY_AFTER:
            self.extra = 0.0 if self.extra < 0.002 else self.extra / 2
            self._clean = 0

    def widen(self) -> None:
        self.extra = min(self.MOST, max(self.WIDEN_FIRST, 2 * self.extra))
        self._clean = 0


class MongoBudget:
    """At most `rate` requests per `window + margin` seconds per key (the AC host), across every process
    that uses the same collection. Same interface as ratelimit.SlidingWindowLimiter."""

    def __init__(self, rate: float, *, collection: str | Callable[[], Any] = "integrations_activecampaign_rate_budget",
                 window: float = 1.0, margin: float = 0.1, adapt: bool = False, mongo_timeout: float | None = None,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.rate = max(1, int(rate))
        self.base_window, self.least_margin, self.adapt = window, max(0.0, margin), adapt
        self._margins: dict[str, Margin] = {}
        self._granted: dict[str, deque[float]] = {}   # this container's last slot stamps, per host
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
    @property
    def window(self) -> float:
        """The window a slot is held for (AC's plus the margin), as for an AC host not seen yet."""
        return self.base_window + self.least_margin

    def window_for(self, key: str) -> float:
        """The window this container holds a slot of `key` for (with `adapt`: its margin for the host)."""
        return self.base_window + (self.margin(key).seconds if self.adapt else self.least_margin)

    def margin(self, key: str) -> Margin:
        with self._guard:
            return self._margins.setdefault(key, Margin(self.least_margin))

    def acquire(self, key: str, deadline: float) -> float:
        """Take a slot of `key`; returns its stamp (wall clock), for `observe`."""
        now = self._monotonic()
        expected = self._next_free.get(key, 0.0) - now
        if expected > 0 and now + expected > deadline:
            raise BudgetExhausted(expected)  # a waiter already knows the next slot comes too late
        lock = self._lock_for(key)
        if not lock.acquire(timeout=max(0.0, deadline - now)):
            raise BudgetExhausted(max(self._next_free.get(key, 0.0) - self._monotonic(), self.window / self.rate))
        try:
            stamp = self._take(key, deadline)
            self._granted.setdefault(key, deque(maxlen=4 * self.rate)).append(stamp)
            return stamp
        finally:
            lock.release()

    def now(self) -> float:
        """The wall clock slots are stamped on (time.time()): a request's `sent` for `observe`."""
        return self._clock()

    def observe(self, key: str, *, stamp: float | None, sent: float, remaining: int | None) -> None:
        """A request taken at `stamp` left at `sent` (both wall clock) and AC answered with
        `RateLimit-Remaining: remaining` (None: no such header). With `adapt`: the lag feeds the margin;
        and when AC says its window is full (0) though fewer than `rate` of its requests came from us
        (this container's stamps, then every container's slots in Mongo), someone else is using the
        account (another integration: AC's limit is per account): every container holds off for a
        window, rather than meet a 429 and its Retry-After. Ours are counted over FOREIGN_SLACK more than
        AC's window: at full rate AC may see 5 of ours within its second (lags differ), which is no sign of
        anyone else."""
        if not self.adapt or stamp is None:
            return
        self.margin(key).lag(sent - stamp)
        if remaining != 0:
            return
        since = stamp - self.base_window - FOREIGN_SLACK   # what AC may still count of ours, lags included
        ours = sum(1 for t in self._granted.get(key, ()) if since < t <= stamp)
        if ours >= self.rate:
            return
        try:
            with pymongo.timeout(self._timeout(self._mongo_timeout_seconds())):
                recent = self._collection().count_documents({"_id": {"$in": self._slots(key)}, "t": {"$gt": since}})
        except (PyMongoError, ServiceUnavailableError):
            return
        if recent < self.rate:
            logger.info("rate budget: AC counts requests this service did not send; holding off",
                        extra={"ac_host": key, "ours": recent})
            self.penalise(key, self.base_window, widen=False)

    def penalise(self, key: str, seconds: float, *, widen: bool = True) -> None:
        """AC said 429 + Retry-After: no slot of this host frees before `seconds` from now, in any container
        (and, with `adapt`, this container's margin for the host widens). Best effort: if Mongo cannot be
        told, the next acquire reports Mongo's state anyway."""
        if widen and self.adapt:
            self.margin(key).widen()
        self._next_free[key] = max(self._next_free.get(key, 0.0), self._monotonic() + seconds)
        until = self._clock() + seconds - self.window_for(key)
        try:
            with pymongo.timeout(self._timeout(self._mongo_timeout_seconds())):
                self._collection().update_many({"_id": {"$in": self._slots(key)}}, {"$max": {"t": until}})
        except (PyMongoError, ServiceUnavailableError) as exc:
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

    def _take(self, key: str, deadline: float) -> float:
        slots = self._slots(key)
        while True:
            taken, wait = self._try(key, slots, deadline)
            if taken is not None:
                self._next_free.pop(key, None)
                return taken
            now = self._monotonic()
            self._next_free[key] = now + wait
            if now + wait > deadline:
                raise BudgetExhausted(wait)
            self._sleep(max(MIN_SLEEP, wait + _jitter.uniform(0.0, JITTER)))

    def _try(self, key: str, slots: list[str], deadline: float) -> tuple[float | None, float]:
        """Take a free slot (its stamp, 0), or say how long until the oldest slot frees (None, seconds)."""
        remaining = deadline - self._monotonic()
        window = self.window_for(key)
        with db.mongo_errors(), pymongo.timeout(self._timeout(min(remaining, self._mongo_timeout_seconds()))):
            coll = self._collection()
            if key not in self._ready:
                self._prepare(coll, slots)
                self._ready.add(key)
            now = self._clock()
            taken = coll.find_one_and_update({"_id": {"$in": slots}, "t": {"$lte": now - window}},
                                             {"$set": {"t": now, "expires": _expiry(now)}},
                                             projection={"_id": True})
            if taken is not None:
                return now, 0.0
            times = [float(doc.get("t") or 0.0) for doc in coll.find({"_id": {"$in": slots}}, {"t": True})]
        if len(times) < self.rate:
            self._ready.discard(key)  # slots were cleaned up (TTL or by hand): recreate them, then retry
            return None, 0.0
        return None, max(0.0, min(times) + window - self._clock())

    def _prepare(self, coll: Any, slots: list[str]) -> None:
        """Create the host's slot documents if missing (the TTL index is made at deploy time: create_indexes)."""
        fresh = {"t": 0.0, "expires": _expiry(self._clock())}
        try:
            coll.bulk_write([UpdateOne({"_id": slot}, {"$setOnInsert": fresh}, upsert=True) for slot in slots],
                            ordered=False)
        except BulkWriteError as exc:  # another container created them at the same moment
            if any(error.get("code") != 11000 for error in exc.details.get("writeErrors", [])):
                raise
