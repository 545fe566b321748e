"""Reading AC's answers into the records this service exports, for pages and jobs alike.

- `page_records`: the records of one AC list response, with the sideloaded items joined back on;
- `parse_total`: AC's `meta.total` (a string on some endpoints, an int on others);
- `enrich`: what is added beside AC's own fields (contacts: custom fields by title and by personalisation
  tag; deals: pipeline and stage titles), from the account's reference data (`ac.reference`, cached).
"""

from __future__ import annotations

from acexport.ac import reference
from acexport.ac.client import ACClient
from acexport.ac.resources import CONTACTS, DEALS, Record, Resource


def parse_total(body: dict) -> int | None:
    """AC's meta.total is "6" on some endpoints and 3 on others."""
    try:
        return int(str((body.get("meta") or {}).get("total")).strip())
    except (TypeError, ValueError):
        return None


def page_records(resource: Resource, body: dict) -> list[Record]:
    """The records of one AC response, with the sideloaded items (contacts' fieldValues) joined on.
    Pages and the full-export walk both read AC's answers through it."""
    records = [r for r in body.get(resource.collection) or [] if isinstance(r, dict)]
    if resource.sideload:
        by_record: dict[str, list] = {}
        for item in body.get(resource.sideload) or []:
            by_record.setdefault(str(item.get(resource.sideload_key)), []).append(item)
        for record in records:
            record[resource.sideload] = by_record.get(str(record.get("id")), [])
    return records


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
