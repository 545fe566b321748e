"""Every current id of a resource at AC, in the fewest requests, for the reconcile.

Separate from jobs/walk.py on purpose (docs/decisions.md, "The reconcile reads ids with its own walker"):
it keeps ids only (no records, no sideloads, no enrichment, no file), so it needs none of the export
walk's machinery, and the export walk can change without touching it.

- Contacts: keyset pages, `orders[id]=ASC` + `id_greater` (AC's advice for reading many contacts:
  developers.activecampaign.com/reference/pagination) and `id_less` (both documented on /contacts only).
  The first page gives AC's count and the ids' spacing; the id range after it is cut into lanes (at most
  EXPORT_PAGES_IN_FLIGHT) walked side by side, so AC's answer time does not slow the walk below the rate
  budget; a lane that ends early splits the widest lane still running. Requests: one per 100 ids plus
  one short page per lane. Keyset pages never skip an id that exists for the whole walk.
- Deals and accounts: AC has only limit/offset for them. Pages of 100 start 99 apart (offsets 0, 99,
  198, ...): each page must begin with the id the page before it ended with. When it does not, records
  moved under the walk (one deleted before the offset shifts every later one back, and the next page
  would skip an id, which would then look deleted): `Shifted` is raised and the caller walks the
  resource again. Deals in `orders[cdate]=ASC` (documented; new deals come last), accounts in
  `orders[id]=ASC` (not documented; ignored if AC does not know it, AC's observed order is by id).
  Requests: one per 99 ids. Pages are requested ahead, at most EXPORT_PAGES_IN_FLIGHT at once.

Every request goes through ACClient, so through the shared per-account budget (ac/budget.py): never more
than AC's 5 per second, with the export jobs and page exports of the same AC account.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait

from acexport.ac.client import AC_PAGE, ACClient, UpstreamInvalidError
from acexport.logs import ContextPool

RESOURCES = ("contacts", "deals", "accounts")
ORDER = {"deals": ("orders[cdate]", "ASC"), "accounts": ("orders[id]", "ASC")}
STEP = AC_PAGE - 1           # offset pages overlap by one record
LANE_PAGES = 3               # a contacts lane is cut only for at least this many pages


class Shifted(Exception):
    """AC's offset order moved while the walk read it: walk the resource again."""


