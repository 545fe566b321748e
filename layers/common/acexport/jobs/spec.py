"""What a job exports: a start request (the HTTP body, or an EventBridge event's `options`), checked
completely before any I/O: the resource, the body's shape, the format, the filters (with the page
exports' specs) and `updated_after`. A filter name the resource does not support is a custom field's
(docs/query.md, "Custom fields"): it needs the account's field definitions, so the walk resolves it when it
reads the first page (an unknown or ambiguous name then fails the job with the page exports' 400 message)
and keeps the records whose value matches (ac.records.keep_custom_matches)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from acexport import query
from acexport.ac.resources import RESOURCES, Resource, plan
from acexport.errors import BadRequestError, UnknownResourceError
from acexport.jobs.files import FORMATS

OPTIONS = ("format", "filters", "updated_after")


@dataclass(frozen=True)
class JobSpec:
    resource: Resource
    format: str
    filters: tuple[tuple[str, str], ...]
    updated_after: str | None     # YYYY-MM-DD, or an ISO date-time in UTC


def resource_named(name: str) -> Resource:
    if name not in RESOURCES:
        raise UnknownResourceError(name, sorted(RESOURCES))
    return RESOURCES[name]


def _filters(resource: Resource, raw) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise BadRequestError("filters must be an object of field: value", parameter="filters")
    found = []
    for name, value in raw.items():
        if name not in resource.filters and not _custom_field_name(name):
            names = ", ".join(sorted(resource.filters))
            raise BadRequestError(f"Unsupported filter '{str(name)[:64]}' for {resource.name}. Supported: {names}, "
                             "or a custom field's name", parameter=f"filters.{str(name)[:64]}",
                             supported=sorted(resource.filters))
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise BadRequestError(f"filters.{name} must be a string or a number", parameter=f"filters.{name}")
        text = str(value).strip()
        if not text or len(text) > query.MAX_VALUE_LENGTH:
            raise BadRequestError(f"filters.{name} needs a value of 1 to {query.MAX_VALUE_LENGTH} characters",
                             parameter=f"filters.{name}")
        found.append((name, text))
    # the value checks of the page exports (ids, statuses, dates, numbers); custom fields: resolved by the walk
    plan(resource, [(name, value) for name, value in found if name in resource.filters], ())
    return tuple(found)


def _custom_field_name(name) -> bool:
    """A name the page exports would read as a custom field's (query.MAX_NAME_LENGTH, no control characters)."""
    return isinstance(name, str) and bool(name.strip()) and len(name) <= query.MAX_NAME_LENGTH \
        and name.isprintable()


MIN_YEAR, MAX_YEAR = 1970, 9999   # AC's dates start at the epoch; the walk steps a day back from a date


def _moment(raw) -> str | None:
    """updated_after: a day (kept as the day) or a date-time (to UTC; without an offset it is UTC), in
    MIN_YEAR..MAX_YEAR after the conversion to UTC, and at least a day inside them (the walk asks AC from
    the day before): `0001-01-01` or `9999-12-31T23:59:59-12:00` are a 400, never an overflow later."""
    if raw is None:
        return None
    message = "updated_after must be an ISO date (YYYY-MM-DD) or date-time (YYYY-MM-DDTHH:MM:SSZ)"
    if not isinstance(raw, str) or len(raw) > 64:
        raise BadRequestError(message, parameter="updated_after")
    text = raw.strip()
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        try:
            moment = dt.datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
            moment = (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
        except (ValueError, OverflowError):
            raise BadRequestError(message, parameter="updated_after") from None
        day, value = moment.date(), moment.isoformat().replace("+00:00", "Z")
    else:
        value = day.isoformat()
    if not (dt.date(MIN_YEAR, 1, 2) <= day <= dt.date(MAX_YEAR, 12, 30)):
        raise BadRequestError(f"updated_after must be between {MIN_YEAR} and {MAX_YEAR}", parameter="updated_after")
    return value


def parse(resource_name: str, options: object) -> JobSpec:
    """Check a start request (the HTTP body, or an EventBridge event's `options`) before any I/O."""
    resource = resource_named(resource_name)
    if not isinstance(options, dict):
        raise BadRequestError("Request body must be a JSON object")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise BadRequestError(f"Unsupported field '{str(unknown[0])[:64]}'. Supported: {', '.join(OPTIONS)}",
                         supported=list(OPTIONS))
    fmt = options.get("format", "ndjson")
    if not isinstance(fmt, str) or fmt.strip().lower() not in FORMATS:
        raise BadRequestError(f"format must be one of {', '.join(FORMATS)}", parameter="format")
    filters = _filters(resource, options.get("filters"))
    updated_after = _moment(options.get("updated_after"))
    if updated_after and any(name == "updated_after" for name, _ in filters):
        raise BadRequestError("Give updated_after or filters.updated_after, not both", parameter="updated_after")
    return JobSpec(resource, fmt.strip().lower(), filters, updated_after)
