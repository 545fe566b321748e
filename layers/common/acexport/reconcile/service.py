"""Start a reconcile: on demand (POST /changes/reconcile) or on the schedule (live-enabled connections).

A reconcile is a job of the export job store (jobs/store.py: `kind: "reconcile"`, `resource: "reconcile"`,
no format, no file), queued on the export queue in the AC account's message group, so it shares the
account's turn with its exports, and read or cancelled through GET/DELETE /export/jobs/{job_id}.

One at a time per tenant: while a reconcile is queued or running, its `request_key` is the tenant's
`reconcile:<digest>` (unique index), so a second start finds it (the API answers 200 with that job, not a
second one) and two starts at the same moment insert one job. A finished job gives the key up the next
time a reconcile starts (its key becomes `reconcile-done:<job id>`), so the store needs no clean-up step.

The schedule (template: ReconcileScheduleFunction, hourly; RECONCILE_INTERVAL_HOURS, default weekly):
each tick starts the live-enabled tenants whose slot it is, slot = a hash of (account_id, owner) modulo
the interval in hours, so tenants are spread evenly over the interval, each at the same hour every time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets

from acexport import db
from acexport.credentials import store
from acexport.errors import ApiError, BadRequestError, NotConnectedError, TooManyJobsError
from acexport.jobs import store as jobs
from acexport.jobs.service import queue
from acexport.live import subscriptions
from acexport.settings import job_settings, reconcile_settings
from acexport.tenancy import Tenant

logger = logging.getLogger(__name__)

KIND = "reconcile"
SOURCES = ("api", "schedule")


def _digest(account_id: str, owner: str) -> str:
    return hashlib.sha256(json.dumps([account_id, owner]).encode()).hexdigest()[:32]


def active_key(tenant: Tenant) -> str:
    return f"reconcile:{_digest(tenant.account_id, tenant.owner)}"


def _give_up_key(doc: dict) -> None:
    """A finished reconcile still holding the tenant's key lets it go (conditional: only if finished)."""
    with db.mongo_errors():
        jobs.collection().update_one({"_id": doc["_id"], "request_key": doc["request_key"],
                                      "status": {"$in": list(jobs.TERMINAL)}},
                                     {"$set": {"request_key": f"reconcile-done:{doc['_id']}"}})




def check_request(body: dict) -> None:
    """A reconcile takes no options: an empty body or `{}`; anything else is a 400 before any I/O."""
    if body:
        raise BadRequestError("A reconcile takes no options; send no body (or {})")


def start(tenant: Tenant, *, source: str = "api") -> tuple[dict, bool]:
    """The tenant's reconcile job, queued: (the job, True) when started now, (the running one, False)."""
    connection = store.find(tenant)
    if connection is None:
        raise NotConnectedError()
    identity = store.identity(connection)
    key = active_key(tenant)
    held = jobs.by_request_key(key)
    if held is not None and held["status"] in jobs.TERMINAL:
        _give_up_key(held)
    job_id = secrets.token_urlsafe(24)
    doc = {"_id": job_id, "request_key": key, "kind": KIND, "account_id": tenant.account_id,
           "owner": tenant.owner, "source": source, "resource": "reconcile", "format": None, "filters": {},
           "ac_host": identity["host"], "connection": identity}
    for name in ("workspace_id", "agency_account_id"):
        if getattr(tenant, name, None):
            doc[name] = getattr(tenant, name)
    limit = job_settings().max_active
    try:
        doc, created = jobs.create(doc, slots=limit)
    except jobs.NoFreeSlot:
        raise TooManyJobsError(limit) from None
    if doc["status"] in jobs.ACTIVE:
        queue(doc)
    return doc, created


def slot(account_id: str, owner: str, interval_hours: int) -> int:
    """The hour of the interval in which the tenant's scheduled reconcile starts."""
    return int(_digest(account_id, owner)[:12], 16) % interval_hours


def scheduled(now: dt.datetime | None = None) -> dict:
    """One tick of the schedule: start the live-enabled tenants whose slot this hour is. Per tenant, a
    refusal (no connection any more, too many jobs) is logged and the others go on."""
    now = now or dt.datetime.now(dt.UTC)
    interval = reconcile_settings().interval_hours
    hour = int(now.timestamp() // 3600) % interval
    started = skipped = 0
    with db.mongo_errors():
        enabled = list(subscriptions.collection().find(
            {"state": subscriptions.ENABLED},
            {"account_id": 1, "owner": 1, "workspace_id": 1, "agency_account_id": 1}))
    for sub in enabled:
        if slot(sub["account_id"], sub["owner"], interval) != hour:
            continue
        tenant = Tenant(account_id=sub["account_id"], owner=sub["owner"], workspace_id=sub.get("workspace_id"),
                        agency_account_id=sub.get("agency_account_id"))
        try:
            _, created = start(tenant, source="schedule")
        except ApiError as exc:
            if exc.status >= 500:
                raise                      # our dependencies: the tick fails and EventBridge retries it
            skipped += 1
            logger.info("scheduled reconcile not started", extra={"account_id": tenant.account_id,
                                                                  "reason": exc.message})
            continue
        started += int(created)
    return {"due_hour": hour, "interval_hours": interval, "started": started, "skipped": skipped}
