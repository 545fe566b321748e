"""Deals and accounts, walked by offset (AC has no id_greater for them): `limit`/`offset` in an order that keeps
records in place while the walk runs. Deals: `orders[cdate]=ASC` (documented; creation dates never change and
new deals come last). Accounts: AC documents no order; the walk sends `orders[id]=ASC` (ignored if AC does not
know it) and relies on AC's observed id order.

- Placing a page: each page is read from one record before the cursor. When that record (the last one
  written) is still there, nothing moved and the page continues after it; when it moved, the page is searched
  for it (stepping back a page while the page starts above it); when it is gone, the walk keeps only records
  whose order key (deals: (cdate, id), accounts: id) is above the last one written. If the order key cannot
  decide (keys missing or not ascending), the job fails with OrderLost rather than skip or repeat a record.
  A deals cursor of an older release (no order saved) continues in the id order it started with.
- Several pages in flight: the pages after the cursor's are requested ahead at the starts full pages predict
  (jobs.ahead: s, s + 99, ..., none past AC's count); each is used when the walk reaches exactly its start and
  it holds the last record written (else that start is read again and placed as above), and a missed
  prediction (the walk stepped back, a short page) drops the rest.
- Placing runs in the walk's pool, not the worker's thread: a recovery read may wait out AC's failures, and
  the worker keeps renewing its lease meanwhile. The walk's own state is its thread's (no lock).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass, replace

from acexport.ac.client import AC_PAGE
from acexport.ac.records import page_records, parse_total
from acexport.ac.resources import Record, Resource, timestamp
from acexport.jobs.ahead import Ahead
from acexport.jobs.cursors import CREATION_ORDER, ID_ORDER, OffsetCursor
from acexport.jobs.pipeline import Arrived, PipelinedWalk
from acexport.jobs.reading import OutOfTime, Query, Reader
from acexport.jobs.spec import JobSpec

logger = logging.getLogger(__name__)

Key = tuple | None
Placement = list[Record] | int       # the records after the last one written, or the start to read next


class OrderLost(Exception):
    """AC's order of the records changed under the walk in a way that cannot be resolved without skipping or
    repeating a record: the job fails with this message (start it again)."""

    def __init__(self, resource: str):
        super().__init__(f"ActiveCampaign's order of the {resource} changed while they were exported (the last "
                         "record written is gone and the order cannot place the rest); start the export again")


@dataclass(frozen=True)
class Placed:
    records: list[Record]     # the records after the last one written
    total: int | None
    last: bool
    cursor: OffsetCursor      # after this page
    reread: int = 0           # answers requested ahead, not used, read again


def natural_order(resource: Resource) -> str:
    """The order a new walk of `resource` pages in: AC's documented creation order where the resource pages in
    it by default (deals), else the id order."""
    return CREATION_ORDER if ("orders[cdate]", "ASC") in resource.default_order else ID_ORDER


def key_of(order: str) -> Callable[[Record], Key]:
    """The walk's order key of a record, None when the record does not have one (a disabled deal stub)."""
    def key(record: Record) -> Key:
        try:
            ident = int(str(record.get("id")))
            if order == CREATION_ORDER:
                return (timestamp(record["cdate"]).timestamp(), ident)
            return (ident,)
        except (KeyError, TypeError, ValueError):
            return None
    return key


def _ascending(keys: list[Key]) -> bool:
    return None not in keys and all(a < b for a, b in itertools.pairwise(keys))   # type: ignore[operator]


def place(records: list[Record], cursor: OffsetCursor, start: int, key: Callable[[Record], Key], *,
          requested_ahead: bool, resource: str) -> Placement:
    """Where AC's page at `start` continues the walk: its records after the last one written, or the start to
    read (again: an answer requested ahead that does not hold that record; a page earlier: records before it
    went). Raises OrderLost when the order cannot place the page."""
    if cursor.last_id is None or start == cursor.offset:
        return records[cursor.offset - start:]                     # the first page
    at = next((i for i, r in enumerate(records) if str(r.get("id")) == cursor.last_id), None)
    if at is not None:
        return records[at + 1:]                                    # the last record written: go on after it
    if requested_ahead:
        return start                                               # records moved: read the start again
    return _after_key(records, cursor, start, key, resource)


def _after_key(records: list[Record], cursor: OffsetCursor, start: int, key: Callable[[Record], Key],
               resource: str) -> Placement:
    """The last record written is not in the page (read after it): the records above its order key, or the
    page before when the page starts above it (records before it went)."""
    keys = [key(r) for r in records]
    if cursor.last_key is None or not _ascending(keys):
        raise OrderLost(resource)
    if start > 0 and (not keys or keys[0] > cursor.last_key):     # type: ignore[operator]
        return max(0, start - AC_PAGE)                             # look earlier
    return [r for r, k in zip(records, keys, strict=True) if k > cursor.last_key]   # type: ignore[operator]


