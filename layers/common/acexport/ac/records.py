"""Reading AC's answers into the records this service exports, for pages and jobs alike.

- `page_records`: the records of one AC list response, with the sideloaded items joined back on;
- `parse_total`: AC's `meta.total` (a string on some endpoints, an int on others);
- `enrich`: what is added beside AC's own fields, from the sideloads and the account's reference data
  (`ac.reference`, cached), never replacing a field AC sent:
  contacts: `customFields` {field title: value}, `customFieldsByTag` {personalisation tag: value}
  (multi-select values `||a||b||` as lists), `tags` [tag name], `lists` [{id, name, status}];
  deals: `pipelineTitle`, `stageTitle`, `ownerName`, `customFields` {field label: value};
  accounts: `customFields` {field label: value}.
  A field that could not be known (AC ignored an include, the key may not read the names) is null.
"""

from __future__ import annotations

from collections.abc import Callable

from acexport.ac import custom_fields, reference
from acexport.ac.client import ACClient
from acexport.ac.custom_fields import MULTI_TYPES
from acexport.ac.resources import ACCOUNTS, CONTACTS, DEALS, Record, Resource
from acexport.settings import get_settings

SIDELOADED = "_sideloaded"     # transient: the joined items enrich() reads, popped before export



def parse_total(body: dict) -> int | None:
    """AC's meta.total is "6" on some endpoints and 3 on others."""
    try:
        return int(str((body.get("meta") or {}).get("total")).strip())
    except (TypeError, ValueError):
        return None


def page_records(resource: Resource, body: dict) -> list[Record]:
    """The records of one AC response, with the sideloaded items joined on (an `attach` sideload replaces
    the record's id list, as contacts' fieldValues always have; the others are read by enrich()). A
    sideload AC did not send (it ignored the include) is None, not []. Pages and the walk both use this."""
    records = [r for r in body.get(resource.collection) or [] if isinstance(r, dict)]
    for sideload in resource.sideloads:
        sent = sideload.name in body
        by_record: dict[str, list] = {}
        for item in body.get(sideload.name) or []:
            if isinstance(item, dict):
                by_record.setdefault(str(item.get(sideload.key)), []).append(item)
        for record in records:
            items = by_record.get(str(record.get("id")), []) if sent else None
            if sideload.attach:
                record[sideload.name] = items or []
            else:
                record.setdefault(SIDELOADED, {})[sideload.name] = items
    return records


def multi_value(value, kind) -> object:
    """`||a||b||` of a multi-select field as ["a", "b"] (`||` is none chosen); anything else as AC sent it."""
    if isinstance(value, str) and str(kind).lower() in MULTI_TYPES and len(value) >= 2 \
            and value.startswith("||") and value.endswith("||"):
        return [part for part in value[2:-2].split("||") if part != ""]
    return value


def _names(client: ACClient, path: str, collection: str, ids: set[str], name: Callable[[dict], str | None]):
    """{id: name} of reference items, fetched only when some record needs one."""
    if not ids:
        return {}
    known = reference.by_id(reference.reference(client, path, collection, optional=True, need=ids))
    return {ident: name(known[ident]) for ident in ids if ident in known}   # the page's ids, not every tag


def _sideloaded(record: Record) -> dict:
    return record.pop(SIDELOADED, None) or {}


def _is_disabled(deal: Record) -> bool:
    """A disabled stub ({id, title, isDisabled}: a deal in a pipeline the key's user cannot see)."""
    return "group" not in deal and deal.get("isDisabled") not in (None, False, 0, "0")


def _values(meta: dict[str, dict], items: list[dict] | None, field_key: str, value_key: str,
            type_key: str, wanted: set[str] | None = None) -> dict[str, object] | None:
    """{field id: value as exported} of one record's custom field value items (None: not known), of the
    `wanted` fields only when given. Deal and account items name their field `customFieldId` (or
    `<kind>CustomFieldMetumId`, AC reference)."""
    if items is None:
        return None
    out = {}
    for item in items:
        field_id = str(item.get(field_key) or item.get("dealCustomFieldMetumId")
                       or item.get("accountCustomFieldMetumId"))
        definition = meta.get(field_id) if wanted is None or field_id in wanted else None
        if definition is not None:
            out[field_id] = multi_value(item.get(value_key), definition.get(type_key))
    return out


def _by_deal(data: list[dict]) -> dict[str, list[dict]]:
    """Deal custom field values by deal id (AC's `dealId`; `deal_id` in a public client's sideload)."""
    values: dict[str, list[dict]] = {}
    for item in data:
        values.setdefault(str(item.get("dealId") or item.get("deal_id")), []).append(item)
    return values


