"""The caller's webhooks at AC: register, check and remove them (PUT, GET, DELETE /live; DELETE /auth).

AC's webhook API (docs/live.md, from AC's reference as copied in api-evangelist/activecampaign, and the
n8n, Pipedream and Activepieces clients that use it): `POST /api/3/webhooks` with
`{"webhook": {"name", "url", "events", "sources"}}` answers 201 `{"webhook": {..., "id": "1"}}`;
`GET /api/3/webhooks/{id}`; `DELETE /api/3/webhooks/{id}` answers 200 `{}`; `GET /api/3/webhook/events`
lists the event names under `webhookEvents`. AC delivers to https URLs on port 443 only.

One webhook per subscription carries every event this service maps (`mapping.TYPES`) that the account
offers, from all four sources (public, admin, api, system: the clients above default to all four), plus
`account_add` and `account_update`: AC's documented `GET /webhook/events` example omits them, but
Activepieces registers them and publishes a real `account_update` delivery, so they are always asked
for; an account that refuses them (a 4xx) gets the webhook without them, and GET /live says so
(`refused_events`). Its URL is the API's own receiver route with a new random secret; registering again
(the webhook was deleted at AC, or the connection changed) makes a new secret and revokes the old URL.

The URL's origin is `https://` + the domain API Gateway received the request on (or HOOKS_BASE_URL), never
a request header such as X-Forwarded-Proto or Host: a header would let a caller point the webhook anywhere.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from urllib.parse import SplitResult, urlsplit

from acexport.ac.client import ACClient, UpstreamRefusedError
from acexport.compat import as_datetime
from acexport.credentials import store
from acexport.errors import (
    ApiError,
    NotConnectedError,
    RegistrationRacedError,
    StoredCredentialsRejectedError,
    UpstreamThrottledError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from acexport.live import fields, state, subscriptions
from acexport.live.mapping import TYPES
from acexport.settings import ConfigurationError, get_settings
from acexport.tenancy import Tenant

logger = logging.getLogger(__name__)

REQUIRED_EVENTS = ["subscribe", "update", "unsubscribe", "contact_tag_added", "contact_tag_removed",
                   "deal_add", "deal_update"]
ACCOUNT_EVENTS = ["account_add", "account_update"]
WANTED_EVENTS = [*REQUIRED_EVENTS, *(name for name in TYPES if name not in REQUIRED_EVENTS)]
SOURCES = ["public", "admin", "api", "system"]
_AC_TROUBLE = (UpstreamUnavailableError, UpstreamTimeoutError, UpstreamThrottledError)
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")   # a DNS name or an IPv4 address
_LOOPBACK = {"127.0.0.1", "localhost"}


def _iso(value) -> str | None:
    value = as_datetime(value)   # nx-27017 keeps dates written by `$set` as text
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def describe(doc: dict | None) -> dict:
    """What GET/PUT/DELETE /live answer: never the secret, the URL or the webhook ids; the host AC posts to."""
    doc = doc or {}
    state = doc.get("state") or subscriptions.DISABLED
    if state == subscriptions.DISABLED:
        return {"enabled": False, "state": state, "events": [], "since": None}
    out = {"enabled": state == subscriptions.ENABLED, "state": state, "events": list(doc.get("events") or []),
           "sources": list(doc.get("sources") or []), "since": _iso(doc.get("since")),
           "checked_at": _iso(doc.get("checked_at"))}
    if doc.get("hook_host"):
        out["host"] = doc["hook_host"]
    if doc.get("refused_events"):
        out["refused_events"] = list(doc["refused_events"])
        out["note"] = "This ActiveCampaign account refused these events: their changes do not arrive"
    if state == subscriptions.GONE:
        out["gone_at"] = _iso(doc.get("gone_at"))
        out["problem"] = ("The webhook was removed at ActiveCampaign, or the connection changed; PUT /live "
                          "registers it again")
    return out


def _bare(parts: SplitResult, text: str) -> bool:
    """No userinfo, path, query or fragment."""
    return not (parts.username is not None or parts.password is not None or parts.path not in ("", "/")
                or bool(parts.query) or bool(parts.fragment) or "?" in text or "#" in text)


def _origin(text: str, *, local: bool) -> str | None:
    """`scheme://host[:port]` when `text` is exactly that (no userinfo, path, query or fragment): https on
    port 443, or (local stack only) http on a loopback host. None otherwise."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if not _bare(parts, text) or not _HOST.fullmatch(host):
        return None
    if parts.scheme == "https" and port in (None, 443):
        return f"https://{host.lower()}"
    if local and host.lower() in _LOOPBACK and parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{parts.netloc.lower()}"
    return None


