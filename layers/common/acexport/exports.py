"""One page of an export: check the query, load the caller's connection, read AC, enrich, envelope.

Two ways to read a page, chosen by resources.plan():
- direct: AC applies every filter and order; the page is offset=(page-1)*limit at AC, in calls of at
  most 100 (AC's maximum), sent together; `total` is AC's meta.total (a string or an int at AC).
- scan: some filter or order is applied here, so the whole AC-filtered set is read (up to
  LOCAL_SCAN_LIMIT records), filtered and ordered here, and paged here with an exact `total`.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from acexport import query as query_mod
from acexport import reference, store
from acexport.ac_client import ACClient
from acexport.errors import BadRequest, NotConnected, StoredCredentialsRejected
from acexport.resources import CONTACTS, DEALS, Plan, Record, Resource, plan, sort_locally
from acexport.settings import get_settings
from acexport.tenancy import Tenant

AC_PAGE = reference.AC_PAGE
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ac")
metrics = Metrics()


def parse_total(body: dict) -> int | None:
    """AC's meta.total is "6" on some endpoints and 3 on others."""
    try:
        return int(str((body.get("meta") or {}).get("total")).strip())
    except (TypeError, ValueError):
        return None


def page_records(resource: Resource, body: dict) -> list[Record]:
    """The records of one AC response, with the sideloaded items (contacts' fieldValues) joined on.
    Also how the full-export worker (job_walk) reads a page, so jobs and pages read records alike."""
    records = [r for r in body.get(resource.collection) or [] if isinstance(r, dict)]
    if resource.sideload:
        by_record: dict[str, list] = {}
        for item in body.get(resource.sideload) or []:
            by_record.setdefault(str(item.get(resource.sideload_key)), []).append(item)
        for record in records:
            record[resource.sideload] = by_record.get(str(record.get("id")), [])
    return records


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


def enrich_contacts(client: ACClient, records: list[Record]) -> None:
    """Beside AC's `fieldValues`: `customFields` {field title: value} and `customFieldsByTag`
    {personalisation tag: value}, from the account's field definitions (cached)."""
    fields = {str(f.get("id")): f for f in reference.reference(client, "/fields", "fields")}
    for record in records:
        by_title, by_tag = {}, {}
        for item in record.get("fieldValues") or []:
            definition = fields.get(str(item.get("field")))
            if definition is None:
                continue
            if definition.get("title"):
                by_title[definition["title"]] = item.get("value")
            if definition.get("perstag"):
                by_tag[definition["perstag"]] = item.get("value")
        record["customFields"] = by_title
        record["customFieldsByTag"] = by_tag


def enrich_deals(client: ACClient, records: list[Record]) -> None:
    """Beside AC's `group` (pipeline id) and `stage` (stage id): `pipelineTitle` and `stageTitle`."""
    pipelines = {str(g.get("id")): g.get("title") for g in reference.reference(client, "/dealGroups", "dealGroups")}
    stages = {str(s.get("id")): s.get("title") for s in reference.reference(client, "/dealStages", "dealStages")}
    for record in records:
        record["pipelineTitle"] = pipelines.get(str(record.get("group")))
        record["stageTitle"] = stages.get(str(record.get("stage")))


_ENRICH = {CONTACTS.name: enrich_contacts, DEALS.name: enrich_deals}


def enrich(client: ACClient, resource: Resource, records: list[Record]) -> None:
    """The resource's enrichment (if any), added beside AC's fields; pages and jobs both use it."""
    if records and resource.name in _ENRICH:
        _ENRICH[resource.name](client, records)


def pagination(page: int, limit: int, total: int) -> dict:
    """The old module's pagination object: page/limit/total as strings, next/prev as ints or null."""
    pages = math.ceil(total / limit) if limit else 0
    return {"page": str(page), "limit": str(limit), "total": str(total),
            "next_page": page + 1 if page < pages else None, "prev_page": page - 1 if page > 1 else None}


def export_page(tenant: Tenant, resource: Resource, raw_query: str | None, *, deadline: float) -> dict:
    query = query_mod.parse(raw_query, filters=resource.filters.keys(), orders=resource.orders.keys(),
                            resource=resource.name)
    steps = plan(resource, query.filters, query.orders)   # value checks: still before any I/O
    doc = store.find(tenant)
    if doc is None:
        raise NotConnected()
    credentials = store.credentials(doc)
    client = ACClient(credentials.base_url, credentials.api_key, deadline=deadline)
    read = read_scan if steps.scans else read_direct
    try:
        records, total = read(client, resource, steps, query.page, query.limit)
        enrich(client, resource, records)
    except StoredCredentialsRejected:
        store.mark_rejected(tenant)
        raise
    finally:
        metrics.add_metric(name="ACCalls", unit=MetricUnit.Count, value=client.calls)
        if client.throttled:
            metrics.add_metric(name="ACThrottled", unit=MetricUnit.Count, value=client.throttled)
    metrics.add_metric(name="ExportedRecords", unit=MetricUnit.Count, value=len(records))
    return {"success": True, "message": "SUCCESS", "data": records,
            "pagination": pagination(query.page, query.limit, total)}
