"""Every record of a resource, page after page from a saved cursor, the way a full export reads AC.

- Contacts: `orders[id]=ASC` + `id_greater=<last id>` (AC's own advice for reading many contacts: no
  deep offsets); cursor `{"last_id"}`.
- Deals and accounts (AC has no id_greater for them): `limit`/`offset` in an order that keeps records in
  place while the walk runs. Deals: `orders[cdate]=ASC` (documented; creation dates never change and new
  deals come last). Accounts: AC documents no order; the walk sends `orders[id]=ASC` (ignored if AC does
  not know it) and relies on AC's observed id order. Each page is read from one record before the cursor:
  when that record (the last one written) is still there, nothing moved and the page continues after it;
  when it moved, the page is searched for it (stepping back a page while the page starts above it); when it is gone,
  the walk keeps only records whose order key (deals: (cdate, id), accounts: id) is above the last one
  written. If the order key cannot decide (keys missing or not ascending), the job fails with OrderLost
  rather than skip or repeat a record. Cursor `{"offset", "last_id", "last_key", "order"}`; a deals cursor
  of an older release (no "order") continues in the id order it started with.
- One page is always being fetched while the previous one is processed (enriched, encoded,
  compressed), so AC calls go back to back at the rate limit; at most two pages are in memory.
- Filters: the page exports' (resources.plan); what AC cannot apply exactly is applied here.
  `updated_after`: AC's `filters[updated_after]` on contacts and deals (a day; a day earlier for a
  date-time, AC's time zone being the account's), then checked here on every resource against `udate`,
  `mdate` or `updatedTimestamp` (a day compares with the record's own day, as AC does; a record without
  the timestamp is kept: a sync would rather see it twice than miss it).
- AC failing: 429s are waited out, never fatal (Retry-After, through the shared budget); 5xx, timeouts
  and unreadable answers are retried with back-off until AC has failed for EXPORT_UPSTREAM_PATIENCE_SECONDS
  in a row (across worker steps: `outage_since` is checkpointed), then the job fails with that error.
- A host that never ends (issue 9): the cursor counts the pages read (`pages`, checkpointed with it);
  past EXPORT_MAX_RECORDS / 100 pages the walk fails with UpstreamInvalid, and a contacts page whose
  first id is not above the cursor (`id_greater` ignored: the same page for ever) fails at once.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from acexport.ac.client import AC_PAGE, ACClient, UpstreamInvalid
from acexport.ac.records import enrich, page_records, parse_total
from acexport.ac.resources import CONTACTS, DEALS, Params, Record, plan, timestamp
from acexport.errors import UpstreamThrottled, UpstreamTimeout, UpstreamUnavailable
from acexport.jobs.spec import JobSpec
from acexport.settings import job_settings

logger = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BACKOFF = 15.0
MIN_CALL_SECONDS = 1.0     # no AC call starts with less time than this before the step's deadline
UPDATED = {"contacts": "udate", "deals": "mdate", "accounts": "updatedTimestamp"}
UPDATED_AT_AC = {"contacts", "deals"}     # resources with AC's filters[updated_after]


class OrderLost(Exception):
    """AC's order of the records changed under the walk in a way that cannot be resolved without skipping or
    repeating a record: the job fails with this message (start it again)."""

    def __init__(self, resource: str):
        super().__init__(f"ActiveCampaign's order of the {resource} changed while they were exported (the last "
                         "record written is gone and the order cannot place the rest); start the export again")


class OutOfTime(Exception):
    """The step's time is up before the next page could be read: checkpoint and hand on."""


@dataclass
class Page:
    records: list[Record]     # filtered and enriched: what goes into the file
    read: int                 # records AC returned (before filters applied here)
    cursor: dict              # where the walk continues after this page
    total: int | None         # AC's count (meta.total) for the rest of the walk
    last: bool


@dataclass
class _Fetched:
    records: list[Record]
    read: int
    cursor: dict
    total: int | None
    last: bool


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


