"""Parsing of the export query string: page, limit, filters[<field>]=<value>, orders[<field>]=ASC|DESC.

The raw query string is parsed (not API Gateway's decoded map) because orders apply in query-string
order. Everything is checked before any I/O, and each refusal says what is allowed.
Parameters other than these four are left alone (clients add cache busters and the like).
A field name is what is between the brackets once URL-decoded: spaces and punctuation are allowed (a custom
field's title, "Favorite Color"), control characters and nested brackets (`filters[a][b]`) are not. With
`custom`, a name the resource does not support is kept for the caller to resolve as a custom field
(ac.custom_fields, which then refuses an unknown one).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from acexport.errors import BadRequestError

DEFAULT_LIMIT = 20
MAX_LIMIT = 250
MAX_PAGE = 1_000_000
MAX_VALUE_LENGTH = 256
MAX_NAME_LENGTH = 255         # AC's field titles are short texts; a longer name is no field
_BRACKETED = re.compile(rf"^(filters|orders)\[([^\x00-\x1f\x7f]{{1,{MAX_NAME_LENGTH}}})\]$")
_DIRECTIONS = {"ASC", "DESC"}


@dataclass(frozen=True)
class Query:
    page: int = 1
    limit: int = DEFAULT_LIMIT
    filters: tuple[tuple[str, str], ...] = ()
    orders: tuple[tuple[str, str], ...] = ()

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


def _integer(name: str, value: str, low: int, high: int) -> int:
    text = value.strip()
    # ASCII digits only: str.isdigit() is also true for "²", which int() refuses (that was a 500).
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise BadRequestError(f"{name} must be an integer from {low} to {high}", parameter=name)
    return int(text)


def _bracketed(key: str, filters, orders, resource: str, custom: bool) -> tuple[str, str]:
    """(kind, field) of `filters[<field>]` or `orders[<field>]`, the field one the resource supports (any
    with `custom`)."""
    match = _BRACKETED.match(key)
    if not match or "][" in match.group(2) or not match.group(2).strip():
        raise BadRequestError(f"Malformed query parameter {key}: use filters[<field>]=<value> "
                              "or orders[<field>]=ASC|DESC", parameter=key)
    kind, field = match.groups()
    allowed = filters if kind == "filters" else orders
    if field not in allowed and not custom:
        names = ", ".join(sorted(allowed)) or "none"
        raise BadRequestError(f"Unsupported {kind[:-1]} '{field}' for {resource}. Supported: {names}",
                              parameter=key, supported=sorted(allowed))
    return kind, field


def _filter_value(key: str, value: str) -> str:
    if not value.strip() or len(value) > MAX_VALUE_LENGTH:
        raise BadRequestError(f"{key} needs a value of 1 to {MAX_VALUE_LENGTH} characters", parameter=key)
    return value.strip()


def _direction(key: str, value: str) -> str:
    direction = value.strip().upper()
    if direction not in _DIRECTIONS:
        raise BadRequestError(f"{key} must be ASC or DESC", parameter=key)
    return direction


def parse(raw_query: str | None, *, filters, orders, resource: str, custom: bool = False) -> Query:
    """Parse and check a raw query string against the fields a resource supports (with `custom`, other
    names are kept: custom fields, resolved by the caller)."""
    try:
        pairs = parse_qsl(raw_query or "", keep_blank_values=True, max_num_fields=100)
    except ValueError as exc:
        raise BadRequestError("Too many query parameters") from exc
    seen: set[str] = set()
    page, limit = 1, DEFAULT_LIMIT
    found_filters: list[tuple[str, str]] = []
    found_orders: list[tuple[str, str]] = []
    for key, value in pairs:
        if key in seen:
            raise BadRequestError(f"Query parameter {key} is given more than once", parameter=key)
        seen.add(key)
        if key == "page":
            page = _integer("page", value, 1, MAX_PAGE)
        elif key == "limit":
            limit = _integer("limit", value, 1, MAX_LIMIT)
        elif key.startswith(("filters", "orders")):
            kind, field = _bracketed(key, filters, orders, resource, custom)
            if kind == "filters":
                found_filters.append((field, _filter_value(key, value)))
            else:
                found_orders.append((field, _direction(key, value)))
    return Query(page=page, limit=limit, filters=tuple(found_filters), orders=tuple(found_orders))


def pagination(page: int, limit: int, total: int) -> dict:
    """The old module's pagination object: page/limit/total as strings, next/prev as ints or null."""
    pages = math.ceil(total / limit) if limit else 0
    return {"page": str(page), "limit": str(limit), "total": str(total),
            "next_page": page + 1 if page < pages else None, "prev_page": page - 1 if page > 1 else None}
