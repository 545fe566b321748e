"""The shared budget's adaptive margin (the real-latency round) on a simulated clock: it starts at 50 ms, follows the
measured spread of lags (never under the configured least), widens after a 429 and narrows again; AC's
RateLimit-Remaining: 0 when this service did not fill AC's window holds every container off for a window."""

from __future__ import annotations

import pytest
from acexport.ac.budget import Margin, MongoBudget

from devstack.ac_sandbox import most_in_any_window
from tests.fakes import FakeClock
from tests.unit.test_budget import FakeSlots


class CountingSlots(FakeSlots):
    def count_documents(self, query):
        return sum(1 for i in query["_id"]["$in"] if i in self.docs and self.docs[i]["t"] > query["t"]["$gt"])


def budget(clock, slots=None):
    slots = slots if slots is not None else CountingSlots()
    return MongoBudget(5, collection=lambda: slots, margin=0.02, adapt=True, mongo_timeout=1.0, clock=clock,
                       monotonic=clock, sleep=clock.sleep), slots


def test_the_margin_follows_the_spread_of_lags_never_under_the_least():
    margin = Margin(0.02)
    assert margin.seconds == pytest.approx(Margin.START)            # nothing measured yet
    for lag in [0.001, 0.003] * 10:
        margin.lag(lag)
    assert margin.seconds == pytest.approx(0.02)                     # a 2 ms spread < the least
    margin.lag(0.040)                                                # a stall: 39 ms spread
    assert margin.seconds == pytest.approx(Margin.SPREAD_FACTOR * 0.039)
    for _ in range(Margin.LAG_SAMPLES):
        margin.lag(0.002)
    assert margin.seconds == pytest.approx(0.02)                     # the stall has left the sample


def test_a_429_widens_the_margin_which_narrows_again_after_clean_requests():
    clock = FakeClock()
    b, _ = budget(clock)
    for _ in range(20):
        b.observe("acme", stamp=clock.now, sent=clock.now + 0.001, remaining=3)
    assert b.window_for("acme") == pytest.approx(1.02)
    b.penalise("acme", 1.0)
    assert b.window_for("acme") == pytest.approx(1.07)
    b.penalise("acme", 1.0)
    assert b.window_for("acme") == pytest.approx(1.12)
    for _ in range(Margin.DECAY_AFTER):
        b.observe("acme", stamp=clock.now, sent=clock.now + 0.001, remaining=3)
    assert b.window_for("acme") == pytest.approx(1.07)


def test_a_full_window_this_service_did_not_fill_holds_every_container():
    clock = FakeClock()
    b, slots = budget(clock)
    other, _ = budget(clock, slots)
    stamp = b.acquire("acme", deadline=clock.now + 1)
    b.observe("acme", stamp=stamp, sent=stamp + 0.001, remaining=0)       # 1 of ours, AC counts 5
    started = clock.now
    other.acquire("acme", deadline=clock.now + 5)
    assert clock.now - started >= 0.9                                      # held for about a window


def test_a_full_window_of_our_own_requests_changes_nothing():
    clock = FakeClock()
    b, _ = budget(clock)
    sent = []
    for n in range(25):
        stamp = b.acquire("acme", deadline=clock.now + 60)
        sent.append(clock.now)
        b.observe("acme", stamp=stamp, sent=stamp + 0.001, remaining=4 - n % 5)   # the 5th of a window: 0
    assert most_in_any_window(sent, 1.0) <= 5
    assert sent[-1] - sent[0] < 4 * 1.06 + 0.1                              # no hold-offs: 5 per window
