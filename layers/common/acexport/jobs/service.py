"""What callers ask of export jobs, over HTTP or EventBridge: start one, read one, list theirs, cancel one.

`start_from_event` is the EventBridge side: a start request from another platform service.

A start request is checked completely before anything is stored or sent (resource, body shape, format,
filters with the same resource specs as the page exports, updated_after), then the caller's connection
(404 `Unauthorised Access` without one), then the number of jobs the caller has in progress (atomically:
jobs.store's slots); only then is the job stored, with the identity of the connection it started with
(id, host, key digest: the worker fails the job if it changes), and its first message queued. Another
tenant's job id is answered exactly like a missing one (404 `Export job not found`).

From EventBridge (the second security round, finding 4) the rule only admits the platform's `source` on the service's
own bus, whose resource policy names who may put events (template.yaml); the event's owner must have a
connection on the event's account, and an `agency_account_id` must be the parent of that account in the
accounts collection, before anything is stored.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from acexport import query
from acexport.ac.resources import RESOURCES
from acexport.credentials import store as credential_store
from acexport.errors import (
    ApiError,
    BadRequestError,
    ForbiddenError,
    JobFinishedError,
    JobNotFoundError,
    NotConnectedError,
    ServiceUnavailableError,
    TooManyJobsError,
)
from acexport.jobs import store as job_store
from acexport.jobs.messages import REJECTED, emit, send_work
from acexport.jobs.spec import JobSpec, parse
from acexport.logs import bind
from acexport.query import pagination
from acexport.settings import job_settings
from acexport.tenancy import Tenant, stored_sub_account

JOB_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
LIST_FILTERS = ("status", "resource")
START_AC_SECONDS = 10.0   # an EventBridge start has no request deadline: the custom-field lookup gets this

logger = logging.getLogger(__name__)


def queue(doc: dict) -> None:
    """Send the job's pending message (unless sent already)."""
    handoff = doc.get("handoff") or {}
    if handoff.get("sent"):
        return
    send_work(doc["_id"], int(handoff.get("seq", 0)), doc["ac_host"])
    job_store.mark_sent(doc["_id"], int(handoff.get("seq", 0)))


def start(tenant: Tenant, spec: JobSpec, *, source: str, request_key: str | None = None,
          deadline: float | None = None) -> dict:
    """Store a job and queue its first message. With a request_key seen before (an event delivered
    twice), the job it started, queued if it was not yet. Custom-field filters are resolved against the
    account's definitions first (one cached AC call, by `deadline`): an unknown or ambiguous name is the page
    exports' 400, before anything is stored."""
    if request_key is not None:
        existing = job_store.by_request_key(request_key)
        if existing is not None:
            queue(existing)
            return existing
    connection = credential_store.find(tenant)
    if connection is None:
        raise NotConnectedError()
    identity = credential_store.identity(connection)   # a stored base_url the guard refuses: 403 reconnect
    if any(name not in spec.resource.filters for name, _ in spec.filters):   # a custom field is named
        from acexport.ac import custom_fields  # here: a start without one never loads the AC client (cold start)

        client = credential_store.client(connection, deadline=deadline or time.monotonic() + START_AC_SECONDS)
        custom_fields.with_custom_fields(client, spec.resource, spec.filters, ())
    job_id = secrets.token_urlsafe(24)
    doc: dict[str, Any] = {
           "_id": job_id, "request_key": request_key or f"api:{job_id}", "account_id": tenant.account_id,
           "owner": tenant.owner, "source": source, "resource": spec.resource.name, "format": spec.format,
           "filters": dict(spec.filters), "ac_host": identity["host"], "connection": identity}
    for field in ("workspace_id", "agency_account_id"):
        if getattr(tenant, field, None):
            doc[field] = getattr(tenant, field)
    if spec.updated_after:
        doc["updated_after"] = spec.updated_after
    limit = job_settings().max_active
    try:
        doc, created = job_store.create(doc, slots=limit)
    except job_store.NoFreeSlot:
        raise TooManyJobsError(limit) from None
    try:
        queue(doc)
    except ServiceUnavailableError:
        if created:
            job_store.settle(doc["_id"], "failed",
                             {"error": {"message": "The export could not be queued; start it again"}})
        raise
    bind(job_id=doc["_id"])
    logger.info("export job started" if created else "export job start repeated",
                extra={"resource": doc["resource"], "format": doc["format"], "source": source})
    return doc