def _deal_values(client: ACClient, records: list[Record], wanted: set[str] | None = None) -> list[dict | None]:
    """From the sideloaded dealCustomFieldData; when AC ignored `include=dealCustomFieldData` (its answer has
    no top-level `dealCustomFieldData`: page_records leaves None), from /dealCustomFieldData read whole (100
    per call) and cached like account values, up to LOCAL_SCAN_LIMIT values (beyond: null)."""
    side = [None if _is_disabled(r) else (r.get(SIDELOADED) or {}).get("dealCustomFieldData", []) for r in records]
    live = [s for s, r in zip(side, records, strict=True) if not _is_disabled(r)]
    ignored = any(s is None for s in live)
    if not ignored and not any(live):
        return [None if _is_disabled(r) else {} for r in records]
    meta = reference.by_id(custom_fields.meta(client, DEALS.name))
    index = _read_deal_values(client) if ignored and meta else {}
    return [_one_deal_values(meta, record, items, index, wanted) for record, items in zip(records, side, strict=True)]


def _read_deal_values(client: ACClient) -> dict[str, list[dict]] | None:
    """Every deal's custom field values by deal id, read whole (None: more than LOCAL_SCAN_LIMIT)."""
    data = reference.reference(client, "/dealCustomFieldData", "dealCustomFieldData", optional=True,
                               cap=get_settings().local_scan_limit)
    return None if data is None else reference.derived(data, _by_deal)


def _one_deal_values(meta: dict[str, dict], record: Record, items: list[dict] | None,
                     index: dict[str, list[dict]] | None, wanted: set[str] | None) -> dict | None:
    """One deal's values: sideloaded `items`, else from `index` (None: not known); None for a disabled stub."""
    if _is_disabled(record):
        return None
    if items is None:
        items = None if index is None else index.get(str(record.get("id")), [])
    return _values(meta, items, "customFieldId", "fieldValue", "fieldType", wanted)


def _by_account(data: list[dict]) -> dict[str, list[dict]]:
    """Account custom field values by account id (AC names it accountId; customerAccountId or account_id in
    some answers)."""
    values: dict[str, list[dict]] = {}
    for item in data:
        owner = item.get("accountId") or item.get("customerAccountId") or item.get("account_id")
        values.setdefault(str(owner), []).append(item)
    return values


def _account_values(client: ACClient, records: list[Record], wanted: set[str] | None = None) -> list[dict | None]:
    """From /accountCustomFieldMeta and /accountCustomFieldData (AC has no include on /accounts, and
    `filters[customerAccountId]` is one account per call): the account's values are read whole and cached
    like reference data, up to LOCAL_SCAN_LIMIT values (beyond: null, docs/query.md)."""
    meta = reference.by_id(custom_fields.meta(client, ACCOUNTS.name))
    values: dict[str, list[dict]] | None = {}
    if meta:
        data = reference.reference(client, "/accountCustomFieldData", "accountCustomFieldData", optional=True,
                                   cap=get_settings().local_scan_limit)
        values = None if data is None else reference.derived(data, _by_account)
    return [None if values is None else
            _values(meta, values.get(str(r.get("id")), []), "customFieldId", "fieldValue", "fieldType", wanted)
            for r in records]


def _contact_values(client: ACClient, records: list[Record], wanted: set[str] | None = None) -> list[dict | None]:
    """From the contacts' (sideloaded) fieldValues and /fields."""
    fields = reference.by_id(custom_fields.meta(client, CONTACTS.name))
    return [_values(fields, r.get("fieldValues") or [], "field", "value", "type", wanted) for r in records]


_VALUES = {CONTACTS.name: _contact_values, DEALS.name: _deal_values, ACCOUNTS.name: _account_values}


def attach_custom_values(client: ACClient, resource: Resource, records: list[Record],
                         wanted: set[str] | None = None) -> None:
    """Each record's custom field values {field id: value as exported} (or None: not known) under
    custom_fields.VALUES, of the `wanted` fields (all when None), for the custom-field filters and orders
    applied before enrich() (which drops them)."""
    if records:
        for record, values in zip(records, _VALUES[resource.name](client, records, wanted), strict=True):
            record[custom_fields.VALUES] = values


def keep_custom_matches(client: ACClient, resource: Resource, records: list[Record],
                        filters: list[tuple[str, str]]) -> list[Record]:
    """The records whose custom fields match every (name, value) filter, as the page exports match them
    (jobs: applied to each page read; the names are resolved against the cached definitions, a 400 when
    unknown or ambiguous)."""
    extended, wanted = custom_fields.with_custom_fields(client, resource, filters, ())
    specs = [(extended.filters[name], value) for name, value in filters]
    attach_custom_values(client, resource, records, wanted)
    kept = [r for r in records if all(spec.keeps(r, value) for spec, value in specs)]
    for record in records:
        record.pop(custom_fields.VALUES, None)
    return kept


