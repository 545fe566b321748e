"""The per-AC-account budget: never more than `rate` in any window; waits instead of failing; a
deadline it cannot meet is reported at once with how long the wait would be."""

import pytest
from acexport.ac.ratelimit import BudgetExhausted, SlidingWindowLimiter

from devstack.ac_sandbox import most_in_any_window
from tests.fakes import FakeClock


def test_never_more_than_rate_in_any_window():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(5, clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(23):
        limiter.acquire("acme", deadline=clock.now + 60)
        sent.append(clock.now)
    assert most_in_any_window(sent, 1.0) <= 5
    assert sent[-1] - sent[0] < 4.2  # and it keeps close to the ceiling: 23 requests in about 4 s


def test_accounts_are_independent():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(5, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        limiter.acquire("a", deadline=clock.now)
    limiter.acquire("b", deadline=clock.now)  # no wait for another account
    with pytest.raises(BudgetExhausted) as err:
        limiter.acquire("a", deadline=clock.now + 0.5)
    assert 0.9 < err.value.wait <= 1.01


def test_penalise_holds_the_account_for_retry_after():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(5, clock=clock, sleep=clock.sleep)
    limiter.penalise("a", 3.0)
    start = clock.now
    limiter.acquire("a", deadline=clock.now + 10)
    assert clock.now - start == pytest.approx(3.0, abs=0.01)
