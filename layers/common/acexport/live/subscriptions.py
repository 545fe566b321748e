"""The live subscriptions: one document per (account_id, owner), in LIVE_COLLECTION.

Fields: account_id, owner, workspace_id, agency_account_id, state (`pending` | `enabled` | `gone` |
`disabled`), secret_hash, connection_id (the `_id` of the AC connection the webhook was registered with),
ac_host, hook_host (the host of the URL registered at AC), webhook_ids, webhook_name, events,
refused_events, sources, since, checked_at, gone_at, seq.

The hook secret (the last segment of the URL AC posts to) is random, 256 bits, and stored only as its
SHA-256 (`secret_hash`, unique index): a fast hash is enough for a random secret of that size (nothing
to brute-force), and it lets the receiver find the subscription with one indexed read. A disabled
subscription keeps its document (its `seq` counter keeps feed cursors increasing if it is enabled again)
but its hash is replaced by `revoked:<id>`, which no secret hashes to.

Lifecycle (docs/live.md, "Lifecycle"): PUT /live writes the new secret's hash with state `pending`
(`prepare`), registers the webhook at AC, then turns the document `enabled` only if it is still the
same registration (`enabled` is a compare-and-set on the secret hash and the connection): a DELETE /live,
a DELETE /auth or another PUT /live that ran meanwhile wins, and the loser removes the webhook it made.
The receiver accepts a secret only while its subscription is `enabled` and the connection it was made
with is still the tenant's connection (`find_by_secret`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets

from pymongo import ASCENDING, ReturnDocument
from pymongo.collection import Collection

from acexport import db
from acexport.compat import as_datetime
from acexport.credentials import store
from acexport.settings import get_settings
from acexport.tenancy import Tenant

SECRET_BYTES = 32                               # token_urlsafe(32): 43 characters
SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{32,128}")
PENDING, ENABLED, GONE, DISABLED = "pending", "enabled", "gone", "disabled"


TENANT_KEY = (("account_id", 1), ("owner", 1))
SECRET_KEY = (("secret_hash", 1),)


def create_indexes(coll: Collection) -> None:
    """Unique {account_id, owner} (one subscription per caller) and unique secret_hash (the receiver's one
    read). Deploy time: acexport.setup_db."""
    coll.create_index([("account_id", ASCENDING), ("owner", ASCENDING)], unique=True, name="account_id_1_owner_1")
    coll.create_index([("secret_hash", ASCENDING)], unique=True, name="secret_hash_1")


def collection() -> Collection:
    return db.collection(get_settings().live.subscriptions_collection, required=(TENANT_KEY, SECRET_KEY))


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key(tenant: Tenant) -> dict[str, str]:
    return {"account_id": tenant.account_id, "owner": tenant.owner}


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def find(tenant: Tenant) -> dict | None:
    with db.mongo_errors():
        return collection().find_one(_key(tenant))


def find_by_secret(secret: str) -> dict | None:
    """The subscription a delivery's path secret names; None for a malformed, wrong or revoked secret, a
    subscription that is not `enabled` (pending, gone at AC, disabled), or one made with a connection the
    tenant no longer has (DELETE /auth, or a reconnect, maybe to another AC account): two indexed reads."""
    if not SECRET_SHAPE.fullmatch(secret or ""):
        return None
    with db.mongo_errors():
        doc = collection().find_one({"secret_hash": secret_hash(secret), "state": ENABLED},
                                    {"account_id": 1, "owner": 1, "workspace_id": 1, "agency_account_id": 1,
                                     "connection_id": 1, "since": 1})
    if doc is None:
        return None
    return doc if _made_with_current_connection(doc) else None


def _made_with_current_connection(doc: dict) -> bool:
    tenant = Tenant(account_id=doc["account_id"], owner=doc["owner"])
    with db.mongo_errors():
        conn = store.collection().find_one(_key(tenant), {"_id": 1, "created_at": 1})
    if conn is None:
        return False
    if doc.get("connection_id") is not None:
        return str(conn["_id"]) == doc["connection_id"]
    # Enabled before subscriptions recorded their connection: a tenant has one connection at a time, so the
    # one that existed before the webhook was registered is the one it was registered with.
    created, since = as_datetime(conn.get("created_at")), as_datetime(doc.get("since"))
    return created is not None and since is not None and created <= since


def prepare(tenant: Tenant, secret: str, *, connection_id: str) -> dict:
    """Create or take over the tenant's document for a new registration (state `pending`): the old secret
    is revoked at once, and the new one is accepted only when `enabled` confirms this registration."""
    with db.mongo_errors():
        doc = collection().find_one_and_update(
            _key(tenant),
            {"$set": {"secret_hash": secret_hash(secret), "workspace_id": tenant.workspace_id,
                      "agency_account_id": tenant.agency_account_id, "state": PENDING,
                      "connection_id": connection_id, "webhook_ids": [], "updated_at": now()},
             "$setOnInsert": {"seq": 0, "created_at": now()}},
            upsert=True, return_document=ReturnDocument.AFTER)
    assert doc is not None, "an upsert returning the document after it always has one"
    return doc


def enabled(doc: dict, *, ac_host: str, hook_host: str, webhook_ids: list[str], webhook_name: str,
            events: list[str], sources: list[str], refused_events: list[str] | None = None) -> dict | None:
    """Compare-and-set `pending` -> `enabled` for the registration `prepare` returned; None when another
    request changed the subscription meanwhile (the caller then removes the webhook it made)."""
    at = now()
    update = {"state": ENABLED, "ac_host": ac_host, "hook_host": hook_host, "webhook_ids": webhook_ids,
              "webhook_name": webhook_name, "events": events, "refused_events": list(refused_events or []),
              "sources": sources, "since": at, "checked_at": at, "gone_at": None, "updated_at": at}
    with db.mongo_errors():
        won = collection().update_one({"_id": doc["_id"], "state": PENDING, "secret_hash": doc["secret_hash"],
                                       "connection_id": doc.get("connection_id")}, {"$set": update})
    return {**doc, **update} if won.matched_count == 1 else None


def checked(doc: dict, *, gone: bool) -> dict:
    at = now()
    update = {"checked_at": at, **({"state": GONE, "gone_at": doc.get("gone_at") or at} if gone else {})}
    with db.mongo_errors():
        collection().update_one({"_id": doc["_id"], "secret_hash": doc.get("secret_hash"),
                                 "state": {"$in": [ENABLED, GONE]}}, {"$set": update})
    return {**doc, **update}


def disable(doc: dict, *, only_if_secret: str | None = None) -> None:
    """Revoke the secret (deliveries to the old URL are refused from now on) and forget the webhooks,
    whatever the state (a `pending` registration too: its PUT /live then loses its compare-and-set).
    `only_if_secret` (a secret hash): only while that registration is still the current one."""
    match = {"_id": doc["_id"], **({"secret_hash": only_if_secret} if only_if_secret else {})}
    with db.mongo_errors():
        collection().update_one(match, {"$set": {
            "state": DISABLED, "secret_hash": f"revoked:{doc['_id']}", "webhook_ids": [], "updated_at": now()}})


def next_seq(subscription_id) -> int:
    """The tenant's next change sequence number (strictly increasing, never reused)."""
    with db.mongo_errors():
        doc = collection().find_one_and_update({"_id": subscription_id}, {"$inc": {"seq": 1}},
                                               projection={"seq": 1}, return_document=ReturnDocument.AFTER)
    return int(doc["seq"]) if doc else 0
