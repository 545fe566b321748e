"""How a job's walk reads AC, whichever way it pages: the query (AC's parameters and what is checked here),
each call under the job's patience and the step's deadline, and the page cap.

- Filters: the page exports' (resources.plan); what AC cannot apply exactly is applied here.
  `updated_after`: AC's `filters[updated_after]` on contacts and deals (a day; a day earlier for a
  date-time, AC's time zone being the account's), then checked here on every resource against `udate`,
  `mdate` or `updatedTimestamp` (a day compares with the record's own day, as AC does; a record without
  the timestamp is kept: a sync would rather see it twice than miss it).
- AC failing: 429s are waited out, never fatal (Retry-After, through the shared budget); 5xx, timeouts
  and unreadable answers are retried with back-off until AC has failed for EXPORT_UPSTREAM_PATIENCE_SECONDS
  in a row (across worker steps: `outage_since` is checkpointed), then the job fails with that error.
- A host that never ends: past EXPORT_MAX_RECORDS / 100 pages the walk fails with UpstreamInvalid.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from acexport.ac.client import AC_PAGE, ACClient, UpstreamInvalidError
from acexport.ac.records import enrich, keep_custom_matches
from acexport.ac.resources import Filter, Params, Record, plan, timestamp
from acexport.errors import UpstreamThrottledError, UpstreamTimeoutError, UpstreamUnavailableError
from acexport.jobs.cursors import ID_ORDER
from acexport.jobs.spec import JobSpec

logger = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BACKOFF = 15.0
MIN_CALL_SECONDS = 1.0     # no AC call starts with less time than this before the step's deadline
UPDATED = {"contacts": "udate", "deals": "mdate", "accounts": "updatedTimestamp"}
UPDATED_AT_AC = {"contacts", "deals"}     # resources with AC's filters[updated_after]


class OutOfTime(Exception):
    """The step's time is up before the next page could be read: checkpoint and hand on."""


def _day_before(moment: str) -> str:
    return (dt.date.fromisoformat(moment[:10]) - dt.timedelta(days=1)).isoformat()


def updated_since(record: Record, field: str, since: str) -> bool:
    value = record.get(field)
    if not value:
        return True
    if len(since) == 10:
        return str(value)[:10] >= since
    try:
        return timestamp(value) >= dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
    except (ValueError, OverflowError):   # a timestamp AC should never send: keep the record
        return True


def _matches(filter_spec: Filter, value: str, record: Record) -> bool:
    return filter_spec.keeps(record, value)


def _updated(field: str, since: str, record: Record) -> bool:
    return updated_since(record, field, since)


@dataclass(frozen=True)
class Query:
    """AC's parameters for every page of a walk (paging parameters aside), and the checks applied here."""
    params: Params
    checks: tuple[Callable[[Record], bool], ...]
    custom: tuple[tuple[str, str], ...] = ()   # custom fields' filters (ac.custom_fields): kept page by page

    @classmethod
    def of(cls, spec: JobSpec, order: str | None) -> Query:
        """`order`: ID_ORDER sends `orders[id]=ASC` in place of any order; None keeps the resource's own."""
        custom = tuple((n, v) for n, v in spec.filters if n not in spec.resource.filters)
        steps = plan(spec.resource, [(n, v) for n, v in spec.filters if n in spec.resource.filters], ())
        params = steps.params
        if order == ID_ORDER:
            params = [p for p in params if not p[0].startswith("orders[")] + [("orders[id]", "ASC")]
        params = [*params, ("limit", str(AC_PAGE))]
        checks: list[Callable[[Record], bool]] = [partial(_matches, filter_spec, value)
                                                  for filter_spec, value in steps.local_filters]
        since = spec.updated_after
        if since:
            if spec.resource.name in UPDATED_AT_AC:
                params.append(("filters[updated_after]", since if len(since) == 10 else _day_before(since)))
            checks.append(partial(_updated, UPDATED[spec.resource.name], since))
        return cls(params, tuple(checks), custom)

    def keep(self, records: list[Record]) -> list[Record]:
        return [r for r in records if all(check(r) for check in self.checks)]


class Reader:
    """AC's answers for one walk, from any thread of its pool: each call (a page, or enrichment that may
    fetch reference data) under the job's patience; none after the step's deadline or once the walk closes;
    none past the page cap."""

    def __init__(self, client: ACClient, spec: JobSpec, *, deadline: float, patience: float,
                 outage_since: float | None, max_pages: int):
        self.client, self.spec = client, spec
        self.deadline, self.patience, self.max_pages = deadline, patience, max_pages
        self.closing = threading.Event()          # set when the walk closes: a call waiting out AC stops
        self._outage_since = outage_since         # time.time() of the first failure of the current outage
        self._lock = threading.Lock()             # the outage is noted by the pool's threads

    @property
    def outage_since(self) -> float | None:
        with self._lock:
            return self._outage_since

    def page(self, params: Params, number: int) -> dict:
        """AC's answer for the walk's `number`th page."""
        if number > self.max_pages:
            raise UpstreamInvalidError(f"ActiveCampaign kept sending full pages past {self.max_pages} pages; "
                                  "the export was stopped (EXPORT_MAX_RECORDS)")
        return self.patiently(lambda: self.client.get(self.spec.resource.path, params))

    def enrich(self, records: list[Record]) -> None:
        self.patiently(lambda: enrich(self.client, self.spec.resource, records))

    def keep_custom(self, records: list[Record], custom: tuple[tuple[str, str], ...]) -> list[Record]:
        """The records whose custom fields match (names resolved against the account's definitions)."""
        return self.patiently(lambda: keep_custom_matches(self.client, self.spec.resource, records, list(custom)))

    def patiently(self, call: Callable[[], T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            if self.closing.is_set() or self.deadline - time.monotonic() < MIN_CALL_SECONDS:
                raise OutOfTime()
            try:
                result = call()
            except UpstreamThrottledError as exc:
                wait = float(exc.extra.get("retry_after", 1))        # AC's rate limit: wait, never fail
            except (UpstreamUnavailableError, UpstreamTimeoutError) as exc:
                wait = self._failed(exc, attempt)
            else:
                with self._lock:
                    self._outage_since = None
                return result
            if time.monotonic() + wait > self.deadline - MIN_CALL_SECONDS or self.closing.wait(wait):
                raise OutOfTime()

    def _failed(self, exc: UpstreamUnavailableError | UpstreamTimeoutError, attempt: int) -> float:
        """How long to wait before trying again; AC's error once it has failed for the job's patience."""
        now = time.time()
        with self._lock:
            self._outage_since = self._outage_since or now
            out_of_patience = now - self._outage_since >= self.patience
        if out_of_patience:
            raise exc
        wait = min(MAX_BACKOFF, 0.5 * 2 ** min(attempt, 5))
        logger.info("ac failing, retrying", extra={"error": type(exc).__name__, "wait": wait})
        return wait
