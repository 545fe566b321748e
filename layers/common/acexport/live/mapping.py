"""An AC webhook delivery (parsed by `form.parse`) as a change of the feed, in the export's field names.

Sources of each behaviour are in docs/live.md ("What AC sends"); the 17 published real deliveries it is
tested against are tests/fixtures/ac_webhooks/ (GearPlug's raw 2017 `$_POST` captures, Activepieces' 2024
trigger samples, AC's 2013 blog example):
- `date_time` is ISO 8601 with a numeric offset (`2017-11-27T12:51:37-06:00`), second precision (AC's 2013
  example has none: the receive time is used then);
- `contact[tags]` is one comma-separated string (`"tag1, tag2"`); `contact[fields][<key>]` a custom field
  value whose key is the field id (`[27]`) or its personalisation tag (`[member_id]`): public receivers read
  both, so both are resolved against the account's field catalogue (`fields.py`) into the export's
  `fieldValues` / `customFields` / `customFieldsByTag`; a key that matches no field is kept as sent;
- `deal[fields][i][id|key|value]` and `account[fields][i][id|key|value]` (`key` is the label, the export's
  `customFields` key); a multi-value field's value is a list (`[value][0]`, `[value][1]`), kept as a list;
- `deal[value]` is a display string (`"1,044,055.00"`); `deal[value_raw]` is whole currency units
  (`"1044055"`) while the REST API (and so the export) gives `value` in cents; `deal[orgid]=0` is no account;
- webhook deal keys differ from REST: `stageid` = `stage`, `pipelineid` = `group`, `contactid` = `contact`;
- `updated_fields[i]` lists REST field names; a tag event carries the tag name in `tag`; an unsubscribe
  carries its list as `list` (admin) or `list[][id]` (public).

Everything is bounded (the feed jam finding, docs/live.md "Limits"): numbers are read from digits only and a
bounded length, dates must be readable and representable, every text is cut to a size and every list to a
count, and the record to MAX_RECORD_BYTES (its largest custom fields and tags go first). What was cut is
named in the change's `truncated`. Any delivery that cannot be read is a BadRequest (400), never a 500.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

from acexport.errors import BadRequestError
from acexport.live import fields as field_catalogue
from acexport.live.form import is_list, items, keys, text

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

# Limits (docs/live.md "Limits"): bytes as stored (JSON text, UTF-8; a control character costs 6).
MAX_TEXT_BYTES = 1024           # a record's own field, a tag, a custom field's label, a list item
MAX_VALUE_BYTES = 4096          # a custom field's value (AC's text areas hold notes)
MAX_CUSTOM_FIELDS = 250         # per record; AC accounts have tens
MAX_LIST_ITEMS = 100            # options of one multi-value field, tags, updated_fields
MAX_RECORD_BYTES = 32 * 1024    # the record as stored; its largest custom fields and tags are dropped first
MAX_TRUNCATED = 50              # names in `truncated`
MAX_DATE_CHARS = 40


@dataclass(frozen=True)
class Change:
    type: str
    resource: str
    record_id: str
    occurred_at: dt.datetime
    initiated_by: str | None
    record: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)   # updated_fields, tag, list_id, truncated


def size(value) -> int:
    """Bytes of `value` as the feed stores it (compact JSON, UTF-8)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