def _take_values(client: ACClient, resource: Resource, records: list[Record]) -> list[dict | None]:
    """Every custom field value of the records (those a query attached may be only the fields it names)."""
    for record in records:
        record.pop(custom_fields.VALUES, None)
    return _VALUES[resource.name](client, records)


def _by_label(meta: dict[str, dict], values: dict | None, label: str) -> dict | None:
    return None if values is None else {meta[f][label]: v for f, v in values.items() if meta[f].get(label)}


def enrich_contacts(client: ACClient, records: list[Record]) -> None:
    fields = reference.by_id(custom_fields.meta(client, CONTACTS.name))
    values = _take_values(client, CONTACTS, records)
    side = [_sideloaded(record) for record in records]
    tag_ids = {str(i.get("tag")) for s in side for i in s.get("contactTags") or []}
    list_ids = {str(i.get("list")) for s in side for i in s.get("contactLists") or []}
    tags = _names(client, "/tags", "tags", tag_ids, lambda t: t.get("tag"))
    lists = _names(client, "/lists", "lists", list_ids, lambda item: item.get("name"))
    for record, loaded, found in zip(records, side, values, strict=True):
        record["customFields"] = _by_label(fields, found, "title") or {}
        record["customFieldsByTag"] = _by_label(fields, found, "perstag") or {}
        _name_tags_and_lists(record, loaded, tags, lists)


def _name_tags_and_lists(record: Record, loaded: dict, tags: dict, lists: dict) -> None:
    """A contact's `tags` (names) and `lists` ({id, name, status}) from its sideloaded memberships."""
    linked = loaded.get("contactTags")
    record["tags"] = None if linked is None else [tags.get(str(i.get("tag"))) for i in linked
                                                  if tags.get(str(i.get("tag"))) is not None]
    members = loaded.get("contactLists")
    record["lists"] = None if members is None else [
        {"id": str(i.get("list")), "name": lists.get(str(i.get("list"))), "status": i.get("status")}
        for i in members]


def _titles(client: ACClient, path: str, collection: str) -> dict[str, object]:
    """{id: title} of a reference collection every deal page needs (pipelines, stages)."""
    return {ident: item.get("title") for ident, item in reference.by_id(reference.reference(client, path,
                                                                                            collection)).items()}


def enrich_deals(client: ACClient, records: list[Record]) -> None:
    """`pipelineTitle`/`stageTitle` beside AC's `group`/`stage`, `ownerName` beside `owner` (the AC user's
    first and last name), `customFields` {label: value} (_deal_values: sideloaded, or read whole when AC
    ignores the include). A disabled stub ({id, title, isDisabled}) gets nulls."""
    pipelines = _titles(client, "/dealGroups", "dealGroups")
    stages = _titles(client, "/dealStages", "dealStages")
    values = _take_values(client, DEALS, records)
    for record in records:
        _sideloaded(record)
    owners = _names(client, "/users", "users", {str(r["owner"]) for r in records if r.get("owner")},
                    lambda u: " ".join(p for p in (u.get("firstName"), u.get("lastName")) if p) or None)
    meta = reference.by_id(custom_fields.meta(client, DEALS.name)) if any(values) else {}
    for record, found in zip(records, values, strict=True):
        record["pipelineTitle"] = pipelines.get(str(record.get("group")))
        record["stageTitle"] = stages.get(str(record.get("stage")))
        record["ownerName"] = owners.get(str(record.get("owner"))) if record.get("owner") else None
        record["customFields"] = _by_label(meta, found, "fieldLabel")


def enrich_accounts(client: ACClient, records: list[Record]) -> None:
    """`customFields` {label: value} (_account_values)."""
    values = _take_values(client, ACCOUNTS, records)
    meta = reference.by_id(custom_fields.meta(client, ACCOUNTS.name)) if any(values) else {}
    for record, found in zip(records, values, strict=True):
        record["customFields"] = _by_label(meta, found, "fieldLabel")


_ENRICH = {CONTACTS.name: enrich_contacts, DEALS.name: enrich_deals, ACCOUNTS.name: enrich_accounts}


def enrich(client: ACClient, resource: Resource, records: list[Record]) -> None:
    """The resource's enrichment, added beside AC's fields; pages and jobs both use it."""
    if records and resource.name in _ENRICH:
        _ENRICH[resource.name](client, records)
