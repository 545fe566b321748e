"""Custom fields in export queries: the account's definitions, the names a query may use for them, and the
filter and order each becomes (docs/query.md, "Custom fields").

A query names a custom field as the export shows it in `customFields` (a contact field's `title`, a deal
or account field's `fieldLabel`), compared case-insensitively and ignoring runs of spaces; for contacts
also by its personalisation tag (`perstag`, with or without the `%...%` of AC's templates). A standard
filter or order of the resource keeps its meaning; `customField:<id>` names a field by its AC id when
names collide. An unknown or ambiguous name is a 400 that names it and lists the custom fields it could be.

Values are compared as the export shows them (multi-select `||a||b||` as a list, as `records` reads them):
a filter matches the value exactly, case-insensitively (a multi-select when it holds the option); an order
sorts number fields as numbers, date fields as dates, the rest as text, records without a value last.
Filters and orders read the values a record carries under VALUES (put there by `records.attach_custom_values`
before any filter or order is applied).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from acexport.ac import reference
from acexport.ac.client import ACClient
from acexport.ac.resources import Filter, Order, Record, Resource
from acexport.errors import BadRequestError

VALUES = "_customValues"      # transient: {field id: exported value}, or None when unknown; popped by enrich()
ID_FORM = re.compile(r"customfield:([0-9]{1,18})", re.IGNORECASE)
MAX_LISTED = 12               # candidates named in a 400

# Where each resource's definitions live, and the names AC gives their parts (AC reference: /fields has
# `title`, `perstag`, `type`; /dealCustomFieldMeta and /accountCustomFieldMeta have `fieldLabel`, `fieldType`).
SOURCES = {"contacts": ("/fields", "fields", "title", "type", "perstag"),
           "deals": ("/dealCustomFieldMeta", "dealCustomFieldMeta", "fieldLabel", "fieldType", None),
           "accounts": ("/accountCustomFieldMeta", "accountCustomFieldMeta", "fieldLabel", "fieldType", None)}
NUMBER_TYPES = {"number", "currency", "money", "integer", "decimal"}    # deal/account `fieldType`s
DATE_TYPES = {"date", "datetime"}
# Field types whose values AC keeps as "||option 1||option 3||" (AC reference, create a field value:
# "For multi-select options this needs to be in the format of ||option1||option2||"; its dropdown
# example uses the same form). Deal/account multiselect values are written as arrays; their read form is
# not documented, so the same reading applies when a value has that form.
MULTI_TYPES = {"checkbox", "listbox", "multiselect", "dropdown"}
ONE_CHOICE = {"dropdown"}     # one option: stored as "X" or "||X||" (both forms are asked of AC)


@dataclass(frozen=True)
class CustomField:
    id: str
    name: str                  # as the export's `customFields` shows it
    type: str                  # AC's type, lower case
    tag: str | None = None     # contacts: the personalisation tag

    @property
    def id_form(self) -> str:
        return f"customField:{self.id}"

    def describe(self) -> str:
        return f"'{self.name}' ({self.id_form})"


def _fields(source: tuple, items: list[dict]) -> tuple[CustomField, ...]:
    _, _, name, kind, tag = source
    return tuple(CustomField(str(item.get("id")), str(item.get(name)), str(item.get(kind) or "").lower(),
                             str(item[tag]) if tag and item.get(tag) else None)
                 for item in items if item.get("id") is not None and item.get(name))


def _contact_fields(items: list[dict]) -> tuple[CustomField, ...]:
    return _fields(SOURCES["contacts"], items)


def _deal_fields(items: list[dict]) -> tuple[CustomField, ...]:
    return _fields(SOURCES["deals"], items)


def _account_fields(items: list[dict]) -> tuple[CustomField, ...]:
    return _fields(SOURCES["accounts"], items)


_BUILD = {"contacts": _contact_fields, "deals": _deal_fields, "accounts": _account_fields}


def meta(client: ACClient, resource: str) -> list[dict] | None:
    """The resource's raw definitions (cached reference data). Contacts' /fields are needed for every contact
    page; the deal and account meta are optional (a key whose user may not read them: no custom fields)."""
    path, collection, *_ = SOURCES[resource]
    return reference.reference(client, path, collection, optional=resource != "contacts")


def definitions(client: ACClient, resource: str) -> tuple[CustomField, ...]:
    """The account's custom fields of a resource (built once per cached list)."""
    return reference.derived(meta(client, resource), _BUILD[resource])


# ---- names -------------------------------------------------------------------------------------------

def normal(name: str) -> str:
    """How names compare: Unicode-normalised (NFKC), case-folded, runs of spaces as one, trimmed."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def _listed(fields) -> str:
    shown = [f.describe() for f in fields[:MAX_LISTED]]
    more = len(fields) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def resolve(fields: tuple[CustomField, ...], resource: Resource, kind: str, name: str) -> CustomField:
    """The custom field a query's `filters[name]`/`orders[name]` means (kind: "filter" or "order")."""
    parameter = f"{kind}s[{name[:64]}]"
    if match := ID_FORM.fullmatch(name.strip()):
        found = [f for f in fields if f.id == match.group(1)]
        if found:
            return found[0]
        raise BadRequestError(f"{resource.name} has no custom field with id {match.group(1)}", parameter=parameter)
    wanted = normal(name)
    tag = wanted.strip("%")
    found = [f for f in fields if normal(f.name) == wanted or (f.tag and normal(f.tag) == tag)]
    if len(found) == 1:
        return found[0]
    standard = sorted(resource.filters if kind == "filter" else resource.orders)
    if found:
        raise BadRequestError(f"The custom field name '{name[:64]}' is ambiguous for {resource.name}: it names "
                         f"{_listed(found)}; use {kind}s[customField:<id>]", parameter=parameter,
                         supported=standard)
    raise _unsupported(fields, resource, kind, name, standard, parameter)


