"""HTTP client for ActiveCampaign's v3 API.

What AC really does (docs/ac-behaviour.md) and how this client answers it:
- a bad key is 403 (sometimes without Content-Type), a wrong host is a redirect or an HTML 404:
  redirects are never followed and a non-JSON answer is never trusted;
- a good key whose user group lacks a permission is also 403, with `{"errors":[{"detail":"You do not
  have permission to view deals."}]}`: PermissionDenied, not retried, never a reconnect (docs/decisions.md 31);
- 429 carries Retry-After (seconds); 5xx, timeouts and dropped connections happen, and 403s can be
  intermittent during a sync: all are retried, but only within the time the caller has left
  (`deadline`, a value of the client's `clock`, time.monotonic by default), and every attempt, retries
  included, goes through the per-account request budget (ratelimit.py). That is why the retry loop is
  written here rather than left to urllib3's Retry, which knows neither the budget nor the deadline
  (docs/decisions.md). The client reads time through `clock` only and waits through `sleep` (injected like
  `ac.ratelimit.SlidingWindowLimiter`'s), so its tests run on a fake clock instead of sleeping.
Each answer is judged once, by `_classify`, into an `Outcome`: AC's answer, a retry after a wait, or a
failure now. Validation (saving a connection: any refusal is "Invalid base_url or api_key") is a
parameter of the call (`validate()`), not a mode of the client.
The api key travels only in the `Api-Token` header; it is never logged and never part of an error.

What a hostile "AC" host cannot do (docs/assurance.md): make us connect to a non-public address
(`transport.PinnedAdapter`: the name is resolved and checked by `base_url.public_address`, and the
connection goes to the checked address with TLS verified for the name); send an answer larger than
AC_MAX_RESPONSE_BYTES (`_read_capped`); trickle an answer (headers or body) past the deadline (every
attempt runs under `transport.deadline_watch`, which shuts its connection at the deadline: 504); hold a
host's budget with a `Retry-After` of `inf` or a day (`retry_after` caps it at MAX_RETRY_AFTER).
Validation calls pass a lane of AC_VALIDATIONS_PER_SECOND per AC account before they take a budget slot like
any call (`validation_lane`, decision 36): AC counts them, and callers without a connection cannot take
more of the account's budget than the lane; POST /auth also has a per-caller limit (credentials/attempts.py).
A client of a stored connection is made by `credentials.store.client`, which gives it `on_rejected`: when AC
refuses the stored key, the connection is marked for reconnecting there, whoever called.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import enum
import hashlib
import logging
import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson
import requests

from acexport import caches, snapstart
from acexport.ac import base_url
from acexport.ac.ratelimit import BudgetExhausted, Limiter, SlidingWindowLimiter
from acexport.ac.transport import PinnedAdapter, Watch, deadline_watch
from acexport.errors import (
    ApiError,
    InvalidCredentialsError,
    PermissionDeniedError,
    StoredCredentialsRejectedError,
    UpstreamInvalidError,
    UpstreamRefusedError,
    UpstreamThrottledError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from acexport.settings import get_settings

logger = logging.getLogger(__name__)

AC_PAGE = 100              # AC's largest page (`limit` above 100 is read as 100)
MIN_ATTEMPT_SECONDS = 0.5   # don't start an attempt with less time than this left
MAX_ATTEMPTS = 5
VALIDATION_WAIT_SECONDS = 3.0   # a save waits this long at most for the validation lane, then 503
VALIDATION_LANE_MARGIN = 0.05  # seconds added to the lane's 1 s window (fixed; see validation_lane)
USER_AGENT = "activecampaign-integration/1.0"
MAX_RETRY_AFTER = 60.0      # AC documents Retry-After in seconds, e.g. 30 (reference/rate-limits); 1 is seen
CHUNK = 64 * 1024


_session: requests.Session | None = None
_limiter: Limiter | None = None
_validation_lane: Limiter | None = None


def session() -> requests.Session:
    """One pooled session per warm container; retries are ours (max_retries=0)."""
    global _session
    if _session is None:
        s = requests.Session()
        s.trust_env = False  # never pick up proxies or .netrc credentials from the environment
        # pool_maxsize: connections kept per AC host. A job's walk can have 2 x EXPORT_PAGES_IN_FLIGHT (default 5)
        # requests out at once when AC is slow, plus the worker's own calls; a connection beyond the pool is
        # closed after its request, and the next one pays a new TLS handshake with AC.
        adapter = PinnedAdapter(pool_connections=8, pool_maxsize=16, max_retries=0)
        s.mount("https://", adapter)
        s.mount("http://", adapter)
        _session = s
    return _session


def _make_limiter(rate: float, *, adapt: bool = False, margin: float | None = None) -> Limiter:
    settings = get_settings()
    if settings.rate_budget == "local":
        return SlidingWindowLimiter(rate)
    from acexport.ac.budget import MongoBudget  # imported here: the local limiter needs no Mongo

    return MongoBudget(rate, collection=settings.rate_budget_collection, adapt=adapt,
                       margin=settings.rate_window_margin_ms / 1000.0 if margin is None else margin)


def limiter() -> Limiter:
    """The per-AC-account budget of this container: shared through Mongo by every container and job
    (AC_RATE_BUDGET=shared, the default: `ac.budget.MongoBudget`), or this process's own (local:
    `ac.ratelimit.SlidingWindowLimiter`), at AC_RATE_LIMIT_PER_SECOND."""
    global _limiter
    if _limiter is None:
        _limiter = _make_limiter(get_settings().rate_limit_per_second, adapt=get_settings().rate_margin_adapt)
    return _limiter


def validation_lane() -> Limiter:
    """The lane validations pass before they take a slot of the account's budget: AC_VALIDATIONS_PER_SECOND
    (default 1 of AC's 5) per AC account, whoever asks. AC counts a validation like any request, so it must
    take a budget slot (without one, saves pushed an account past 5 per second: 429s in the load run); the
    lane bounds what callers without a connection can take of that budget (the second security round, finding 2;
    decision 36)."""
    global _validation_lane
    if _validation_lane is None:
        # The lane keeps the fixed 50 ms margin it was made with: a validation waits for a budget slot after
        # the lane, so its arrival at AC drifts from the lane's stamp (the budget's own margin adapts, the
        # real-latency round).
        _validation_lane = _make_limiter(get_settings().validations_per_second, margin=VALIDATION_LANE_MARGIN)
    return _validation_lane


@caches.register
def forget_session_and_limiter() -> None:
    global _session, _limiter, _validation_lane
    if _session is not None:
        _session.close()
    _session, _limiter, _validation_lane = None, None, None


def _retry_after(response: requests.Response) -> float | None:
    """AC's Retry-After in seconds (a number or an HTTP date), within 0..MAX_RETRY_AFTER; None when
    missing or unreadable (`inf`, `nan`, garbage): the caller's back-off applies then."""
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = when.timestamp() - time.time()   # an HTTP date is on the wall clock, whatever the client's clock
    if not math.isfinite(seconds):
        return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


def _read_capped(response: requests.Response, limit: int, deadline: float, clock=time.monotonic) -> None:
    """Read the (streamed) body, at most `limit` bytes and not past `deadline`; keep it as the response's
    content. A bigger answer is UpstreamInvalid; a slower one UpstreamTimeout."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UpstreamInvalidError(f"ActiveCampaign sent an answer larger than {limit} bytes")
    chunks, size = [], 0
    for chunk in response.iter_content(CHUNK):
        size += len(chunk)
        if size > limit:
            raise UpstreamInvalidError(f"ActiveCampaign sent an answer larger than {limit} bytes")
        if clock() > deadline:
            raise UpstreamTimeoutError()
        chunks.append(chunk)
    response._content = b"".join(chunks)   # what _json() and response.json() read, as requests does itself


# AC's permission refusal (AC reference, GET /lists 403 example; the body may come as text/plain):
# {"errors":[{"status":403,"title":"Forbidden","detail":"You do not have permission to view lists."}]}
_PERMISSION = re.compile(r"You do not have permission to ([A-Za-z][A-Za-z ]{0,60}?)\.?\s*$", re.IGNORECASE)


def permission_refused(response: requests.Response, path: str = "") -> PermissionDeniedError | None:
    """A 403 whose JSON body says "You do not have permission to ...": the key is good, its user group
    lacks that permission. Only the action AC names (letters and spaces) goes into the message."""
    try:
        body = _json(response)
    except ValueError:
        return None
    errors = body.get("errors") if isinstance(body, dict) else None
    for error in errors if isinstance(errors, list) else []:
        detail = error.get("detail") if isinstance(error, dict) else None
        match = _PERMISSION.search(detail) if isinstance(detail, str) and len(detail) < 200 else None
        if match:
            where = f" (AC: GET {path})" if path else ""
            return PermissionDeniedError(f"The ActiveCampaign user of this connection does not have permission to "
                                    f"{match.group(1).strip().lower()}{where}; an AC admin can grant "
                                    "it in the user's group, or connect with another user's key")
    return None


def _json(response: requests.Response):
    """AC's answer, parsed: orjson (a 20-contact page with sideloads in ~0.23 ms against ~0.42 ms with json,
    benchmarks/bench_json.py); requests' own `.json()` when orjson refuses the text (not UTF-8, an integer
    beyond 64 bits, NaN), so whatever json reads is still read. Raises ValueError when neither can."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.json()