def receiver_url(event: dict, path: str) -> str:
    """Where AC must post: HOOKS_BASE_URL (e.g. a custom domain) + path, else `https://` + the domain API
    Gateway received this request on (`requestContext.domainName`; in AWS the API's own
    `<id>.execute-api.<region>.amazonaws.com` or its custom domain). Request headers (X-Forwarded-Proto,
    Host) are never read: they are the caller's to write. Locally (ACTIVECAMPAIGN_ALLOW_LOCAL_BASE_URL) a
    loopback domain is served over http."""
    settings = get_settings()
    local = settings.allow_local_base_url
    configured = settings.live.hooks_base_url
    if configured:
        origin = _origin(configured, local=local)
        if origin is None:
            # AC: "for https endpoints, we only can send webhooks on port 443" (docs/live.md).
            raise ConfigurationError("Configuration error: HOOKS_BASE_URL must be https://<host> (port 443, "
                                     "no path)")
        return origin + path
    domain = str((event.get("requestContext") or {}).get("domainName") or "")
    host = domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain
    scheme = "http" if local and host.lower() in _LOOPBACK else "https"
    origin = _origin(f"{scheme}://{domain}", local=local) if domain and "/" not in domain and "@" not in domain \
        else None
    if origin is None:
        raise ConfigurationError("Configuration error: the API's domain is not a host name; set HOOKS_BASE_URL")
    return origin + path


def _client(tenant: Tenant, deadline: float) -> tuple[ACClient, dict]:
    conn = store.find(tenant)
    if conn is None:
        raise NotConnectedError()
    return store.client(conn, deadline=deadline), conn


def _exists(client: ACClient, webhook_id: str) -> bool:
    return client.request("GET", f"/webhooks/{webhook_id}", missing_ok=True) is not None


def _remove(client: ACClient, webhook_ids: list[str]) -> None:
    for webhook_id in webhook_ids:
        client.request("DELETE", f"/webhooks/{webhook_id}", missing_ok=True)


def _events(client: ACClient) -> list[str]:
    """What the account offers (AC says to ask rather than hard-code), in the order this service wants, and
    the account events, which AC's list omits but accepts (Activepieces)."""
    try:
        body = client.get("/webhook/events", [("limit", "100")]) or {}
    except _AC_TROUBLE:
        body = {}
    offered = {name for name in body.get("webhookEvents") or [] if isinstance(name, str)}
    listed = [name for name in WANTED_EVENTS if name in offered and name not in ACCOUNT_EVENTS]
    return [*(listed or REQUIRED_EVENTS), *ACCOUNT_EVENTS]


def _register(client: ACClient, name: str, url: str, events: list[str]) -> tuple[str, list[str], list[str]]:
    """POST the webhook; when AC refuses it (a 4xx: it made nothing) and it asked for account events, once
    more without them. (webhook id, events registered, events refused)."""
    def post(names: list[str]) -> str:
        created = client.request("POST", "/webhooks", idempotent=False, json={"webhook": {
            "name": name, "url": url, "events": names, "sources": SOURCES}})
        webhook_id = str(((created or {}).get("webhook") or {}).get("id") or "")
        if not webhook_id:
            raise UpstreamUnavailableError("ActiveCampaign did not confirm the webhook; retry later")
        return webhook_id

    try:
        return post(events), events, []
    except UpstreamRefusedError:
        refused = [e for e in events if e in ACCOUNT_EVENTS]
        if not refused:
            raise
        kept = [e for e in events if e not in ACCOUNT_EVENTS]
        logger.info("account events refused by ActiveCampaign; registered without them", extra={"ac_host": client.host})
        return post(kept), kept, refused


def _undo(client: ACClient, webhook_id: str) -> None:
    """Remove a webhook this request made but lost the race for (AC unreachable: its URL is refused anyway)."""
    try:
        _remove(client, [webhook_id])
    except ApiError as exc:
        logger.warning("webhook of a lost registration not removed at AC", extra={"error": type(exc).__name__})


def _remember_fields(client: ACClient, doc: dict) -> None:
    """The account's contact field catalogue, kept for the receiver (live/fields.py); a failure to read it
    only means deliveries keep the field keys AC sent."""
    try:
        state.remember_fields(doc["_id"], fields.catalogue(client))
    except StoredCredentialsRejectedError:
        raise
    except ApiError as exc:
        logger.info("contact field catalogue not refreshed", extra={"error": type(exc).__name__})



