"""The export job documents, in JOBS_COLLECTION (one per job, `_id` = the job id).

Every change a worker makes is conditional, so a duplicate or late delivery can neither advance nor
corrupt a job:
- a worker first *claims* the job: a lease (`lease.owner`, `lease.until`) it renews while it works;
- a checkpoint is saved only by the lease holder and only over the checkpoint it resumed from
  (`seq`, incremented by every save);
- a terminal status is set only on a job that is still queued or running.

Fields: account_id, owner, workspace_id, agency_account_id (the tenant, as in the credential store),
source (`api` | `eventbridge`), request_key (unique: one job per API call or per EventBridge event id),
resource, format, filters, updated_after, ac_host (the SQS message group), status, created_at,
updated_at, started_at, finished_at, expires_at (TTL), seq, handoff {seq, sent} (the newest queue message
and whether it was sent), lease, checkpoint (cursor, counters, uploaded parts, buffered gzip bytes: see
jobs.worker and jobs.writer), progress {read, written, total, at}, upload {bucket, key, upload_id}, file {bucket, key,
size, records, name}, error {message, reconnect}, last_error, finalized (events and clean-up done),
connection {id, host, key} (the connection the job started with; `key` is a digest, never the key),
active_slot (`<digest of account_id and owner>#<k>` while the job is queued or running, removed by the same write
that ends it).

The active-job quota is atomic (the second security round, finding 7): a unique sparse index on `active_slot` admits at
most one active job per slot, and a tenant has EXPORT_MAX_ACTIVE_JOBS slots; `create` inserts the job
with the first free slot, so concurrent starts can never hold more slots than there are. A terminal
status and the freed slot are one update (`settle`, `cancel`): no counter to drift.

Dates are BSON dates and flags (`handoff.sent`, `finalized`) booleans, as MongoDB wants them (the TTL index
needs a date). nx-27017, the local Mongo, stores a date or a boolean set through `$set` as text or 1/0:
readers take dates through `as_datetime` and flags as truthy values (acexport.compat), which also reads
documents written before flags were booleans.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from acexport import db
from acexport.compat import as_datetime  # noqa: F401 - jobs.as_datetime: the one date reader
from acexport.settings import job_settings
from acexport.tenancy import Tenant

ACTIVE = ("queued", "running")
TERMINAL = ("succeeded", "failed", "cancelled")
STATUSES = (*ACTIVE, *TERMINAL)
KEEP_DOCUMENTS = dt.timedelta(days=30)       # job documents outlive their files (EXPORT_FILE_DAYS)
PUBLIC = {"checkpoint": 0, "lease": 0}       # what API reads leave out (the checkpoint holds file bytes)
TTL_INDEX = "expires_at_ttl"                 # drops a job document at its expires_at



def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# What correctness relies on (one job per request key; the atomic quota): checked, never built, in requests.
REQUIRED_INDEXES = ((("request_key", 1),), (("active_slot", 1),))


def create_indexes(coll: Collection) -> None:
    """The job collection's indexes (deploy time: acexport.setup_db)."""
    coll.create_index([("request_key", ASCENDING)], unique=True, name="request_key_1")
    coll.create_index([("account_id", ASCENDING), ("owner", ASCENDING), ("created_at", DESCENDING)],
                      name="tenant_recent")
    coll.create_index([("active_slot", ASCENDING)], unique=True, sparse=True, name="active_slot_1")
    coll.create_index("expires_at", expireAfterSeconds=0, name=TTL_INDEX)


def collection() -> Collection:
    return db.collection(job_settings().collection, required=REQUIRED_INDEXES)


def _tenant(tenant: Tenant) -> dict[str, str]:
    return {"account_id": tenant.account_id, "owner": tenant.owner}


# ---- API side -----------------------------------------------------------------------------------

class NoFreeSlot(Exception):
    """The tenant has `slots` active jobs already."""


def _slot(doc: dict, k: int) -> str:
    """`<digest of the tenant>#<k>`: a digest, so no spelling of one tenant's ids is another's slot."""
    tenant = hashlib.sha256(json.dumps([doc["account_id"], doc["owner"]]).encode()).hexdigest()[:32]
    return f"{tenant}#{k}"


def create(doc: dict, *, slots: int) -> tuple[dict, bool]:
    """Insert a new job holding one of the tenant's `slots` active-job slots; when its request_key exists
    already (an EventBridge event delivered twice), the existing job and False. NoFreeSlot when every
    slot is held by an active job."""
    moment = now()
    doc = {**doc, "status": "queued", "created_at": moment, "updated_at": moment,
           "expires_at": moment + KEEP_DOCUMENTS, "seq": 0, "handoff": {"seq": 0, "sent": False}}
    for k in range(slots):
        doc["active_slot"] = _slot(doc, k)
        try:
            with db.mongo_errors():
                collection().insert_one(doc)
        except DuplicateKeyError:
            with db.mongo_errors():
                existing = collection().find_one({"request_key": doc["request_key"]}, PUBLIC)
            if existing is not None:
                return existing, False
            continue                # slot k is held by another active job: try the next one
        return doc, True
    raise NoFreeSlot()


def get(job_id: str) -> dict | None:
    with db.mongo_errors():
        return collection().find_one({"_id": job_id})


def by_request_key(request_key: str) -> dict | None:
    with db.mongo_errors():
        return collection().find_one({"request_key": request_key}, PUBLIC)


def get_for(tenant: Tenant, job_id: str) -> dict | None:
    """The job when it is this tenant's; None when it is missing *or* another tenant's (same answer)."""
    with db.mongo_errors():
        return collection().find_one({"_id": job_id, **_tenant(tenant)}, PUBLIC)


