"""What every HTTP handler shares: the Powertools resolver with the error mapping, the Lambda entry
decorator, the caller's tenant, the request deadline and the success envelope.

Errors are mapped, not leaked: an ApiError becomes its envelope
`{"success": false, "errno": status, "message": ...}`; anything unexpected becomes a 500 envelope with a
fixed message while the traceback goes to the log (never the event, never a key).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable

import orjson
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths

from acexport import metrics, tenancy
from acexport.errors import ApiError, BadRequestError
from acexport.logs import bind_tenant, logger
from acexport.settings import get_settings

BASE_PATH = "/v1/integrations/activecampaign"
AUTH_PATH = f"{BASE_PATH}/auth"
EXPORT_PATH = f"{BASE_PATH}/export"
LIVE_PATH = f"{BASE_PATH}/live"
CHANGES_PATH = f"{BASE_PATH}/changes"
HOOKS_PATH = f"{BASE_PATH}/hooks"
SAFETY_MARGIN_SECONDS = 1.5   # kept back from the Lambda's remaining time to answer and log



def encode(body) -> str:
    """Every response body's JSON text (the resolver's serializer and the envelopes here), in UTF-8 as the old
    Node module's JSON.stringify wrote it. orjson: a 20-contact page encodes in ~0.03 ms against ~0.3 ms with
    json (benchmarks/README.md, the real-latency round); json when orjson refuses a value (an integer beyond 64 bits,
    which a hostile AC host could send)."""
    try:
        return orjson.dumps(body).decode()
    except TypeError:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _json(status: int, body: dict, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=encode(body),
                    headers=headers or {})


def ok(data=None, status: int = 200, **extra) -> Response:
    body = {"success": True, "message": "SUCCESS", **({"data": data} if data is not None else {}), **extra}
    return _json(status, body)


def http_app() -> APIGatewayHttpResolver:
    """A resolver with this API's error mapping registered."""
    app = APIGatewayHttpResolver(serializer=encode)     # the dicts routes return, too

    @app.exception_handler(ApiError)
    def api_error(error: ApiError) -> Response:
        log = logger.warning if error.status >= 500 else logger.info
        log("request refused", extra={"status": error.status, "error": type(error).__name__,
                                      "reason": error.message, "cause": type(error.__cause__).__name__})
        return _json(error.status, error.body(), error.headers)

    @app.exception_handler(Exception)
    def unexpected(error: Exception) -> Response:
        logger.exception("unexpected error")
        return _json(500, {"success": False, "errno": 500, "message": "Internal error"})

    @app.not_found
    def not_found(_error) -> Response:
        return _json(404, {"success": False, "errno": 404, "message": "Not Found"})

    return app


def lambda_handler_for(app: APIGatewayHttpResolver) -> Callable:
    """The Lambda entry point of a function serving `app`."""

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False,
                                  clear_state=True)
    @metrics.published(cold_start=True)
    def lambda_handler(event: dict, context) -> dict:
        return app.resolve(event, context)

    return lambda_handler


def tenant(app: APIGatewayHttpResolver) -> tenancy.Tenant:
    """The caller's tenant; from here on every log line of the request names it (acexport.logs)."""
    caller = tenancy.resolve(app.current_event.raw_event)
    bind_tenant(caller)
    return caller


def deadline(app: APIGatewayHttpResolver) -> float:
    """When this request must stop calling AC (time.monotonic()): within API Gateway's 30 s and the
    Lambda's own remaining time, whichever ends first."""
    budget = get_settings().request_budget_seconds
    context = app.lambda_context
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        budget = min(budget, context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS)
    return time.monotonic() + budget


def json_object(app: APIGatewayHttpResolver) -> dict:
    """The request body as a JSON object, or a 400 that says so."""
    try:
        body = json.loads(app.current_event.decoded_body or "{}")
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: "[[[[..." nested too deep
        raise BadRequestError("Request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequestError("Request body must be a JSON object")
    return body


def raw_body(app: APIGatewayHttpResolver) -> bytes:
    """The request body as the bytes the client sent (API Gateway base64-encodes what is not UTF-8)."""
    event = app.current_event
    body = event.body or ""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequestError("Malformed body") from None
    return body.encode("utf-8")