def _unsupported(fields: tuple[CustomField, ...], resource: Resource, kind: str, name: str, standard: list[str],
                 parameter: str) -> BadRequestError:
    """A name that is neither a supported field nor a custom field: the error lists the closest custom fields."""
    wanted = normal(name)
    close = difflib.get_close_matches(wanted, [normal(f.name) for f in fields], n=MAX_LISTED, cutoff=0.6)
    candidates = [f for f in fields if normal(f.name) in close] or list(fields)
    custom = f" Custom fields: {_listed(candidates)}." if fields else f" {resource.name} has no custom fields."
    return BadRequestError(f"Unsupported {kind} '{name[:64]}' for {resource.name}: neither a supported field nor "
                           f"a custom field. Supported: {', '.join(standard)}.{custom}", parameter=parameter,
                           supported=standard)


# ---- what a custom field filters and orders by -----------------------------------------------------

def value_of(record: Record, field_id: str) -> Any:
    return (record.get(VALUES) or {}).get(field_id)


def _same(value: Any, wanted: str) -> bool:
    return value is not None and str(value).strip().casefold() == wanted


def matcher(field: CustomField):
    """The exported value equals the filter's, case-insensitively; a multi-select holds it as an option."""
    def matches(record: Record, value: str) -> bool:
        wanted = value.strip().casefold()
        found = value_of(record, field.id)
        if isinstance(found, list):
            return any(_same(option, wanted) for option in found)
        return _same(found, wanted)
    return matches


def _number(value: Any) -> Decimal:
    number = Decimal(str(value).strip().replace(",", ""))
    if not number.is_finite():
        raise ValueError(value)
    return number


def _moment(value: Any) -> dt.datetime:
    """A date as its midnight UTC, a date-time as an instant (without an offset: UTC)."""
    text = str(value).strip()
    moment = dt.datetime.fromisoformat(text) if len(text) > 10 else \
        dt.datetime.combine(dt.date.fromisoformat(text), dt.time())
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _text(value: Any) -> str:
    return ", ".join(map(str, value)).casefold() if isinstance(value, list) else str(value).casefold()


def sort_key(field: CustomField):
    """(0, value) for a record with a readable value, (1, "") otherwise (last, in both directions:
    resources.sort_locally). A value that does not read as the field's type counts as none."""
    convert = _number if field.type in NUMBER_TYPES else _moment if field.type in DATE_TYPES else _text

    def key(record: Record) -> tuple:
        value = value_of(record, field.id)
        if value in (None, "", []):
            return (1, "")
        try:
            return (0, convert(value))
        except (TypeError, ValueError, InvalidOperation, ArithmeticError):
            return (1, "")
    return key


def custom_names(resource: Resource, filters, orders) -> tuple[list[str], list[str]]:
    """The names of a query that are not the resource's own filters and orders."""
    return ([name for name, _ in filters if name not in resource.filters],
            [name for name, _ in orders if name not in resource.orders])


def with_custom_fields(client: ACClient, resource: Resource, filters, orders) -> tuple[Resource, set[str]]:
    """The resource extended with the query's custom-field filters and orders (one cached reference call
    when the query names any; none otherwise). Contacts' single-value fields are narrowed by AC's
    /fieldValues (`Filter.field_value`); every custom filter is then checked here. Also the ids of the
    fields the query names (the values records.attach_custom_values must read)."""
    filter_names, order_names = custom_names(resource, filters, orders)
    if not filter_names and not order_names:
        return resource, set()
    fields = definitions(client, resource.name)
    extra_filters, extra_orders, used = {}, {}, set()
    for name in filter_names:
        field = resolve(fields, resource, "filter", name)
        extra_filters[name] = Filter(lambda value: [], matcher(field), field_value=(
            at_ac(field) if resource.name == "contacts" else None))
        used.add(field.id)
    for name in order_names:
        field = resolve(fields, resource, "order", name)
        extra_orders[name] = Order(key=sort_key(field))
        used.add(field.id)
    return dataclasses.replace(resource, filters={**resource.filters, **extra_filters},
                               orders={**resource.orders, **extra_orders}), used


def at_ac(field: CustomField):
    """How AC's `GET /fieldValues?filters[fieldid]=&filters[val]=` ("equal the value", AC reference) narrows a
    contact filter: the (field id, value) pairs to ask, whose answers together hold every match; None for a
    multi-select (`||a||X||` never equals "X": read the contacts and check here)."""
    if field.type in MULTI_TYPES - ONE_CHOICE:
        return None
    if field.type in ONE_CHOICE:
        return lambda value: [(field.id, value.strip()), (field.id, f"||{value.strip()}||")]
    return lambda value: [(field.id, value.strip())]
