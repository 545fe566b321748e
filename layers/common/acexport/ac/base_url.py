"""Normalisation and SSRF guard of the AC base URL a user pastes, checked by name and by address.

By name, *before* any network call: only `https://<account>.<suffix>` where `<suffix>` is one of
AC_ALLOWED_HOST_SUFFIXES (default `api-us1.com` and `activehosted.com`, the two host shapes AC's own
pages show: `<account>.api-us1.com` is the API URL of developers.activecampaign.com/reference/url,
`<account>.activehosted.com` the account host of .../reference/authentication, and public clients call
the API on it, e.g. Nango). Other regions appear only in third-party material (`api-eu1.com` in
StackOne's guide, `api-us2.com` in unnamed code); a deployment whose users need one adds it to the
setting (docs/architecture.md). No IP literals, no ports, no userinfo, ASCII only (no look-alikes).
Users paste what AC's Settings → Developer page shows, often with a trailing `/` or `/api/3`; both are
accepted and stripped. The stored form is `https://<host>` (the API version is added per call).

By address, at every connection (`public_address`, used by `ac.client`'s pinned adapter): the name is
resolved once, every address it resolves to must be public (no loopback, private, link-local, shared,
reserved, multicast or unspecified address, IPv4 inside IPv6 included), and the connection goes to
the address that was checked, with TLS still verified for the name. A name that points at the cloud
metadata address is refused without a packet sent to it, the same way every time (no port oracle).

The local switch (ACTIVECAMPAIGN_ALLOW_LOCAL_BASE_URL, local runs and tests only) admits
`http://127.0.0.1:<port>` / `http://localhost:<port>`, the AC sandbox.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from urllib.parse import SplitResult, urlsplit

from acexport import caches
from acexport.errors import BadRequestError
from acexport.settings import get_settings

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_SUFFIX = re.compile(rf"^{_LABEL}(?:\.{_LABEL})+$")
_LOCAL_HOSTS = {"127.0.0.1", "localhost"}
_MAX_LENGTH = 255
RESOLVE_CACHE_SECONDS = 30.0

INVALID_BASE_URL = (
    "Invalid base_url: use the API URL from ActiveCampaign Settings > Developer, "
    "e.g. https://youraccount.api-us1.com"
)
STORED_BASE_URL_REFUSED = (
    "The stored base_url is not an ActiveCampaign API URL this service may call; "
    "connect again with the API URL from ActiveCampaign Settings > Developer"
)

Resolver = Callable[[str, int], Iterable[str]]


class UnsafeAddress(Exception):
    """The AC host name resolves to an address the service must never connect to."""


def _getaddrinfo(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


RESOLVER: Resolver = _getaddrinfo   # replaced in tests (no DNS without internet)
_resolved: dict[tuple[str, int], tuple[float, str]] = {}
_lock = threading.Lock()


def allowed_suffixes() -> tuple[str, ...]:
    return get_settings().allowed_host_suffixes


def host_allowed(host: str, suffixes: Iterable[str]) -> bool:
    """`<one label>.<suffix>` for one of the suffixes."""
    label, _, rest = host.partition(".")
    return bool(re.fullmatch(_LABEL, label)) and rest in set(suffixes)


def valid_suffix(suffix: str) -> bool:
    return bool(_SUFFIX.match(suffix)) and len(suffix) <= 200


def _parts(raw: str) -> tuple[SplitResult, int | None]:
    """The URL's parts and port, or BadRequest for text no AC base URL has: too long, not ASCII, spaces,
    control characters or a backslash, a port that is not a number."""
    text = raw.strip() if isinstance(raw, str) else ""
    if len(text) > _MAX_LENGTH or not text.isascii() or "\\" in text or any(c.isspace() or ord(c) < 32 for c in text):
        raise BadRequestError(INVALID_BASE_URL)
    try:
        parts = urlsplit(text)
        return parts, parts.port
    except ValueError as exc:
        raise BadRequestError(INVALID_BASE_URL) from exc


def _extras(parts: SplitResult) -> bool:
    """Anything an AC base URL never has: credentials, a query, a fragment, a path but /api/3."""
    return (parts.username is not None or parts.password is not None or "@" in parts.netloc
            or bool(parts.query or parts.fragment)
            or parts.path.rstrip("/").lower() not in {"", "/api/3"})


def normalise_base_url(raw: str, *, allow_local: bool = False, suffixes: Iterable[str] | None = None) -> str:
    """Return the canonical `https://<host>` for an AC base URL, or raise BadRequest.

    With `allow_local` (ACTIVECAMPAIGN_ALLOW_LOCAL_BASE_URL, local runs and tests only) a plain-http
    loopback URL with a port is accepted too and kept as `http://127.0.0.1:<port>`.
    """
    parts, port = _parts(raw)
    if _extras(parts):
        raise BadRequestError(INVALID_BASE_URL)
    host = (parts.hostname or "").lower()
    if allow_local and host in _LOCAL_HOSTS and parts.scheme == "http" and port:
        return f"http://{host}:{port}"
    suffixes = allowed_suffixes() if suffixes is None else tuple(suffixes)
    if parts.scheme != "https" or port is not None or ":" in parts.netloc or not host_allowed(host, suffixes):
        raise BadRequestError(INVALID_BASE_URL)
    return f"https://{host}"


def account_key(host: str) -> str:
    """One key per AC account for the request budget and the job queue group: AC counts its 5 requests
    per second per account, and one account answers as both `<name>.api-us1.com` and
    `<name>.activehosted.com` (developers.activecampaign.com/reference/authentication), so both names
    share the budget of `<name>`. Local hosts (the sandbox) keep their `host:port`."""
    host = host.lower()
    name, _, rest = host.partition(".")
    if rest and ":" not in host and rest in set(allowed_suffixes()):
        return f"ac:{name}"
    return host


# ---- the address check --------------------------------------------------------------------------

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def public(address: str) -> bool:
    """True for an address on the public internet; IPv4 carried in IPv6 is judged as IPv4."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is None and ip in _NAT64:
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None:
            return public(str(inner))
    return bool(ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local
                                      or ip.is_private or ip.is_unspecified))


def public_address(host: str, port: int, *, scheme: str = "https", resolver: Resolver | None = None) -> str:
    """The address to connect to for `host`: resolved, every answer checked, the first one pinned.

    Raises UnsafeAddress when any answer is not public (a name must not mix public and private answers),
    OSError when the name does not resolve. The local sandbox (loopback over http under the local
    switch) is the one exception. Answers are kept RESOLVE_CACHE_SECONDS per container."""
    if get_settings().allow_local_base_url and scheme == "http" and host in _LOCAL_HOSTS:
        return "127.0.0.1"
    key = (host, port)
    now = time.monotonic()
    with _lock:
        hit = _resolved.get(key)
    if hit and hit[0] > now:
        return hit[1]
    answers = list((resolver or RESOLVER)(host, port))
    if not answers:
        raise OSError(f"no address for {host}")
    if not all(public(address) for address in answers):
        raise UnsafeAddress("the ActiveCampaign host resolves to a non-public address")
    with _lock:
        _resolved[key] = (now + RESOLVE_CACHE_SECONDS, answers[0])
    return answers[0]


@caches.register
def forget_addresses() -> None:
    with _lock:
        _resolved.clear()
