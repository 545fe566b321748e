"""AC reference data (contact fields, pipelines, stages), read whole and cached per AC account.

Cached per (AC host, api key) for REFERENCE_CACHE_SECONDS in the warm container, so an export page
costs one AC call once the cache is warm. Keyed by the key too: two keys of one AC account may not see
the same things, and nothing one tenant fetched is served to a key that did not fetch it.
"""

from __future__ import annotations

import threading
import time

from acexport import caches
from acexport.ac.client import AC_PAGE, ACClient, UpstreamInvalid
from acexport.settings import get_settings

_cache: dict[tuple[str, str, str], tuple[float, list[dict]]] = {}
_lock = threading.Lock()


def _cache_key(client: ACClient, path: str) -> tuple[str, str, str]:
    return client.host, client.key_fingerprint, path


def fetch_all(client: ACClient, path: str, collection: str) -> list[dict]:
    """Every item of a (small) AC collection, 100 per call, stopping on a short or empty page.
    A host that keeps answering full pages past AC_MAX_REFERENCE_PAGES (10,000 items by default: far
    more fields, pipelines or stages than an account has) is not AC: UpstreamInvalid, not an endless loop."""
    items: list[dict] = []
    for _ in range(get_settings().max_reference_pages):
        body = client.get(path, [("limit", str(AC_PAGE)), ("offset", str(len(items)))])
        batch = body.get(collection) or []
        if not isinstance(batch, list):
            raise UpstreamInvalid(f"ActiveCampaign sent an unreadable {collection} list")
        items.extend(batch)
        if len(batch) < AC_PAGE:
            return items
    raise UpstreamInvalid(f"ActiveCampaign kept sending full pages of {collection}; gave up after {len(items)}")


def reference(client: ACClient, path: str, collection: str) -> list[dict]:
    key = _cache_key(client, path)
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
        if hit and hit[0] > now:
            return hit[1]
    items = fetch_all(client, path, collection)
    with _lock:
        _cache[key] = (now + get_settings().reference_cache_seconds, items)
    return items


@caches.register
def clear() -> None:
    with _lock:
        _cache.clear()