def _total(meta) -> int | None:
    value = meta.get("total") if isinstance(meta, dict) else None
    try:
        return max(0, int(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


class IdWalk:
    """Reads ids into sets, page after page, until `stop_at` (time.monotonic()); `tick` is called after
    every page (progress, lease, cancel)."""

    def __init__(self, client: ACClient, *, stop_at: float, in_flight: int, max_pages: int,
                 tick: Callable[[], None] = lambda: None):
        self.client, self.stop_at, self.in_flight, self.max_pages = client, stop_at, max(1, in_flight), max_pages
        self.tick = tick
        self.pages = 0
        self.totals: dict[str, int] = {}

    def _time_left(self) -> bool:
        """Whether another page may be requested: always the first of a step (every step makes progress)."""
        return self.pages == 0 or time.monotonic() < self.stop_at

    def _page(self, resource: str, params: list[tuple[str, str]]) -> list[int]:
        body = self.client.get(f"/{resource}", [*params, ("limit", str(AC_PAGE))])
        items = body.get(resource)
        if not isinstance(items, list):
            raise UpstreamInvalidError(f"ActiveCampaign's answer holds no {resource} list")
        ids = []
        for item in items:
            text = str(item.get("id") if isinstance(item, dict) else "")
            if not (text.isascii() and text.isdigit() and len(text) <= 18):
                raise UpstreamInvalidError(f"ActiveCampaign sent a {resource[:-1]} without a numeric id")
            ids.append(int(text))
        total = _total(body.get("meta"))
        if total is not None:
            self.totals[resource] = total
        self.pages += 1
        if self.pages > self.max_pages:
            raise UpstreamInvalidError("ActiveCampaign's records never end (more pages than EXPORT_MAX_RECORDS allows)")
        return ids

    def walk(self, resource: str, cursor: dict, ids: set[int]) -> dict | None:
        """Add the ids of `resource` from `cursor` ({} = the start) to `ids`; None when every id was read,
        else the cursor to go on from (time ran out)."""
        if resource == "contacts":
            return self._contacts(cursor, ids)
        return self._offsets(resource, cursor, ids)

    # ---- contacts: id lanes
    def _contact_page(self, after: int | None, before: int | None) -> list[int]:
        params = [("orders[id]", "ASC")]
        params += [("id_greater", str(after))] if after is not None else []
        params += [("id_less", str(before))] if before is not None else []
        return self._page("contacts", params)

    def _first_lanes(self, ids: set[int]) -> list[list] | None:
        page = self._contact_page(None, None)
        ids.update(page)
        self.tick()
        if len(page) < AC_PAGE:
            return None
        first, after = min(page), max(page)
        spacing = max(1.0, (after - first) / (len(page) - 1))
        left = max(0, self.totals.get("contacts", 0) - len(page))
        count = max(1, min(self.in_flight, left // (AC_PAGE * LANE_PAGES)))
        end = after + int(left * spacing * 1.05) + 1
        cuts = [after + (end - after) * i // count for i in range(count + 1)]
        return [[cuts[i], cuts[i + 1] + 1 if i < count - 1 else None] for i in range(count)]

    def _contacts(self, cursor: dict, ids: set[int]) -> dict | None:
        lanes = [list(lane) for lane in cursor["lanes"]] if cursor.get("lanes") else self._first_lanes(ids)
        if not lanes:
            return None
        pending: dict[Future, list] = {}
        with ContextPool(max_workers=self.in_flight, thread_name_prefix="reconcile") as pool:
            def submit(lane: list) -> None:
                pending[pool.submit(self._contact_page, lane[0], lane[1])] = lane

            try:
                for lane in lanes[:self.in_flight]:
                    if self._time_left():
                        submit(lane)
                while pending:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        lane = pending.pop(future)
                        if self._advance(lane, future.result(), lanes, ids) and self._time_left():
                            submit(lane)
                        if self._time_left():
                            self._fill(lanes, pending, submit)
                    self.tick()
            finally:
                for future in pending:      # an error, or the end reached before pages asked ahead came
                    future.cancel()
        return {"lanes": lanes} if lanes else None

    @staticmethod
    def _advance(lane: list, page: list[int], lanes: list[list], ids: set[int]) -> bool:
        """Take a lane's page; whether the lane goes on (from the page's last id), else it is done."""
        if page and min(page) <= lane[0]:
            raise UpstreamInvalidError("ActiveCampaign ignored id_greater (the same page again)")
        ids.update(page)
        if len(page) < AC_PAGE or (lane[1] is not None and max(page) >= lane[1] - 1):
            lanes.remove(lane)
            return False
        lane[0] = max(page)
        return True

    def _fill(self, lanes: list[list], pending: dict, submit) -> None:
        """Keep `in_flight` lanes busy: start waiting lanes, else split the widest running one."""
        running = [lane for lane in pending.values()]
        for lane in lanes:
            if len(pending) >= self.in_flight:
                return
            if not any(lane is other for other in running):
                submit(lane)
                running.append(lane)
        while len(pending) < self.in_flight:
            wide = [lane for lane in running if lane[1] is not None and lane[1] - lane[0] > 2 * AC_PAGE * LANE_PAGES]
            if not wide:
                return
            lane = max(wide, key=lambda item: item[1] - item[0])
            middle = (lane[0] + lane[1]) // 2
            new = [middle - 1, lane[1]]
            lane[1] = middle
            lanes.append(new)
            submit(new)
            running.append(new)

    # ---- deals and accounts: overlapping offset pages
    def _offset_page(self, resource: str, offset: int) -> list[int]:
        return self._page(resource, [ORDER[resource], ("offset", str(offset))])

    def _ask_ahead(self, pool: ContextPool, pending: dict[Future, int], resource: str, offset: int,
                   ahead: int) -> int:
        """Ask for pages from `ahead` on while time and `in_flight` allow (beyond `offset` only below the
        total AC gave); the next offset to ask for."""
        total = self.totals.get(resource)
        while (self._time_left() and len(pending) < self.in_flight
               and (ahead == offset or (total is not None and ahead < total))):
            pending[pool.submit(self._offset_page, resource, ahead)] = ahead
            ahead += STEP
        return ahead

    def _offsets(self, resource: str, cursor: dict, ids: set[int]) -> dict | None:
        offset, boundary = int(cursor.get("offset", 0)), cursor.get("boundary")
        results: dict[int, list[int]] = {}
        pending: dict[Future, int] = {}
        ahead = offset                  # the next offset to request
        with ContextPool(max_workers=self.in_flight, thread_name_prefix="reconcile") as pool:
            try:
                while True:
                    ahead = self._ask_ahead(pool, pending, resource, offset, ahead)
                    if not pending and offset not in results:
                        return {"offset": offset, **({"boundary": boundary} if boundary is not None else {})}
                    if offset not in results:
                        finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                        for future in finished:
                            results[pending.pop(future)] = future.result()
                        self.tick()
                        continue
                    page = results.pop(offset)
                    if boundary is not None and (not page or page[0] != boundary):
                        raise Shifted(resource)
                    ids.update(page)
                    if len(page) < AC_PAGE:
                        return None
                    boundary, offset = page[-1], offset + STEP
                    if ahead < offset:
                        ahead = offset
            finally:
                for future in pending:      # an error, or the end reached before pages asked ahead came
                    future.cancel()
