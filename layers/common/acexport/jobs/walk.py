"""Every record of a resource, page after page from a saved cursor, the way a full export reads AC.

- Contacts: `orders[id]=ASC` + `id_greater=<last id>` (AC's own advice for reading many contacts: no
  deep offsets); cursor `{"last_id"}`. When AC's answer time needs several pages in flight (issue 12),
  the id range is cut into slices, each walked the same way up to `id_less=<its end>` (AC documents both
  filters on /contacts), each with its next page and one page ahead requested; the slices take turns, a
  page each, so the file's order is fixed; cursor `{"after": [...], "before": [...]}` (0: open).
- Deals and accounts (AC has no id_greater for them): `limit`/`offset` in an order that keeps records in
  place while the walk runs. Deals: `orders[cdate]=ASC` (documented; creation dates never change and new
  deals come last). Accounts: AC documents no order; the walk sends `orders[id]=ASC` (ignored if AC does
  not know it) and relies on AC's observed id order. Each page is read from one record before the cursor:
  when that record (the last one written) is still there, nothing moved and the page continues after it;
  when it moved, the page is searched for it (stepping back a page while the page starts above it); when it is gone,
  the walk keeps only records whose order key (deals: (cdate, id), accounts: id) is above the last one
  written. If the order key cannot decide (keys missing or not ascending), the job fails with OrderLost
  rather than skip or repeat a record. Cursor `{"offset", "last_id", "last_key", "order"}`; a deals cursor
  of an older release (no "order") continues in the id order it started with. When AC's answer time needs
  several pages in flight (issue 12), the pages after the cursor's are requested ahead at the starts full
  pages predict (jobs.offsets: s, s + 99, ..., none past AC's count); each is used when the walk reaches
  exactly its start and it holds the last record written (else that start is read again and placed as
  above), and a missed prediction (the walk stepped back, a short page) drops the rest.
- One page is always being fetched while the previous one is processed (enriched, encoded,
  compressed), so AC calls go back to back at the rate limit; at most two pages are in memory per slice,
  and an offset walk holds the pages requested ahead (at most EXPORT_PAGES_IN_FLIGHT) beside the one it writes.
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
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from acexport.ac.client import AC_PAGE, ACClient, UpstreamInvalid
from acexport.ac.records import enrich, keep_custom_matches, page_records, parse_total
from acexport.ac.resources import CONTACTS, DEALS, Params, Record, plan, timestamp
from acexport.errors import UpstreamThrottled, UpstreamTimeout, UpstreamUnavailable
from acexport.jobs.offsets import Ahead, start_of
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
    cursor: dict              # the lane's
    total: int | None
    last: bool                # the lane's last page
    left: int | None = None   # records of the lane after this page, by AC's count
    spacing: float = 1.0      # ids per record in this page
    reread: int = 0           # offset pages: answers requested ahead, not used, read again


@dataclass(eq=False)
class _Lane:
    """One walk over one part of the records: its cursor, and the page requested for it (if any)."""
    cursor: dict
    next: Future | None = None      # the slice's next page, requested
    ahead: Future | None = None     # the page after it, requested once `next` arrived
    left: int | None = None
    spacing: float = 1.0


def _slice_cursor(last_id, before) -> dict:
    return {**({"last_id": last_id} if last_id not in (None, 0, "0") else {}),
            **({"before": int(before)} if before else {})}


def _lanes(cursor: dict) -> list[_Lane]:
    """The lanes of a saved cursor: the slices (`after`/`before` side by side), or one lane."""
    if "after" in cursor:
        return [_Lane(_slice_cursor(after, before)) for after, before in
                zip(cursor["after"], cursor["before"], strict=True)]
    return [_Lane({k: v for k, v in cursor.items() if k != "pages"})]


def _cursor(lanes: list[_Lane]) -> dict:
    """The walk's cursor: one lane's own (as before slices existed), or every slice's, as two lists of
    scalars (nx-27017 and the writer's checkpoint fields keep lists of scalars only); 0 = open."""
    if len(lanes) == 1 and "before" not in lanes[0].cursor:
        return dict(lanes[0].cursor)
    return {"after": [int(str(lane.cursor.get("last_id") or 0)) for lane in lanes],
            "before": [int(lane.cursor.get("before") or 0) for lane in lanes]}


def _within(fetched: _Fetched, before) -> _Fetched:
    """A slice's page without ids at or above its end (a page read ahead before the slice was cut
    belongs partly to the new slice after it): then the slice has ended."""
    if not before:
        return fetched
    kept = [r for r in fetched.records if int(str(r.get("id"))) < int(before)]
    if len(kept) == len(fetched.records):
        return fetched
    cursor = {"last_id": kept[-1]["id"]} if kept else {k: v for k, v in fetched.cursor.items() if k == "last_id"}
    return _Fetched(kept, len(kept), cursor, fetched.total, True)


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
    cursor: dict                       # where the walk continues: one lane's cursor, or the slices (above)
    deadline: float                    # time.monotonic(): no AC call starts after it
    patience: float
    outage_since: float | None = None  # time.time() of the first failure of the current outage
    max_pages: int = field(default_factory=lambda: max(1, -(-job_settings().max_records // AC_PAGE)))
    in_flight: int = 1                 # most pages requested at once (contacts: slices; deals, accounts: pages ahead)
    rate: float = 5.0                  # AC's requests per second (the budget's): pages needed = rate x answer time
    slice_pages: int = 3               # a contacts slice is made only for at least this many pages
    _params: Params = field(init=False)
    _local: list[Callable[[Record], bool]] = field(init=False)
    _custom: list[tuple[str, str]] = field(init=False)
    _lanes: list[_Lane] = field(init=False)
    _turn: int = field(init=False, default=0)
    _pool: ThreadPoolExecutor | None = field(init=False, default=None)
    _closing: threading.Event = field(init=False, default_factory=threading.Event)
    _guard: threading.Lock = field(init=False, default_factory=threading.Lock)
    _prefetching: bool = field(init=False, default=True)
    _ahead: Ahead = field(init=False, default_factory=Ahead)     # deals, accounts: offset pages requested ahead

    def __post_init__(self) -> None:
        resource = self.spec.resource
        # custom fields' filters (ac.custom_fields): kept here, page by page, once the records are read
        self._custom = [(n, v) for n, v in self.spec.filters if n not in resource.filters]
        steps = plan(resource, [(n, v) for n, v in self.spec.filters if n in resource.filters], ())
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
        self._lanes = _lanes(self.cursor)
        self._pages = int(self.cursor.get("pages", 0))    # pages read (and written) by the walk so far
        self.in_flight = max(1, self.in_flight)

    # ---- the page pipeline ------------------------------------------------------------------------
    def __enter__(self) -> Walk:
        self._pool = ThreadPoolExecutor(max_workers=2 * self.in_flight, thread_name_prefix="ac-prefetch")
        if self.spec.resource is not CONTACTS:     # the cursor's page only: AC's count is not known yet
            self._ahead.top_up(start_of(self._lanes[0].cursor), None, 1, self._request_at)
            return self
        for lane in self._lanes:
            self._request(lane)
        return self

    def __exit__(self, *exc) -> None:
        self._closing.set()       # a prefetch waiting out AC's failures stops at once
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)   # an AC call in flight ends by its timeout
        if self._ahead.wasted:
            logger.info("offset pages requested ahead and not used", extra={"wasted": self._ahead.wasted})

    @property
    def pending(self) -> bool:
        """A page has been requested and not yet returned by next_page."""
        with self._guard:
            return bool(self._ahead) or any(lane.next is not None or lane.ahead is not None for lane in self._lanes)

    @property
    def wasted(self) -> int:
        """AC requests made for offset pages requested ahead that the walk could not use (jobs.offsets)."""
        return self._ahead.wasted

    def next_page(self, wait: Callable[[Future], None], *, prefetch: bool = True) -> Page:
        """The next page, in a fixed order: the slices take turns, a page each, in their order (so a
        checkpoint's file is the same whatever AC's answer times); an offset walk's pages in its order.
        `wait(future)` is called until the page has arrived (the worker renews its lease and watches for a
        cancel meanwhile). With `prefetch`, each slice has its next page and, once that has arrived, the one
        after it requested (so a slow answer in one slice holds no other back), and an offset walk has pages
        requested ahead up to `_wanted()`; without it only pages already requested are returned.
        Raises OutOfTime, or AC's error once patience is out."""
        assert self._pool is not None, "use the walk as a context manager"
        self._prefetching = prefetch
        if not prefetch and not self.pending:
            raise OutOfTime()
        if self.spec.resource is CONTACTS:
            fetched = self._next_in_slices(wait, prefetch)
        else:
            fetched = self._next_at_offset(wait, prefetch)
        records = [r for r in fetched.records if all(check(r) for check in self._local)]
        if self._custom:
            records = self._patiently(lambda: keep_custom_matches(self.client, self.spec.resource, records,
                                                                  self._custom))
        self._patiently(lambda: enrich(self.client, self.spec.resource, records))
        if self._lanes or "after" in self.cursor:
            self.cursor = {**_cursor(self._lanes), "pages": self._pages}
        else:                                   # an unsliced walk ends on its lane's cursor, as before
            self.cursor = {**fetched.cursor, "pages": self._pages}
        return Page(records, fetched.read, self.cursor, fetched.total, not self._lanes)

    def _next_in_slices(self, wait: Callable[[Future], None], prefetch: bool) -> _Fetched:
        index = self._turn % len(self._lanes)
        if not prefetch:
            while self._lanes[index].next is None:
                index = (index + 1) % len(self._lanes)
        lane = self._lanes[index]
        if lane.next is None:
            self._request(lane)
        while not lane.next.done():
            wait(lane.next)
        with self._guard:
            future, lane.next, lane.ahead = lane.next, lane.ahead, None
        if lane.next is not None and lane.next.done():
            self._read_ahead(lane, lane.next)        # arrived while it was the page ahead
        fetched = _within(future.result(), lane.cursor.get("before"))
        self._pages += 1
        lane.cursor = {**fetched.cursor, **({"before": lane.cursor["before"]} if "before" in lane.cursor else {})}
        if fetched.last:
            self._drop(index)
        else:
            lane.left, lane.spacing = fetched.left, fetched.spacing
            self._split(index)
            index += 1
        self._turn = index
        if prefetch:
            for other in self._lanes:
                if other.next is None:
                    self._request(other)
        return fetched

    def _next_at_offset(self, wait: Callable[[Future], None], prefetch: bool) -> _Fetched:
        """The offset walk's next page: AC's answer requested ahead at the start the cursor expects (or requested
        now), placed by `_fetch_at_offset` in the pool (a recovery may read AC again: the worker keeps renewing
        its lease meanwhile); then pages requested ahead at the predicted starts, up to `_wanted()`."""
        lane = self._lanes[0]
        self._ahead.keep_from(start_of(lane.cursor))
        if not self._ahead:
            if not prefetch:
                raise OutOfTime()
            self._ahead.top_up(start_of(lane.cursor), None, 1, self._request_at)
        placing = self._pool.submit(self._fetch_at_offset, dict(lane.cursor), self._ahead.take())
        while not placing.done():
            wait(placing)
        fetched = placing.result()
        self._ahead.wasted += fetched.reread
        self._pages += 1
        lane.cursor = fetched.cursor
        if fetched.last:
            self._ahead.drop()
            self._drop(0)
            return fetched
        self._ahead.keep_from(start_of(fetched.cursor))      # the walk stepped back: the pages ahead are off
        if prefetch:
            self._ahead.top_up(start_of(fetched.cursor), fetched.total, self._wanted(), self._request_at)
        return fetched

    def _drop(self, index: int) -> None:
        """A slice has ended; a page read ahead for it (possible only after a cut) is not wanted."""
        lane = self._lanes.pop(index)
        with self._guard:
            for extra in (lane.next, lane.ahead):
                if extra is not None:
                    extra.cancel()
            lane.next = lane.ahead = None

    def _request(self, lane: _Lane) -> None:
        future = self._pool.submit(self._fetch, dict(lane.cursor))
        with self._guard:
            lane.next = future
        future.add_done_callback(lambda done, lane=lane: self._read_ahead(lane, done))

    def _read_ahead(self, lane: _Lane, done: Future) -> None:
        """The page after `done` (the slice's next, just arrived), while nothing holds the walk back."""
        if (not self._prefetching or self._closing.is_set() or done.cancelled() or done.exception() is not None
                or self.spec.resource is not CONTACTS or len(self._lanes) < 2):
            return
        fetched: _Fetched = done.result()
        with self._guard:
            if (lane.next is not done or lane.ahead is not None or fetched.last
                    or not any(other is lane for other in self._lanes)):
                return
            cursor = {**fetched.cursor, **({"before": lane.cursor["before"]} if "before" in lane.cursor else {})}
            try:
                ahead = self._pool.submit(self._fetch, cursor)
            except RuntimeError:      # the pool is shutting down: the step is ending
                return
            lane.ahead = ahead
        ahead.add_done_callback(lambda later, lane=lane: self._read_ahead(lane, later))

    # ---- slices (contacts) --------------------------------------------------------------------------
    def _split(self, index: int) -> None:
        """While fewer slices than pages in flight are walking, cut the rest of this one (nothing of it is
        in flight) into more, by id, each of at least `slice_pages` pages by AC's count. The last slice is
        open-ended (contacts added during the walk land in it); its top is estimated from AC's count of
        what is left and the ids' spacing in its last page."""
        lane, room = self._lanes[index], self._wanted() - len(self._lanes)
        size = self.slice_pages * AC_PAGE
        if room <= 0 or lane.left is None or lane.left < 2 * size:
            return
        after = int(str(lane.cursor.get("last_id") or 0))
        before = lane.cursor.get("before")
        top = int(before) - 1 if before else after + int(lane.left * lane.spacing)
        parts = min(room + 1, lane.left // size, top - after)
        if parts < 2:
            return
        cuts = [after + (top - after) * k // parts for k in range(1, parts)]
        ends = [*(cut + 1 for cut in cuts), before]
        lane.cursor = _slice_cursor(lane.cursor.get("last_id"), ends[0])
        lane.left = None
        self._lanes[index + 1:index + 1] = [_Lane(_slice_cursor(start, end)) for start, end in
                                            zip(cuts, ends[1:], strict=True)]

    def _wanted(self) -> int:
        """Pages in flight (slices, offset pages ahead) that keep AC's rate busy: rate x AC's answer time (+50 %:
        this side's work, AC's jitter), at most `in_flight`. A fast AC needs one: more slices would only cost a
        partial page each."""
        answer = getattr(self.client, "answer_seconds", None)
        if answer is None:
            return self.in_flight
        return max(1, min(self.in_flight, math.ceil(self.rate * answer * 1.5)))

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

    def _capped(self, number: int) -> None:
        """Before the call for the walk's `number`th page: past EXPORT_MAX_RECORDS / 100 pages, stop."""
        if number > self.max_pages:
            raise UpstreamInvalid(f"ActiveCampaign kept sending full pages past {self.max_pages} pages; "
                                  "the export was stopped (EXPORT_MAX_RECORDS)")

    def _fetch(self, cursor: dict) -> _Fetched:
        self._capped(self._pages + 1)            # pages read so far (all slices), and this one
        return self._fetch_after_id(cursor)

    def _request_at(self, start: int, ahead: int) -> Future | None:
        """AC's answer for the offset page at `start`, `ahead` pages after the cursor's, requested in the pool
        (jobs.offsets); a page ahead past the page cap is not requested (the cursor's own fails there first)."""
        number = self._pages + 1 + ahead
        if ahead and number > self.max_pages:
            return None
        return self._pool.submit(self._offset_body, start, number)

    def _offset_body(self, start: int, number: int) -> dict:
        self._capped(number)
        return self._get([*self._params, ("offset", str(start))])

    def _fetch_after_id(self, cursor: dict) -> _Fetched:
        last_id, before = cursor.get("last_id"), cursor.get("before")
        body = self._get([*self._params, *([("id_greater", str(last_id))] if last_id is not None else []),
                          *([("id_less", str(before))] if before else [])])
        records = page_records(self.spec.resource, body)
        first = _ids(records[:1])
        if first and str(last_id).isdigit() and first[0] <= int(str(last_id)):
            raise UpstreamInvalid("ActiveCampaign sent contacts at or below the last id read; the walk cannot advance")
        total = parse_total(body)
        last = len(records) < AC_PAGE or (total is not None and total <= len(records))
        after = {"last_id": records[-1]["id"]} if records else {"last_id": last_id} if last_id is not None else {}
        ids = _ids(records)
        spacing = (ids[-1] - ids[0]) / (len(ids) - 1) if ids and len(ids) > 1 else 1.0
        return _Fetched(records, len(records), {**after, **({"before": before} if before else {})}, total, last,
                        None if total is None else total - len(records), spacing)

    def _fetch_at_offset(self, cursor: dict, first: Future | None) -> _Fetched:
        """The page after `cursor`, placed by the last record written: `first` is AC's answer for the page at
        the cursor's start (`start_of`), requested ahead. It is used only when it holds that record (or no
        record was written yet): an answer requested ahead may be older than the page before it, and the
        recovery below (step back while the page starts above the record; keep what is above its key when it is
        gone) holds only for an answer read after that page's; so without it the start is read again."""
        offset, last_id = int(cursor.get("offset", 0)), cursor.get("last_id")
        last_key = tuple(cursor["last_key"]) if cursor.get("last_key") is not None else \
            (int(last_id),) if last_id is not None and self._order == "id" else None
        start, reread = start_of(cursor), 0
        while True:
            ahead, first = first, None
            body = ahead.result() if ahead is not None else self._get([*self._params, ("offset", str(start))])
            records = page_records(self.spec.resource, body)
            if last_id is None or start == offset:
                fresh = records[offset - start:]                      # the first page
                break
            at = next((i for i, r in enumerate(records) if str(r.get("id")) == str(last_id)), None)
            if at is not None:                                        # the last record written: go on after it
                fresh = records[at + 1:]
                break
            if ahead is not None:                                     # records moved: read the start again
                reread += 1
                continue
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
        return _Fetched(fresh, len(fresh), cursor, total, last, reread=reread)
