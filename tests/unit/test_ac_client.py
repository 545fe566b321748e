"""The AC client's retry policy and retry loop (acexport.ac.client).

`ACClient._classify` judges one answer into an `Outcome` (AC's answer, a retry after a wait, or a failure now);
it is checked on `requests.Response` objects built here, one per kind of answer AC gives
(docs/ac-behaviour.md: 429 + Retry-After, a 403 without Content-Type, a redirect or an
HTML 404 for a wrong host). The retry loop talks real HTTP to the AC stand-in (devstack/ac_sandbox.py, with
injected faults) on a fake clock shared by the client and its rate limiter: back-off, Retry-After and
deadlines are read off the clock, so nothing here sleeps for real.
"""

from __future__ import annotations

import email.utils
import json
import socket
import time

import pytest
import requests
from acexport import caches
from acexport.ac import client as ac_client
from acexport.ac.client import MAX_ATTEMPTS, MIN_ATTEMPT_SECONDS, ACClient, Outcome, Verdict
from acexport.ac.ratelimit import SlidingWindowLimiter
from acexport.errors import (
    InvalidCredentialsError,
    PermissionDeniedError,
    StoredCredentialsRejectedError,
    UpstreamThrottledError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from requests.structures import CaseInsensitiveDict

from devstack.ac_sandbox import ACSandbox
from tests.fakes import FakeClock

KEY = "sandbox-key"


def backoff_bounds(attempt: int) -> tuple[float, float]:
    """`_backoff(attempt)` is 0.25 s doubling per attempt, capped at 4 s, times a jitter in [0.5, 1]."""
    base = min(4.0, 0.25 * 2 ** (attempt - 1))
    return base / 2, base


def total_backoff_bounds(attempts: int) -> tuple[float, float]:
    bounds = [backoff_bounds(a) for a in range(1, attempts + 1)]
    return sum(low for low, _ in bounds), sum(high for _, high in bounds)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture(autouse=True)
def limiter(monkeypatch, clock):
    """A new container whose request budget runs on the same fake clock as the client."""
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


def make_client(clock, base_url="https://acme.api-us1.com", *, seconds=30.0) -> ACClient:
    return ACClient(base_url, KEY, deadline=clock() + seconds, clock=clock, sleep=clock.sleep)


def retried(outcome: Outcome):
    """(the error if no retry is left, the wait) of an outcome that must be a retry."""
    assert outcome.verdict is Verdict.RETRY, outcome
    return outcome.error, outcome.wait


def failed(outcome: Outcome):
    """The error of an outcome that must fail at once."""
    assert outcome.verdict is Verdict.FAIL, outcome
    return outcome.error


def answered(outcome: Outcome):
    assert outcome.verdict is Verdict.ANSWER, outcome
    return outcome.body


def response(status: int, body=b"", headers=None) -> requests.Response:
    built = requests.Response()
    built.status_code = status
    built._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    built.headers = CaseInsensitiveDict(headers or {})
    built.encoding = "utf-8"
    return built


def in_bounds(wait: float, attempt: int) -> bool:
    low, high = backoff_bounds(attempt)
    return low <= wait <= high


# ---- _classify: the retry policy, one answer at a time

def test_a_2xx_json_object_is_the_answer(clock):
    body = {"contacts": [{"id": "1"}], "meta": {"total": "1"}}
    assert answered(make_client(clock)._classify(response(200, body, {"Content-Type": "application/json"}), 1)) == body


@pytest.mark.parametrize("text", [b'{"meta": {"total": 123456789012345678901234567890}}',   # beyond 64 bits
                                  b'{"meta": {"total": NaN}}', '{"meta": {"total": "ü"}}'.encode("utf-16")])
def test_what_orjson_refuses_and_json_reads_is_still_the_answer(clock, text):
    """AC's answers are parsed with orjson; what it refuses and json reads is read as before (ac/client._json)."""
    built = response(200, text, {"Content-Type": "application/json"})
    built.encoding = None                                 # requests then detects UTF-16 itself, as for AC
    body = answered(make_client(clock)._classify(built, 1))
    assert isinstance(body, dict) and "total" in body["meta"]


@pytest.mark.parametrize("status", [429, 503])
def test_throttled_waits_retry_after_and_holds_the_account(clock, limiter, status):
    client = make_client(clock)
    failure, wait = retried(client._classify(response(status, {"message": "slow down"}, {"Retry-After": "7"}), 1))
    assert isinstance(failure, UpstreamThrottledError) and failure.headers == {"Retry-After": "7"}
    assert wait == 7.0 and client.throttled == 1
    start = clock()
    limiter.acquire(client.budget_key, start + 60)     # every caller of this AC account is held too
    assert clock() - start == pytest.approx(7.005)


def test_retry_after_as_an_http_date(clock):
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    failure, wait = retried(make_client(clock)._classify(response(429, b"", {"Retry-After": when}), 1))
    assert isinstance(failure, UpstreamThrottledError) and 27 <= wait <= 30


def test_429_without_retry_after_backs_off(clock):
    client = make_client(clock)
    failure, wait = retried(client._classify(response(429, {"message": "Too Many Requests"}), 3))
    assert isinstance(failure, UpstreamThrottledError) and in_bounds(wait, 3) and client.throttled == 1


def test_503_without_retry_after_is_an_outage_not_a_throttle(clock):
    client = make_client(clock)
    failure, wait = retried(client._classify(response(503, {"message": "Service Unavailable"}), 2))
    assert isinstance(failure, UpstreamUnavailableError) and "503" in failure.message
    assert in_bounds(wait, 2) and client.throttled == 0


@pytest.mark.parametrize("status", [500, 502, 504])
def test_5xx_is_retried_with_backoff(clock, status):
    failure, wait = retried(make_client(clock)._classify(response(status, b"<html>oops</html>"), 1))
    assert isinstance(failure, UpstreamUnavailableError) and str(status) in failure.message and in_bounds(wait, 1)


@pytest.mark.parametrize("validating, error",
                         [(False, StoredCredentialsRejectedError), (True, InvalidCredentialsError)])
@pytest.mark.parametrize("status", [301, 302, 307])
def test_a_redirect_is_rejected_at_once(clock, status, validating, error):
    answer = response(status, b"<html>login</html>", {"Location": "https://www.activecampaign.com/login/"})
    raised = failed(make_client(clock)._classify(answer, 1, validating=validating))
    assert type(raised) is error and KEY not in str(raised)


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_gets_one_more_try_then_is_rejected(clock, status):
    client = make_client(clock)
    answer = response(status, b'{"message": "Forbidden"}')    # AC's 403 comes without a Content-Type
    failure, wait = retried(client._classify(answer, 1))
    assert isinstance(failure, StoredCredentialsRejectedError) and in_bounds(wait, 1)
    assert failure.body()["reconnect"] is True
    assert isinstance(failed(client._classify(answer, 2)), StoredCredentialsRejectedError)


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_is_rejected_at_once_when_validating(clock, status):
    raised = failed(make_client(clock)._classify(response(status, b'{"message": "Forbidden"}'), 1, validating=True))
    assert type(raised) is InvalidCredentialsError and raised.status == 400


@pytest.mark.parametrize("body", [b"<html>not AC</html>", b"", b'{"contacts": [', b'["a list"]'])
def test_a_2xx_that_is_not_a_json_object_is_retried(clock, body):
    failure, wait = retried(make_client(clock)._classify(response(200, body, {"Content-Type": "text/html"}), 1))
    assert isinstance(failure, UpstreamUnavailableError) and "unreadable" in failure.message and in_bounds(wait, 1)


def test_a_2xx_that_is_not_a_json_object_fails_validation(clock):
    outcome = make_client(clock)._classify(response(200, b"<html>welcome</html>"), 1, validating=True)
    assert isinstance(failed(outcome), InvalidCredentialsError)


@pytest.mark.parametrize("validating, error",
                         [(False, StoredCredentialsRejectedError), (True, InvalidCredentialsError)])
def test_a_4xx_without_json_means_the_host_is_not_acs_api(clock, validating, error):
    outcome = make_client(clock)._classify(response(404, b"<html>Not Found</html>"), 1, validating=validating)
    assert type(failed(outcome)) is error


def test_a_4xx_with_json_is_refused_without_retry(clock):
    answer = response(422, {"errors": [{"title": "The filter is invalid"}]})
    refused = failed(make_client(clock)._classify(answer, 1))
    assert isinstance(refused, UpstreamUnavailableError) and "refused the request (422)" in refused.message
    assert isinstance(failed(make_client(clock)._classify(answer, 1, validating=True)), InvalidCredentialsError)


# ---- the retry loop, against the AC stand-in over HTTP, on the fake clock

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


def test_only_the_credential_store_and_the_save_build_an_ac_client():
    """Every AC call with a stored key goes through `credentials.store.client` (which marks a refused key for
    reconnecting); a save validates a new pair (connections.save). A module building its own client would
    let its route forget the reconnect prompt."""
    import ast
    from pathlib import Path

    package = Path(ac_client.__file__).resolve().parents[1]
    builders = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "ACClient":
                builders.add(path.relative_to(package).as_posix())
    assert builders == {"credentials/store.py", "credentials/connections.py"}


def test_one_watchdog_thread_keeps_every_attempts_deadline(clock, sandbox):
    """Each attempt runs under a deadline watch (ac/transport.py); the watches share one thread, however many
    calls are made."""
    import threading

    client = make_client(clock, sandbox.base_url)
    for _ in range(20):
        assert client.get("/contacts")["contacts"]
    assert [t.name for t in threading.enumerate()].count("ac-deadline-watch") == 1
