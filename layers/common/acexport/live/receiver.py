"""POST /hooks/{secret}: one AC webhook delivery, stored once and announced (docs/live.md).

No JWT: AC cannot send one and does not sign its deliveries, so the path secret names the subscription
(`subscriptions.find_by_secret`: only an enabled subscription of the connection that exists now). This is
the one route on the internet without a JWT, so nothing costly happens before the secret is known: the
checks that cost nothing (size, the secret's shape, the content type), then the secret (two indexed reads:
the subscription, then its connection), then the subscription's delivery quota (`state.take`, which also
brings the contact field catalogue), and only then the body is parsed and mapped, with every number, date,
text and list bounded (`mapping`).
Then the sequence number, an insert, one PutEvents. Nothing calls AC.

Answers: 200 stored (or a duplicate, stored before); 413 too large; 404 a path segment that cannot be a
secret; 410 a wrong or revoked secret (AC turns off a webhook that answers 410 — its webhooks page — so a
revoked URL goes quiet); 429 past the subscription's delivery quota (`state`); 400 not a delivery this
service understands (a type it does not register, a missing id, an unreadable date, a malformed form).
Never a 500 for any body. The secret is never logged: errors carry fixed messages, and the access log
records the route key (`/hooks/{secret}`), not the path.
"""

from __future__ import annotations

import logging

from acexport.errors import ApiError, BadRequestError, DeliveryTooLargeError, HookGoneError, HookNotFoundError
from acexport.live import changes, events, form, mapping, state, subscriptions

logger = logging.getLogger(__name__)


def receive(secret: str, body: bytes, content_type: str | None, *, max_bytes: int) -> dict:
    if len(body) > max_bytes:
        raise DeliveryTooLargeError()
    if not subscriptions.SECRET_SHAPE.fullmatch(secret or ""):
        raise HookNotFoundError()
    if not form.is_form(content_type):
        raise BadRequestError(f"Webhook deliveries must be {form.FORM}")
    subscription = subscriptions.find_by_secret(secret)
    if subscription is None:
        raise HookGoneError()
    received_at = subscriptions.now()
    kept = state.take(subscription, received_at)
    change = mapping.change(form.parse(body, content_type), received_at=received_at,
                            catalogue=kept.get("contact_fields"))
    stored = changes.store(subscription, change, received_at=received_at)
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
