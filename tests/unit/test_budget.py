"""Choosing the rate budget (AC_RATE_BUDGET) and the shared budget's logic on a simulated clock. The shared
budget against a real Mongo wire server, with several processes, is in tests/integration/test_budget.py."""

from __future__ import annotations

import pytest
from acexport import caches
from acexport.ac import client
from acexport.ac.budget import MongoBudget
from acexport.ac.ratelimit import BudgetExhausted, SlidingWindowLimiter
from acexport.errors import ConfigurationError
from acexport.settings import Settings

from devstack.ac_sandbox import most_in_any_window
from tests.fakes import FakeClock


class FakeSlots:
    """Just enough of a pymongo collection for MongoBudget: `_id $in` + `t $lte` queries, $set, $max."""

    name = "fake"

    def __init__(self):
        self.docs: dict[str, dict] = {}

    def bulk_write(self, ops, ordered=True):
        for op in ops:
            self.docs.setdefault(op._filter["_id"], dict(op._doc["$setOnInsert"]))

    def create_index(self, *args, **kwargs):
        return "expires_ttl"

    def find_one_and_update(self, query, update, projection=None):
        for _id in query["_id"]["$in"]:
            doc = self.docs.get(_id)
            if doc is not None and doc["t"] <= query["t"]["$lte"]:
                doc.update(update["$set"])
                return {"_id": _id}
        return None

    def find(self, query, projection=None):
        return [{"_id": i, **self.docs[i]} for i in query["_id"]["$in"] if i in self.docs]

    def update_many(self, query, update):
        for _id in query["_id"]["$in"]:
            if _id in self.docs:
                self.docs[_id]["t"] = max(self.docs[_id]["t"], update["$max"]["t"])


@pytest.fixture(autouse=True)
def fresh_container():
    caches.reset()
    yield
    caches.reset()


def container_limiter():
    """The limiter a new container picks from the environment (acexport.ac.client.limiter)."""
    caches.reset()
    return client.limiter()


def test_shared_through_mongo_is_the_default(monkeypatch):
    for name in ("AC_RATE_BUDGET", "RATE_BUDGET_COLLECTION", "AC_RATE_LIMIT_PER_SECOND", "AC_RATE_WINDOW_MARGIN_MS"):
        monkeypatch.delenv(name, raising=False)
    current = Settings.from_env()
    assert current.rate_budget == "shared"
    assert current.rate_budget_collection == "integrations_activecampaign_rate_budget"  # no '-' (nx-27017)
    limiter = container_limiter()
    # the real-latency round: the margin adapts (from 50 ms until lags are measured, never under
    # AC_RATE_WINDOW_MARGIN_MS=25)
    assert isinstance(limiter, MongoBudget) and limiter.rate == 5 and limiter.window == pytest.approx(1.025)
    assert limiter.adapt and limiter.window_for("new.api-us1.com") == pytest.approx(1.05)


def test_local_keeps_the_in_process_limiter(monkeypatch):
    monkeypatch.setenv("AC_RATE_BUDGET", "LOCAL")
    monkeypatch.setenv("AC_RATE_LIMIT_PER_SECOND", "5")
    limiter = container_limiter()
    assert isinstance(limiter, SlidingWindowLimiter) and limiter.rate == 5


def test_an_unknown_budget_kind_is_refused(monkeypatch):
    monkeypatch.setenv("AC_RATE_BUDGET", "redis")
    with pytest.raises(ConfigurationError, match="AC_RATE_BUDGET"):
        Settings.from_env()


def make_budget(clock, slots=None, **kwargs):
    slots = slots if slots is not None else FakeSlots()
    budget = MongoBudget(5, collection=lambda: slots, margin=0.05, mongo_timeout=1.0, clock=clock,
                         monotonic=clock, sleep=clock.sleep, **kwargs)
    return budget, slots


def test_never_more_than_rate_in_any_window_and_close_to_the_ceiling():
    clock = FakeClock()
    budget, _ = make_budget(clock)
    sent = []
    for _ in range(23):
        budget.acquire("acme", deadline=clock.now + 60)
        sent.append(clock.now)
    assert most_in_any_window(sent, 1.05) <= 5
    assert sent[-1] - sent[0] < 4 * 1.05 + 0.1   # 5 at once, then 5 every 1.05 s


def test_a_deadline_it_cannot_meet_is_refused_without_waiting():
    clock = FakeClock()
    budget, _ = make_budget(clock)
    for _ in range(5):
        budget.acquire("acme", deadline=clock.now)
    budget.acquire("other", deadline=clock.now)     # another AC account: its own slots
    started = clock.now
    with pytest.raises(BudgetExhausted) as err:
        budget.acquire("acme", deadline=clock.now + 0.5)
    assert clock.now == started and err.value.wait == pytest.approx(1.05)


def test_retry_after_recorded_by_one_container_holds_another():
    clock = FakeClock()
    shared_slots = FakeSlots()
    told, other = make_budget(clock, shared_slots)[0], make_budget(clock, shared_slots)[0]
    told.acquire("acme", deadline=clock.now + 1)
    told.penalise("acme", 3.0)
    start = clock.now
    with pytest.raises(BudgetExhausted) as err:
        other.acquire("acme", deadline=clock.now + 1)
    assert err.value.wait == pytest.approx(3.0)
    other.acquire("acme", deadline=clock.now + 10)
    assert clock.now - start == pytest.approx(3.0, abs=0.01)


def test_missing_slots_are_recreated():
    clock = FakeClock()
    budget, slots = make_budget(clock)
    budget.acquire("acme", deadline=clock.now + 1)
    slots.docs.clear()                       # the TTL index, or an operator, removed them
    budget.acquire("acme", deadline=clock.now + 1)
    assert len(slots.docs) == 5
