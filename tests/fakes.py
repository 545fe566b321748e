"""Test doubles shared by unit tests."""

import time


class FakeClock:
    """A clock that only moves when something sleeps on it: `clock()` reads it, `clock.sleep(s)` advances it."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def walk_ids(client, resource: str, cursor: dict | None = None) -> list[str]:
    """The ids a full-export walk (acexport.jobs.walk.Walk) writes for `resource` through `client`, one page
    per step, resuming from each page's cursor as the worker does across steps."""
    from acexport.jobs import spec as job_spec
    from acexport.jobs.walk import Walk

    spec = job_spec.parse(resource, {})
    seen, cursor = [], dict(cursor or {})
    while True:
        with Walk(client, spec, cursor, deadline=time.monotonic() + 30, patience=0) as walk:
            page = walk.next_page(prefetch=False)
        seen += [r["id"] for r in page.records]
        cursor = page.cursor
        if page.last:
            return seen


def walk_ahead(client, resource: str, cursor: dict | None = None, *, in_flight: int = 5):
    """The ids one full-export walk writes for `resource` with up to `in_flight` pages requested at once (offset
    pages ahead for deals and accounts, slices for contacts), in one step; and the walk (its `wasted`)."""
    from acexport.jobs import spec as job_spec
    from acexport.jobs.walk import Walk

    spec = job_spec.parse(resource, {})
    seen = []
    with Walk(client, spec, dict(cursor or {}), deadline=time.monotonic() + 30, patience=0,
              in_flight=in_flight) as walk:
        while True:
            page = walk.next_page()
            seen += [r["id"] for r in page.records]
            if page.last:
                return seen, walk
