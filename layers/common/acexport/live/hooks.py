"""The caller's webhooks at AC: register, check and remove them (PUT, GET, DELETE /live; DELETE /auth).

AC's webhook API (docs/live.md, from AC's reference as copied in api-evangelist/activecampaign, and the
n8n, Pipedream and Activepieces clients that use it): `POST /api/3/webhooks` with
`{"webhook": {"name", "url", "events", "sources"}}` answers 201 `{"webhook": {..., "id": "1"}}`;
`GET /api/3/webhooks/{id}`; `DELETE /api/3/webhooks/{id}` answers 200 `{}`; `GET /api/3/webhook/events`
lists the event names under `webhookEvents`. AC delivers to https URLs on port 443 only.

One webhook per subscription carries every event this service maps (`mapping.TYPES`) that the account
offers, from all four sources (public, admin, api, system: the clients above default to all four). Its URL
is the API's own receiver route with a new random secret; registering again (the webhook was deleted at
AC, or the connection moved to another AC account) makes a new secret and revokes the old URL.
"""

from __future__ import annotations

import datetime as dt
import logging
from urllib.parse import urlsplit

from acexport.ac.client import ACClient
from acexport.compat import as_datetime
from acexport.credentials import store
from acexport.errors import (
    ApiError,
    NotConnected,
    StoredCredentialsRejected,
    UpstreamThrottled,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from acexport.live import fields, state, subscriptions
from acexport.live.mapping import TYPES
from acexport.settings import ConfigurationError, get_settings
from acexport.tenancy import Tenant

logger = logging.getLogger(__name__)

REQUIRED_EVENTS = ["subscribe", "update", "unsubscribe", "contact_tag_added", "contact_tag_removed",
                   "deal_add", "deal_update"]
WANTED_EVENTS = [*REQUIRED_EVENTS, *(name for name in TYPES if name not in REQUIRED_EVENTS)]
SOURCES = ["public", "admin", "api", "system"]
_AC_TROUBLE = (UpstreamUnavailable, UpstreamTimeout, UpstreamThrottled)


def _iso(value) -> str | None:
    value = as_datetime(value)   # nx-27017 keeps dates written by `$set` as text
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def describe(doc: dict | None) -> dict:
    """What GET/PUT/DELETE /live answer: never the secret, the URL or the webhook ids."""
    state = (doc or {}).get("state") or subscriptions.DISABLED
    if state == subscriptions.DISABLED:
        return {"enabled": False, "state": state, "events": [], "since": None}
    out = {"enabled": state == subscriptions.ENABLED, "state": state, "events": list(doc.get("events") or []),
           "sources": list(doc.get("sources") or []), "since": _iso(doc.get("since")),
           "checked_at": _iso(doc.get("checked_at"))}
    if state == subscriptions.GONE:
        out["gone_at"] = _iso(doc.get("gone_at"))
        out["problem"] = "The webhook was removed at ActiveCampaign; PUT /live registers it again"
    return out


def receiver_url(event: dict, path: str) -> str:
    """Where AC must post: HOOKS_BASE_URL (e.g. a custom domain) + path, else the origin the caller reached
    this API at (in AWS the API's own https://<id>.execute-api.<region>.amazonaws.com)."""
    origin = get_settings().live.hooks_base_url
    if not origin:
        context = event.get("requestContext") or {}
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        proto = (headers.get("x-forwarded-proto") or "https").split(",")[0].strip()
        origin = f"{proto}://{context.get('domainName') or headers.get('host', '')}"
    parts = urlsplit(origin)
    local = get_settings().allow_local_base_url
    if not parts.hostname or (not local and (parts.scheme != "https" or parts.port not in (None, 443))):
        # AC: "for https endpoints, we only can send webhooks on port 443" (docs/live.md).
        raise ConfigurationError("Configuration error: HOOKS_BASE_URL must be an https URL on port 443")
    return origin.rstrip("/") + path


def _client(tenant: Tenant, deadline: float) -> tuple[ACClient, dict]:
    conn = store.find(tenant)
    if conn is None:
        raise NotConnected()
    credentials = store.credentials(conn)
    return ACClient(credentials.base_url, credentials.api_key, deadline=deadline), conn


def _exists(client: ACClient, webhook_id: str) -> bool:
    return client.request("GET", f"/webhooks/{webhook_id}", missing_ok=True) is not None


def _remove(client: ACClient, webhook_ids: list[str]) -> None:
    for webhook_id in webhook_ids:
        client.request("DELETE", f"/webhooks/{webhook_id}", missing_ok=True)


def _events(client: ACClient) -> list[str]:
    """What the account offers (AC says to ask rather than hard-code), in the order this service wants."""
    try:
        body = client.get("/webhook/events", [("limit", "100")]) or {}
    except _AC_TROUBLE:
        return list(REQUIRED_EVENTS)
    offered = {name for name in body.get("webhookEvents") or [] if isinstance(name, str)}
    return [name for name in WANTED_EVENTS if name in offered] or list(REQUIRED_EVENTS)


def _remember_fields(client: ACClient, doc: dict) -> None:
    """The account's contact field catalogue, kept for the receiver (live/fields.py); a failure to read it
    only means deliveries keep the field keys AC sent."""
    try:
        state.remember_fields(doc["_id"], fields.catalogue(client))
    except StoredCredentialsRejected:
        raise
    except ApiError as exc:
        logger.info("contact field catalogue not refreshed", extra={"error": type(exc).__name__})


def _rejected(tenant: Tenant):
    store.mark_rejected(tenant)


def enable(tenant: Tenant, *, url_base: str, deadline: float) -> dict:
    """PUT /live: idempotent. An enabled subscription whose webhook AC still has is answered as it is."""
    client, _ = _client(tenant, deadline)
    try:
        current = subscriptions.find(tenant)
        if (current and current.get("state") == subscriptions.ENABLED and current.get("ac_host") == client.host
                and current.get("webhook_ids") and all(_exists(client, i) for i in current["webhook_ids"])):
            _remember_fields(client, current)
            return describe(subscriptions.checked(current, gone=False))
        events = _events(client)
        secret = subscriptions.new_secret()
        doc = subscriptions.prepare(tenant, secret)
        old_ids = list((current or {}).get("webhook_ids") or []) if (current or {}).get("ac_host") == client.host \
            else []
        name = f"activecampaign-integration live {doc['_id']}"
        try:
            created = client.request("POST", "/webhooks", idempotent=False, json={"webhook": {
                "name": name, "url": f"{url_base}/{secret}", "events": events, "sources": SOURCES}})
            webhook_id = str(((created or {}).get("webhook") or {}).get("id") or "")
            if not webhook_id:
                raise UpstreamUnavailable("ActiveCampaign did not confirm the webhook; retry later")
        except ApiError:
            subscriptions.disable(doc)
            raise
        _remove(client, [i for i in old_ids if i != webhook_id])
        _remember_fields(client, doc)
        return describe(subscriptions.enabled(doc, ac_host=client.host, webhook_ids=[webhook_id],
                                              webhook_name=name, events=events, sources=SOURCES))
    except StoredCredentialsRejected:
        _rejected(tenant)
        raise


def status(tenant: Tenant, *, deadline: float) -> dict:
    """GET /live: the stored state, checked against AC (one call) when it says enabled."""
    doc = subscriptions.find(tenant)
    if not doc or doc.get("state") != subscriptions.ENABLED:
        return describe(doc)
    conn = store.find(tenant)
    if conn is None:
        return describe(doc)
    credentials = store.credentials(conn)
    client = ACClient(credentials.base_url, credentials.api_key, deadline=deadline)
    if client.host != doc.get("ac_host"):
        return describe(subscriptions.checked(doc, gone=True))
    try:
        present = all(_exists(client, i) for i in doc.get("webhook_ids") or [])
    except _AC_TROUBLE as exc:
        logger.info("live status not checked at AC", extra={"error": type(exc).__name__})
        return describe(doc)
    except StoredCredentialsRejected:
        _rejected(tenant)
        raise
    return describe(subscriptions.checked(doc, gone=not present))


def disable(tenant: Tenant, *, deadline: float, connection: dict | None = None) -> dict:
    """DELETE /live (and DELETE /auth, with the connection about to be deleted): remove the webhooks at
    AC, then revoke the secret. The secret is revoked even when AC cannot be reached: deliveries to the
    old URL are then refused (410), which AC is said to take as "turn this webhook off"."""
    doc = subscriptions.find(tenant)
    if not doc or doc.get("state") == subscriptions.DISABLED:
        return {**describe(None), "removed_at_ac": True}
    removed = True
    conn = connection if connection is not None else store.find(tenant)
    if conn is not None and doc.get("webhook_ids"):
        try:
            credentials = store.credentials(conn)
            client = ACClient(credentials.base_url, credentials.api_key, deadline=deadline)
            if client.host == doc.get("ac_host"):
                _remove(client, doc["webhook_ids"])
            else:
                removed = False
        except ApiError as exc:
            removed = False
            logger.warning("webhooks not removed at AC", extra={"error": type(exc).__name__})
    else:
        removed = not doc.get("webhook_ids")
    subscriptions.disable(doc)
    return {**describe(None), "removed_at_ac": removed}
