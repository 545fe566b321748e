"""An AC webhook delivery (parsed by `form.parse`) as a change of the feed, in the export's field names.

Sources of each behaviour are in docs/live.md ("What AC sends"): GearPlug's raw 2017 fixtures and
Activepieces' 2024 sample data agree on the keys below.
- `date_time` is ISO 8601 with a numeric offset (`2017-11-27T12:51:37-06:00`), second precision;
- `contact[tags]` is one comma-separated string (`"tag1, tag2"`), `contact[fields][<n>]` custom field
  values with a numeric `<n>` (most likely the field id: it is kept as `fieldValues[].field`);
- `deal[value]` is a display string (`"1,044,055.00"`); `deal[value_raw]` is whole currency units
  (`"1044055"`) while the REST API (and so the export) gives `value` in cents (`_cents`);
- webhook deal keys differ from REST: `stageid` = `stage`, `pipelineid` = `group`, `contactid` = `contact`;
- `updated_fields[i]` lists REST field names; a tag event carries the tag name in `tag`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from acexport.errors import BadRequest
from acexport.live.form import items, text

_ID = re.compile(r"[0-9]{1,18}")

# AC event -> (resource, change type). `subscribe` is a new contact when it names no list (list 0: the
# admin added a contact, GearPlug's "new contact" fixture), else a list subscription.
TYPES: dict[str, tuple[str, str]] = {
    "subscribe": ("contact", "contact.subscribed"),
    "update": ("contact", "contact.updated"),
    "unsubscribe": ("contact", "contact.unsubscribed"),
    "contact_tag_added": ("contact", "contact.tag_added"),
    "contact_tag_removed": ("contact", "contact.tag_removed"),
    "deal_add": ("deal", "deal.created"),
    "deal_update": ("deal", "deal.updated"),
    "account_add": ("account", "account.created"),
    "account_update": ("account", "account.updated"),
}

CONTACT_FIELDS = {"id": "id", "email": "email", "first_name": "firstName", "last_name": "lastName",
                  "phone": "phone", "orgname": "orgname", "ip": "ip"}
DEAL_FIELDS = {"id": "id", "title": "title", "create_date_iso": "cdate", "orgid": "account",
               "stageid": "stage", "stage_title": "stageTitle", "pipelineid": "group",
               "pipeline_title": "pipelineTitle", "currency": "currency", "owner": "owner",
               "contactid": "contact", "status": "status"}
ACCOUNT_FIELDS = {"id": "id", "name": "name", "account_url": "accountUrl",
                  "created_timestamp": "createdTimestamp", "updated_timestamp": "updatedTimestamp"}


@dataclass(frozen=True)
class Change:
    type: str
    resource: str
    record_id: str
    occurred_at: dt.datetime
    initiated_by: str | None
    record: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)   # updated_fields, tag, list_id when AC sent them


def _renamed(block: dict, names: dict[str, str]) -> dict[str, Any]:
    return {target: block[source] for source, target in names.items() if isinstance(block.get(source), str)}


def _occurred_at(value: str | None, received_at: dt.datetime) -> dt.datetime:
    if not value:
        raise BadRequest("date_time is required")
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadRequest("date_time must be an ISO 8601 date and time") from None
    if when.tzinfo is None:  # never observed: AC sends an offset. Without one the receive time is safer.
        return received_at
    return when.astimezone(dt.UTC)


def _custom_fields(block) -> dict[str, Any]:
    """`<x>[fields][i][key|value]` (deals, accounts): {label: value}."""
    out = {}
    for item in items(block):
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            out[item["key"]] = item.get("value")
    return out


def _contact(block: dict) -> dict[str, Any]:
    record = _renamed(block, CONTACT_FIELDS)
    if isinstance(block.get("tags"), str):
        record["tags"] = [tag.strip() for tag in block["tags"].split(",") if tag.strip()]
    fields = block.get("fields")
    if isinstance(fields, dict):
        record["fieldValues"] = [{"field": key, "value": value} for key, value in fields.items()
                                 if isinstance(value, str)]
    return record


_DISPLAY = re.compile(r"([0-9]{1,3}(?:,[0-9]{3})*|[0-9]+)\.([0-9]{2})")


def _cents(raw: str | None, display: str | None) -> str | None:
    """The REST `value` (cents) from `value_raw` (whole units). The display string (`"1,044,055.00"`) gives
    the cents as well when it reads unambiguously and agrees with `value_raw`; else whole units x 100."""
    try:
        units = int(Decimal(raw.strip())) if raw and raw.strip() else None
    except (InvalidOperation, ValueError, OverflowError):
        units = None
    match = _DISPLAY.fullmatch((display or "").strip())
    if match and (units is None or int(match.group(1).replace(",", "")) == units):
        return str(int(match.group(1).replace(",", "")) * 100 + int(match.group(2)))
    return None if units is None else str(units * 100)


def _deal(block: dict) -> dict[str, Any]:
    record = _renamed(block, DEAL_FIELDS)
    cents = _cents(text(block.get("value_raw")), text(block.get("value")))
    if cents is not None:
        record["value"] = cents
    owner = " ".join(part for part in (text(block.get("owner_firstname")), text(block.get("owner_lastname")))
                     if part)
    if owner:
        record["ownerName"] = owner
    if isinstance(block.get("fields"), dict):
        record["customFields"] = _custom_fields(block["fields"])
    return record


def _account(block: dict) -> dict[str, Any]:
    record = _renamed(block, ACCOUNT_FIELDS)
    if isinstance(block.get("fields"), dict):
        record["customFields"] = _custom_fields(block["fields"])
    return record


_RECORDS = {"contact": _contact, "deal": _deal, "account": _account}


def change(delivery: dict, *, received_at: dt.datetime) -> Change:
    """The change a delivery describes; BadRequest when it is not a delivery this service subscribes to."""
    ac_type = text(delivery.get("type"))
    if ac_type not in TYPES:
        raise BadRequest("Unsupported or missing event type")
    resource, change_type = TYPES[ac_type]
    block = delivery.get(resource)
    record_id = text(block.get("id")) if isinstance(block, dict) else None
    if record_id is None or not _ID.fullmatch(record_id.strip()):
        raise BadRequest(f"{resource}[id] is required")
    details: dict[str, Any] = {}
    list_id = text(delivery.get("list"))
    if ac_type == "subscribe" and (list_id or "0").strip() in ("", "0"):
        change_type = "contact.created"
    elif ac_type in ("subscribe", "unsubscribe") and list_id and _ID.fullmatch(list_id):
        details["list_id"] = list_id
    if ac_type.startswith("contact_tag_") and text(delivery.get("tag")):
        details["tag"] = delivery["tag"]
    updated = [name for name in items(delivery.get("updated_fields")) if isinstance(name, str)]
    if updated:
        details["updated_fields"] = updated
    initiated_by = text(delivery.get("initiated_by"))
    return Change(type=change_type, resource=resource, record_id=record_id.strip(),
                  occurred_at=_occurred_at(text(delivery.get("date_time")), received_at),
                  initiated_by=initiated_by[:32] if initiated_by else None,
                  record=_RECORDS[resource](block), details=details)
