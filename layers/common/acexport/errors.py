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


class BadRequestError(ApiError):
    status = 400
    message = "Bad request"


class ForbiddenError(ApiError):
    status = 403
    message = "Forbidden"


class NotConnectedError(ApiError):
    """No connection is stored for the caller (the old module's wording)."""

    status = 404
    message = NOT_CONNECTED


class AlreadyExistsError(ApiError):
    status = 409
    message = ALREADY_EXISTS


class InvalidCredentialsError(ApiError):
    """AC rejected the base URL / api key pair while saving it."""

    status = 400
    message = INVALID_CREDENTIALS


class StoredCredentialsRejectedError(ApiError):
    """AC rejects a connection that was stored earlier (key reset, user deleted, account moved).
    403 with `reconnect: true`: the client should ask the user to connect again (docs/decisions.md)."""

    status = 403
    message = INVALID_CREDENTIALS

    def __init__(self, message: str | None = None, **kwargs):
        super().__init__(message, reconnect=True, **kwargs)


class PermissionDeniedError(ApiError):
    """AC accepts the key but the key's user group lacks a permission (e.g. Deals): AC answers 403 with
    `{"errors":[{"status":403,"title":"Forbidden","detail":"You do not have permission to view deals."}]}`
    (AC reference, GET /lists 403 example). Not a bad key: no `reconnect`, nothing stored changes, other
    resources keep working (docs/decisions.md)."""

    status = 403
    message = "The ActiveCampaign user of this connection does not have permission to read this"


class UpstreamThrottledError(ApiError):
    """AC kept answering 429 beyond the time this request has; tell the client when to come back."""

    status = 503
    message = "ActiveCampaign rate limit reached; retry later"

    def __init__(self, retry_after: float, message: str | None = None):
        seconds = max(1, int(retry_after + 0.999))
        super().__init__(message, headers={"Retry-After": str(seconds)}, retry_after=seconds)


class UpstreamUnavailableError(ApiError):
    status = 502
    message = "ActiveCampaign is unavailable; retry later"


class UpstreamTimeoutError(ApiError):
    status = 504
    message = "ActiveCampaign did not answer in time; retry later"


class ServiceUnavailableError(ApiError):
    """Our own dependencies (Mongo, KMS, Secrets Manager) are unreachable."""

    status = 503
    message = "Service temporarily unavailable; retry later"

    def __init__(self, message: str | None = None, **kwargs):
        kwargs.setdefault("headers", {"Retry-After": "5"})
        super().__init__(message, **kwargs)


# ---- AC's answers (ac/client.py)


class UpstreamInvalidError(ApiError):
    """AC's answer can never be used (too large, or a walk that never ends): not worth retrying."""

    status = 502
    message = "ActiveCampaign sent an answer this service cannot use"


class UpstreamRefusedError(UpstreamUnavailableError):
    """AC answered a 4xx with a JSON body (e.g. 422, a field it does not accept): it did nothing, so the
    caller may send a corrected request (live/hooks.py registers without the events an account refuses)."""


# ---- export jobs (jobs/)


class JobNotFoundError(ApiError):
    status = 404
    message = "Export job not found"


class JobFinishedError(ApiError):
    status = 409

    def __init__(self, status: str):
        super().__init__(f"Export job already {status}")


class TooManyJobsError(ApiError):
    status = 429

    def __init__(self, limit: int):
        super().__init__(f"At most {limit} export jobs may be queued or running at once; wait for one to "
                         "finish or cancel one", headers={"Retry-After": "60"}, retry_after=60)


class UnknownResourceError(ApiError):
    status = 404

    def __init__(self, name: str, supported: list[str]):
        super().__init__(f"Unknown export resource '{name[:64]}'. Supported: {', '.join(supported)}",
                         supported=supported)


# ---- connections (credentials/)


class TooManySaveAttemptsError(ApiError):
    status = 429

    def __init__(self, wait: int):
        super().__init__("Too many attempts to save a connection; retry later",
                         headers={"Retry-After": str(wait)}, retry_after=wait)


# ---- live changes (live/)


class HookGoneError(ApiError):
    status = 410
    message = "Unknown or revoked webhook"


class HookNotFoundError(ApiError):
    status = 404
    message = "Unknown webhook"


class DeliveryTooLargeError(ApiError):
    status = 413
    message = "Webhook delivery too large"


class RegistrationRacedError(ApiError):
    """Another request (DELETE /live, DELETE /auth, PUT /live) changed the subscription while this PUT /live
    registered its webhook at AC: that request wins; this one removed what it made."""

    status = 409
    message = "Live changes were changed by another request meanwhile; GET /live shows the state"


# ---- the deployment (settings.py)


class ConfigurationError(ServiceUnavailableError):
    """A setting is missing or unreadable: the deployment is wrong (503 naming the variable, never a value)."""
