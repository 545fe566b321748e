"""POST /hooks/{secret}: one AC webhook delivery, stored once and announced (docs/live.md).

No JWT: AC cannot send one and does not sign its deliveries, so the path secret names the subscription
(`subscriptions.find_by_secret`). The work is bounded and fast (AC does not retry, so a slow answer
loses nothing it would resend, but the receiver should never be why a delivery is lost): a size check,
one indexed read, the form parse, an insert, the sequence number, one PutEvents. Nothing calls AC.

Answers: 200 stored (or a duplicate, stored before); 410 for a wrong, malformed or revoked secret
(AC is said to turn off a webhook that answers 410 — docs/live.md — and a revoked URL should go quiet);
413 too large; 400 not a delivery this service understands. The secret is never logged: errors carry
fixed messages, and the access log records the route key (`/hooks/{secret}`), not the path.
"""

from __future__ import annotations

import logging

from acexport.errors import ApiError, BadRequest
from acexport.live import changes, events, form, mapping, subscriptions

logger = logging.getLogger(__name__)


class HookGone(ApiError):
    status = 410
    message = "Unknown or revoked webhook"


class TooLarge(ApiError):
    status = 413
    message = "Webhook delivery too large"


def receive(secret: str, body: bytes, content_type: str | None, *, max_bytes: int) -> dict:
    if len(body) > max_bytes:
        raise TooLarge()
    subscription = subscriptions.find_by_secret(secret)
    if subscription is None:
        raise HookGone()
    received_at = subscriptions.now()
    delivery = form.parse(body, content_type)
    change = mapping.change(delivery, received_at=received_at)
    try:
        dedupe = changes.dedupe_key(body)
    except UnicodeDecodeError:
        raise BadRequest("Malformed form body") from None
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
