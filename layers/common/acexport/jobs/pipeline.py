"""What every job walk offers the worker (`PageWalk`), and the page pipeline the walks share (`PipelinedWalk`).

A walk is a context manager: entering it starts a thread pool and requests the first page(s); leaving it
stops every call still waiting (an AC call in flight ends by its timeout). `next_page` returns the pages in a
fixed order, each filtered and enriched, with the cursor a checkpoint saves; while the worker processes one,
the pages after it are being fetched, as many at once as AC's rate times its answer time needs
(`PipelinedWalk.wanted`). The walk never calls back into the worker: `next_page(timeout=...)` returns None
when the page has not arrived in that time, and the worker renews its lease and asks again.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from acexport.ac.resources import Record
from acexport.jobs.reading import OutOfTime, Query, Reader
from acexport.logs import ContextPool


@dataclass
class Page:
    records: list[Record]     # filtered and enriched: what goes into the file
    read: int                 # records AC returned (before filters applied here)
    cursor: dict              # where the walk continues after this page (the checkpoint's form, jobs.cursors)
    total: int | None         # AC's count (meta.total) for the rest of the walk
    last: bool


@dataclass
class Arrived:
    """One page as a walk read it from AC, before the filters applied here and enrichment."""
    records: list[Record]
    total: int | None
    last: bool                # the walk's last page


class PageWalk(Protocol):
    """What the worker uses of a walk (jobs.walk.Walk makes the one a resource needs)."""

    def __enter__(self) -> PageWalk: ...

    def __exit__(self, *exc: object) -> None: ...

    @property
    def outage_since(self) -> float | None: ...

    @property
    def pending(self) -> bool: ...

    @property
    def wasted(self) -> int: ...

    def next_page(self, *, prefetch: bool = True, timeout: float | None = None) -> Page | None: ...


class PipelinedWalk(ABC):
    """The pool, the pipeline and the order of a walk; how pages are requested and placed is the subclass's.

    `query`: AC's parameters and the checks applied here; `in_flight`: most pages requested at once; `rate`:
    AC's requests per second (the budget's)."""

    def __init__(self, reader: Reader, query: Query, *, in_flight: int, rate: float):
        self.reader, self.query = reader, query
        self.in_flight = max(1, in_flight)
        self.rate = rate
        self.pool: ThreadPoolExecutor | None = None

    # ---- the context
    def __enter__(self) -> PipelinedWalk:
        self.pool = ContextPool(max_workers=2 * self.in_flight, thread_name_prefix="ac-prefetch")
        self._start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.reader.closing.set()       # a prefetch waiting out AC's failures stops at once
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)   # an AC call in flight ends by its timeout
        self._closed()

    @property
    def outage_since(self) -> float | None:
        return self.reader.outage_since

    @property
    def wasted(self) -> int:
        """AC requests made for pages the walk could not use (offset pages requested ahead: jobs.offsets)."""
        return 0

    # ---- the pages
    def next_page(self, *, prefetch: bool = True, timeout: float | None = None) -> Page | None:
        """The next page, or None when it has not arrived within `timeout` (None: wait for it); ask again for
        the same page. With `prefetch`, pages after it are requested (up to `wanted()`); without it only pages
        already requested are returned, then OutOfTime. Raises OutOfTime, or AC's error once patience is out."""
        assert self.pool is not None, "use the walk as a context manager"
        if not prefetch and not self.pending:
            raise OutOfTime()
        arrived = self._next(prefetch, timeout)
        if arrived is None:
            return None
        records = self.query.keep(arrived.records)
        if self.query.custom:
            records = self.reader.keep_custom(records, self.query.custom)
        self.reader.enrich(records)
        return Page(records, len(arrived.records), self.cursor(), arrived.total, arrived.last)

    def wanted(self) -> int:
        """Pages in flight that keep AC's rate busy: rate x AC's answer time (+50 %: this side's work, AC's
        jitter), at most `in_flight`. A fast AC needs one."""
        answer = getattr(self.reader.client, "answer_seconds", None)
        if answer is None:
            return self.in_flight
        return max(1, min(self.in_flight, math.ceil(self.rate * answer * 1.5)))

    # ---- the subclass's part
    @property
    @abstractmethod
    def pending(self) -> bool:
        """A page has been requested and not yet returned by next_page."""

    @abstractmethod
    def cursor(self) -> dict:
        """Where the walk continues after the pages returned so far, as a checkpoint saves it."""

    @abstractmethod
    def _start(self) -> None:
        """Request the first page(s)."""

    @abstractmethod
    def _next(self, prefetch: bool, timeout: float | None) -> Arrived | None:
        """The next page in the walk's order, or None if it has not arrived within `timeout`."""

    @abstractmethod
    def _closed(self) -> None:
        """After the pool stopped."""
