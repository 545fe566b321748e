"""What each exported resource supports, and how it maps onto AC's real API.

AC silently ignores parameters it doesn't know, and its real filters differ from what clients send
(docs/ac-behaviour.md, filters and orders). So every filter and order this API accepts is declared
here with what it becomes at AC:
- an exact AC parameter (`to_ac` only), or
- an AC parameter that narrows plus an exact check applied here (`to_ac` + `matches`), e.g. contacts'
  `filters[firstName]` → AC `search=` then firstName equals (case-insensitive);
- an order AC applies (`ac_field`), or one applied here over the whole filtered set (`key`).
Anything not declared is refused with a 400 that names what is supported.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from acexport.errors import BadRequestError

Params = list[tuple[str, str]]
Record = dict[str, Any]

_ID = re.compile(r"[0-9]{1,18}")
_DOLLARS = re.compile(r"[0-9]{1,13}")


# ---- building blocks ---------------------------------------------------------------------------

def param(name: str) -> Callable[[str], Params]:
    return lambda value: [(name, value)]


def ac_filter(name: str) -> Callable[[str], Params]:
    return lambda value: [(f"filters[{name}]", value)]


def equals_ci(record_field: str) -> Callable[[Record, str], bool]:
    return lambda record, value: str(record.get(record_field) or "").strip().casefold() == value.casefold()


def integer(label: str, values: set[str] | None = None) -> Callable[[str, str], str]:
    def check(name: str, value: str) -> str:
        text = value.strip()
        # An id is ASCII digits: AC does not read "²", "١٢", "--5" or "-1" and would silently ignore them.
        valid = text in values if values is not None else _ID.fullmatch(text) is not None
        if not valid:
            allowed = f" ({', '.join(sorted(values, key=int))})" if values else ""
            raise BadRequestError(f"filters[{name}] must be {label}{allowed}", parameter=f"filters[{name}]")
        return text
    return check


def date(name: str, value: str) -> str:
    try:
        return dt.date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise BadRequestError(f"filters[{name}] must be a date YYYY-MM-DD (AC filters by day)",
                         parameter=f"filters[{name}]") from None


def dollars(name: str, value: str) -> str:
    """Whole dollars, as AC takes them: `filters[minimum_value]`/`[maximum_value]` are integers "In USD with
    dollar portion" (AC reference, list all deals; a deal's `value` is in cents). Plain digits only:
    float() would also pass "nan", "inf" and "1e308", and "1500.50" would be read by AC in its own way."""
    text = value.strip()
    if not _DOLLARS.fullmatch(text):
        raise BadRequestError(f"filters[{name}] must be a whole number of dollars (AC takes no cents), e.g. 1500",
                         parameter=f"filters[{name}]")
    return text


def one_of(label: str, values: tuple[str, ...]) -> Callable[[str, str], str]:
    def check(name: str, value: str) -> str:
        text = value.strip().lower()
        if text not in values:
            raise BadRequestError(f"filters[{name}] must be {label} ({', '.join(values)})",
                                  parameter=f"filters[{name}]")
        return text
    return check


def local_key(record_field: str, kind: Callable[[Any], Any] = str) -> Callable[[Record], tuple]:
    """Sort key that puts missing values last in ASC and never compares None with a value."""
    def key(record: Record) -> tuple:
        value = record.get(record_field)
        if value in (None, ""):
            return (1, "")
        try:
            return (0, kind(value))
        except (TypeError, ValueError):
            return (1, "")
    return key


def casefold(value: Any) -> str:
    return str(value).casefold()


def timestamp(value: Any) -> dt.datetime:
    """AC timestamps come with and without a UTC offset; compare them as instants (naive = UTC)."""
    moment = dt.datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def full_name(record: Record) -> tuple:
    """Contacts' `name` order applied here: first then last name (case-insensitive), missing last."""
    first, last = (str(record.get(k) or "").strip() for k in ("firstName", "lastName"))
    return (0, first.casefold(), last.casefold()) if first or last else (1, "", "")


@dataclass(frozen=True)
class Filter:
    to_ac: Callable[[str], Params]
    matches: Callable[[Record, str], bool] | None = None   # set when AC only narrows
    check: Callable[[str, str], str] | None = None
    # A contact custom field AC can narrow by /fieldValues: value -> [(field id, value to ask)] (custom_fields)
    field_value: Callable[[str], list[tuple[str, str]]] | None = None

    def keeps(self, record: Record, value: str) -> bool:
        """Whether a filter applied here keeps the record (plan() applies here only filters with `matches`)."""
        if self.matches is None:
            raise TypeError("a filter ActiveCampaign applies exactly is not applied here")
        return self.matches(record, value)


