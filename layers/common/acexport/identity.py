"""JWT verification for the Lambda authorizer.

Tokens are HS256, issued by the platform. The algorithm is fixed here and never read from the token,
so `alg: none` and RS/HS confusion are refused by pyjwt itself. Required claims: `uid`, `account_id`,
`exp`; optional `workspace_id`, `parent_account`. The result is the authorizer context handlers get.
"""

from __future__ import annotations

import jwt

ALGORITHM = "HS256"
MAX_TOKEN_BYTES = 8192
LEEWAY_SECONDS = 30
_REQUIRED = ("uid", "account_id")
_OPTIONAL = ("workspace_id", "parent_account")


class InvalidToken(Exception):
    """The token is missing, malformed, badly signed, expired or lacks a required claim."""


def _claim_text(value) -> str | None:
    """Ids may be strings or integers in the platform's tokens; anything else is refused."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text if 0 < len(text) <= 128 else None


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise InvalidToken("missing Authorization header")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise InvalidToken("Authorization must be 'Bearer <token>'")
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidToken("token too large")
    return token


def verify(authorization: str | None, secret: str) -> dict[str, str]:
    """Verify an `Authorization: Bearer <jwt>` value; return the authorizer context."""
    token = bearer_token(authorization)
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], leeway=LEEWAY_SECONDS,
            options={"require": ["exp", *_REQUIRED], "verify_signature": True},
        )
    except jwt.PyJWTError as exc:
        # pyjwt's messages name the failed check, never the token or the key.
        raise InvalidToken(type(exc).__name__) from None
    context = {}
    for name in (*_REQUIRED, *_OPTIONAL):
        if name not in claims or claims[name] is None:
            continue
        text = _claim_text(claims[name])
        if text is None:
            raise InvalidToken(f"claim {name} has the wrong type")
        context[name] = text
    missing = [name for name in _REQUIRED if name not in context]
    if missing:
        raise InvalidToken(f"missing claims: {', '.join(missing)}")
    return context