def _ids(records: list[Record]) -> list[int] | None:
    """Numeric ids in strictly ascending order, else None."""
    try:
        ids = [int(str(record.get("id"))) for record in records]
    except ValueError:
        return None
    return ids if all(a < b for a, b in itertools.pairwise(ids)) else None


def _key_of(order: str) -> Callable[[Record], tuple | None]:
    """The walk's order key of a record, None when the record does not have one (a disabled deal stub)."""
    def key(record: Record) -> tuple | None:
        try:
            ident = int(str(record.get("id")))
            if order == "cdate":
                return (timestamp(record["cdate"]).timestamp(), ident)
            return (ident,)
        except (KeyError, TypeError, ValueError):
            return None
    return key


def _ascending(keys: list[tuple | None]) -> bool:
    return None not in keys and all(a < b for a, b in itertools.pairwise(keys))


@dataclass
class Walk:
    client: ACClient
    spec: JobSpec
    cursor: dict                       # where the next page starts
    deadline: float                    # time.monotonic(): no AC call starts after it
    patience: float
    outage_since: float | None = None  # time.time() of the first failure of the current outage
    max_pages: int = field(default_factory=lambda: max(1, -(-job_settings().max_records // AC_PAGE)))
    _params: Params = field(init=False)
    _local: list[Callable[[Record], bool]] = field(init=False)
    _pool: ThreadPoolExecutor | None = field(init=False, default=None)
    _next: Future | None = field(init=False, default=None)
    _closing: threading.Event = field(init=False, default_factory=threading.Event)

    def __post_init__(self) -> None:
        resource = self.spec.resource
        steps = plan(resource, self.spec.filters, ())
        params = steps.params
        fresh_deals = resource is DEALS and not self.cursor.get("offset")    # older cursors: the id order
        self._order = self.cursor.get("order") or ("cdate" if fresh_deals else "id")
        if self._order == "id":
            params = [p for p in params if not p[0].startswith("orders[")] + [("orders[id]", "ASC")]
        self._key = _key_of(self._order)
        self._params = [*params, ("limit", str(AC_PAGE))]
        self._local = [lambda r, s=spec, v=value: s.matches(r, v) for spec, value in steps.local_filters]
        since = self.spec.updated_after
        if since:
            if resource.name in UPDATED_AT_AC:
                self._params.append(("filters[updated_after]", since if len(since) == 10 else _day_before(since)))
            self._local.append(lambda r, f=UPDATED[resource.name]: updated_since(r, f, since))

    # ---- the page pipeline ------------------------------------------------------------------------
    def __enter__(self) -> Walk:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ac-prefetch")
        self._next = self._pool.submit(self._fetch, dict(self.cursor))
        return self

    def __exit__(self, *exc) -> None:
        self._closing.set()       # a prefetch waiting out AC's failures stops at once
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)   # an AC call in flight ends by its timeout

    def next_page(self, wait: Callable[[Future], None], *, prefetch: bool = True) -> Page:
        """The next page; `wait(future)` is called until the page has arrived (the worker renews its
        lease and watches for a cancel meanwhile). With `prefetch`, the page after it is requested at once.
        Raises OutOfTime, or AC's error once patience is out."""
        assert self._pool is not None, "use the walk as a context manager"
        if self._next is None:
            self._next = self._pool.submit(self._fetch, dict(self.cursor))
        while not self._next.done():
            wait(self._next)
        fetched: _Fetched = self._next.result()
        self.cursor = dict(fetched.cursor)
        self._next = self._pool.submit(self._fetch, dict(fetched.cursor)) if prefetch and not fetched.last else None
        records = [r for r in fetched.records if all(check(r) for check in self._local)]
        self._patiently(lambda: enrich(self.client, self.spec.resource, records))
        return Page(records, fetched.read, fetched.cursor, fetched.total, fetched.last)

    # ---- reading AC -------------------------------------------------------------------------------
    def _patiently(self, call: Callable[[], T]) -> T:
        """`call` (one AC request, or enrichment that may fetch reference data) under the job's patience."""
        attempt = 0
        while True:
            attempt += 1
            if self._closing.is_set() or self.deadline - time.monotonic() < MIN_CALL_SECONDS:
                raise OutOfTime()
            try:
                result = call()
            except UpstreamThrottled as exc:
                wait = float(exc.extra.get("retry_after", 1))        # AC's rate limit: wait, never fail
            except (UpstreamUnavailable, UpstreamTimeout) as exc:
                now = time.time()
                self.outage_since = self.outage_since or now
                if now - self.outage_since >= self.patience:
                    raise
                wait = min(MAX_BACKOFF, 0.5 * 2 ** min(attempt, 5))
                logger.info("ac failing, retrying", extra={"error": type(exc).__name__, "wait": wait})
            else:
                self.outage_since = None
                return result
            if time.monotonic() + wait > self.deadline - MIN_CALL_SECONDS or self._closing.wait(wait):
                raise OutOfTime()

    def _get(self, params: Params) -> dict:
        return self._patiently(lambda: self.client.get(self.spec.resource.path, params))

    def _fetch(self, cursor: dict) -> _Fetched:
        pages = int(cursor.get("pages", 0)) + 1
        if pages > self.max_pages:
            raise UpstreamInvalid(f"ActiveCampaign kept sending full pages past {self.max_pages} pages; "
                                  "the export was stopped (EXPORT_MAX_RECORDS)")
        fetched = self._fetch_after_id(cursor) if self.spec.resource is CONTACTS else self._fetch_at_offset(cursor)
        fetched.cursor["pages"] = pages
        return fetched

    def _fetch_after_id(self, cursor: dict) -> _Fetched:
        last_id = cursor.get("last_id")
        body = self._get([*self._params, *([("id_greater", str(last_id))] if last_id is not None else [])])
        records = page_records(self.spec.resource, body)
        first = _ids(records[:1])
        if first and str(last_id).isdigit() and first[0] <= int(str(last_id)):
            raise UpstreamInvalid("ActiveCampaign sent contacts at or below the last id read; the walk cannot advance")
        total = parse_total(body)
        last = len(records) < AC_PAGE or (total is not None and total <= len(records))
        return _Fetched(records, len(records), {"last_id": records[-1]["id"]} if records else dict(cursor),
                        total, last)

    def _fetch_at_offset(self, cursor: dict) -> _Fetched:
        offset, last_id = int(cursor.get("offset", 0)), cursor.get("last_id")
        last_key = tuple(cursor["last_key"]) if cursor.get("last_key") is not None else \
            (int(last_id),) if last_id is not None and self._order == "id" else None
        start = offset - 1 if offset and last_id is not None else offset
        while True:
            body = self._get([*self._params, ("offset", str(start))])
            records = page_records(self.spec.resource, body)
            if last_id is None or start == offset:
                fresh = records[offset - start:]                      # the first page
                break
            at = next((i for i, r in enumerate(records) if str(r.get("id")) == str(last_id)), None)
            if at is not None:                                        # the last record written: go on after it
                fresh = records[at + 1:]
                break
            keys = [self._key(r) for r in records]
            if last_key is None or not _ascending(keys):
                raise OrderLost(self.spec.resource.name)
            if start > 0 and (not keys or keys[0] > last_key):
                start = max(0, start - AC_PAGE)                       # records before it went: look earlier
                continue
            fresh = [r for r, k in zip(records, keys, strict=True) if k > last_key]   # it is gone
            break
        total = parse_total(body)
        end = start + len(records)
        last = len(records) < AC_PAGE or (total is not None and end >= total)
        if records:
            newest = records[-1]
            key = self._key(newest)
            cursor = {"offset": end, "last_id": newest.get("id"), "last_key": list(key) if key else None,
                      "order": self._order}
        else:
            cursor = {**cursor, "offset": end}
        return _Fetched(fresh, len(fresh), cursor, total, last)