def recent(tenant: Tenant, *, where: dict[str, Any], skip: int, limit: int) -> tuple[list[dict], int]:
    query = {**where, **_tenant(tenant)}
    with db.mongo_errors():
        coll = collection()
        docs = list(coll.find(query, PUBLIC).sort([("created_at", DESCENDING)]).skip(skip).limit(limit))
        return docs, coll.count_documents(query)


def cancel(tenant: Tenant, job_id: str) -> dict | None:
    """Cancel a queued or running job; the worker sees it at its next progress save and cleans up. The
    records buffered in the checkpoint go at once (they would otherwise stay as long as the document)."""
    moment = now()
    with db.mongo_errors():
        return collection().find_one_and_update(
            {"_id": job_id, **_tenant(tenant), "status": {"$in": list(ACTIVE)}},
            {"$set": {"status": "cancelled", "finished_at": moment, "updated_at": moment},
             "$unset": {"checkpoint.buffer": "", "active_slot": ""}},
            projection=PUBLIC, return_document=ReturnDocument.AFTER)


def mark_sent(job_id: str, seq: int) -> None:
    """The queue message for `seq` was sent (best effort: without it a redelivered older message resumes)."""
    with db.mongo_errors():
        collection().update_one({"_id": job_id, "handoff.seq": seq}, {"$set": {"handoff.sent": True}})


def set_fields(job_id: str, fields: dict) -> None:
    with db.mongo_errors():
        collection().update_one({"_id": job_id}, {"$set": {**fields, "updated_at": now()}})


# ---- worker side --------------------------------------------------------------------------------

def _lease(worker: str, seconds: float) -> dict:
    return {"owner": worker, "until": now() + dt.timedelta(seconds=seconds)}


def claim(job_id: str, worker: str, seconds: float) -> dict | None:
    """Take the lease of an active job nobody holds (or whose holder's lease ran out): the job, or None."""
    moment = now()
    with db.mongo_errors():
        doc = collection().find_one_and_update(
            {"_id": job_id, "status": {"$in": list(ACTIVE)},
             "$or": [{"lease": {"$exists": False}}, {"lease.until": {"$lt": moment}}]},
            {"$set": {"status": "running", "lease": _lease(worker, seconds), "updated_at": moment}},
            return_document=ReturnDocument.AFTER)
    if doc is not None and "started_at" not in doc:
        set_fields(job_id, {"started_at": moment})
        doc["started_at"] = moment
    return doc


def _mine(job_id: str, worker: str, seq: int) -> dict:
    return {"_id": job_id, "status": "running", "lease.owner": worker, "seq": seq}


def renew(job_id: str, worker: str, seq: int, seconds: float, progress: dict) -> bool:
    """Extend the lease and record progress; False when the job was cancelled or the lease lost."""
    with db.mongo_errors():
        result = collection().update_one(
            _mine(job_id, worker, seq),
            {"$set": {"lease": _lease(worker, seconds), "progress": {**progress, "at": now()}, "updated_at": now()}})
    return result.matched_count == 1


def set_upload(job_id: str, worker: str, seq: int, upload: dict) -> bool:
    """Record the S3 multipart upload of the file (once, by the lease holder)."""
    with db.mongo_errors():
        result = collection().update_one({**_mine(job_id, worker, seq), "upload": {"$exists": False}},
                                         {"$set": {"upload": upload, "updated_at": now()}})
    return result.matched_count == 1


def save(job_id: str, worker: str, seq: int, checkpoint: dict, progress: dict, *,
         handoff: int | None = None, lease_seconds: float = 0) -> bool:
    """Save a checkpoint over the one at `seq` (seq becomes seq + 1). With `handoff`, the lease is
    released and `handoff.seq` set: the message for it is sent next. False when not ours any more."""
    fields: dict[str, Any] = {"checkpoint": checkpoint, "progress": {**progress, "at": now()}, "updated_at": now()}
    update: dict[str, Any] = {"$inc": {"seq": 1}}
    if handoff is None:
        fields["lease"] = _lease(worker, lease_seconds)
    else:
        fields["handoff"] = {"seq": handoff, "sent": False}
        update["$unset"] = {"lease": ""}
    update["$set"] = fields
    with db.mongo_errors():
        return collection().update_one(_mine(job_id, worker, seq), update).matched_count == 1


def settle(job_id: str, status: str, fields: dict, *, worker: str | None = None, seq: int | None = None) -> bool:
    """Move an active job to a terminal status (as its lease holder at `seq`, or as anyone). False when
    the job was finished already, or the lease is not `worker`'s."""
    moment = now()
    query: dict[str, Any] = {"_id": job_id, "status": {"$in": list(ACTIVE)}}
    if worker is not None:
        query.update({"lease.owner": worker, "seq": seq})
    update = {"$set": {**fields, "status": status, "finished_at": moment, "updated_at": moment},
              "$unset": {"lease": "", "checkpoint.buffer": "", "active_slot": ""}}
    with db.mongo_errors():
        return collection().update_one(query, update).matched_count == 1


def mark_finalized(job_id: str) -> None:
    """The clean-up of a finished job (its event, aborting its upload) is done. Set after the event is
    sent, so a crash in between sends it again: finished-job events are at least once."""
    with db.mongo_errors():
        collection().update_one({"_id": job_id, "status": {"$in": list(TERMINAL)}}, {"$set": {"finalized": True}})


def release(job_id: str, worker: str) -> None:
    """Give the lease back without a checkpoint (the step stopped before changing anything)."""
    with db.mongo_errors():
        collection().update_one({"_id": job_id, "lease.owner": worker}, {"$unset": {"lease": ""}})
