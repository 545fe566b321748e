"""The credential store: one AC connection per (account_id, owner), in CREDENTIALS_COLLECTION.

Fields: account_id, owner, workspace_id, base_url, api_key, key_encryption, created_at, updated_at,
validated_at, rejected_at. `api_key` holds KMS ciphertext (`key_encryption: "kms"`); records written in
plaintext by the old Node service (no `key_encryption`) still work and are encrypted by
`python -m acexport.migrate_keys`. The unique index on {account_id, owner} decides duplicates.

Every stored base_url goes through the same guard as a new one (`ac.base_url.normalise_base_url`)
each time it is used: records written by the old service (http, other hosts) are refused with a message
that asks the user to connect again, never called as stored (the second security round, finding 10).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bson.binary import Binary
from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from acexport import compat, db
from acexport.ac.base_url import STORED_BASE_URL_REFUSED, normalise_base_url
from acexport.credentials import crypto
from acexport.errors import AlreadyExistsError, BadRequestError, StoredCredentialsRejectedError
from acexport.settings import get_settings
from acexport.tenancy import Tenant

if TYPE_CHECKING:
    from acexport.ac.client import ACClient

UNIQUE_INDEX = "account_id_1_owner_1"


def create_indexes(coll: Collection) -> None:
    """The unique {account_id, owner} index (deploy time: acexport.setup_db, after its pre-flight check)."""
    coll.create_index([("account_id", ASCENDING), ("owner", ASCENDING)], unique=True, name=UNIQUE_INDEX)


UNIQUE_KEY = (("account_id", 1), ("owner", 1))


def collection() -> Collection:
    return db.collection(get_settings().credentials_collection, required=(UNIQUE_KEY,))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key(tenant: Tenant) -> dict[str, str]:
    return {"account_id": tenant.account_id, "owner": tenant.owner}


@dataclass(frozen=True)
class Credentials:
    base_url: str
    api_key: str


def checked_base_url(doc: dict) -> str:
    """The record's base URL through the same guard as a new one; a refused one (a legacy record: http,
    another host) marks the connection for reconnecting and is a 403 `reconnect`."""
    try:
        return normalise_base_url(str(doc.get("base_url") or ""), allow_local=get_settings().allow_local_base_url)
    except BadRequestError:
        mark_rejected(_tenant(doc))   # GET /auth: reconnect
        raise StoredCredentialsRejectedError(STORED_BASE_URL_REFUSED) from None


def identity(doc: dict) -> dict[str, str]:
    """What a job records of the connection it started with: its id, host and a digest of the stored key
    material (the KMS ciphertext, or a legacy plaintext key; never the key, and no KMS call: the start
    functions may not decrypt). Saving the connection again or replacing the key changes it."""
    stored = doc.get("api_key") or b""
    material = bytes(stored) if isinstance(stored, bytes | bytearray) else str(stored).encode()
    return {"id": str(doc["_id"]), "host": urlsplit(checked_base_url(doc)).netloc.lower(),
            "key": hashlib.sha256(material).hexdigest()[:32]}


def exists(tenant: Tenant) -> bool:
    with db.mongo_errors():
        return collection().count_documents(_key(tenant), limit=1) > 0


def insert(tenant: Tenant, *, base_url: str, ciphertext: bytes) -> dict:
    now = _now()
    doc = {**_key(tenant), "workspace_id": tenant.workspace_id, "base_url": base_url,
           "api_key": Binary(ciphertext), "key_encryption": "kms",
           "created_at": now, "updated_at": now, "validated_at": now, "rejected_at": None}
    try:
        with db.mongo_errors():
            collection().insert_one(doc)
    except DuplicateKeyError:
        raise AlreadyExistsError() from None
    return doc


DATES = ("created_at", "updated_at", "validated_at", "rejected_at")


def find(tenant: Tenant) -> dict | None:
    """The tenant's connection record (with its `_id`, the connection's identity), or None; its dates as
    datetimes (`mark_rejected` sets two through `$set`: text on nx-27017, acexport.compat)."""
    with db.mongo_errors():
        return compat.with_dates(collection().find_one(_key(tenant)), DATES)


def connection_id(tenant: Tenant) -> str | None:
    """The id of the tenant's connection (None when there is none): a reconnect gives a new one."""
    with db.mongo_errors():
        doc = collection().find_one(_key(tenant), {"_id": 1})
    return None if doc is None else str(doc["_id"])


def delete(tenant: Tenant) -> bool:
    with db.mongo_errors():
        return collection().delete_one(_key(tenant)).deleted_count == 1


def mark_rejected(tenant: Tenant) -> None:
    """AC refused the stored key: remember it so GET /auth can say the user must reconnect."""
    with db.mongo_errors():
        collection().update_one(_key(tenant), {"$set": {"rejected_at": _now(), "updated_at": _now()}})


def _tenant(doc: dict) -> Tenant:
    return Tenant(account_id=doc["account_id"], owner=doc["owner"])


def credentials(doc: dict) -> Credentials:
    """Decrypt a stored record's key (legacy plaintext records are read as they are). A key that cannot be
    this tenant's (KMS refuses the ciphertext in its context) or a refused base URL marks the connection
    for reconnecting, like a key AC refuses."""
    stored = doc.get("api_key")
    if doc.get("key_encryption") != "kms":
        return Credentials(base_url=checked_base_url(doc), api_key=str(stored or ""))
    base_url = checked_base_url(doc)
    try:
        if not isinstance(stored, bytes):   # a KMS record without its ciphertext: as one KMS refuses
            raise StoredCredentialsRejectedError()
        api_key = crypto.decrypt(stored, account_id=doc["account_id"], owner=doc["owner"])
    except StoredCredentialsRejectedError:
        mark_rejected(_tenant(doc))
        raise
    return Credentials(base_url=base_url, api_key=api_key)


def client(doc: dict, *, deadline: float) -> ACClient:
    """The AC client of a stored connection: every caller that calls AC with a stored key makes it here.

    When AC refuses the key (StoredCredentialsRejected: 401/403 twice, a redirect, an HTML 404, a stored host
    that resolves to a non-public address), the client marks the connection for reconnecting (GET /auth:
    `needs_reconnect`) before the error reaches the caller: a route cannot forget it (docs/decisions.md,
    "One place marks a refused stored key")."""
    from acexport.ac.client import ACClient  # here: GET /auth never calls AC (no `requests` at its start)

    found = credentials(doc)
    tenant = _tenant(doc)
    return ACClient(found.base_url, found.api_key, deadline=deadline, on_rejected=lambda: mark_rejected(tenant))