def _still_enabled(current: dict, client: ACClient, connection_id: str) -> bool:
    """The subscription is enabled for this connection and AC host, and AC still has its webhooks."""
    return bool(current.get("state") == subscriptions.ENABLED
                and current.get("connection_id") == connection_id and current.get("ac_host") == client.host
                and current.get("webhook_ids") and all(_exists(client, i) for i in current["webhook_ids"]))


def _webhook_ids_at(doc: dict, host: str) -> list:
    """The webhooks a subscription registered at `host` (none when it registered them at another host)."""
    return list(doc.get("webhook_ids") or []) if doc.get("ac_host") == host else []


def enable(tenant: Tenant, *, url_base: str, deadline: float) -> dict:
    """PUT /live: idempotent. An enabled subscription of this connection whose webhook AC still has is
    answered as it is; else a new registration, confirmed by compare-and-set (subscriptions.enabled)."""
    client, conn = _client(tenant, deadline)
    connection_id = str(conn["_id"])
    current = subscriptions.find(tenant)
    if current and _still_enabled(current, client, connection_id):
        _remember_fields(client, current)
        return describe(subscriptions.checked(current, gone=False))
    events = _events(client)
    secret = subscriptions.new_secret()
    doc = subscriptions.prepare(tenant, secret, connection_id=connection_id)
    _remember_fields(client, doc)   # before the webhook exists, so its first delivery finds the names
    old_ids = _webhook_ids_at(current or {}, client.host)
    name = f"activecampaign-integration live {doc['_id']}"
    try:
        webhook_id, events, refused = _register(client, name, f"{url_base}/{secret}", events)
    except ApiError:
        subscriptions.disable(doc, only_if_secret=doc["secret_hash"])
        raise
    done = subscriptions.enabled(doc, ac_host=client.host, hook_host=urlsplit(url_base).netloc,
                                 webhook_ids=[webhook_id], webhook_name=name, events=events, sources=SOURCES,
                                 refused_events=refused)
    # DELETE /auth deletes the connection before it revokes the subscription: checked after the
    # compare-and-set, one of the two requests always sees the other and removes the webhook.
    if done is None or store.connection_id(tenant) != connection_id:
        _undo(client, webhook_id)
        if done is not None:
            subscriptions.disable(done, only_if_secret=doc["secret_hash"])
            raise NotConnectedError()
        raise RegistrationRacedError()
    _remove(client, [i for i in old_ids if i != webhook_id])
    return describe(done)


def status(tenant: Tenant, *, deadline: float) -> dict:
    """GET /live: the stored state, checked against AC (one call) when it says enabled."""
    doc = subscriptions.find(tenant)
    if not doc or doc.get("state") != subscriptions.ENABLED:
        return describe(doc)
    conn = store.find(tenant)
    if conn is None or (doc.get("connection_id") and str(conn["_id"]) != doc["connection_id"]):
        return describe(subscriptions.checked(doc, gone=True))     # the receiver refuses it already
    client = store.client(conn, deadline=deadline)
    if client.host != doc.get("ac_host"):
        return describe(subscriptions.checked(doc, gone=True))
    try:
        present = all(_exists(client, i) for i in doc.get("webhook_ids") or [])
    except _AC_TROUBLE as exc:
        logger.info("live status not checked at AC", extra={"error": type(exc).__name__})
        return describe(doc)
    return describe(subscriptions.checked(doc, gone=not present))


def disable(tenant: Tenant, *, deadline: float, connection: dict | None = None) -> dict:
    """DELETE /live (and DELETE /auth, with the connection it just deleted): revoke the secret, whatever the
    state (a registration in progress loses its compare-and-set and removes its own webhook), then remove
    the webhooks at AC. Deliveries to the old URL are refused (410) from the first step on, even when AC
    cannot be reached, and AC is said to take a 410 as "turn this webhook off"."""
    doc = subscriptions.find(tenant)
    if not doc:
        return {**describe(None), "removed_at_ac": True}
    subscriptions.disable(doc)
    ids = list(doc.get("webhook_ids") or [])
    removed = not ids
    conn = connection if connection is not None else store.find(tenant)
    if conn is not None and ids:
        try:
            client = store.client(conn, deadline=deadline)
            if client.host == doc.get("ac_host"):
                _remove(client, ids)
                removed = True
        except ApiError as exc:
            logger.warning("webhooks not removed at AC", extra={"error": type(exc).__name__})
    return {**describe(None), "removed_at_ac": removed}
