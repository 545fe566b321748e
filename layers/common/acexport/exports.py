"""One page of an export: check the query, load the caller's connection, read AC, enrich, envelope.

Two ways to read a page, chosen by resources.plan():
- direct: AC applies every filter and order; the page is offset=(page-1)*limit at AC, in calls of at
  most 100 (AC's maximum), sent together; `total` is AC's meta.total (a string or an int at AC).
- scan: some filter or order is applied here, so the whole AC-filtered set is read (up to
  LOCAL_SCAN_LIMIT records), filtered and ordered here, and paged here with an exact `total`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from acexport import metrics
from acexport import query as query_mod
from acexport.ac.client import AC_PAGE, ACClient
from acexport.ac.records import enrich, page_records, parse_total
from acexport.ac.resources import Plan, Record, Resource, plan, sort_locally
from acexport.credentials import store
from acexport.errors import BadRequest, NotConnected
from acexport.query import pagination
from acexport.settings import get_settings
from acexport.tenancy import Tenant

_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ac")


def _get(client: ACClient, resource: Resource, params, offset: int, limit: int) -> dict:
    return client.get(resource.path, [*params, ("limit", str(limit)), ("offset", str(offset))])


def read_direct(client: ACClient, resource: Resource, steps: Plan, page: int, limit: int):
    offset = (page - 1) * limit
    chunks = [(start, min(AC_PAGE, offset + limit - start)) for start in range(offset, offset + limit, AC_PAGE)]
    if len(chunks) == 1:  # the common case (limit <= 100): no thread hand-off
        bodies = [_get(client, resource, steps.params, *chunks[0])]
    else:
        bodies = list(_pool.map(lambda chunk: _get(client, resource, steps.params, *chunk), chunks))
    records: list[Record] = []
    for (_, size), body in zip(chunks, bodies, strict=True):
        batch = page_records(resource, body)
        records.extend(batch)
        if len(batch) < size:
            break
    total = parse_total(bodies[0])
    return records, total if total is not None else offset + len(records)


def _too_many(resource: Resource, cap: int) -> BadRequest:
    return BadRequest(f"This {resource.name} query needs more than {cap} records read to filter or order "
                      "them here; narrow it with a filter ActiveCampaign applies itself (see docs/query.md)")


def read_scan(client: ACClient, resource: Resource, steps: Plan, page: int, limit: int):
    cap = get_settings().local_scan_limit
    first = _get(client, resource, steps.params, 0, AC_PAGE)
    hint = parse_total(first)
    if hint is not None and hint > cap:
        raise _too_many(resource, cap)
    batch = found = page_records(resource, first)
    if hint is not None and len(found) == AC_PAGE:
        offsets = range(AC_PAGE, hint, AC_PAGE)
        for body in _pool.map(lambda start: _get(client, resource, steps.params, start, AC_PAGE), offsets):
            found.extend(page_records(resource, body))
    else:  # no usable meta.total: walk until a short page
        while len(batch) == AC_PAGE and len(found) <= cap:
            batch = page_records(resource, _get(client, resource, steps.params, len(found), AC_PAGE))
            found.extend(batch)
    if len(found) > cap:
        raise _too_many(resource, cap)
    matched = [r for r in found if all(spec.matches(r, value) for spec, value in steps.local_filters)]
    if steps.local_orders:
        sort_locally(matched, steps.local_orders)
    start = (page - 1) * limit
    return matched[start:start + limit], len(matched)


def export_page(tenant: Tenant, resource: Resource, raw_query: str | None, *, deadline: float) -> dict:
    query = query_mod.parse(raw_query, filters=resource.filters.keys(), orders=resource.orders.keys(),
                            resource=resource.name)
    steps = plan(resource, query.filters, query.orders)   # value checks: still before any I/O
    doc = store.find(tenant)
    if doc is None:
        raise NotConnected()
    client = store.client(doc, deadline=deadline)   # marks the connection if AC refuses its key
    read = read_scan if steps.scans else read_direct
    try:
        records, total = read(client, resource, steps, query.page, query.limit)
        enrich(client, resource, records)
    finally:
        metrics.add("ACCalls", metrics.MetricUnit.Count, client.calls)
        if client.throttled:
            metrics.add("ACThrottled", metrics.MetricUnit.Count, client.throttled)
    metrics.add("ExportedRecords", metrics.MetricUnit.Count, len(records))
    return {"success": True, "message": "SUCCESS", "data": records,
            "pagination": pagination(query.page, query.limit, total)}
