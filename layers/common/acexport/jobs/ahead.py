"""Several offset pages in flight for deals and accounts: pages requested ahead at predicted offsets.

An offset page is read from one record before the cursor (the last record written, by which jobs.offsets places
the page) and a full page moves the cursor by 99, so while pages are full the starts of the next pages are
known in advance: s, s + 99, s + 198, ... This module keeps the pages requested at those starts, oldest first.
A page is used only when the walk reaches its start exactly and the answer holds the last record written
(jobs.offsets places it after that record, as any page). An answer requested ahead may be older than the page
before it, so when the record is not in it (records before the cursor were deleted) the walk reads that start
again and recovers from the new answer exactly as with one page in flight. A prediction missed (the walk
stepped back; a page came back short because records at the end went) drops every page requested after it;
answers read and not used are counted as wasted.

No page is requested past AC's count (`meta.total`): the page at p is the last when p + 100 >= total; before the
first page of a step the count is not known, and only the cursor's own page is requested.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

from acexport.ac.client import AC_PAGE

STEP = AC_PAGE - 1        # a full page moves the cursor by this many records (one record of overlap)


class Ahead:
    """Offset pages requested ahead of the walk: (start, future of AC's answer), oldest first. Used by the
    walk's thread only (no lock)."""

    def __init__(self) -> None:
        self._pages: deque[tuple[int, Future]] = deque()
        self.wasted = 0           # AC requests made for pages the walk did not use (missed predictions)

    def __len__(self) -> int:
        return len(self._pages)

    def keep_from(self, start: int) -> None:
        """Keep the pages only if they continue at `start` (the start the walk's cursor expects): else drop
        them all (a missed prediction; the rest was predicted from it)."""
        if self._pages and self._pages[0][0] != start:
            self.drop()

    def drop(self) -> None:
        """Forget every page requested ahead: a request not yet started is cancelled, one started is wasted."""
        while self._pages:
            _, future = self._pages.popleft()
            if not future.cancel():
                self.wasted += 1

    def take(self) -> Future:
        return self._pages.popleft()[1]

    def top_up(self, start: int, total: int | None, wanted: int, request: Callable[[int, int], Future | None]) -> None:
        """Pages requested at the starts after `start` (the cursor's page first), until `wanted` are requested:
        only the cursor's page when AC's count is unknown, none after the page that AC's count makes the last.
        `request(start, ahead)` (ahead: pages before it in the queue) returns the page's future, or None to
        request no more (the walk's page cap)."""
        predicted = self._pages[-1][0] + STEP if self._pages else start
        while len(self._pages) < max(1, wanted):
            if self._pages and (total is None or self._pages[-1][0] + AC_PAGE >= total):
                return
            future = request(predicted, len(self._pages))
            if future is None:
                return
            self._pages.append((predicted, future))
            predicted += STEP
