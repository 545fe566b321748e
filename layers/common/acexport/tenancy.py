"""Who is calling and on which account they act.

The authorizer puts the verified JWT claims at requestContext.authorizer.lambda. A caller acts on their
own account, or, as an agency, on one of their sub-accounts named in `X-Sub-Account-Id` — allowed only
when the platform's accounts collection says that sub-account's parent is the caller's account.
The connection is always keyed by (effective account_id, uid): no tenant reaches another's record.
The effective account_id of a sub-account is its id *as stored* in the accounts collection, never the
header's spelling: ObjectId hex is matched whatever its letter case, so `ABC…` and `abc…` would
otherwise be two tenants of one sub-account (the second security round, finding 8).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from acexport.errors import BadRequestError, ForbiddenError

SUB_ACCOUNT_HEADER = "x-sub-account-id"
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass(frozen=True)
class Tenant:
    account_id: str
    owner: str
    workspace_id: str | None = None
    agency_account_id: str | None = None  # set when an agency acts on its sub-account


def _authorizer_context(event) -> dict:
    ctx = (event.get("requestContext") or {}).get("authorizer") or {}
    return ctx.get("lambda") or {}


def resolve(event: dict) -> Tenant:
    """The tenant of a v2 API Gateway event (raw dict)."""
    claims = _authorizer_context(event)
    uid, account_id = claims.get("uid"), claims.get("account_id")
    if not uid or not account_id:
        # Only reachable when a route is deployed without the authorizer: refuse, never guess.
        raise ForbiddenError("Missing caller identity")
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    sub_account = (headers.get(SUB_ACCOUNT_HEADER) or "").strip()
    if not sub_account or sub_account == account_id:
        return Tenant(account_id=str(account_id), owner=str(uid), workspace_id=claims.get("workspace_id"))
    if not _ID.match(sub_account):
        raise BadRequestError("Invalid X-Sub-Account-Id header")
    stored = stored_sub_account(sub_account, parent=str(account_id))
    if stored is None:
        raise ForbiddenError("Sub-account not accessible")
    return Tenant(account_id=stored, owner=str(uid), agency_account_id=str(account_id))


def _id_values(value: str) -> list:
    """Platform ids may be stored as strings or ObjectIds."""
    from bson import ObjectId

    return [value, ObjectId(value)] if ObjectId.is_valid(value) else [value]


def stored_sub_account(sub_account: str, *, parent: str) -> str | None:
    """The sub-account's id as the accounts collection stores it (str of an ObjectId: lower-case hex),
    when its parent is `parent`; None otherwise."""
    from acexport import db
    from acexport.settings import get_settings

    settings = get_settings()
    query = {settings.accounts_id_field: {"$in": _id_values(sub_account)},
             settings.accounts_parent_field: {"$in": _id_values(parent)}}
    with db.mongo_errors():
        doc = db.database()[settings.accounts_collection].find_one(query, {settings.accounts_id_field: 1})
    if doc is None:
        return None
    value = doc
    for part in settings.accounts_id_field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return None if value is None else str(value)

