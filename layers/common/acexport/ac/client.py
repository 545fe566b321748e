"""HTTP client for ActiveCampaign's v3 API.

What AC really does (../shared/reference/activecampaign-v3.md) and how this client answers it:
- a bad key is 403 (sometimes without Content-Type), a wrong host is a redirect or an HTML 404:
  redirects are never followed and a non-JSON answer is never trusted;
- 429 carries Retry-After (seconds); 5xx, timeouts and dropped connections happen, and 403s can be
  intermittent during a sync: all are retried, but only within the time the caller has left
  (`deadline`, a value of the client's `clock`, time.monotonic by default), and every attempt, retries
  included, goes through the per-account request budget (ratelimit.py). That is why the retry loop is
  written here rather than left to urllib3's Retry, which knows neither the budget nor the deadline
  (docs/decisions.md). The loop reads time through `clock` and waits through `sleep` (injected like
  `ac.ratelimit.SlidingWindowLimiter`'s), so its tests run on a fake clock instead of sleeping.
The api key travels only in the `Api-Token` header; it is never logged and never part of an error.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import random
import time
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from acexport import caches
from acexport.ac.ratelimit import BudgetExhausted, Limiter, SlidingWindowLimiter
from acexport.errors import (
    InvalidCredentials,
    StoredCredentialsRejected,
    UpstreamThrottled,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from acexport.settings import get_settings

logger = logging.getLogger(__name__)

AC_PAGE = 100              # AC's largest page (`limit` above 100 is read as 100)
MIN_ATTEMPT_SECONDS = 0.5   # don't start an attempt with less time than this left
MAX_ATTEMPTS = 5
USER_AGENT = "activecampaign-integration/1.0"

_session: requests.Session | None = None
_limiter: Limiter | None = None


def session() -> requests.Session:
    """One pooled session per warm container; retries are ours (max_retries=0)."""
    global _session
    if _session is None:
        s = requests.Session()
        s.trust_env = False  # never pick up proxies or .netrc credentials from the environment
        adapter = HTTPAdapter(pool_connections=8, pool_maxsize=8, max_retries=0)
        s.mount("https://", adapter)
        s.mount("http://", adapter)
        _session = s
    return _session


def limiter() -> Limiter:
    """The per-AC-account budget of this container: shared through Mongo by every container and job
    (AC_RATE_BUDGET=shared, the default: `ac.budget.MongoBudget`), or this process's own (local:
    `ac.ratelimit.SlidingWindowLimiter`), at AC_RATE_LIMIT_PER_SECOND."""
    global _limiter
    if _limiter is None:
        settings = get_settings()
        if settings.rate_budget == "local":
            _limiter = SlidingWindowLimiter(settings.rate_limit_per_second)
        else:
            from acexport.ac.budget import MongoBudget  # imported here: the local limiter needs no Mongo

            _limiter = MongoBudget(settings.rate_limit_per_second, collection=settings.rate_budget_collection,
                                   margin=settings.rate_window_margin_ms / 1000.0)
    return _limiter


@caches.register
def forget_session_and_limiter() -> None:
    global _session, _limiter
    if _session is not None:
        _session.close()
    _session, _limiter = None, None


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, when.timestamp() - time.time()) if when else None


def _backoff(attempt: int) -> float:
    return min(4.0, 0.25 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)


class ACClient:
    """Calls on one AC account with one key, for one request (or job step) that ends at `deadline`
    (a `clock()` value). `clock` and `sleep` drive the retry loop: time.monotonic and time.sleep unless a
    test gives a fake clock."""

    def __init__(self, base_url: str, api_key: str, *, deadline: float, validating: bool = False,
                 clock=time.monotonic, sleep=time.sleep):
        settings = get_settings()
        self.root = base_url.rstrip("/") + settings.api_version
        self.host = urlsplit(base_url).netloc.lower()
        self.deadline = deadline
        self.validating = validating
        self.calls = 0          # HTTP requests sent (retries included)
        self.throttled = 0      # 429s seen
        self._headers = {"Api-Token": api_key, "Accept": "application/json", "User-Agent": USER_AGENT}
        self._timeouts = (settings.connect_timeout, settings.read_timeout)
        self._clock, self._sleep = clock, sleep

    @property
    def key_fingerprint(self) -> str:
        """A one-way digest of the key, to key caches by it without holding it."""
        return hashlib.sha256(self._headers["Api-Token"].encode()).hexdigest()[:32]

    def validate(self) -> dict:
        """Check the pair with GET /users/me: any refusal is `Invalid base_url or api_key` (400)."""
        self.validating = True
        return self.get("/users/me")

    def _rejected(self):
        return InvalidCredentials() if self.validating else StoredCredentialsRejected()

    def get(self, path: str, params: list[tuple[str, str]] | None = None) -> dict:
        """GET a JSON object from AC, retrying what is worth retrying while time allows."""
        url = self.root + path
        failure: Exception = UpstreamTimeout()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            remaining = self.deadline - self._clock()
            if remaining < MIN_ATTEMPT_SECONDS:
                break
            try:
                limiter().acquire(self.host, self.deadline - MIN_ATTEMPT_SECONDS)
            except BudgetExhausted as exc:
                raise UpstreamThrottled(exc.wait) from None
            self.calls += 1
            read_timeout = max(0.1, min(self._timeouts[1], self.deadline - self._clock()))
            try:
                response = session().get(url, params=params, headers=self._headers, allow_redirects=False,
                                         timeout=(self._timeouts[0], read_timeout))
            except requests.Timeout:
                failure, wait = UpstreamTimeout(), _backoff(attempt)
            except requests.RequestException:
                failure, wait = UpstreamUnavailable("ActiveCampaign could not be reached; retry later"), \
                    _backoff(attempt)
            else:
                outcome = self._classify(response, attempt)
                if isinstance(outcome, dict):
                    return outcome
                failure, wait = outcome
            logger.info("ac retry", extra={"ac_host": self.host, "path": path, "attempt": attempt,
                                           "error": type(failure).__name__, "wait": round(wait, 3)})
            if attempt == MAX_ATTEMPTS or self._clock() + wait > self.deadline - MIN_ATTEMPT_SECONDS:
                break  # no attempt left, or none would fit: answer now rather than after a useless wait
            self._sleep(wait)
        raise failure

    def _classify(self, response: requests.Response, attempt: int):
        """A JSON dict on success; else (error to raise if no retry, seconds to wait before retrying).
        Errors that must not be retried are raised here."""
        status = response.status_code
        if status == 429 or (status == 503 and response.headers.get("Retry-After")):
            self.throttled += 1
            wait = _retry_after(response)
            wait = _backoff(attempt) if wait is None else wait
            limiter().penalise(self.host, wait)
            return UpstreamThrottled(wait), wait
        if 300 <= status < 400:
            raise self._rejected()  # AC bounces a wrong account host to its login page
        if status in (401, 403):
            if self.validating or attempt >= 2:
                raise self._rejected()
            return self._rejected(), _backoff(attempt)  # AC's 403s can be intermittent: one more try
        if status >= 500:
            failure = UpstreamUnavailable(f"ActiveCampaign is unavailable (it answered {status}); retry later")
            return failure, _backoff(attempt)
        try:
            body = response.json()
        except ValueError:
            body = None
        if 200 <= status < 300:
            if isinstance(body, dict):
                return body
            if self.validating:
                raise InvalidCredentials()  # a 2xx that isn't AC's JSON: not an AC API host
            return UpstreamUnavailable("ActiveCampaign sent an unreadable answer; retry later"), \
                _backoff(attempt)
        if body is None:
            raise self._rejected()  # an HTML 404 and the like: the base URL is not AC's API
        if self.validating:
            raise InvalidCredentials()
        raise UpstreamUnavailable(f"ActiveCampaign refused the request ({status})")