@dataclass(frozen=True)
class Order:
    ac_field: str | None = None                             # None: ordered by this service
    key: Callable[[Record], Any] | None = None

    def sort_key(self, record: Record) -> Any:
        """The key an order applied here sorts by (plan() applies here only orders with a `key`)."""
        if self.key is None:
            raise TypeError("an order ActiveCampaign applies is not applied here")
        return self.key(record)


@dataclass(frozen=True)
class Sideload:
    """A collection AC adds beside the records for an `include=` (AC reference, "Side Loading")."""
    name: str                  # AC's top-level key, e.g. "contactTags"
    key: str                   # field of an item naming its record, e.g. "contact"
    attach: bool = False       # True: the items replace the record's id list (contacts' fieldValues)


@dataclass(frozen=True)
class Resource:
    name: str
    path: str
    collection: str
    filters: dict[str, Filter]
    orders: dict[str, Order]
    base_params: Params = field(default_factory=list)
    sideloads: tuple[Sideload, ...] = ()
    # Sent when the caller gives no order AC applies, so that pages (offsets) come in an order AC documents.
    default_order: Params = field(default_factory=list)


@dataclass(frozen=True)
class Plan:
    """How one query runs: AC parameters, plus what this service must apply itself."""
    params: Params
    local_filters: tuple[tuple[Filter, str], ...]
    local_orders: tuple[tuple[Order, str], ...]
    lookups: tuple[tuple[tuple[str, str], ...], ...] = ()   # per filter: the /fieldValues queries that narrow it

    @property
    def scans(self) -> bool:
        """True when the whole (AC-filtered) set must be read to filter, count or order correctly."""
        return bool(self.local_filters or self.local_orders or self.lookups)


def _filter_steps(resource: Resource, filters) -> tuple[Params, list[tuple[Filter, str]],
                                                        list[tuple[tuple[str, str], ...]]]:
    """The filters' AC parameters, the filters applied here, and the /fieldValues lookups."""
    exact: Params = list(resource.base_params)
    narrowing: Params = []
    local_filters: list[tuple[Filter, str]] = []
    lookups: list[tuple[tuple[str, str], ...]] = []
    for name, raw in filters:
        spec = resource.filters[name]
        value = spec.check(name, raw) if spec.check else raw
        if spec.field_value is not None:
            lookups.append(tuple(spec.field_value(value)))
        if spec.matches is None:
            exact += spec.to_ac(value)
        else:
            narrowing += spec.to_ac(value)
            local_filters.append((spec, value))
    # An exact AC parameter wins over a narrowing one of the same name (the local check still applies).
    taken = {key for key, _ in exact}
    for key, value in narrowing:
        if key not in taken:
            exact.append((key, value))
            taken.add(key)
    return exact, local_filters, lookups


def plan(resource: Resource, filters, orders) -> Plan:
    """How a query runs. Orders go to AC when AC applies all of them and no contact set is narrowed by
    /fieldValues (its records are read by id, in several calls); otherwise all are applied here, which an
    order AC applies on something the record does not carry (deals' contact_name) cannot be: a 400."""
    exact, local_filters, lookups = _filter_steps(resource, filters)
    specs = [(resource.orders[name], direction) for name, direction in orders]
    if not specs or lookups or any(order.ac_field is None for order, _ in specs):
        for (order, _), (name, _) in zip(specs, orders, strict=True):
            if order.key is None:
                raise BadRequestError(f"orders[{name}] is applied by ActiveCampaign and cannot be combined with an "
                                 "order or filter applied here (a custom field's)", parameter=f"orders[{name}]")
        return Plan(exact + resource.default_order, tuple(local_filters), tuple(specs), tuple(lookups))
    exact += [(f"orders[{order.ac_field}]", direction) for order, direction in specs]
    return Plan(exact, tuple(local_filters), ())


def _last_when_descending(key: tuple) -> tuple:
    return (-key[0], *key[1:])


def _descending_key(order: Order, record: Record) -> tuple:
    return _last_when_descending(order.sort_key(record))


def sort_locally(records: list[Record], orders: tuple[tuple[Order, str], ...]) -> None:
    """Apply several orders, the first given being the primary one (stable sorts, last key first). Keys are
    (0, value) or (1, "") for a record without a value, which comes last in both directions."""
    for order, direction in reversed(orders):
        if direction == "DESC":
            records.sort(key=partial(_descending_key, order), reverse=True)
        else:
            records.sort(key=order.sort_key)


# ---- the resources -----------------------------------------------------------------------------

_DATE_FILTERS = ("created_after", "created_before", "updated_after", "updated_before")

