"""Contacts, walked by id: `orders[id]=ASC` + `id_greater=<last id>` (AC's own advice for reading many contacts:
no deep offsets). When AC's answer time needs several pages in flight, the id range is cut into slices, each
walked the same way up to `id_less=<its end>` (AC documents both filters on /contacts), each with its next page
and one page ahead requested; the slices take turns, a page each, so the file's order is fixed.

- Cutting: while fewer slices than pages wanted are walking (`PipelinedWalk.wanted`: at the first page, when
  a slice ends, when AC answers more slowly), the slice with the most records left is cut by id into the
  slices missing, each of at least EXPORT_SLICE_PAGES pages. The slices move a page per turn, so they end
  together only if they hold about as many; and a slice walking alone reads one page per answer time (half
  AC's rate at 400 ms). What a slice holds is AC's count (`meta.total` counts what the filters match, id
  range included), taken from its last page when that page was asked with the slice's present end; a part
  just cut has its share until its first page is counted, and is not cut again before.
- Whole pages: the parts are cut to hold whole pages, as evenly as pages go, by the ids' spacing (over the
  slice's own id range when it has an end; else that of its last page), so a part's last page is a full one,
  not a partly filled page that costs a request of its own (exact when ids are dense).
- The last slice is open-ended (contacts added during the walk land in it); its top is estimated from AC's
  count of what is left and the ids' spacing in its last page: an estimate that is off costs balance and a
  partly filled page, never records.
- A page requested before its slice was cut may hold ids of the slice after it: those are dropped and the
  slice has ended (`_within`).
- A page whose first id is not above the slice's last id (`id_greater` ignored: the same page for ever)
  fails the walk at once (UpstreamInvalid).
- Threads: the walk's thread takes pages, cuts and drops slices; a page's done-callback (a pool thread)
  requests the page after it. Every change to the slice list and to a slice's place and requests is made
  under one lock (`_lock`); a slice's counts are read and written by the walk's thread only.
"""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import Future, wait
from dataclasses import dataclass, replace
from functools import partial

from acexport.ac.client import AC_PAGE, UpstreamInvalidError
from acexport.ac.records import page_records, parse_total
from acexport.ac.resources import Params, Record
from acexport.jobs.cursors import ID_ORDER, IdRange, SliceCursor
from acexport.jobs.pipeline import Arrived, PipelinedWalk
from acexport.jobs.reading import Query, Reader
from acexport.jobs.spec import JobSpec


@dataclass(frozen=True)
class SlicePage:
    records: list[Record]
    total: int | None         # AC's count of the slice's records from this page on
    last: bool                # the slice's last page
    after: str | None         # the last id read (the slice goes on above it); None if none yet
    spacing: float = 1.0      # ids per record in this page
    before: int | None = None  # the slice's end when the page was requested (AC's count is up to it)

    @property
    def left(self) -> int | None:
        """Records of the slice after this page, by AC's count."""
        return None if self.total is None else self.total - len(self.records)


@dataclass(eq=False)
class Lane:
    """One slice being walked: where it is, and the pages requested for it."""
    span: IdRange
    next: Future[SlicePage] | None = None     # the slice's next page, requested
    ahead: Future[SlicePage] | None = None    # the page after it, requested once `next` arrived
    left: int | None = None                   # records left after its last page read, by AC's count
    spacing: float = 1.0
    counted: bool = False                     # `left` is AC's count, not a share of a slice cut


def _ids(records: list[Record]) -> list[int] | None:
    """Numeric ids in strictly ascending order, else None."""
    try:
        ids = [int(str(record.get("id"))) for record in records]
    except ValueError:
        return None
    return ids if all(a < b for a, b in itertools.pairwise(ids)) else None


def _spacing(records: list[Record]) -> float:
    ids = _ids(records)
    return (ids[-1] - ids[0]) / (len(ids) - 1) if ids and len(ids) > 1 else 1.0


def _id_filters(span: IdRange) -> Params:
    return [*([("id_greater", span.after)] if span.after is not None else []),
            *([("id_less", str(span.before))] if span.before else [])]


def _reaches(page: SlicePage, before: int | None) -> bool:
    """The page holds the slice's last id, or more (requested before the slice was cut): nothing is after it."""
    return before is not None and page.after is not None and page.after.isdigit() and int(page.after) >= before - 1


