"""The AC client's retry policy and retry loop (acexport.ac.client).

`ACClient._classify` judges one answer into an `Outcome` (AC's answer, a retry after a wait, or a failure now);
it is checked on `requests.Response` objects built here, one per kind of answer AC gives
(docs/ac-behaviour.md: 429 + Retry-After, a 403 without Content-Type, a redirect or an
HTML 404 for a wrong host), on a fake clock shared by the client and its rate limiter, in-process. The retry
loop, which talks HTTP to the AC stand-in, is tested in tests/integration/test_ac_client_retries.py.
"""

from __future__ import annotations

import email.utils
import json
import time

import pytest
import requests
from acexport.ac import client as ac_client
from acexport.ac.client import Outcome, Verdict
from acexport.errors import (
    InvalidCredentialsError,
    StoredCredentialsRejectedError,
    UpstreamThrottledError,
    UpstreamUnavailableError,
)
from requests.structures import CaseInsensitiveDict

from tests.ac_client_kit import KEY, backoff_bounds, budget_on, make_client


@pytest.fixture(autouse=True)
def limiter(monkeypatch, clock):
    yield from budget_on(monkeypatch, clock)


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
