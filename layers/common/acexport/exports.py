"""One page of an export: check the query, load the caller's connection, read AC, enrich, envelope.

Two ways to read a page, chosen by resources.plan():
- direct: AC applies every filter and order; the page is offset=(page-1)*limit at AC, in calls of at
  most 100 (AC's maximum), sent together; `total` is AC's meta.total (a string or an int at AC).
- scan: some filter or order is applied here, so the whole AC-filtered set is read (up to
  LOCAL_SCAN_LIMIT records), filtered and ordered here, and paged here with an exact `total`.
  A contact custom-field filter AC can narrow reads that set by id instead: the matching contacts' ids from
  `GET /fieldValues?filters[fieldid]=&filters[val]=`, then `GET /contacts?ids[]=...` (100 ids a call).
Custom-field names are resolved against the account's field definitions (ac.custom_fields; one cached
reference call), after the standard values are checked and before the records are read.
"""

from __future__ import annotations

from acexport import metrics
from acexport import query as query_mod
from acexport.ac import custom_fields
from acexport.ac.client import AC_PAGE, ACClient
from acexport.ac.records import attach_custom_values, enrich, page_records, parse_total
from acexport.ac.resources import Plan, Record, Resource, plan, sort_locally
from acexport.credentials import store
from acexport.errors import BadRequestError, NotConnectedError
from acexport.logs import ContextPool
from acexport.query import pagination
from acexport.settings import get_settings
from acexport.tenancy import Tenant

_pool = ContextPool(max_workers=4, thread_name_prefix="ac")


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


def _too_many(resource: Resource, cap: int) -> BadRequestError:
    return BadRequestError(f"This {resource.name} query needs more than {cap} records read to filter or order "
                      "them here; narrow it with a filter ActiveCampaign applies itself (see docs/query.md)")


def _read_all(client: ACClient, path: str, params, pages, cap: int, too_many: BadRequestError) -> list:
    """Every item of an AC list (`pages(body)` reads one answer's items), 100 per call: the first call's
    meta.total says how many more to ask together; without it, pages until a short one. More than `cap`
    items: `too_many`, before reading them when AC's count says so."""
    first = client.get(path, [*params, ("limit", str(AC_PAGE)), ("offset", "0")])
    hint = parse_total(first)
    if hint is not None and hint > cap:
        raise too_many
    batch = found = pages(first)
    if hint is not None and len(found) == AC_PAGE:
        offsets = range(AC_PAGE, hint, AC_PAGE)
        bodies = _pool.map(lambda start: client.get(path, [*params, ("limit", str(AC_PAGE)),
                                                           ("offset", str(start))]), offsets)
        for body in bodies:
            found.extend(pages(body))
    else:  # no usable meta.total: walk until a short page
        while len(batch) == AC_PAGE and len(found) <= cap:
            batch = pages(client.get(path, [*params, ("limit", str(AC_PAGE)), ("offset", str(len(found)))]))
            found.extend(batch)
    if len(found) > cap:
        raise too_many
    return found


def _field_value_contacts(client: ACClient, lookups: tuple[tuple[str, str], ...], cap: int,
                          too_many: BadRequestError) -> set[str]:
    """The ids of the contacts AC says hold one of the values (`GET /fieldValues?filters[fieldid]=<id>&
    filters[val]=<value>`, AC reference, list all custom field values: items `{contact, field, value}`)."""
    ids: set[str] = set()
    for field_id, value in lookups:
        items = _read_all(client, "/fieldValues", [("filters[fieldid]", field_id), ("filters[val]", value)],
                          lambda body: [i for i in body.get("fieldValues") or [] if isinstance(i, dict)],
                          cap, too_many)
        # AC's answer checked item by item: an AC that ignored a filter can cost calls, never wrong ids
        ids.update(str(i.get("contact")) for i in items if str(i.get("contact") or "").isdigit()
                   and str(i.get("field")) == field_id
                   and str(i.get("value") or "").strip().casefold() == value.casefold())
        if len(ids) > cap:
            raise too_many
    return ids


