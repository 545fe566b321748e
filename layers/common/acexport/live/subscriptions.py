"""The live subscriptions: one document per (account_id, owner), in LIVE_COLLECTION.

Fields: account_id, owner, workspace_id, agency_account_id, state (`enabled` | `gone` | `disabled`),
secret_hash, ac_host, webhook_ids, webhook_name, events, sources, since, checked_at, gone_at, seq.

The hook secret (the last segment of the URL AC posts to) is random, 256 bits, and stored only as its
SHA-256 (`secret_hash`, unique index): a fast hash is enough for a random secret of that size (nothing
to brute-force), and it lets the receiver find the subscription with one indexed read. A disabled
subscription keeps its document (its `seq` counter keeps feed cursors increasing if it is enabled again)
but its hash is replaced by `revoked:<id>`, which no secret hashes to.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets

from pymongo import ASCENDING, ReturnDocument
from pymongo.collection import Collection

from acexport import db
from acexport.settings import get_settings
from acexport.tenancy import Tenant

SECRET_BYTES = 32                               # token_urlsafe(32): 43 characters
SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{32,128}")
ENABLED, GONE, DISABLED = "enabled", "gone", "disabled"


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
    """The subscription a delivery's path secret names, None for a malformed, wrong or revoked one."""
    if not SECRET_SHAPE.fullmatch(secret or ""):
        return None
    with db.mongo_errors():
        return collection().find_one({"secret_hash": secret_hash(secret)},
                                     {"account_id": 1, "owner": 1, "workspace_id": 1, "agency_account_id": 1,
                                      "connection_id": 1})


def prepare(tenant: Tenant, secret: str) -> dict:
    """Create or take over the tenant's document for a new registration: the new secret's hash is in
    place before AC is told the URL, so a delivery that arrives at once is accepted."""
    with db.mongo_errors():
        return collection().find_one_and_update(
            _key(tenant),
            {"$set": {"secret_hash": secret_hash(secret), "workspace_id": tenant.workspace_id,
                      "agency_account_id": tenant.agency_account_id, "state": DISABLED, "updated_at": now()},
             "$setOnInsert": {"seq": 0, "created_at": now()}},
            upsert=True, return_document=ReturnDocument.AFTER)


def enabled(doc: dict, *, ac_host: str, webhook_ids: list[str], webhook_name: str, events: list[str],
            sources: list[str]) -> dict:
    at = now()
    update = {"state": ENABLED, "ac_host": ac_host, "webhook_ids": webhook_ids, "webhook_name": webhook_name,
              "events": events, "sources": sources, "since": at, "checked_at": at, "gone_at": None,
              "updated_at": at}
    with db.mongo_errors():
        collection().update_one({"_id": doc["_id"]}, {"$set": update})
    return {**doc, **update}


def checked(doc: dict, *, gone: bool) -> dict:
    at = now()
    update = {"checked_at": at, **({"state": GONE, "gone_at": doc.get("gone_at") or at} if gone else {})}
    with db.mongo_errors():
        collection().update_one({"_id": doc["_id"], "state": {"$ne": DISABLED}}, {"$set": update})
    return {**doc, **update}


def disable(doc: dict) -> None:
    """Revoke the secret (deliveries to the old URL are refused from now on) and forget the webhooks."""
    with db.mongo_errors():
        collection().update_one({"_id": doc["_id"]}, {"$set": {
            "state": DISABLED, "secret_hash": f"revoked:{doc['_id']}", "webhook_ids": [], "updated_at": now()}})


def next_seq(subscription_id) -> int:
    """The tenant's next change sequence number (strictly increasing, never reused)."""
    with db.mongo_errors():
        doc = collection().find_one_and_update({"_id": subscription_id}, {"$inc": {"seq": 1}},
                                               projection={"seq": 1}, return_document=ReturnDocument.AFTER)
    return int(doc["seq"]) if doc else 0
