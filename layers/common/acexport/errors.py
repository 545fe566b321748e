"""API errors. Each carries the HTTP status and the message clients see.

Messages that existing clients match on verbatim live here as constants. No message ever includes an
api key, a token or another secret: errors are built from fixed text and validated input only.
"""

from __future__ import annotations

INVALID_CREDENTIALS = "Invalid base_url or api_key"
ALREADY_EXISTS = "Record already exist"
NOT_CONNECTED = "Unauthorised Access"
BASE_URL_REQUIRED = "Base URL is required"
API_KEY_REQUIRED = "API Key is required"


class ApiError(Exception):
    """An error answered with the envelope {"success": false, "errno": status, "message": ...}."""

    status = 500
    message = "Internal error"

    def __init__(self, message: str | None = None, *, status: int | None = None,
                 headers: dict[str, str] | None = None, **extra):
        self.message = message or self.message
        self.status = status or self.status
        self.headers = headers or {}
        self.extra = extra
        super().__init__(self.message)

    def body(self) -> dict:
        return {"success": False, "errno": self.status, "message": self.message, **self.extra}


class BadRequest(ApiError):
    status = 400
    message = "Bad request"


class Forbidden(ApiError):
    status = 403
    message = "Forbidden"


class NotConnected(ApiError):
    """No connection is stored for the caller (the old module's wording)."""

    status = 404
    message = NOT_CONNECTED


class AlreadyExists(ApiError):
    status = 409
    message = ALREADY_EXISTS


class InvalidCredentials(ApiError):
    """AC rejected the base URL / api key pair while saving it."""

    status = 400
    message = INVALID_CREDENTIALS


class StoredCredentialsRejected(ApiError):
    """AC rejects a connection that was stored earlier (key reset, user deleted, account moved).
    403 with `reconnect: true`: the client should ask the user to connect again (docs/decisions.md)."""

    status = 403
    message = INVALID_CREDENTIALS

    def __init__(self, message: str | None = None, **kwargs):
        super().__init__(message, reconnect=True, **kwargs)


class PermissionDenied(ApiError):
    """AC accepts the key but the key's user group lacks a permission (e.g. Deals): AC answers 403 with
    `{"errors":[{"status":403,"title":"Forbidden","detail":"You do not have permission to view deals."}]}`
    (AC reference, GET /lists 403 example). Not a bad key: no `reconnect`, nothing stored changes, other
    resources keep working (docs/decisions.md)."""

    status = 403
    message = "The ActiveCampaign user of this connection does not have permission to read this"


class UpstreamThrottled(ApiError):
    """AC kept answering 429 beyond the time this request has; tell the client when to come back."""

    status = 503
    message = "ActiveCampaign rate limit reached; retry later"

    def __init__(self, retry_after: float, message: str | None = None):
        seconds = max(1, int(retry_after + 0.999))
        super().__init__(message, headers={"Retry-After": str(seconds)}, retry_after=seconds)


class UpstreamUnavailable(ApiError):
    status = 502
    message = "ActiveCampaign is unavailable; retry later"


class UpstreamTimeout(ApiError):
    status = 504
    message = "ActiveCampaign did not answer in time; retry later"


class ServiceUnavailable(ApiError):
    """Our own dependencies (Mongo, KMS, Secrets Manager) are unreachable."""

    status = 503
    message = "Service temporarily unavailable; retry later"

    def __init__(self, message: str | None = None, **kwargs):
        kwargs.setdefault("headers", {"Retry-After": "5"})
        super().__init__(message, **kwargs)
