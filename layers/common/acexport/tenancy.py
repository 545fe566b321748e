"""Who is calling and on which account they act.

The authorizer puts the verified JWT claims at requestContext.authorizer.lambda. A caller acts on their
own account, or, as an agency, on one of their sub-accounts named in `X-Sub-Account-Id` — allowed only
when the platform's accounts collection says that sub-account's parent is the caller's account.
The connection is always keyed by (effective account_id, uid): no tenant reaches another's record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from acexport.errors import BadRequest, Forbidden

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
        raise Forbidden("Missing caller identity")
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    sub_account = (headers.get(SUB_ACCOUNT_HEADER) or "").strip()
    if not sub_account or sub_account == account_id:
        return Tenant(account_id=str(account_id), owner=str(uid), workspace_id=claims.get("workspace_id"))
    if not _ID.match(sub_account):
        raise BadRequest("Invalid X-Sub-Account-Id header")
    if not is_sub_account(sub_account, parent=str(account_id)):
        raise Forbidden("Sub-account not accessible")
    return Tenant(account_id=sub_account, owner=str(uid), agency_account_id=str(account_id))


def _id_values(value: str) -> list:
    """Platform ids may be stored as strings or ObjectIds."""
    from bson import ObjectId

    return [value, ObjectId(value)] if ObjectId.is_valid(value) else [value]


def is_sub_account(sub_account: str, *, parent: str) -> bool:
    from acexport import db
    from acexport.settings import get_settings

    settings = get_settings()
    query = {settings.accounts_id_field: {"$in": _id_values(sub_account)},
             settings.accounts_parent_field: {"$in": _id_values(parent)}}
    with db.mongo_errors():
        return db.database()[settings.accounts_collection].count_documents(query, limit=1) > 0
