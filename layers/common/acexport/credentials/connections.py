"""Save, delete and show a caller's AC connection (the /auth routes)."""

from __future__ import annotations

import datetime as dt

from acexport.ac.base_url import normalise_base_url
from acexport.credentials import attempts, crypto, store
from acexport.errors import (
    API_KEY_REQUIRED,
    BASE_URL_REQUIRED,
    INVALID_CREDENTIALS,
    AlreadyExistsError,
    BadRequestError,
    NotConnectedError,
)
from acexport.settings import get_settings
from acexport.tenancy import Tenant

MAX_API_KEY_LENGTH = 256


def _required_text(body: dict, field: str, message: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        raise BadRequestError(message)
    return value.strip()


def _iso(value) -> str | None:
    """Always with milliseconds (`2026-12-01T13:34:20.000Z`), as the old Node module's Date.toJSON wrote them and
    MongoDB keeps them. (Without `timespec`, a date on a whole second lost its fraction and sorted before
    an earlier one with a fraction, as text.)"""
    if not isinstance(value, dt.datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def describe(doc: dict | None) -> dict:
    """The connection status clients see: never the key."""
    if doc is None:
        return {"connected": False}
    return {
        "connected": True,
        "base_url": doc.get("base_url"),
        "needs_reconnect": doc.get("rejected_at") is not None,
        "created_at": _iso(doc.get("created_at")),
        "updated_at": _iso(doc.get("updated_at")),
        "validated_at": _iso(doc.get("validated_at")),
    }


def save(tenant: Tenant, body: dict, *, deadline: float) -> dict:
    """Validate the pair against AC, then store it with the key encrypted. Order matters: bad input is
    refused before any network call; a duplicate is refused before calling AC (the unique index still
    decides races); a caller past AUTH_SAVE_ATTEMPTS is refused before calling AC."""
    base_url = normalise_base_url(_required_text(body, "base_url", BASE_URL_REQUIRED),
                                  allow_local=get_settings().allow_local_base_url)
    api_key = _required_text(body, "api_key", API_KEY_REQUIRED)
    if len(api_key) > MAX_API_KEY_LENGTH or not api_key.isascii() or not api_key.isprintable() or " " in api_key:
        raise BadRequestError(INVALID_CREDENTIALS)
    if store.exists(tenant):
        raise AlreadyExistsError()
    attempts.take(tenant)   # per caller: validations take no slot of the AC host's shared budget
    from acexport.ac.client import ACClient  # here: GET /auth never calls AC (no `requests` at its start)

    ACClient(base_url, api_key, deadline=deadline).validate()
    ciphertext = crypto.encrypt(api_key, account_id=tenant.account_id, owner=tenant.owner)
    return describe(store.insert(tenant, base_url=base_url, ciphertext=ciphertext))


def delete(tenant: Tenant, *, deadline: float) -> None:
    """Forget the connection, then revoke its live subscription and remove its webhooks at AC with the key
    read before the delete. In this order a PUT /live running at the same time always sees one of the
    two (docs/live.md, "Lifecycle"), and the receiver refuses the subscription from the delete on."""
    doc = store.find(tenant)
    if doc is None:
        raise NotConnectedError()
    if not store.delete(tenant):
        raise NotConnectedError()
    from acexport.live import hooks  # imported here: only DELETE /auth needs the live side

    hooks.disable(tenant, deadline=deadline, connection=doc)
    from acexport.reconcile import storage  # the reconcile's id sets go with the connection (docs/live.md)

    storage.remove(tenant)


def status(tenant: Tenant) -> dict:
    return describe(store.find(tenant))