def _read_by_ids(client: ACClient, resource: Resource, steps: Plan, cap: int) -> list[Record] | None:
    """The contacts every /fieldValues lookup holds (their ids intersected), read 100 ids a call with the
    plan's other AC parameters (`ids[]=` repeatable, AC reference, list all contacts), in id order.
    None when AC's answer holds a contact it was not asked for (it ignored `ids[]`): the caller scans."""
    too_many = _too_many(resource, cap)
    wanted: set[str] | None = None
    for lookups in steps.lookups:
        found = _field_value_contacts(client, lookups, cap, too_many)
        wanted = found if wanted is None else wanted & found
    ids = sorted(wanted or (), key=int)
    chunks = [ids[i:i + AC_PAGE] for i in range(0, len(ids), AC_PAGE)]

    def read(chunk: list[str]) -> list[Record] | None:
        params = [*steps.params, *[("ids[]", i) for i in chunk], ("limit", str(AC_PAGE)), ("offset", "0")]
        batch = page_records(resource, client.get(resource.path, params))
        asked = set(chunk)
        return batch if all(str(r.get("id")) in asked for r in batch) else None
    records: list[Record] = []
    for batch in (_pool.map(read, chunks) if len(chunks) > 1 else map(read, chunks)):
        if batch is None:
            return None
        records.extend(batch)
    return records


def read_scan(client: ACClient, resource: Resource, steps: Plan, page: int, limit: int, *,
              custom: set[str] | None = None):
    cap = get_settings().local_scan_limit
    found = _read_by_ids(client, resource, steps, cap) if steps.lookups else None
    if found is None:
        found = _read_all(client, resource.path, steps.params, lambda body: page_records(resource, body), cap,
                          _too_many(resource, cap))
    if custom:      # custom-field filters and orders read those fields' values first
        attach_custom_values(client, resource, found, custom)
    matched = [r for r in found if all(spec.keeps(r, value) for spec, value in steps.local_filters)]
    if steps.local_orders:
        sort_locally(matched, steps.local_orders)
    start = (page - 1) * limit
    return matched[start:start + limit], len(matched)


def export_page(tenant: Tenant, resource: Resource, raw_query: str | None, *, deadline: float) -> dict:
    query = query_mod.parse(raw_query, filters=resource.filters.keys(), orders=resource.orders.keys(),
                            resource=resource.name, custom=True)
    filter_names, order_names = custom_fields.custom_names(resource, query.filters, query.orders)
    # value checks of the standard filters and orders: still before any I/O
    steps = plan(resource, [f for f in query.filters if f[0] not in filter_names],
                 [o for o in query.orders if o[0] not in order_names])
    doc = store.find(tenant)
    if doc is None:
        raise NotConnectedError()
    client = store.client(doc, deadline=deadline)   # marks the connection if AC refuses its key
    try:
        custom: set[str] = set()
        if filter_names or order_names:    # the account's custom fields named: one cached reference call
            extended, custom = custom_fields.with_custom_fields(client, resource, query.filters, query.orders)
            steps = plan(extended, query.filters, query.orders)
        if steps.scans:
            records, total = read_scan(client, resource, steps, query.page, query.limit, custom=custom)
        else:
            records, total = read_direct(client, resource, steps, query.page, query.limit)
        enrich(client, resource, records)
    finally:
        metrics.add("ACCalls", metrics.MetricUnit.Count, client.calls)
        if client.throttled:
            metrics.add("ACThrottled", metrics.MetricUnit.Count, client.throttled)
    metrics.add("ExportedRecords", metrics.MetricUnit.Count, len(records))
    return {"success": True, "message": "SUCCESS", "data": records,
            "pagination": pagination(query.page, query.limit, total)}
