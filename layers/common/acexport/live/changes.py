"""The change feed: one document per change, in CHANGES_COLLECTION, kept CHANGES_TTL_DAYS days.

Fields: _id (the change id), account_id, owner, workspace_id, connection_id (the subscription's, so a feed is
read per connection), seq (the cursor), dedupe, type, resource, record_id, occurred_at, received_at (TTL),
sequenced_at, initiated_by, record (JSON text), details (updated_fields, tag, list_id, truncated: what the
limits cut, docs/live.md "Limits"); a `gap` document holds only a number nothing else will hold (below).

Duplicates: AC guarantees "at least once" and sends no event id (docs/live.md), so a change is identified
by its content: `dedupe` is the SHA-256 of the MAPPED change (type, record id, AC's date_time, initiator,
record, details), not of the raw body, so a parameter this service does not read cannot make a delivery
look new; a unique index on (account_id, owner, dedupe) stores it once. Two real changes to the same
record in the same second differ in what the feed shows (else they are the same state), so they stay two
changes.

Order: the receiver takes the tenant's next `seq` (`subscriptions.next_seq`, strictly increasing) BEFORE
it inserts the change with it, and a unique index on (account_id, owner, seq) lets one document only hold
a number. Readers page by `seq`. A gap (a number taken, its change not visible yet) is never stepped over
while the change can still appear: after CLAIM_AFTER_SECONDS a reader claims the missing number by
inserting a `gap` document with it; if the writer comes later, its insert fails on the unique index and
it takes a new number, so the change appears further on, never behind a reader's cursor. A duplicate
delivery (its insert fails on the dedupe index) closes its own number with a `gap` document at once.
Gaps behind a change numbered more than SETTLED_SECONDS ago (a receiver holds a number for at most its
10 s timeout) are changes that expired: stepped over without claims. docs/live.md, "The feed".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from urllib.parse import parse_qsl

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from acexport import db
from acexport.compat import as_datetime
from acexport.credentials import store as connections
from acexport.errors import BadRequestError, ServiceUnavailableError
from acexport.live import subscriptions
from acexport.live.mapping import Change
from acexport.settings import get_settings
from acexport.tenancy import Tenant

CLAIM_AFTER_SECONDS = 2.0     # a gap younger than this is a writer milliseconds from done: wait for it
SETTLED_SECONDS = 3600.0      # no writer holds a number this long (the receiver's timeout is 10 s)
MAX_CLAIMS = 1000             # numbers one read claims at most (one insert_many)
PAGE_BYTES = 1_000_000        # a page's changes, as JSON: far below Lambda's 6 MB response limit
NUMBER_ATTEMPTS = 5           # a writer whose number was claimed takes another, at most this often
MAX_LIMIT = 250
DEFAULT_LIMIT = 100
_CURSOR_DIGITS = 18
TTL_INDEX = "received_at_ttl"
SEQ_INDEX = "account_id_1_owner_1_seq_1"
RECORD_INDEX = "account_id_1_owner_1_record_id_1_resource_1_occurred_at_1"


DEDUPE_KEY = (("account_id", 1), ("owner", 1), ("dedupe", 1))
SEQ_KEY = (("account_id", 1), ("owner", 1), ("seq", 1))
RECORD_KEY = (("account_id", 1), ("owner", 1), ("record_id", 1), ("resource", 1), ("occurred_at", 1))


def create_indexes(coll: Collection) -> None:
    """Unique {account_id, owner, dedupe} (a delivery stored once), unique {account_id, owner, seq} (one
    document per number: what makes a reader's claim on a gap safe; partial, so documents an earlier
    version left without a number do not collide) and {account_id, owner, record_id, resource,
    occurred_at} (the order fields of a page). Deploy time: acexport.setup_db."""
    coll.create_index([("account_id", ASCENDING), ("owner", ASCENDING), ("dedupe", ASCENDING)], unique=True,
                      name="account_id_1_owner_1_dedupe_1")
    for name, info in coll.index_information().items():   # by key: nx-27017 renames indexes
        if tuple((field, int(order)) for field, order in info["key"]) == SEQ_KEY and not info.get("unique"):
            coll.drop_index(name)       # an earlier version made it without `unique`
    coll.create_index([("account_id", ASCENDING), ("owner", ASCENDING), ("seq", ASCENDING)], unique=True,
                      partialFilterExpression={"seq": {"$type": "number"}}, name=SEQ_INDEX)
    coll.create_index([(field, ASCENDING) for field, _ in RECORD_KEY], name=RECORD_INDEX)


def create_ttl_index(coll: Collection) -> None:
    """The TTL index on received_at (CHANGES_TTL_DAYS); a changed setting changes the index in place."""
    ttl = int(get_settings().live.changes_days * 86400)
    try:
        coll.create_index([("received_at", ASCENDING)], expireAfterSeconds=ttl, name=TTL_INDEX)
    except OperationFailure:   # IndexOptionsConflict: the setting changed since the index was built
        coll.database.command("collMod", coll.name, index={"name": TTL_INDEX, "expireAfterSeconds": ttl})


def collection() -> Collection:
    return db.collection(get_settings().live.changes_collection, required=(DEDUPE_KEY, SEQ_KEY, RECORD_KEY))


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def dedupe_key(change: Change) -> str:
    """The identity of a change (AC sends no event id): what the feed would show of it, hashed."""
    shown = [change.type, change.resource, change.record_id, change.occurred_at.isoformat(), change.initiated_by,
             change.record, change.details]
    return hashlib.sha256(_json(shown).encode()).hexdigest()


def store(subscription: dict, change: Change, *, received_at: dt.datetime, dedupe: str | None = None) -> dict | None:
    """Store a change once, under a number taken first; None when the same change was stored before. `dedupe`:
    the change's identity when its content is not (the reconcile's deletions: one per record, whenever noticed)."""
    doc = {"account_id": subscription["account_id"], "owner": subscription["owner"],
           "workspace_id": subscription.get("workspace_id"), "connection_id": subscription.get("connection_id"),
           "dedupe": dedupe or dedupe_key(change), "type": change.type, "resource": change.resource,
           "record_id": change.record_id,
           "occurred_at": change.occurred_at, "received_at": received_at,
           "initiated_by": change.initiated_by,
           "record": json.dumps(change.record, ensure_ascii=False, separators=(",", ":")),
           "details": change.details}
    tenant = Tenant(account_id=subscription["account_id"], owner=subscription["owner"])
    for _ in range(NUMBER_ATTEMPTS):
        doc.update(_id=str(ObjectId()), seq=subscriptions.next_seq(subscription["_id"]), sequenced_at=_now())
        try:
            with db.mongo_errors():
                collection().insert_one(doc)
            return doc
        except DuplicateKeyError:
            # The dedupe index (a duplicate: close the number now, readers need not wait for it) or the
            # number's (a reader claimed it: this writer was slow; take another).
            if _claim(tenant, [doc["seq"]]) == 1:
                return None
    raise ServiceUnavailableError("Database busy; retry later")


def _claim(tenant: Tenant, numbers: list[int]) -> int:
    """Insert a `gap` document for each number, in order, stopping at the first number a document already
    holds; how many were claimed. A writer that still comes with a claimed number takes another."""
    if not numbers:
        return 0
    at = _now()
    gaps = [{"_id": f"gap-{ObjectId()}", "account_id": tenant.account_id, "owner": tenant.owner, "seq": n,
             "dedupe": f"gap:{n}", "gap": True, "received_at": at, "sequenced_at": at} for n in numbers]
    with db.mongo_errors():
        try:
            collection().insert_many(gaps, ordered=True)
        except BulkWriteError as exc:   # a PyMongoError: caught before mongo_errors makes it a 503
            return int(exc.details.get("nInserted") or 0)
        except DuplicateKeyError:
            return 0
    return len(gaps)


def parse_query(raw_query: str | None) -> tuple[int, int]:
    """`after` (a cursor from an earlier answer, default: the beginning) and `limit` (1-250, default 100)."""
    try:
        pairs = parse_qsl(raw_query or "", keep_blank_values=True, strict_parsing=bool(raw_query),
                          max_num_fields=10)
    except ValueError:
        raise BadRequestError("Malformed query string") from None
    params = dict(pairs)
    unknown = sorted(set(params) - {"after", "limit"})
    if unknown or len(pairs) != len(params):
        raise BadRequestError("Supported parameters: after, limit (once each)", supported=["after", "limit"])
    after_text, limit_text = params.get("after", "0").strip(), params.get("limit", str(DEFAULT_LIMIT)).strip()
    if not (after_text.isascii() and after_text.isdigit() and len(after_text) <= _CURSOR_DIGITS):
        raise BadRequestError("after must be a cursor from an earlier answer (next_cursor)", parameter="after")
    if not (limit_text.isascii() and limit_text.isdigit() and len(limit_text) <= 3
            and 1 <= int(limit_text) <= MAX_LIMIT):
        raise BadRequestError(f"limit must be an integer from 1 to {MAX_LIMIT}", parameter="limit")
    return int(after_text), int(limit_text)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value) -> dt.datetime:
    """A stored date, aware (nx-27017 keeps dates written by `$set` as text: jobs.store.as_datetime)."""
    return as_datetime(value) or dt.datetime.min.replace(tzinfo=dt.UTC)


def read(tenant: Tenant, *, after: int, limit: int) -> tuple[list[dict], int]:
    """The tenant's changes after cursor `after`, oldest first, at most `limit` and about PAGE_BYTES of JSON
    (at least one), and the cursor to read on from. Changes recorded for another connection than the
    tenant's current one (before a DELETE /auth or a reconnect) are passed over, not served."""
    now = _now()
    kept_since = now - dt.timedelta(days=get_settings().live.changes_days)
    current = connections.connection_id(tenant)
    query = {"account_id": tenant.account_id, "owner": tenant.owner, "seq": {"$gt": after}}
    with db.mongo_errors():
        docs = list(collection().find(query, {"dedupe": 0}).sort("seq", ASCENDING).limit(limit))
    out: list[dict] = []
    cursor, size, claims = after, 0, 0
    for doc in docs:
        if doc["seq"] != cursor + 1:
            age = (now - _aware(doc.get("sequenced_at") or doc["received_at"])).total_seconds()
            if age < CLAIM_AFTER_SECONDS:
                break   # a change is being written right now: read on from here next time
            if age < SETTLED_SECONDS:
                wanted = list(range(cursor + 1, min(doc["seq"], cursor + 1 + MAX_CLAIMS - claims)))
                got = _claim(tenant, wanted)
                claims, cursor = claims + got, cursor + got
                if cursor != doc["seq"] - 1:
                    break   # a change landed in the gap meanwhile, or the claims for one read are spent
        if not doc.get("gap") and doc.get("connection_id") in (None, current) \
                and _aware(doc["received_at"]) >= kept_since:   # the TTL monitor runs once a minute
            weight = len(json.dumps(describe(doc), separators=(",", ":"), ensure_ascii=False).encode())
            if out and size + weight > PAGE_BYTES:
                break
            size += weight
            out.append(doc)
        cursor = doc["seq"]
    _mark_order(tenant, out, kept_since, current)
    return out, cursor


