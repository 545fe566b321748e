"""The change feed: one document per change, in CHANGES_COLLECTION, kept CHANGES_TTL_DAYS days.

Fields: _id (the change id), account_id, owner, workspace_id, connection_id (the connection the
subscription belongs to, so a feed can be read per connection), seq (the cursor), dedupe, type, resource,
record_id, occurred_at, received_at (TTL), sequenced_at, initiated_by, record (JSON text), details
(updated_fields, tag, list_id, truncated: what the limits cut, docs/live.md "Limits").

Duplicates: AC guarantees "at least once" and sends no event id (docs/live.md), so a change is identified
by its content: `dedupe` is the SHA-256 of the MAPPED change (type, record id, AC's date_time, initiator,
record, details), not of the raw body, so a parameter this service does not read cannot make a delivery
look new; a unique index on (account_id, owner, dedupe) stores it once. Two real changes to the same
record in the same second differ in what the feed shows (else they are the same state), so they stay two
changes.

Order: each stored change then takes the tenant's next `seq` (`subscriptions.next_seq`), strictly
increasing, and readers page by `seq`. A number is taken only after the insert succeeded, so a gap in
the sequence is a change being written at this moment (milliseconds): `read` stops before a gap younger
than GAP_SECONDS, so a reader never steps past a change that is about to appear; an older gap (a receiver
that died between the two writes) is skipped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from urllib.parse import parse_qsl

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, OperationFailure

from acexport import db
from acexport.compat import as_datetime
from acexport.errors import BadRequest
from acexport.live import subscriptions
from acexport.live.mapping import Change
from acexport.settings import get_settings
from acexport.tenancy import Tenant

GAP_SECONDS = 2.0
MAX_LIMIT = 250
DEFAULT_LIMIT = 100
_CURSOR_DIGITS = 18
TTL_INDEX = "received_at_ttl"


DEDUPE_KEY = (("account_id", 1), ("owner", 1), ("dedupe", 1))
SEQ_KEY = (("account_id", 1), ("owner", 1), ("seq", 1))


def create_indexes(coll: Collection) -> None:
    """Unique {account_id, owner, dedupe} (a delivery stored once) and {account_id, owner, seq} (the feed's
    reads). Deploy time: acexport.setup_db."""
    coll.create_index([("account_id", ASCENDING), ("owner", ASCENDING), ("dedupe", ASCENDING)], unique=True,
                      name="account_id_1_owner_1_dedupe_1")
    coll.create_index([("account_id", ASCENDING), ("owner", ASCENDING), ("seq", ASCENDING)],
                      name="account_id_1_owner_1_seq_1")


def create_ttl_index(coll: Collection) -> None:
    """The TTL index on received_at (CHANGES_TTL_DAYS); a changed setting changes the index in place."""
    ttl = int(get_settings().live.changes_days * 86400)
    try:
        coll.create_index([("received_at", ASCENDING)], expireAfterSeconds=ttl, name=TTL_INDEX)
    except OperationFailure:   # IndexOptionsConflict: the setting changed since the index was built
        coll.database.command("collMod", coll.name, index={"name": TTL_INDEX, "expireAfterSeconds": ttl})


def collection() -> Collection:
    return db.collection(get_settings().live.changes_collection, required=(DEDUPE_KEY, SEQ_KEY))


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def dedupe_key(change: Change) -> str:
    """The identity of a change (AC sends no event id): what the feed would show of it, hashed."""
    shown = [change.type, change.resource, change.record_id, change.occurred_at.isoformat(), change.initiated_by,
             change.record, change.details]
    return hashlib.sha256(_json(shown).encode()).hexdigest()


def store(subscription: dict, change: Change, *, received_at: dt.datetime) -> dict | None:
    """Store a change once; None when the same change was stored before."""
    doc = {"_id": str(ObjectId()), "account_id": subscription["account_id"], "owner": subscription["owner"],
           "workspace_id": subscription.get("workspace_id"), "connection_id": subscription.get("connection_id"),
           "dedupe": dedupe_key(change), "seq": None,
           "type": change.type, "resource": change.resource, "record_id": change.record_id,
           "occurred_at": change.occurred_at, "received_at": received_at,
           "initiated_by": change.initiated_by,
           "record": json.dumps(change.record, ensure_ascii=False, separators=(",", ":")),
           "details": change.details}
    try:
        with db.mongo_errors():
            collection().insert_one(doc)
    except DuplicateKeyError:
        return None
    doc["seq"] = subscriptions.next_seq(subscription["_id"])
    with db.mongo_errors():
        collection().update_one({"_id": doc["_id"]}, {"$set": {"seq": doc["seq"], "sequenced_at": _now()}})
    return doc


def parse_query(raw_query: str | None) -> tuple[int, int]:
    """`after` (a cursor from an earlier answer, default: the beginning) and `limit` (1-250, default 100)."""
    try:
        pairs = parse_qsl(raw_query or "", keep_blank_values=True, strict_parsing=bool(raw_query),
                          max_num_fields=10)
    except ValueError:
        raise BadRequest("Malformed query string") from None
    params = dict(pairs)
    unknown = sorted(set(params) - {"after", "limit"})
    if unknown or len(pairs) != len(params):
        raise BadRequest("Supported parameters: after, limit (once each)", supported=["after", "limit"])
    after_text, limit_text = params.get("after", "0").strip(), params.get("limit", str(DEFAULT_LIMIT)).strip()
    if not (after_text.isascii() and after_text.isdigit() and len(after_text) <= _CURSOR_DIGITS):
        raise BadRequest("after must be a cursor from an earlier answer (next_cursor)", parameter="after")
    if not (limit_text.isascii() and limit_text.isdigit() and len(limit_text) <= 3
            and 1 <= int(limit_text) <= MAX_LIMIT):
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}", parameter="limit")
    return int(after_text), int(limit_text)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value) -> dt.datetime:
    """A stored date, aware (nx-27017 keeps dates written by `$set` as text: jobs.store.as_datetime)."""
    return as_datetime(value) or dt.datetime.min.replace(tzinfo=dt.UTC)


def read(tenant: Tenant, *, after: int, limit: int) -> tuple[list[dict], int]:
    """The tenant's changes after cursor `after`, oldest first, and the cursor to read on from."""
    now = _now()
    kept_since = now - dt.timedelta(days=get_settings().live.changes_days)
    query = {"account_id": tenant.account_id, "owner": tenant.owner, "seq": {"$gt": after}}
    with db.mongo_errors():
        docs = list(collection().find(query, {"dedupe": 0}).sort("seq", ASCENDING).limit(limit))
    out, cursor = [], after
    for doc in docs:
        numbered = _aware(doc.get("sequenced_at") or doc["received_at"])
        if doc["seq"] != cursor + 1 and (now - numbered).total_seconds() < GAP_SECONDS:
            break   # an earlier change is being written right now: read on from here next time
        cursor = doc["seq"]
        if _aware(doc["received_at"]) >= kept_since:   # the TTL monitor runs once a minute
            out.append(doc)
    return out, cursor


def latest_cursor(tenant: Tenant) -> int:
    with db.mongo_errors():
        doc = collection().find_one({"account_id": tenant.account_id, "owner": tenant.owner,
                                     "seq": {"$ne": None}}, {"seq": 1}, sort=[("seq", DESCENDING)])
    return int(doc["seq"]) if doc else 0


def describe(doc: dict) -> dict:
    """What a feed reader sees of a change."""
    def iso(value: dt.datetime) -> str:
        return _aware(value).astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    return {"id": doc["_id"], "cursor": str(doc["seq"]), "type": doc["type"], "resource": doc["resource"],
            "record_id": doc["record_id"], "occurred_at": iso(doc["occurred_at"]),
            "received_at": iso(doc["received_at"]), "initiated_by": doc.get("initiated_by"),
            "record": _record(doc.get("record")), **(doc.get("details") or {})}


def _record(stored) -> dict:
    """The record as stored: JSON text, so AC's labels (custom field names with `.` or a leading `$`) are
    never field names in Mongo."""
    if isinstance(stored, str):
        try:
            value = json.loads(stored)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
    return stored if isinstance(stored, dict) else {}
