"""The AC client's retry loop (acexport.ac.client) against the AC stand-in over real HTTP
(devstack/ac_sandbox.py, with injected faults), on a fake clock shared by the client and its rate limiter:
back-off, Retry-After and deadlines are read off the clock, so nothing here sleeps for real (one test waits a
real read timeout, marked slow). The retry policy, one answer at a time, is tested in-process in
tests/unit/test_ac_client.py.
"""

from __future__ import annotations

import socket
import time

import pytest
from acexport.ac.client import MAX_ATTEMPTS, MIN_ATTEMPT_SECONDS, ACClient
from acexport.errors import (
    InvalidCredentialsError,
    PermissionDeniedError,
    StoredCredentialsRejectedError,
    UpstreamThrottledError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

from devstack.ac_sandbox import ACSandbox
from tests.ac_client_kit import KEY, budget_on, make_client, total_backoff_bounds


@pytest.fixture(autouse=True)
def limiter(monkeypatch, clock):
    yield from budget_on(monkeypatch, clock)


@pytest.fixture(scope="module")
def ac():
    with ACSandbox(rate_limit=None, contacts=5, deals=2, accounts=2) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(ac):
    ac.reset()
    return ac


def test_5xx_then_success_waits_the_backoffs(clock, sandbox):
    sandbox.inject(503, times=2, path="/contacts")
    client, start = make_client(clock, sandbox.base_url), clock()
    body = client.get("/contacts")
    assert len(body["contacts"]) == 5 and client.calls == 3 and sandbox.count("/contacts") == 3
    low, high = total_backoff_bounds(2)
    assert low <= clock() - start <= high


def test_429_waits_exactly_retry_after(clock, sandbox):
    sandbox.inject(429, path="/contacts", retry_after=2)
    client, start = make_client(clock, sandbox.base_url), clock()
    assert client.get("/contacts")["contacts"]
    assert clock() - start == pytest.approx(2.0) and client.throttled == 1 and sandbox.count("/contacts") == 2


def test_a_retry_after_beyond_the_deadline_is_answered_at_once(clock, sandbox):
    sandbox.inject(429, path="/contacts", retry_after=10)
    client, start = make_client(clock, sandbox.base_url, seconds=5), clock()
    with pytest.raises(UpstreamThrottledError) as raised:
        client.get("/contacts")
    assert raised.value.headers == {"Retry-After": "10"}
    assert clock() == start and sandbox.count("/contacts") == 1


def test_an_outage_gets_max_attempts_then_fails(clock, sandbox):
    sandbox.inject(500, times=MAX_ATTEMPTS + 1, path="/contacts")
    client, start = make_client(clock, sandbox.base_url), clock()
    with pytest.raises(UpstreamUnavailableError, match="500"):
        client.get("/contacts")
    assert client.calls == MAX_ATTEMPTS and sandbox.count("/contacts") == MAX_ATTEMPTS
    low, high = total_backoff_bounds(MAX_ATTEMPTS - 1)   # no wait after the last attempt
    assert low <= clock() - start <= high


def test_no_useless_wait_when_no_retry_would_fit(clock, sandbox):
    sandbox.inject(500, times=2, path="/contacts")
    # 0.6 s left: one attempt fits; any back-off would leave less than MIN_ATTEMPT_SECONDS for a second one
    client, start = make_client(clock, sandbox.base_url, seconds=MIN_ATTEMPT_SECONDS + 0.1), clock()
    with pytest.raises(UpstreamUnavailableError):
        client.get("/contacts")
    assert clock() == start and sandbox.count("/contacts") == 1


def test_no_attempt_without_time_for_one(clock, sandbox):
    client = make_client(clock, sandbox.base_url, seconds=MIN_ATTEMPT_SECONDS - 0.01)
    with pytest.raises(UpstreamTimeoutError):
        client.get("/contacts")
    assert client.calls == 0 and sandbox.count() == 0


def test_an_intermittent_403_is_retried_once(clock, sandbox):
    sandbox.inject(403, path="/contacts", content_type=None)
    client = make_client(clock, sandbox.base_url)
    assert client.get("/contacts")["contacts"] and sandbox.count("/contacts") == 2


def test_a_403_twice_is_a_rejected_connection(clock, sandbox):
    sandbox.remove_key(KEY)
    client = make_client(clock, sandbox.base_url)
    with pytest.raises(StoredCredentialsRejectedError):
        client.get("/contacts")
    assert sandbox.count("/contacts") == 2


def test_validation_is_refused_on_the_first_403(clock, sandbox):
    sandbox.remove_key(KEY)
    client, start = make_client(clock, sandbox.base_url), clock()
    with pytest.raises(InvalidCredentialsError):
        client.validate()
    assert sandbox.count("/users/me") == 1 and clock() == start


def test_no_slot_in_the_budget_before_the_deadline_is_a_throttle_without_a_request(clock, limiter, sandbox):
    client = make_client(clock, sandbox.base_url, seconds=5)
    limiter.penalise(client.host, 10)                  # another caller of the account got Retry-After: 10
    with pytest.raises(UpstreamThrottledError):
        client.get("/contacts")
    assert client.calls == 0 and sandbox.count() == 0


def test_an_unreachable_host_is_retried_then_unavailable(clock):
    with socket.socket() as probe:                      # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client, start = make_client(clock, f"http://127.0.0.1:{port}"), clock()
    with pytest.raises(UpstreamUnavailableError, match="could not be reached") as raised:
        client.get("/contacts")
    assert client.calls == MAX_ATTEMPTS and KEY not in str(raised.value)
    low, high = total_backoff_bounds(MAX_ATTEMPTS - 1)
    assert low <= clock() - start <= high


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_the_read_timeout_is_the_time_left_on_the_clients_clock(clock, sandbox):
    sandbox.inject(None, path="/contacts", delay=5)
    # 0.6 s left on the fake clock: the read times out after 0.6 s (real), not AC_READ_TIMEOUT's 10 s
    client = make_client(clock, sandbox.base_url, seconds=MIN_ATTEMPT_SECONDS + 0.1)
    began = time.monotonic()
    with pytest.raises(UpstreamTimeoutError):
        client.get("/contacts")
    assert time.monotonic() - began < 3 and client.calls == 1


# ---- a refused stored key is marked in one place

def test_a_refused_stored_key_calls_on_rejected_once_and_other_failures_never(clock, sandbox):
    marked = []
    client = ACClient(sandbox.base_url, KEY, deadline=clock() + 30, clock=clock, sleep=clock.sleep,
                      on_rejected=lambda: marked.append(1))
    sandbox.inject(500, times=MAX_ATTEMPTS, path="/contacts")
    with pytest.raises(UpstreamUnavailableError):
        client.get("/contacts")
    sandbox.inject(403, path="/deals", body=b'{"errors":[{"detail":"You do not have permission to view deals."}]}')
    with pytest.raises(PermissionDeniedError):
        client.get("/deals")
    assert marked == []
    sandbox.remove_key(KEY)
    with pytest.raises(StoredCredentialsRejectedError):
        client.get("/contacts")
    assert marked == [1]


def test_one_watchdog_thread_keeps_every_attempts_deadline(clock, sandbox):
    """Each attempt runs under a deadline watch (ac/transport.py); the watches share one thread, however many
    calls are made."""
    import threading

    client = make_client(clock, sandbox.base_url)
    for _ in range(20):
        assert client.get("/contacts")["contacts"]
    assert [t.name for t in threading.enumerate()].count("ac-deadline-watch") == 1
