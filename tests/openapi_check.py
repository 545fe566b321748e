"""Check an HTTP response of the API against docs/openapi.yaml, with openapi-core.

`check_response(reply)` raises AssertionError when the response of a real request to the local server
breaks the contract: a status the route does not declare, a body or a header that does not match the
declared schema, a content type not declared. A request to a method and path that is not a route in the
spec may only get API Gateway's own `404 {"message": "Not Found"}`; anything else means a route is
missing from docs/openapi.yaml.

The integration tests call it on every response (tests/integration/conftest.py, `Api.call`).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound

SPEC_PATH = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"
# Requests to the local server (any port) are checked as if sent to the spec's local server entry.
SPEC_LOCAL_SERVER = "http://127.0.0.1:3000"
GATEWAY_NOT_FOUND = {"message": "Not Found"}

_lock = threading.Lock()
_openapi: OpenAPI | None = None


def openapi() -> OpenAPI:
    """The parsed spec (read once; openapi-core validates the spec itself while loading it)."""
    global _openapi
    with _lock:
        if _openapi is None:
            _openapi = OpenAPI.from_file_path(str(SPEC_PATH))
        return _openapi


def _as_spec_request(request: requests.PreparedRequest) -> RequestsOpenAPIRequest:
    local = urlsplit(SPEC_LOCAL_SERVER)
    parts = urlsplit(request.url or "")
    copy = request.copy()
    copy.url = urlunsplit((local.scheme, local.netloc, parts.path, parts.query, ""))
    return RequestsOpenAPIRequest(copy)


def _describe(error: BaseException) -> str:
    """openapi-core's error with the schema errors underneath it (what exactly did not match)."""
    lines = [f"{type(error).__name__}: {error}"]
    cause = error.__cause__ or error.__context__
    while cause is not None:
        lines.append(f"  caused by {type(cause).__name__}: {cause}")
        for schema_error in getattr(cause, "schema_errors", ()) or ():
            where = "/".join(map(str, schema_error.absolute_path)) or "(root)"
            lines.append(f"    at {where}: {schema_error.message}")
        cause = cause.__cause__ or cause.__context__
    return "\n".join(lines)


def check_response(response: requests.Response) -> None:
    """Fail (AssertionError) when `response` breaks docs/openapi.yaml for the request that made it."""
    __tracebackhide__ = True
    request = response.request
    label = f"{request.method} {urlsplit(request.url or '').path} -> {response.status_code}"
    spec_request = _as_spec_request(request)
    try:
        openapi().validate_response(spec_request, RequestsOpenAPIResponse(response))
    except (PathNotFound, OperationNotFound):
        try:
            body = response.json()
        except ValueError:
            body = response.text[:500]
        assert response.status_code == 404 and body == GATEWAY_NOT_FOUND, (
            f"{label}: this method and path is not a route in docs/openapi.yaml, so only API Gateway's "
            f"404 {json.dumps(GATEWAY_NOT_FOUND)} is expected, got {body!r}. If it is a new route, add it "
            "to docs/openapi.yaml.")
    except Exception as exc:
        raise AssertionError(f"{label} breaks docs/openapi.yaml:\n{_describe(exc)}\n"
                             f"body: {response.text[:2000]}") from None