def _within(page: SlicePage, before: int | None) -> SlicePage:
    """A slice's page without ids at or above its end (a page requested before the slice was cut belongs
    partly to the slice after it, and AC's count in it does not know the end): then the slice has ended."""
    if not before:
        return page
    kept = [r for r in page.records if int(str(r.get("id"))) < before]
    if len(kept) == len(page.records):
        return replace(page, last=True) if _reaches(page, before) else page
    return SlicePage(kept, page.total, True, str(kept[-1]["id"]) if kept else None)


def _cuts(span: IdRange, left: int, spacing: float, parts: int) -> list[tuple[IdRange, int]]:
    """`span`, with `left` records, cut by id into `parts` slices and the records each is expected to hold:
    whole pages, as evenly as pages go (so a slice's last page is a full one, not a partly filled page that
    costs a request of its own, and no slice is more than a page longer than another), the last slice also the
    records of a last partly filled page. Ids are placed by their spacing: over the slice's own id range when
    it has an end (AC counted exactly what is in it), else that of its last page (an open-ended slice's top is
    an estimate: one that is off costs a partly filled page and balance, never records)."""
    after = int(span.after or 0)
    width = span.before - 1 - after if span.before else int(left * spacing)
    pages = left // AC_PAGE
    if pages < parts or width < parts:
        return [(span, left)]
    counts = [AC_PAGE * (pages // parts + (1 if k < pages % parts else 0)) for k in range(parts)]
    counts[-1] += left % AC_PAGE
    ends = list(itertools.accumulate(counts[:-1]))
    cuts = sorted({after + round(end * width / left) for end in ends} - {after, after + width})
    if len(cuts) != len(ends):
        return [(span, left)]
    starts = [span.after, *(str(cut) for cut in cuts)]
    stops = [*(cut + 1 for cut in cuts), span.before]
    return [(IdRange(start, stop), count) for start, stop, count in zip(starts, stops, counts, strict=True)]


class SliceWalk(PipelinedWalk):
    def __init__(self, reader: Reader, spec: JobSpec, cursor: SliceCursor, *, in_flight: int, rate: float,
                 slice_pages: int):
        super().__init__(reader, Query.of(spec, ID_ORDER), in_flight=in_flight, rate=rate)
        self.slice_pages = slice_pages          # a slice is cut only into parts of at least this many pages
        self._lock = threading.Lock()           # the slice list, and each slice's requests
        self._lanes = [Lane(span) for span in cursor.slices]
        self._pages = cursor.pages              # pages read (and written) so far, every slice
        self._turn = 0                          # the slice whose page comes next
        self._prefetching = True                # pages after the next may be requested
        self._ended = cursor.slices[-1] if len(cursor.slices) == 1 else None   # a single walk's last place

    @property
    def pending(self) -> bool:
        with self._lock:
            return any(lane.next is not None or lane.ahead is not None for lane in self._lanes)

    @property
    def pages(self) -> int:
        return self._pages

    def cursor(self) -> dict:
        with self._lock:
            spans = tuple(lane.span for lane in self._lanes)
        if not spans and self._ended is not None:
            spans = (self._ended,)                   # a walk that was never cut ends on its one cursor
        return SliceCursor(spans, self._pages).dump()

    def _start(self) -> None:
        for lane in list(self._lanes):
            self._request(lane)

    def _closed(self) -> None:
        self._prefetching = False

    # ---- the next page
    def _next(self, prefetch: bool, timeout: float | None) -> Arrived | None:
        self._prefetching = prefetch
        if not self._lanes:
            return Arrived([], None, True)
        index = self._index(prefetch)
        lane = self._lanes[index]
        if lane.next is None:
            self._request(lane)
        assert lane.next is not None
        if not wait([lane.next], timeout=timeout).done:
            return None
        page = _within(self._take(lane).result(), lane.span.before)
        self._pages += 1
        with self._lock:
            lane.span = lane.span.moved_to(page.after)
        if page.last:
            self._drop(lane)                        # the slice after it takes its place in the turns
        else:
            self._count(lane, page)
            index += 1
        self._turn = index
        self._cut_the_largest()
        if prefetch:
            for other in list(self._lanes):
                if other.next is None:
                    self._request(other)
        return Arrived(page.records, page.total, not self._lanes)

    @staticmethod
    def _count(lane: Lane, page: SlicePage) -> None:
        """What is left of the slice after `page`: AC's count, unless the page was requested before the slice was
        cut (its count runs past the slice's end): then the slice's share of the cut, less the page."""
        lane.spacing = page.spacing
        if page.before == lane.span.before and page.left is not None:
            lane.left, lane.counted = page.left, True
        else:
            lane.left, lane.counted = max(0, (lane.left or 0) - len(page.records)), False

    def _index(self, prefetch: bool) -> int:
        """The slice whose turn it is; without prefetch, the first from there with a page requested."""
        index = self._turn % len(self._lanes)
        while not prefetch and self._lanes[index].next is None:
            index = (index + 1) % len(self._lanes)
        return index

    def _take(self, lane: Lane) -> Future[SlicePage]:
        """The slice's next page (arrived); the page ahead becomes its next."""
        with self._lock:
            arrived, lane.next, lane.ahead = lane.next, lane.ahead, None
        if lane.next is not None and lane.next.done():
            self._read_ahead(lane, lane.next)        # arrived while it was the page ahead
        assert arrived is not None
        return arrived

    def _drop(self, lane: Lane) -> None:
        """A slice has ended; a page requested for it (possible only after a cut) is not wanted."""
        with self._lock:
            self._lanes.remove(lane)
            for extra in (lane.next, lane.ahead):
                if extra is not None:
                    extra.cancel()
            lane.next = lane.ahead = None
        self._ended = lane.span if lane.span.before is None else None

    # ---- requests (the done-callback runs on a pool thread)
    def _request(self, lane: Lane) -> None:
        assert self.pool is not None
        future = self.pool.submit(self._fetch, lane.span)
        with self._lock:
            lane.next = future
        future.add_done_callback(partial(self._read_ahead, lane))

    def _read_ahead(self, lane: Lane, done: Future[SlicePage]) -> None:
        """The page after `done` (the slice's next, just arrived), while nothing holds the walk back."""
        if not self._prefetching or self.reader.closing.is_set() or done.cancelled() or done.exception() is not None:
            return
        page = done.result()
        with self._lock:
            if page.last or _reaches(page, lane.span.before) or lane.next is not done or lane.ahead is not None \
                    or len(self._lanes) < 2 or lane not in self._lanes:
                return
            try:
                ahead = self.pool.submit(self._fetch, lane.span.moved_to(page.after))    # type: ignore[union-attr]
            except RuntimeError:      # the pool is shutting down: the step is ending
                return
            lane.ahead = ahead
        ahead.add_done_callback(partial(self._read_ahead, lane))

    def _fetch(self, span: IdRange) -> SlicePage:
        body = self.reader.page([*self.query.params, *_id_filters(span)], self._pages + 1)
        records = page_records(self.reader.spec.resource, body)
        first = _ids(records[:1])
        if first and span.after is not None and span.after.isdigit() and first[0] <= int(span.after):
            raise UpstreamInvalidError("ActiveCampaign sent contacts at or below the last id read; "
                                       "the walk cannot advance")
        total = parse_total(body)
        last = len(records) < AC_PAGE or (total is not None and total <= len(records))
        return SlicePage(records, total, last, str(records[-1]["id"]) if records else span.after, _spacing(records),
                         span.before)

    # ---- cutting
    def _cut_the_largest(self) -> None:
        """While fewer slices than pages wanted are walking, cut the slice with the most records left (by its
        last page's count) into as many as are missing, each of at least `slice_pages` pages."""
        room = self.wanted() - len(self._lanes)
        if room <= 0 or not self._lanes:
            return
        lane = max(self._lanes, key=lambda one: one.left or 0)     # the first of the largest
        if not lane.counted:
            return                  # by its share of a cut only: cut it once AC has counted it (its turn)
        parts = min(room + 1, (lane.left or 0) // (self.slice_pages * AC_PAGE))
        if parts < 2:
            return
        (first, share), *rest = _cuts(lane.span, lane.left or 0, lane.spacing, parts)
        with self._lock:
            lane.span, lane.left, lane.counted = first, share, False     # counted again at its next page
            at = self._lanes.index(lane) + 1
            self._lanes[at:at] = [Lane(span, left=count, spacing=lane.spacing) for span, count in rest]


def resume(reader: Reader, spec: JobSpec, saved: dict, *, in_flight: int, rate: float,
           slice_pages: int) -> SliceWalk:
    """The walk from a checkpoint's cursor (any shape stored so far: jobs.cursors)."""
    return SliceWalk(reader, spec, SliceCursor.load(saved), in_flight=in_flight, rate=rate, slice_pages=slice_pages)