def _is_json(response: requests.Response) -> bool:
    try:
        return isinstance(_json(response), dict)
    except ValueError:
        return False


def _remaining(response: requests.Response) -> int | None:
    """AC's `RateLimit-Remaining` (documented with `RateLimit-Limit` and `Retry-After` on AC's "Rate
    limits" page; seen on 200s and 429s by the public Go SDK's example): None when absent or unreadable."""
    try:
        return int(response.headers.get("RateLimit-Remaining", "").strip())
    except ValueError:
        return None


_jitter = random.SystemRandom()   # from os.urandom: containers restored from one SnapStart snapshot differ


def _backoff(attempt: int) -> float:
    return min(4.0, 0.25 * 2 ** (attempt - 1)) * (0.5 + _jitter.random() / 2)


class Verdict(enum.Enum):
    ANSWER = "answer"   # AC's JSON object (None: a 404 the caller allowed)
    RETRY = "retry"     # worth another attempt after `wait` seconds; `error` when none is left
    FAIL = "fail"       # `error`, at once: another attempt would get the same answer


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to (`ACClient._classify`, `ACClient._attempt`)."""

    verdict: Verdict
    body: dict | None = None
    error: ApiError | None = None
    wait: float = 0.0

    @classmethod
    def answer(cls, body: dict | None) -> Outcome:
        return cls(Verdict.ANSWER, body=body)

    @classmethod
    def retry(cls, error: ApiError, wait: float) -> Outcome:
        return cls(Verdict.RETRY, error=error, wait=wait)

    @classmethod
    def fail(cls, error: ApiError) -> Outcome:
        return cls(Verdict.FAIL, error=error)


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    params: list[tuple[str, str]] | None = None
    json: dict | None = None
    idempotent: bool = True
    missing_ok: bool = False
    validating: bool = False


def _rejected(validating: bool) -> ApiError:
    """AC refuses the pair: while saving it, the 400 of a bad pair; for a stored one, the 403 `reconnect`."""
    return InvalidCredentialsError() if validating else StoredCredentialsRejectedError()


class ACClient:
    """Calls on one AC account with one key, for one request (or job step) that ends at `deadline`
    (a `clock()` value). `clock` and `sleep` drive the retry loop: time.monotonic and time.sleep unless a
    test gives a fake clock. `on_rejected` is called when AC refuses the key of a stored connection
    (`credentials.store.client` passes the marking for reconnecting)."""

    def __init__(self, url: str, api_key: str, *, deadline: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, on_rejected: Callable[[], None] | None = None):
        settings = get_settings()
        self.root = url.rstrip("/") + settings.api_version
        self.host = urlsplit(url).netloc.lower()
        self.budget_key = base_url.account_key(self.host)   # one budget per AC account, whichever name
        self.deadline = deadline
        self.calls = 0          # HTTP requests sent (retries included)
        self.throttled = 0      # 429s seen
        self.answer_seconds: float | None = None   # AC's answer time, smoothed (EWMA 0.2) over this client's calls
        self._headers = {"Api-Token": api_key, "Accept": "application/json", "User-Agent": USER_AGENT}
        self._timeouts = (settings.connect_timeout, settings.read_timeout)
        self._clock, self._sleep = clock, sleep
        self._max_bytes = settings.max_response_bytes
        self._on_rejected = on_rejected

    @property
    def key_fingerprint(self) -> str:
        """A one-way digest of the key, to key caches by it without holding it."""
        return hashlib.sha256(self._headers["Api-Token"].encode()).hexdigest()[:32]

    def validate(self) -> dict:
        """Check the pair with GET /users/me: any refusal is `Invalid base_url or api_key` (400)."""
        return self._call(_Call("GET", "/users/me", validating=True)) or {}

    def get(self, path: str, params: list[tuple[str, str]] | None = None) -> dict:
        """GET a JSON object from AC, retrying what is worth retrying while time allows."""
        return self._call(_Call("GET", path, params)) or {}   # None only answers a `missing_ok` call

    def request(self, method: str, path: str, params: list[tuple[str, str]] | None = None, *,
                json: dict | None = None, idempotent: bool = True, missing_ok: bool = False) -> dict | None:
        """Call AC and return its JSON object. `idempotent=False` (a POST that creates something): only
        answers that say AC did nothing (429) are retried, never a timeout or a 5xx, which may have created
        it. `missing_ok`: AC's 404 with a JSON body (e.g. a webhook already deleted) is None, not an error."""
        return self._call(_Call(method, path, params, json, idempotent, missing_ok))

    # ---- the retry loop
    def _call(self, call: _Call) -> dict | None:
        failure: ApiError = UpstreamTimeoutError()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if self.deadline - self._clock() < MIN_ATTEMPT_SECONDS:
                break
            outcome = self._attempt(call, attempt)
            if outcome.verdict is Verdict.ANSWER:
                return outcome.body
            failure = outcome.error or failure
            if outcome.verdict is Verdict.FAIL or not self._may_retry(call, failure, outcome.wait, attempt):
                break
            self._sleep(outcome.wait)
        if isinstance(failure, StoredCredentialsRejectedError) and self._on_rejected is not None:
            self._on_rejected()
        raise failure

    def _may_retry(self, call: _Call, failure: ApiError, wait: float, attempt: int) -> bool:
        if not call.idempotent and not isinstance(failure, UpstreamThrottledError):
            return False  # a timeout or a dropped connection: AC may have acted; never send it twice
        logger.info("ac retry", extra={"ac_host": self.host, "path": call.path, "attempt": attempt,
                                       "error": type(failure).__name__, "wait": round(wait, 3)})
        # no attempt left, or none would fit: answer now rather than after a useless wait
        return attempt < MAX_ATTEMPTS and self._clock() + wait <= self.deadline - MIN_ATTEMPT_SECONDS

    def _slot(self, validating: bool) -> float | None:
        """A slot of the account's budget (validations pass their lane first, waiting briefly)."""
        if validating:   # at most AC_VALIDATIONS_PER_SECOND of the budget
            validation_lane().acquire(f"validate:{self.budget_key}",
                                      min(self.deadline, self._clock() + VALIDATION_WAIT_SECONDS))
        return limiter().acquire(self.budget_key, self.deadline - MIN_ATTEMPT_SECONDS)

    def _attempt(self, call: _Call, attempt: int) -> Outcome:
        """One request, within the budget and the deadline, judged."""
        try:
            stamp = self._slot(call.validating)
        except BudgetExhausted as exc:
            return Outcome.fail(UpstreamThrottledError(exc.wait))
        self.calls += 1
        left = self.deadline - self._clock()
        timeouts = (max(0.1, min(self._timeouts[0], left)), max(0.1, min(self._timeouts[1], left)))
        started, sent = self._clock(), limiter().now()
        with deadline_watch(left) as watch:
            try:
                response = self._send(call, timeouts, watch)
            except base_url.UnsafeAddress:
                logger.warning("ac host resolves to a non-public address; refused", extra={"ac_host": self.host})
                refused = InvalidCredentialsError() if call.validating else \
                    StoredCredentialsRejectedError(base_url.STORED_BASE_URL_REFUSED)
                return Outcome.fail(refused)
            except (requests.RequestException, UpstreamTimeoutError) as exc:
                if watch.expired or isinstance(exc, UpstreamTimeoutError):
                    return Outcome.fail(UpstreamTimeoutError())   # the deadline passed: no time for another
                if isinstance(exc, requests.Timeout):
                    return Outcome.retry(UpstreamTimeoutError(), _backoff(attempt))
                return Outcome.retry(UpstreamUnavailableError("ActiveCampaign could not be reached; retry later"),
                                     _backoff(attempt))
            except UpstreamInvalidError as exc:
                return Outcome.fail(exc)
        if watch.expired:   # the connection was shut at the deadline while the answer came: it is not whole
            return Outcome.fail(UpstreamTimeoutError())
        self._answered(stamp, sent, self._clock() - started, response)
        return self._classify(response, attempt, call.path, validating=call.validating, missing_ok=call.missing_ok)

    def _send(self, call: _Call, timeouts: tuple[float, float], watch: Watch) -> requests.Response:
        with session().request(call.method, self.root + call.path, params=call.params, json=call.json,
                               headers=self._headers, allow_redirects=False, timeout=timeouts,
                               stream=True) as response:
            try:
                _read_capped(response, self._max_bytes, self.deadline, self._clock)
            finally:
                watch.done()   # before the connection goes back to the pool, where another call may take it
        return response

    def _answered(self, stamp: float | None, sent: float, seconds: float, response: requests.Response) -> None:
        """AC's answer time (smoothed: the job walk sizes its slices by it) and, for the budget's margin,
        the slot-to-send lag (on the budget's clock) and AC's RateLimit-Remaining."""
        self.answer_seconds = seconds if self.answer_seconds is None else 0.8 * self.answer_seconds + 0.2 * seconds
        limiter().observe(self.budget_key, stamp=stamp, sent=sent, remaining=_remaining(response))

    # ---- the retry policy: one answer judged
    def _classify(self, response: requests.Response, attempt: int, path: str = "", *,
                  validating: bool = False, missing_ok: bool = False) -> Outcome:
        status = response.status_code
        if status == 429 or (status == 503 and response.headers.get("Retry-After")):
            return self._throttled(response, attempt, validating)
        if 300 <= status < 400:
            return Outcome.fail(_rejected(validating))  # AC bounces a wrong account host to its login page
        if status in (401, 403):
            return self._refused(response, attempt, path, validating)
        if status >= 500:
            failure = UpstreamUnavailableError(f"ActiveCampaign is unavailable (it answered {status}); retry later")
            return Outcome.retry(failure, _backoff(attempt))
        if missing_ok and status == 404 and _is_json(response):
            return Outcome.answer(None)
        return self._read(response, attempt, validating)

    def _throttled(self, response: requests.Response, attempt: int, validating: bool) -> Outcome:
        self.throttled += 1
        wait = _retry_after(response)
        wait = _backoff(attempt) if wait is None else wait
        if not validating:   # a caller without a connection must not hold the host's budget
            limiter().penalise(self.budget_key, wait)
        return Outcome.retry(UpstreamThrottledError(wait), wait)

    @staticmethod
    def _refused(response: requests.Response, attempt: int, path: str, validating: bool) -> Outcome:
        if validating:
            return Outcome.fail(InvalidCredentialsError())
        if response.status_code == 403 and (denied := permission_refused(response, path)):
            return Outcome.fail(denied)  # a good key without a permission: not retried, never marks reconnect
        if attempt >= 2:
            return Outcome.fail(StoredCredentialsRejectedError())
        return Outcome.retry(StoredCredentialsRejectedError(), _backoff(attempt))  # AC's 403s can be intermittent

    @staticmethod
    def _read(response: requests.Response, attempt: int, validating: bool) -> Outcome:
        """A 2xx or 4xx (not 401/403) answer's body."""
        try:
            body = _json(response)
        except ValueError:
            body = None
        if 200 <= response.status_code < 300:
            if isinstance(body, dict):
                return Outcome.answer(body)
            if validating:
                return Outcome.fail(InvalidCredentialsError())  # a 2xx that isn't AC's JSON: not an AC API host
            return Outcome.retry(UpstreamUnavailableError("ActiveCampaign sent an unreadable answer; retry later"),
                                 _backoff(attempt))
        if body is None or validating:
            return Outcome.fail(_rejected(validating))  # an HTML 404 and the like: the base URL is not AC's API
        return Outcome.fail(UpstreamRefusedError(f"ActiveCampaign refused the request ({response.status_code})"))


snapstart.register(before=session)   # one place: every function that calls AC imports this module at init
