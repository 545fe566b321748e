"""POST /hooks/{secret}: one AC webhook delivery, stored once and announced (docs/live.md).

No JWT: AC cannot send one and does not sign its deliveries, so the path secret names the subscription
(`subscriptions.find_by_secret`). The work is bounded and fast (AC does not retry, so a slow answer
loses nothing it would resend, but the receiver should never be why a delivery is lost): a size check,
one indexed read, the form parse, an insert, the sequence number, one PutEvents. Nothing calls AC.

Answers: 200 stored (or a duplicate, stored before); 413 too large; 404 a path segment that cannot be a
secret; 400 not a delivery this service understands; 410 a wrong or revoked secret (AC is said to turn off
a webhook that answers 410 — docs/live.md — so a revoked URL goes quiet). The secret is never logged: errors carry
fixed messages, and the access log records the route key (`/hooks/{secret}`), not the path.
"""

from __future__ import annotations

import logging

from acexport.errors import ApiError
from acexport.live import changes, events, form, mapping, subscriptions

logger = logging.getLogger(__name__)


class HookGone(ApiError):
    status = 410
    message = "Unknown or revoked webhook"


class NotFound(ApiError):
    status = 404
    message = "Unknown webhook"


class TooLarge(ApiError):
    status = 413
    message = "Webhook delivery too large"


def receive(secret: str, body: bytes, content_type: str | None, *, max_bytes: int) -> dict:
    """Checks go cheapest first, and nothing is read from the store for a request that cannot be a
    delivery: size, the secret's shape, the body, then the subscription."""
    if len(body) > max_bytes:
        raise TooLarge()
    if not subscriptions.SECRET_SHAPE.fullmatch(secret or ""):
        raise NotFound()
    received_at = subscriptions.now()
    change = mapping.change(form.parse(body, content_type), received_at=received_at)
    subscription = subscriptions.find_by_secret(secret)
    if subscription is None:
        raise HookGone()
    dedupe = changes.dedupe_key(body)
    stored = changes.store(subscription, change, dedupe=dedupe, received_at=received_at)
    if stored is None:
        logger.info("duplicate delivery", extra={"account_id": subscription["account_id"], "type": change.type})
        return {"duplicate": True}
    try:
        events.publish(subscription, stored)
    except ApiError as exc:
        # The change is stored and readable in the feed; losing the event must not lose the delivery.
        logger.warning("change stored, event not published",
                       extra={"account_id": subscription["account_id"], "change_id": stored["_id"],
                              "error": type(exc.__cause__ or exc).__name__})
    return {"duplicate": False}
