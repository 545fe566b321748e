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

from acexport.ac import reference
from acexport.ac.client import ACClient
from acexport.ac.resources import ACCOUNTS, CONTACTS, DEALS, Record, Resource
from acexport.settings import get_settings

SIDELOADED = "_sideloaded"     # transient: the joined items enrich() reads, popped before export

# Field types whose values AC keeps as "||option 1||option 3||" (AC reference, create a field value:
# "For multi-select options this needs to be in the format of ||option1||option2||"; its dropdown
# example uses the same form). Deal/account multiselect values are written as arrays; their read form is
# not documented, so the same reading applies when a value has that form.
MULTI_TYPES = {"checkbox", "listbox", "multiselect", "dropdown"}


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


def enrich_contacts(client: ACClient, records: list[Record]) -> None:
    fields = reference.by_id(reference.reference(client, "/fields", "fields"))
    side = [_sideloaded(record) for record in records]
    tag_ids = {str(i.get("tag")) for s in side for i in s.get("contactTags") or []}
    list_ids = {str(i.get("list")) for s in side for i in s.get("contactLists") or []}
    tags = _names(client, "/tags", "tags", tag_ids, lambda t: t.get("tag"))
    lists = _names(client, "/lists", "lists", list_ids, lambda item: item.get("name"))
    for record, loaded in zip(records, side, strict=True):
        by_title, by_tag = {}, {}
        for item in record.get("fieldValues") or []:
            definition = fields.get(str(item.get("field")))
            if definition is None:
                continue
            value = multi_value(item.get("value"), definition.get("type"))
            if definition.get("title"):
                by_title[definition["title"]] = value
            if definition.get("perstag"):
                by_tag[definition["perstag"]] = value
        record["customFields"] = by_title
        record["customFieldsByTag"] = by_tag
        linked = loaded.get("contactTags")
        record["tags"] = None if linked is None else [tags.get(str(i.get("tag"))) for i in linked
                                                      if tags.get(str(i.get("tag"))) is not None]
        members = loaded.get("contactLists")
        record["lists"] = None if members is None else [
            {"id": str(i.get("list")), "name": lists.get(str(i.get("list"))), "status": i.get("status")}
            for i in members]


def _custom_fields(meta: dict[str, dict], values: list[dict] | None) -> dict | None:
    if values is None:
        return None
    out = {}
    for item in values:
        definition = meta.get(str(item.get("customFieldId") or item.get("dealCustomFieldMetumId")
                                  or item.get("accountCustomFieldMetumId")))
        if definition is not None and definition.get("fieldLabel"):
            out[definition["fieldLabel"]] = multi_value(item.get("fieldValue"), definition.get("fieldType"))
    return out


def enrich_deals(client: ACClient, records: list[Record]) -> None:
    """`pipelineTitle`/`stageTitle` beside AC's `group`/`stage`, `ownerName` beside `owner` (the AC user's
    first and last name), `customFields` from the sideloaded dealCustomFieldData. A disabled stub
    ({id, title, isDisabled}: a deal in a pipeline the key's user cannot see) gets nulls."""
    pipelines = {str(g.get("id")): g.get("title") for g in reference.reference(client, "/dealGroups", "dealGroups")}
    stages = {str(s.get("id")): s.get("title") for s in reference.reference(client, "/dealStages", "dealStages")}
    side = [_sideloaded(record) for record in records]
    owners = _names(client, "/users", "users", {str(r["owner"]) for r in records if r.get("owner")},
                    lambda u: " ".join(p for p in (u.get("firstName"), u.get("lastName")) if p) or None)
    wanted = any(s.get("dealCustomFieldData") for s in side)
    meta = reference.by_id(reference.reference(client, "/dealCustomFieldMeta", "dealCustomFieldMeta",
                                               optional=True)) if wanted else {}
    for record, loaded in zip(records, side, strict=True):
        record["pipelineTitle"] = pipelines.get(str(record.get("group")))
        record["stageTitle"] = stages.get(str(record.get("stage")))
        record["ownerName"] = owners.get(str(record.get("owner"))) if record.get("owner") else None
        disabled = "group" not in record and record.get("isDisabled") not in (None, False, 0, "0")
        record["customFields"] = None if disabled else _custom_fields(meta, loaded.get("dealCustomFieldData"))


def _by_account(data: list[dict]) -> dict[str, list[dict]]:
    """Account custom field values by account id (AC names it accountId; customerAccountId or account_id in
    some answers)."""
    values: dict[str, list[dict]] = {}
    for item in data:
        owner = item.get("accountId") or item.get("customerAccountId") or item.get("account_id")
        values.setdefault(str(owner), []).append(item)
    return values


def enrich_accounts(client: ACClient, records: list[Record]) -> None:
    """`customFields` from /accountCustomFieldMeta and /accountCustomFieldData (AC has no include on
    /accounts, and `filters[customerAccountId]` is one account per call): the account's values are read
    whole and cached like reference data, up to LOCAL_SCAN_LIMIT values (beyond: null, docs/query.md)."""
    meta = reference.by_id(reference.reference(client, "/accountCustomFieldMeta", "accountCustomFieldMeta",
                                               optional=True))
    values: dict[str, list[dict]] | None = {}
    if meta:
        data = reference.reference(client, "/accountCustomFieldData", "accountCustomFieldData", optional=True,
                                   cap=get_settings().local_scan_limit)
        values = None if data is None else reference.derived(data, _by_account)
    for record in records:
        record["customFields"] = None if values is None else \
            _custom_fields(meta, values.get(str(record.get("id")), []))


_ENRICH = {CONTACTS.name: enrich_contacts, DEALS.name: enrich_deals, ACCOUNTS.name: enrich_accounts}


def enrich(client: ACClient, resource: Resource, records: list[Record]) -> None:
    """The resource's enrichment, added beside AC's fields; pages and jobs both use it."""
    if records and resource.name in _ENRICH:
        _ENRICH[resource.name](client, records)