CONTACTS = Resource(
    name="contacts",
    path="/contacts",
    collection="contacts",
    # One call per page: the contacts' custom field values, tag links and list memberships come sideloaded
    # (AC reference "Side Loading"; contactTags/contactLists as in public clients, e.g. lib-go-activecampaign).
    sideloads=(Sideload("fieldValues", "contact", attach=True), Sideload("contactTags", "contact"),
               Sideload("contactLists", "contact")),
    base_params=[("include", "fieldValues,contactTags,contactLists")],
    filters={
        "email": Filter(param("email")),                       # AC: exact email
        "email_like": Filter(param("email_like")),             # AC: email contains
        "search": Filter(param("search")),                     # AC: names, org, phone or email contain
        "phone": Filter(param("phone")),                       # AC: phone starts with
        "firstName": Filter(param("search"), equals_ci("firstName")),
        "first_name": Filter(param("search"), equals_ci("firstName")),
        "lastName": Filter(param("search"), equals_ci("lastName")),
        "last_name": Filter(param("search"), equals_ci("lastName")),
        "status": Filter(param("status"), check=integer("a contact status", {"-1", "0", "1", "2", "3"})),
        "listid": Filter(param("listid"), check=integer("a list id")),
        "tagid": Filter(param("tagid"), check=integer("a tag id")),
        "segmentid": Filter(param("segmentid"), check=integer("a segment id")),
        "formid": Filter(param("formid"), check=integer("a form id")),
        **{name: Filter(ac_filter(name), check=date) for name in _DATE_FILTERS},
    },
    # Applied by AC; the keys are used when the order is applied here instead (with a custom field's).
    orders={
        "id": Order("id", local_key("id", int)), "cdate": Order("cdate", local_key("cdate", timestamp)),
        "email": Order("email", local_key("email", casefold)), "name": Order("name", full_name),
        "first_name": Order("first_name", local_key("firstName", casefold)),
        "firstName": Order("first_name", local_key("firstName", casefold)),
        "last_name": Order("last_name", local_key("lastName", casefold)),
        "lastName": Order("last_name", local_key("lastName", casefold)),
    },
)

DEALS = Resource(
    name="deals",
    path="/deals",
    collection="deals",
    # Deal custom field values in the same call: observed in a public client (lib-go-activecampaign Deal.go,
    # DealIncludeFieldValues = "dealCustomFieldData"), not in AC's deal reference (docs/query.md).
    sideloads=(Sideload("dealCustomFieldData", "dealId"),),
    base_params=[("include", "dealCustomFieldData")],
    # AC documents no id order for deals; `orders[cdate]` is documented, and creation dates do not change,
    # so edits never move a deal and new deals come last (docs/query.md, "Order").
    default_order=[("orders[cdate]", "ASC")],
    filters={
        "title": Filter(ac_filter("title")),
        "search": Filter(ac_filter("search")),
        # AC reference (deal parameters): all = title, contact and org; title; contact = primary contact's
        # name; org = primary contact's organisation name. AC's default without it: undocumented.
        "search_field": Filter(ac_filter("search_field"), check=one_of("a search field",
                                                                       ("all", "title", "contact", "org"))),
        "stage": Filter(ac_filter("stage"), check=integer("a stage id")),
        "group": Filter(ac_filter("group"), check=integer("a pipeline id")),
        "pipeline": Filter(ac_filter("group"), check=integer("a pipeline id")),
        "status": Filter(ac_filter("status"), check=integer("a deal status", {"0", "1", "2"})),
        "owner": Filter(ac_filter("owner"), check=integer("a user id")),
        "minimum_value": Filter(ac_filter("minimum_value"), check=dollars),
        "maximum_value": Filter(ac_filter("maximum_value"), check=dollars),
        **{name: Filter(ac_filter(name), check=date) for name in _DATE_FILTERS},
    },
    # Applied by AC; title, value and cdate have keys for when they are applied here (with a custom field's);
    # contact_name and contact_orgname are not on the deal record.
    orders={"title": Order("title", local_key("title", casefold)), "value": Order("value", local_key("value", int)),
            "cdate": Order("cdate", local_key("cdate", timestamp)),
            "contact_name": Order("contact_name"), "contact_orgname": Order("contact_orgname")},
)

ACCOUNTS = Resource(
    name="accounts",
    path="/accounts",
    collection="accounts",
    # Without count_deals=true AC shows contactCount and dealCount as "0" (AC reference, list all accounts).
    base_params=[("count_deals", "true")],
    filters={
        "search": Filter(param("search")),                     # AC: name contains
        "name": Filter(param("search"), equals_ci("name")),    # exact name (case-insensitive)
    },
    # AC documents no ordering for accounts: all orders are applied here over the filtered set.
    orders={
        "name": Order(key=local_key("name", casefold)),
        "id": Order(key=local_key("id", int)),
        "createdTimestamp": Order(key=local_key("createdTimestamp", timestamp)),
        "updatedTimestamp": Order(key=local_key("updatedTimestamp", timestamp)),
    },
)

RESOURCES = {r.name: r for r in (CONTACTS, DEALS, ACCOUNTS)}