class OffsetWalk(PipelinedWalk):
    def __init__(self, reader: Reader, spec: JobSpec, cursor: OffsetCursor, *, in_flight: int, rate: float):
        super().__init__(reader, Query.of(spec, cursor.order), in_flight=in_flight, rate=rate)
        self._cursor = cursor
        self._key = key_of(cursor.order)
        self._ahead = Ahead()                           # offset pages requested ahead (jobs.ahead)
        self._placing: Future[Placed] | None = None     # the next page, being placed in the pool
        self._ended = False

    @property
    def pending(self) -> bool:
        return bool(self._ahead) or self._placing is not None

    @property
    def wasted(self) -> int:
        return self._ahead.wasted

    @property
    def pages(self) -> int:
        return self._cursor.pages

    def cursor(self) -> dict:
        return self._cursor.dump()

    def _start(self) -> None:
        self._ahead.top_up(self._cursor.start, None, 1, self._request_at)    # AC's count is not known yet

    def _closed(self) -> None:
        if self._ahead.wasted:
            logger.info("offset pages requested ahead and not used", extra={"wasted": self._ahead.wasted})

    def _next(self, prefetch: bool, timeout: float | None) -> Arrived | None:
        """The page at the cursor's start (requested ahead, or now) placed in the pool; then pages requested
        ahead at the predicted starts, up to `wanted()`."""
        if self._ended:
            return Arrived([], None, True)
        if self._placing is None:
            self._placing = self._place_next(prefetch)
        if not wait([self._placing], timeout=timeout).done:
            return None
        placing, self._placing = self._placing, None
        placed = placing.result()
        self._ahead.wasted += placed.reread
        self._cursor = replace(placed.cursor, pages=self._cursor.pages + 1)
        if placed.last:
            self._ahead.drop()
            self._ended = True
        else:
            self._ahead.keep_from(self._cursor.start)      # the walk stepped back: the pages ahead are off
            if prefetch:
                self._ahead.top_up(self._cursor.start, placed.total, self.wanted(), self._request_at)
        return Arrived(placed.records, placed.total, placed.last)

    def _place_next(self, prefetch: bool) -> Future[Placed]:
        self._ahead.keep_from(self._cursor.start)
        if not self._ahead:
            if not prefetch:
                raise OutOfTime()
            self._ahead.top_up(self._cursor.start, None, 1, self._request_at)
        assert self.pool is not None
        return self.pool.submit(self._place, self._cursor, self._ahead.take())

    def _request_at(self, start: int, ahead: int) -> Future | None:
        """AC's answer for the offset page at `start`, `ahead` pages after the cursor's, requested in the pool;
        a page ahead past the page cap is not requested (the cursor's own fails there first)."""
        number = self._cursor.pages + 1 + ahead
        if ahead and number > self.reader.max_pages:
            return None
        assert self.pool is not None
        return self.pool.submit(self.reader.page, self._at(start), number)

    def _at(self, start: int) -> list[tuple[str, str]]:
        return [*self.query.params, ("offset", str(start))]

    def _place(self, cursor: OffsetCursor, requested: Future | None) -> Placed:
        """The page after `cursor`, placed by the last record written (`place`): `requested` is AC's answer for
        the page at the cursor's start, requested ahead; read again when it does not hold that record."""
        start, reread = cursor.start, 0
        while True:
            body = requested.result() if requested is not None else \
                self.reader.page(self._at(start), cursor.pages + 1)
            records = page_records(self.reader.spec.resource, body)
            placed = place(records, cursor, start, self._key, requested_ahead=requested is not None,
                           resource=self.reader.spec.resource.name)
            if isinstance(placed, list):
                break
            reread += requested is not None
            start, requested = placed, None
        total = parse_total(body)
        end = start + len(records)
        last = len(records) < AC_PAGE or (total is not None and end >= total)
        return Placed(placed, total, last, self._after(cursor, records, end), reread)

    def _after(self, cursor: OffsetCursor, records: list[Record], end: int) -> OffsetCursor:
        if not records:
            return replace(cursor, offset=end)
        newest = records[-1]
        return replace(cursor, offset=end, last_id=str(newest.get("id")), last_key=self._key(newest))


def resume(reader: Reader, spec: JobSpec, saved: dict, *, in_flight: int, rate: float,
           slice_pages: int = 0) -> OffsetWalk:
    """The walk from a checkpoint's cursor (any shape stored so far: jobs.cursors); `slice_pages` is the
    contacts walk's and is not used here."""
    cursor = OffsetCursor.load(saved, natural_order=natural_order(spec.resource))
    return OffsetWalk(reader, spec, cursor, in_flight=in_flight, rate=rate)