def find(tenant: Tenant, job_id: str) -> dict:
    doc = job_store.get_for(tenant, job_id) if JOB_ID.match(job_id or "") else None
    if doc is None:
        raise JobNotFoundError()
    return doc


def cancel(tenant: Tenant, job_id: str) -> dict:
    doc = job_store.cancel(tenant, job_id) if JOB_ID.match(job_id or "") else None
    if doc is None:
        doc = find(tenant, job_id)      # missing or another tenant's: 404
        raise JobFinishedError(doc["status"])
    return doc


def recent(tenant: Tenant, raw_query: str | None) -> tuple[list[dict], dict]:
    """The caller's jobs, newest first, with the exports' pagination object. Query: page, limit,
    filters[status], filters[resource]."""
    parsed = query.parse(raw_query, filters=LIST_FILTERS, orders=(), resource="export jobs")
    where: dict = {}
    for name, value in parsed.filters:
        allowed = job_store.STATUSES if name == "status" else tuple(sorted(RESOURCES))
        if value not in allowed:
            raise BadRequestError(f"filters[{name}] must be one of {', '.join(allowed)}", parameter=f"filters[{name}]")
        where[name] = value
    docs, total = job_store.recent(tenant, where=where, skip=parsed.offset, limit=parsed.limit)
    return docs, pagination(parsed.page, parsed.limit, total)


def _optional_event_text(detail: dict, name: str) -> str | None:
    return None if detail.get(name) is None else _event_text(detail, name)


def _event_text(detail: dict, name: str) -> str:
    value = detail.get(name)
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= 128 or not value.isprintable():
        raise BadRequestError(f"detail.{name} must be a string of 1 to 128 characters", parameter=f"detail.{name}")
    return value.strip()


def start_from_event(event: dict) -> dict | None:
    """An `ActiveCampaign Export Requested` event (detail: account_id, owner, resource, options, and
    optionally workspace_id) starts a job as POST .../jobs does, once per event id. A request that cannot
    start one is answered with an `ActiveCampaign Export Request Rejected` event; None then."""
    raw = event.get("detail")
    detail: dict = raw if isinstance(raw, dict) else {}
    event_id = str(event.get("id") or "")
    try:
        tenant = Tenant(account_id=_event_text(detail, "account_id"), owner=_event_text(detail, "owner"),
                        workspace_id=_optional_event_text(detail, "workspace_id"))
        agency = _optional_event_text(detail, "agency_account_id")
        if agency is not None:
            stored = stored_sub_account(tenant.account_id, parent=agency)
            if stored is None:
                raise ForbiddenError("Sub-account not accessible")
            tenant = Tenant(account_id=stored, owner=tenant.owner, agency_account_id=agency)
        options = detail.get("options") if detail.get("options") is not None else {}
        spec = parse(str(detail.get("resource") or ""), options)
        key = f"events:{tenant.account_id}:{tenant.owner}:{event_id}" if event_id else None
        return start(tenant, spec, source="eventbridge", request_key=key)
    except ApiError as refused:
        if refused.status >= 500:
            raise                                   # our dependencies: let EventBridge retry the delivery
        emit(REJECTED, {"request_id": event_id or None, "account_id": detail.get("account_id"),
                        "owner": detail.get("owner"), "resource": detail.get("resource"),
                        "status": refused.status, "error": refused.message})
        return None
