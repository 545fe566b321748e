"""What the receiver keeps per live subscription besides the subscription: its delivery quota and the
account's contact field catalogue (`fields.py`), in one document per subscription (`_id` = the
subscription's id) of `<LIVE_COLLECTION>-receiver`, so a delivery counts itself and reads the catalogue in
one round trip (`take`). Only `_id` is queried: the collection needs no index of its own.

The quota (docs/live.md "Limits"; decision in docs/decisions.md, "A per-subscription delivery quota"):
at most PER_WINDOW deliveries per subscription per WINDOW_SECONDS, counted before the body is read. AC
documents 5 API requests per second per account, and one request changes one record (a few events at
most); mass operations such as imports fire no webhooks. PER_WINDOW is 6,000 a minute (100 a second
sustained, half the receiver route's whole throttle): 20 times what the documented API rate can cause, a
margin for automations and UI work, which the rate limit does not cover and whose pace AC does not document.
Beyond it a delivery is answered 429 and not stored. AC never retries, so no answer brings that delivery
back: 429 says what happened (to anyone replaying or proxying deliveries), never
deactivates the webhook as 410 would, and unlike a silent 200 it does not claim the change was kept. The
count goes on past the limit, so `count - PER_WINDOW` is what a window refused; the first refusal of a
window is logged with the tenant. An incremental job (docs/jobs.md) catches up on what was refused.
"""

from __future__ import annotations

import datetime as dt
import logging

from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from acexport import db
from acexport.errors import ApiError
from acexport.settings import get_settings

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
PER_WINDOW = 6000


class OverQuota(ApiError):
    status = 429
    message = "Too many webhook deliveries for this subscription; this one was not stored"


def collection() -> Collection:
    """LIVE_COLLECTION's name + `-receiver` (`_receiver` where the names use `_`: nx-27017, acexport.compat)."""
    base = get_settings().live.subscriptions_collection
    return db.collection(f"{base}{'-' if '-' in base else '_'}receiver")


def take(subscription: dict, now: dt.datetime) -> dict:
    """Count one delivery in the subscription's current window and return the state document (with the
    field catalogue, `contact_fields`). Raises OverQuota past PER_WINDOW. One round trip, two when a new
    window opens (three when two deliveries open it at once)."""
    window = int(now.timestamp() // WINDOW_SECONDS)
    key = subscription["_id"]
    coll = collection()
    with db.mongo_errors():
        doc = coll.find_one_and_update({"_id": key, "window": window}, {"$inc": {"count": 1}},
                                       return_document=ReturnDocument.AFTER)
        if doc is None:
            try:
                doc = coll.find_one_and_update({"_id": key, "window": {"$lt": window}},
                                               {"$set": {"window": window, "count": 1}}, upsert=True,
                                               return_document=ReturnDocument.AFTER)
            except DuplicateKeyError:    # another delivery opened the window first: count in it
                doc = coll.find_one_and_update({"_id": key, "window": window}, {"$inc": {"count": 1}},
                                               return_document=ReturnDocument.AFTER)
    count = int((doc or {}).get("count") or 0)
    if count > PER_WINDOW:
        if count == PER_WINDOW + 1:
            logger.warning("live delivery quota reached; deliveries refused until the window ends",
                           extra={"account_id": subscription.get("account_id"), "quota": PER_WINDOW,
                                  "window_seconds": WINDOW_SECONDS})
        raise OverQuota()
    return doc or {}


def remember_fields(subscription_id, catalogue: list[dict]) -> None:
    """Keep the account's contact field catalogue (PUT /live) for the receiver."""
    with db.mongo_errors():
        collection().update_one({"_id": subscription_id}, {"$set": {"contact_fields": catalogue},
                                                           "$setOnInsert": {"window": 0, "count": 0}}, upsert=True)
