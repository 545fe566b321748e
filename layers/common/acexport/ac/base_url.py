"""Normalisation and SSRF guard of the AC base URL a user pastes.

The service fetches this URL from inside AWS, so anything but an ActiveCampaign API host is refused
*before* any network call: only `https://<name>.api-<region>.com` and `https://<name>.activehosted.com`,
no IP literals, no ports, no userinfo, no other domains, ASCII only (no look-alike characters).
Users paste what AC's Settings → Developer page shows, often with a trailing `/` or `/api/3`; both are
accepted and stripped. The stored form is `https://<host>` (the API version is added per call).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from acexport.errors import BadRequest

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
AC_HOST = re.compile(rf"^{_LABEL}\.(?:api-[a-z]{{2,4}}[0-9]{{1,2}}\.com|activehosted\.com)$")
_ALLOWED_PATHS = {"", "/", "/api/3", "/api/3/"}
_LOCAL_HOSTS = {"127.0.0.1", "localhost"}
_MAX_LENGTH = 255

INVALID_BASE_URL = (
    "Invalid base_url: use the API URL from ActiveCampaign Settings > Developer, "
    "e.g. https://youraccount.api-us1.com"
)


def normalise_base_url(raw: str, *, allow_local: bool = False) -> str:
    """Return the canonical `https://<host>` for an AC base URL, or raise BadRequest.

    With `allow_local` (ACTIVECAMPAIGN_ALLOW_LOCAL_BASE_URL, local runs and tests only) a plain-http
    loopback URL with a port is accepted too and kept as `http://127.0.0.1:<port>`.
    """
    text = raw.strip()
    if len(text) > _MAX_LENGTH or not text.isascii() or any(c.isspace() or ord(c) < 32 for c in text):
        raise BadRequest(INVALID_BASE_URL)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise BadRequest(INVALID_BASE_URL) from exc
    host = (parts.hostname or "").lower()
    if (
        parts.username is not None or parts.password is not None or "@" in parts.netloc
        or parts.query or parts.fragment or "\\" in text
        or parts.path.rstrip("/").lower() not in {"", "/api/3"}
    ):
        raise BadRequest(INVALID_BASE_URL)
    if allow_local and host in _LOCAL_HOSTS and parts.scheme == "http" and port:
        return f"http://{host}:{port}"
    if parts.scheme != "https" or port is not None or ":" in parts.netloc or not AC_HOST.match(host):
        raise BadRequest(INVALID_BASE_URL)
    return f"https://{host}"
