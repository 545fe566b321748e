"""Deleted records as changes of the caller's feed and `ActiveCampaign Change` events on the bus.

A deletion is `<resource>.deleted` (`contact.deleted`, `deal.deleted`, `account.deleted`) with the record's
id, `record: null`, and `occurred_at` = when the reconcile noticed it (AC does not say when a record was
deleted: somewhere between the previous reconcile and this one). It goes through the feed's own store
(live/changes.py: numbered per tenant, kept CHANGES_TTL_DAYS) and event (live/events.py).

Each deletion once: its dedupe key is the digest of (connection, the generation of the id sets compared
against, resource, id), so a reconcile that stops after reporting some deletions and runs again (a crash,
a redelivered message) stores none of them twice; AC never reuses an id, so a record is deleted once.

The feed numbers changes through the tenant's live subscription document; a caller who never turned live
changes on has none, so one is made here: disabled, with a secret hash that no secret hashes to (the
same `revoked:<id>` that DELETE /live leaves), so it opens no receiver URL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from acexport import db
from acexport.errors import ApiError
from acexport.live import changes, events, subscriptions
from acexport.live.mapping import Change

logger = logging.getLogger(__name__)

SINGULAR = {"contacts": "contact", "deals": "deal", "accounts": "account"}


def feed_of(doc: dict) -> dict:
    """The tenant's subscription document (the feed's numbering), made disabled if there is none."""
    key = {"account_id": doc["account_id"], "owner": doc["owner"]}
    with db.mongo_errors():
        found = subscriptions.collection().find_one(key)
    if found is not None:
        return found
    new_id = ObjectId()
    fresh = {"_id": new_id, **key, "workspace_id": doc.get("workspace_id"),
             "agency_account_id": doc.get("agency_account_id"), "state": subscriptions.DISABLED,
             "secret_hash": f"revoked:{new_id}", "webhook_ids": [], "seq": 0,
             "created_at": subscriptions.now(), "updated_at": subscriptions.now()}
    try:
        with db.mongo_errors():
            subscriptions.collection().insert_one(fresh)
        return fresh
    except DuplicateKeyError:           # made at the same moment by PUT /live
        with db.mongo_errors():
            made = subscriptions.collection().find_one(key)
        return made if made is not None else feed_of(doc)   # deleted again meanwhile: made once more


def dedupe(connection: str, generation: int, resource: str, record_id: int) -> str:
    return hashlib.sha256(f"deleted|{connection}|{generation}|{resource}|{record_id}".encode()).hexdigest()


def report(doc: dict, deleted: dict[str, list[int]], *, noticed_at: dt.datetime, connection: str,
           generation: int) -> int:
    """Store and publish each deletion once; the number stored now (duplicates of an earlier try: 0)."""
    if not any(deleted.values()):
        return 0
    subscription = feed_of(doc)
    stored_now = 0
    for resource, ids in deleted.items():
        singular = SINGULAR[resource]
        for record_id in ids:
            change = Change(type=f"{singular}.deleted", resource=singular, record_id=str(record_id),
                            occurred_at=noticed_at, initiated_by=None, record=None)  # type: ignore[arg-type]
            stored = changes.store(subscription, change, dedupe=dedupe(connection, generation, resource, record_id),
                                   received_at=subscriptions.now())
            if stored is None:
                continue
            stored_now += 1
            try:
                events.publish(subscription, stored)
            except ApiError as exc:      # stored and readable in the feed; the event alone is lost
                logger.warning("deletion stored, event not published",
                               extra={"change_id": stored["_id"], "error": type(exc.__cause__ or exc).__name__})
    return stored_now
