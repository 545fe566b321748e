"""The per-caller limit of connection saves (POST /auth), which call AC to validate a key.

A caller without a connection must not be able to slow another tenant's exports on the same AC account
(the second security round, finding 2): validations pass a lane of 1 per second per AC account before they take a slot
of the account's budget (`ac.client.validation_lane`, decision 36), and each caller is bounded by this limit:
at most AUTH_SAVE_ATTEMPTS saves that reach AC per AUTH_SAVE_WINDOW_SECONDS per
caller (account_id + user), counted in Mongo so every container shares it.

One counter document per caller and window in RATE_BUDGET_COLLECTION (next to the budget's slots, whose
TTL index on `expires` drops it a day later), `{_id: "auth#<account_id>#<owner>#<window>", n, expires}`;
the count is one atomic upsert with `$inc`, so concurrent saves cannot both see the last free attempt.
Over the limit: 429 with Retry-After = the seconds left in the window.
"""

from __future__ import annotations

import datetime as dt
import math
import time

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from acexport import db
from acexport.errors import TooManySaveAttemptsError
from acexport.settings import get_settings
from acexport.tenancy import Tenant


def take(tenant: Tenant, *, clock=time.time) -> None:
    """Count one save attempt of `tenant`; raise TooManySaveAttempts past the limit."""
    settings = get_settings()
    window = settings.auth_window_seconds
    now = clock()
    start = math.floor(now / window) * window
    key = f"auth#{tenant.account_id}#{tenant.owner}#{int(start)}"
    coll = db.database()[settings.rate_budget_collection]
    update = {"$inc": {"n": 1}, "$setOnInsert": {"expires": dt.datetime.fromtimestamp(now, dt.UTC)
                                                  + dt.timedelta(days=1)}}
    with db.mongo_errors():
        try:
            doc = coll.find_one_and_update({"_id": key}, update, upsert=True, return_document=ReturnDocument.AFTER)
        except DuplicateKeyError:   # two first attempts upserted at once: the other one created it
            doc = coll.find_one_and_update({"_id": key}, update, return_document=ReturnDocument.AFTER)
    if int((doc or {}).get("n", 0)) > settings.auth_attempts:
        raise TooManySaveAttemptsError(max(1, math.ceil(start + window - now)))