def _mark_order(tenant: Tenant, docs: list[dict], kept_since: dt.datetime, current: str | None) -> None:
    """Set `superseded_by` (the id of a change of the same record that happened later at AC, by AC's own
    `date_time`, whenever it arrived) and `order_unknown` (another change of the record happened in the
    same second: AC's clock cannot order them) on each change of the page. One indexed read."""
    if not docs:
        return
    others = _changes_of_records(tenant, docs, kept_since, current)
    for doc in docs:
        _mark_one(doc, others)


def _changes_of_records(tenant: Tenant, docs: list[dict], kept_since: dt.datetime,
                        current: str | None) -> list[dict]:
    """The kept changes of the page's records since the earliest of them happened (the page's own included)."""
    query = {"account_id": tenant.account_id, "owner": tenant.owner,
             "record_id": {"$in": sorted({d["record_id"] for d in docs})},
             "occurred_at": {"$gte": min(_aware(d["occurred_at"]) for d in docs)}}
    with db.mongo_errors():
        return [o for o in collection().find(query, {"resource": 1, "record_id": 1, "occurred_at": 1,
                                                     "received_at": 1, "connection_id": 1, "seq": 1})
                if o.get("connection_id") in (None, current) and _aware(o["received_at"]) >= kept_since]


def _mark_one(doc: dict, others: list[dict]) -> None:
    at = _aware(doc["occurred_at"])
    same = [o for o in others if (o["resource"], o["record_id"]) == (doc["resource"], doc["record_id"])
            and o["_id"] != doc["_id"]]
    later = [o for o in same if _aware(o["occurred_at"]) > at]
    newest = max(later, key=lambda o: (_aware(o["occurred_at"]), o.get("seq") or 0), default=None)
    doc["superseded_by"] = newest["_id"] if newest else None
    doc["order_unknown"] = newest is None and any(_aware(o["occurred_at"]) == at for o in same)


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
            "superseded_by": doc.get("superseded_by"), "order_unknown": bool(doc.get("order_unknown")),
            "record": _record(doc.get("record")), **(doc.get("details") or {})}


def _record(stored) -> dict | None:
    """The record as stored: JSON text, so AC's labels (custom field names with `.` or a leading `$`) are
    never field names in Mongo."""
    if isinstance(stored, str):
        try:
            value = json.loads(stored)
        except ValueError:
            return {}
        if value is None:
            return None    # a deletion (reconcile/deletions.py): there is no record any more
        return value if isinstance(value, dict) else {}
    return stored if isinstance(stored, dict) else {}