class Cut:
    """Cuts texts and lists to their limits and remembers what it cut (the change's `truncated`)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def mark(self, name: str) -> None:
        if name not in self.names:
            self.names.append(name)

    def text(self, value: str, name: str, limit: int = MAX_TEXT_BYTES) -> str:
        if len(value) * 6 + 2 <= limit:       # no character costs more than 6 bytes as stored
            return value
        over = size(value)
        if over <= limit:
            return value
        while over > limit:
            value = value[:max(0, len(value) * limit // over - 1)]
            over = size(value)
        self.mark(name)
        return value

    def value(self, raw, name: str):
        """A custom field's value: text, or a multi-value field's list of texts; None for anything else."""
        if isinstance(raw, str):
            return self.text(raw, name, MAX_VALUE_BYTES)
        if is_list(raw):
            values = [v for v in items(raw) if isinstance(v, str)]
            if len(values) > MAX_LIST_ITEMS:
                values = values[:MAX_LIST_ITEMS]
                self.mark(name)
            return [self.text(v, name) for v in values]
        return None


def _renamed(block: dict, names: dict[str, str], cut: Cut) -> dict[str, Any]:
    return {target: cut.text(block[source], f"record.{target}") for source, target in names.items()
            if isinstance(block.get(source), str)}


def _occurred_at(value: str | None, received_at: dt.datetime) -> dt.datetime:
    if not value:
        raise BadRequestError("date_time is required")
    try:
        if len(value) > MAX_DATE_CHARS:
            raise ValueError
        when = dt.datetime.fromisoformat(value.strip())
        if when.tzinfo is None:   # AC's 2013 example (`2013-09-25 15:31:45`): the receive time is safer
            return received_at
        return when.astimezone(dt.UTC)
    except (ValueError, OverflowError):   # OverflowError: 0001-01-01T00:00:00+01:00 has no UTC time
        raise BadRequestError("date_time must be an ISO 8601 date and time") from None


@dataclass
class Custom:
    """One custom field of a delivery: `title` keys `customFields`; contacts also have `field` (the id, or
    the key as sent) for `fieldValues` and `tag` (the personalisation tag) for `customFieldsByTag`."""

    title: str
    value: Any
    field: str | None = None
    tag: str | None = None

    def cost(self) -> int:
        copies = 1 + (self.field is not None) + (self.tag is not None)
        return copies * size(self.value) + size(self.title) + size(self.field or "") + size(self.tag or "") + 24


def _labelled(block, cut: Cut) -> list[Custom]:
    """`<x>[fields][i][id|key|value]` (deals, accounts; Activepieces) or `<x>[fields][<label>]=value`
    (api-evangelist's AsyncAPI copy): {label: value}, a field without a label under its id."""
    out = []
    for key in _keys(block, cut):
        item = block[key]
        if isinstance(item, dict) and not is_list(item):
            label = text(item.get("key")) or text(item.get("id")) or key
            raw = item.get("value")
        else:
            label, raw = key, item
        label = cut.text(label, "record.customFields")
        out.append(Custom(label, cut.value(raw, f"record.customFields.{label}")))
    return out


def _keys(block, cut: Cut) -> list[str]:
    names = keys(block)
    if len(names) > MAX_CUSTOM_FIELDS:
        cut.mark("record.customFields")
        names = names[:MAX_CUSTOM_FIELDS]
    return names


def _contact(block: dict, cut: Cut, catalogue: list[dict] | None) -> tuple[dict, list[Custom], list[str]]:
    record = _renamed(block, CONTACT_FIELDS, cut)
    tags = []
    if isinstance(block.get("tags"), str):
        tags = [cut.text(tag.strip(), "record.tags") for tag in block["tags"].split(",") if tag.strip()]
        if len(tags) > MAX_LIST_ITEMS:
            tags = tags[:MAX_LIST_ITEMS]
            cut.mark("record.tags")
    customs = []
    fields = block.get("fields")
    if isinstance(fields, dict):
        resolve = field_catalogue.resolver(catalogue)
        for key in _keys(fields, cut):
            definition = resolve(key)
            title = cut.text(definition.title if definition else key, "record.customFields")
            value = cut.value(fields[key], f"record.customFields.{title}")
            if definition:
                value = definition.read(value)
            customs.append(Custom(title, value, field=definition.id if definition else key,
                                  tag=definition.tag if definition else None))
    return record, customs, tags


_DIGITS = re.compile(r"[0-9]{1,15}")
_DISPLAY = re.compile(r"([0-9]{1,3}(?:,[0-9]{3}){0,4}|[0-9]{1,15})\.([0-9]{2})")


def _cents(raw: str | None, display: str | None) -> str | None:
    """The REST `value` (cents) from `value_raw` (whole units). The display string (`"1,044,055.00"`) gives
    the cents as well when it reads unambiguously and agrees with `value_raw`; else whole units x 100.
    Digits only, at most 15 of them: anything else is no value (never a costly conversion)."""
    raw = (raw or "").strip()
    units = int(raw) if _DIGITS.fullmatch(raw) else None
    match = _DISPLAY.fullmatch((display or "").strip())
    if match and (units is None or int(match.group(1).replace(",", "")) == units):
        return str(int(match.group(1).replace(",", "")) * 100 + int(match.group(2)))
    return None if units is None else str(units * 100)


def _deal(block: dict, cut: Cut, catalogue) -> tuple[dict, list[Custom], list[str]]:
    record = _renamed(block, DEAL_FIELDS, cut)
    if "account" in record and record["account"].strip() in ("", "0"):   # `orgid=0`: no account (export: null)
        record["account"] = None
    cents = _cents(text(block.get("value_raw")), text(block.get("value")))
    if cents is not None:
        record["value"] = cents
    owner = " ".join(part for part in (text(block.get("owner_firstname")), text(block.get("owner_lastname")))
                     if part)
    if owner:
        record["ownerName"] = cut.text(owner, "record.ownerName")
    return record, _labelled(block.get("fields"), cut), []


def _account(block: dict, cut: Cut, catalogue) -> tuple[dict, list[Custom], list[str]]:
    return _renamed(block, ACCOUNT_FIELDS, cut), _labelled(block.get("fields"), cut), []


_RECORDS = {"contact": _contact, "deal": _deal, "account": _account}


def _render(record: dict, resource: str, customs: list[Custom], tags: list[str] | None,
            has_fields: bool) -> dict:
    out = dict(record)
    if resource == "contact" and tags is not None:
        out["tags"] = list(tags)
    if has_fields:
        out["customFields"] = {c.title: c.value for c in customs}
        if resource == "contact":
            out["fieldValues"] = [{"field": c.field, "value": c.value} for c in customs]
            out["customFieldsByTag"] = {c.tag: c.value for c in customs if c.tag}
    return out


def _fit(record: dict, resource: str, customs: list[Custom], tags: list[str] | None, has_fields: bool,
         cut: Cut) -> dict:
    """The record within MAX_RECORD_BYTES: the largest custom fields and tags are left out first."""
    rendered = _render(record, resource, customs, tags, has_fields)
    over = size(rendered) - MAX_RECORD_BYTES
    if over <= 0:
        return rendered
    candidates = sorted([(c.cost(), "c", i) for i, c in enumerate(customs)]
                        + [(size(t) + 1, "t", i) for i, t in enumerate(tags or [])], reverse=True)
    dropped_customs: set[int] = set()
    dropped_tags: set[int] = set()
    for cost, kind, index in candidates:
        if over <= 0:
            break
        (dropped_customs if kind == "c" else dropped_tags).add(index)
        cut.mark(f"record.customFields.{customs[index].title}" if kind == "c" else "record.tags")
        over -= cost
    customs = [c for i, c in enumerate(customs) if i not in dropped_customs]
    tags = None if tags is None else [t for i, t in enumerate(tags) if i not in dropped_tags]
    rendered = _render(record, resource, customs, tags, has_fields)
    if size(rendered) > MAX_RECORD_BYTES:   # cannot happen with the limits above; never store more
        cut.mark("record")
        rendered = {"id": record.get("id")}
    return rendered


def _list_ids(value) -> list[str]:
    """`list=3` (admin) or `list[][id]=3` (a public unsubscribe, possibly several lists)."""
    candidates: list[str | None]
    if isinstance(value, str):
        candidates = [value.strip()]
    else:
        candidates = [text(item.get("id")) for item in items(value) if isinstance(item, dict)]
    return [c.strip() for c in candidates[:MAX_LIST_ITEMS] if c and _ID.fullmatch(c.strip()) and c.strip() != "0"]


def _block(delivery: dict, resource: str) -> tuple[dict, str]:
    """The delivery's record block and the record's id; BadRequest without one."""
    block = delivery.get(resource)
    record_id = text(block.get("id")) if isinstance(block, dict) else None
    if not isinstance(block, dict) or record_id is None or not _ID.fullmatch(record_id.strip()):
        raise BadRequestError(f"{resource}[id] is required")
    return block, record_id.strip()


def _list_change(ac_type: str, change_type: str, delivery: dict, details: dict[str, Any]) -> str:
    """The list ids of a (un)subscribe, in `details`; a subscribe to no list is a contact created."""
    lists = _list_ids(delivery.get("list"))
    if ac_type == "subscribe" and not lists:
        return "contact.created"
    if ac_type in ("subscribe", "unsubscribe") and lists:
        details["list_id"] = lists[0]
        if len(lists) > 1:
            details["list_ids"] = lists
    return change_type


def _updated_fields(delivery: dict, cut: Cut) -> list[str]:
    """AC's `updated_fields` names (strings only), at most MAX_LIST_ITEMS of them."""
    updated = [name for name in items(delivery.get("updated_fields")) if isinstance(name, str)]
    if len(updated) > MAX_LIST_ITEMS:
        updated = updated[:MAX_LIST_ITEMS]
        cut.mark("updated_fields")
    return [cut.text(name, "updated_fields") for name in updated]


def change(delivery: dict, *, received_at: dt.datetime, catalogue: list[dict] | None = None) -> Change:
    """The change a delivery describes; BadRequest when it is not a delivery this service subscribes to.
    `catalogue`: the account's contact field definitions (`fields.catalogue`), when known."""
    ac_type = text(delivery.get("type"))
    if ac_type not in TYPES:
        raise BadRequestError("Unsupported or missing event type")
    resource, change_type = TYPES[ac_type]
    block, record_id = _block(delivery, resource)
    occurred_at = _occurred_at(text(delivery.get("date_time")), received_at)
    cut = Cut()
    details: dict[str, Any] = {}
    change_type = _list_change(ac_type, change_type, delivery, details)
    if ac_type.startswith("contact_tag_") and text(delivery.get("tag")):
        details["tag"] = cut.text(delivery["tag"], "tag")
    updated = _updated_fields(delivery, cut)
    if updated:
        details["updated_fields"] = updated
    initiated_by = text(delivery.get("initiated_by"))
    base, customs, tags = _RECORDS[resource](block, cut, catalogue)
    record = _fit(base, resource, customs, tags if isinstance(block.get("tags"), str) else None,
                  isinstance(block.get("fields"), dict), cut)
    if cut.names:
        details["truncated"] = cut.names[:MAX_TRUNCATED]
    return Change(type=change_type, resource=resource, record_id=record_id, occurred_at=occurred_at,
                  initiated_by=initiated_by[:32] if initiated_by else None, record=record, details=details)
