"""JWT verification for the Lambda authorizer.

Tokens are HS256, issued by the platform. The algorithm is fixed here and never read from the token,
so `alg: none` and RS/HS confusion are refused by pyjwt itself. Required claims: `uid`, `account_id`,
`exp`; optional `workspace_id`, `parent_account`. The result is the authorizer context handlers get.

The secret (JWT_SECRET / the JwtSecretArn secret) has two forms (docs/deploy.md, "Rotating the JWT secret";
docs/decisions.md, "JWT secret rotation"):

- a plain string: the one HS256 key (the original form, still accepted as it is);
- a JSON object `{"current": "<key>", "previous": "<key>", "previous_until": "2026-12-08T12:00:00Z"}`:
  tokens signed with `current` verify; tokens signed with `previous` verify too until `previous_until`
  (ISO 8601 with a time zone, or epoch seconds), so a rotation does not log every user out at once.
  `previous` without `previous_until` is refused as a configuration error: a window must end.

A value that starts with `{` is read as the JSON form and must be one (SecretFormatError otherwise, never
naming the value); an HS256 key that starts with `{` is not supported.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime

import jwt

ALGORITHM = "HS256"
MAX_TOKEN_BYTES = 8192
LEEWAY_SECONDS = 30
_REQUIRED = ("uid", "account_id")
_OPTIONAL = ("workspace_id", "parent_account")


class InvalidToken(Exception):
    """The token is missing, malformed, badly signed, expired or lacks a required claim."""


class SecretFormatError(ValueError):
    """The JWT secret's value is neither a plain key nor a valid rotation object (a deployment error).
    The message names what is wrong, never a key."""


@dataclass(frozen=True)
class SigningKeys:
    """The keys tokens may be signed with: `current` always, `previous` until `previous_until`."""

    current: str
    previous: str | None = None
    previous_until: float | None = None   # epoch seconds

    def previous_valid(self, now: float) -> bool:
        return bool(self.previous) and self.previous_until is not None and now < self.previous_until


def _epoch(value) -> float:
    if isinstance(value, bool):
        raise SecretFormatError("JWT secret: previous_until must be an ISO 8601 time with a zone or epoch seconds")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment.timestamp()
    raise SecretFormatError("JWT secret: previous_until must be an ISO 8601 time with a zone or epoch seconds")


def signing_keys(value: str | SigningKeys) -> SigningKeys:
    """The keys of a JWT secret value: a plain string, or the JSON rotation object (module docstring)."""
    if isinstance(value, SigningKeys):
        return value
    text = (value or "").strip()
    if not text.startswith("{"):
        if not text:
            raise SecretFormatError("JWT secret is empty")
        return SigningKeys(text)
    try:
        data = json.loads(text)
    except ValueError:
        raise SecretFormatError("JWT secret starts with '{' but is not a JSON object") from None
    if not isinstance(data, dict):
        raise SecretFormatError("JWT secret starts with '{' but is not a JSON object")
    unknown = sorted(set(data) - {"current", "previous", "previous_until"})
    if unknown:
        raise SecretFormatError(f"JWT secret: unknown field(s) {', '.join(unknown)}")
    current, previous = data.get("current"), data.get("previous")
    if not isinstance(current, str) or not current.strip():
        raise SecretFormatError("JWT secret: 'current' must be a non-empty string")
    if previous in (None, ""):
        return SigningKeys(current.strip())
    if not isinstance(previous, str):
        raise SecretFormatError("JWT secret: 'previous' must be a string")
    if data.get("previous_until") in (None, ""):
        raise SecretFormatError("JWT secret: 'previous' needs 'previous_until' (when the rotation window ends)")
    return SigningKeys(current.strip(), previous.strip(), _epoch(data["previous_until"]))


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


def _decode(token: str, key: str) -> dict:
    return jwt.decode(token, key, algorithms=[ALGORITHM], leeway=LEEWAY_SECONDS,
                      options={"require": ["exp", *_REQUIRED], "verify_signature": True})


def verify_claims(authorization: str | None, secret: str | SigningKeys, *,
                  now: float | None = None) -> tuple[dict[str, str], bool]:
    """verify(), and whether the token was signed with the previous key (to log while a rotation runs)."""
    keys = signing_keys(secret)
    token = bearer_token(authorization)
    used_previous = False
    try:
        try:
            claims = _decode(token, keys.current)
        except jwt.InvalidSignatureError:
            # Only a bad signature is worth a second try: an expired or malformed token stays refused.
            if keys.previous is None or not keys.previous_valid(time.time() if now is None else now):
                raise
            claims, used_previous = _decode(token, keys.previous), True
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
    return context, used_previous


def verify(authorization: str | None, secret: str | SigningKeys, *, now: float | None = None) -> dict[str, str]:
    """Verify an `Authorization: Bearer <jwt>` value against the secret (either form); return the
    authorizer context."""
    return verify_claims(authorization, secret, now=now)[0]
