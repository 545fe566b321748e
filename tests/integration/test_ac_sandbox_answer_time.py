"""The stand-in's answer time (AC answers a full page in hundreds of milliseconds): fixed + per record,
with jitter, over real HTTP; counted against the rate limit on arrival, undone by reset()."""

import time

import pytest
import requests

from devstack.ac_sandbox import ACSandbox

KEY = {"Api-Token": "sandbox-key"}


def timed(sandbox, path, params=None) -> float:
    started = time.monotonic()
    reply = requests.get(f"{sandbox.base_url}/api/3{path}", params=params, headers=KEY, timeout=10)
    assert reply.status_code == 200
    return time.monotonic() - started


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_fixed_and_per_record_parts():
    with ACSandbox(rate_limit=None, contacts=150, answer_time=(0.15, 0.002, 0.0)) as sandbox:
        page = timed(sandbox, "/contacts", {"limit": 100})
        one = timed(sandbox, "/contacts", {"limit": 1})
        assert 0.35 <= page < 0.6            # 0.15 + 100 x 0.002
        assert 0.15 <= one < 0.3
        sandbox.reset()                      # back to the constructor's answer time
        assert 0.35 <= timed(sandbox, "/contacts", {"limit": 100}) < 0.6
        sandbox.answer_time()
        assert timed(sandbox, "/contacts", {"limit": 100}) < 0.15


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_jitter_spreads_answers_within_its_bounds():
    with ACSandbox(rate_limit=None, contacts=5, answer_time=(0.1, 0.0, 0.5)) as sandbox:
        times = [timed(sandbox, "/users/me") for _ in range(12)]
        assert all(0.05 <= t < 0.2 for t in times)
        assert max(times) - min(times) > 0.02


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_slow_answer_is_counted_when_it_arrives():
    with ACSandbox(rate_limit=5, contacts=5, answer_time=(0.3, 0.0, 0.0)) as sandbox:
        with requests.Session() as session:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(6) as pool:
                replies = list(pool.map(lambda _: session.get(f"{sandbox.base_url}/api/3/users/me", headers=KEY,
                                                                timeout=5), range(6)))
        assert sorted(r.status_code for r in replies) == [200] * 5 + [429]


def test_bad_values_are_refused():
    with pytest.raises(ValueError):
        ACSandbox(rate_limit=None, contacts=1, answer_time=(0.1, 0.0, 2.0))
