"""Every record of a resource, page after page from a saved cursor, the way a full export reads AC: the walk a
resource needs, behind one interface (jobs.pipeline.PageWalk).

- Contacts: by id, in slices when AC's answer time needs several pages in flight (jobs.slices).
- Deals and accounts: by offset in an order that keeps records in place, with pages requested ahead at the
  starts full pages predict (jobs.offsets, jobs.ahead).
- Both: the job's filters, AC's failures waited out within the job's patience, the page cap (jobs.reading);
  one page always being fetched while the previous one is processed (enriched, encoded, compressed), so AC
  calls go back to back at the rate limit (jobs.pipeline); the cursor saved in checkpoints is typed and
  versioned, and every shape stored so far is read (jobs.cursors).
"""

from __future__ import annotations

from collections.abc import Callable

from acexport.ac.client import AC_PAGE, ACClient
from acexport.jobs import offsets, slices
from acexport.jobs.offsets import OrderLost
from acexport.jobs.pipeline import Page, PageWalk, PipelinedWalk
from acexport.jobs.reading import OutOfTime, Reader, updated_since
from acexport.jobs.spec import JobSpec
from acexport.settings import job_settings

# How each resource is walked: by what AC lets it be read in an order that holds while the walk runs.
WALKS: dict[str, Callable[..., PipelinedWalk]] = {"contacts": slices.resume, "deals": offsets.resume,
                                                 "accounts": offsets.resume}

__all__ = ["OrderLost", "OutOfTime", "Page", "PageWalk", "Walk", "updated_since"]


def Walk(client: ACClient, spec: JobSpec, cursor: dict, *, deadline: float, patience: float,
         outage_since: float | None = None, max_pages: int | None = None, in_flight: int = 1, rate: float = 5.0,
         slice_pages: int = 2) -> PipelinedWalk:
    """The walk of `spec`'s resource from a checkpoint's `cursor` ({} to start). `deadline`: time.monotonic()
    after which no AC call starts; `patience`: seconds AC may keep failing (from `outage_since`, a time.time());
    `max_pages`: the page cap (EXPORT_MAX_RECORDS / 100); `in_flight`: most pages requested at once; `rate`: AC's
    requests per second; `slice_pages`: a contacts slice is cut only into parts of at least this many pages."""
    if max_pages is None:
        max_pages = max(1, -(-job_settings().max_records // AC_PAGE))
    reader = Reader(client, spec, deadline=deadline, patience=patience, outage_since=outage_since,
                    max_pages=max_pages)
    return WALKS[spec.resource.name](reader, spec, cursor, in_flight=in_flight, rate=rate, slice_pages=slice_pages)
