"""AC reference data (contact fields, tags, lists, users, pipelines, stages, deal and account custom
fields), read whole and cached per AC account and key.

Cached per (AC host, api key) for REFERENCE_CACHE_SECONDS in the warm container, so an export page
costs one AC call once the cache is warm. Keyed by the key too: two keys of one AC account may not see
the same things, and nothing one tenant fetched is served to a key that did not fetch it.

`optional` reference data (names added beside AC's ids: tags, lists, users, custom field labels) that the
key's AC user may not read (AC's permission 403) is cached as empty: the records still export, without
those names, and no further call is spent on it until the cache expires (docs/query.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from acexport import caches
from acexport.ac.client import AC_PAGE, ACClient, UpstreamInvalidError
from acexport.errors import PermissionDeniedError
from acexport.settings import get_settings

_cache: dict[tuple[str, str, str], tuple[float, float, list[dict] | None]] = {}
_derived: dict[tuple[int, Callable], tuple[list[dict], object]] = {}
_lock = threading.Lock()
REFRESH_AFTER_SECONDS = 30.0   # an id missing from the cache refetches it at most this often
MAX_DERIVED = 256              # indexes kept per container (then all are dropped and rebuilt on demand)
T = TypeVar("T")


class TooMany(Exception):
    """The collection holds more items than the caller is willing to read."""


def _cache_key(client: ACClient, path: str) -> tuple[str, str, str]:
    return client.host, client.key_fingerprint, path


def fetch_all(client: ACClient, path: str, collection: str, *, cap: int | None = None) -> list[dict]:
    """Every item of a (small) AC collection, 100 per call (`limit` always sent: AC's `/fields` and
    `/lists` default to 20), stopping on a short or empty page. Raises TooMany beyond `cap` items.
    A host that keeps answering full pages past AC_MAX_REFERENCE_PAGES (10,000 items by default: far
    more fields, pipelines or stages than an account has) is not AC: UpstreamInvalid, not an endless loop."""
    items: list[dict] = []
    for _ in range(get_settings().max_reference_pages):
        body = client.get(path, [("limit", str(AC_PAGE)), ("offset", str(len(items)))])
        batch = body.get(collection) or []
        if not isinstance(batch, list):
            raise UpstreamInvalidError(f"ActiveCampaign sent an unreadable {collection} list")
        batch = [item for item in batch if isinstance(item, dict)]
        items.extend(batch)
        if cap is not None and len(items) > cap:
            raise TooMany(path)
        if len(batch) < AC_PAGE:
            return items
    raise UpstreamInvalidError(f"ActiveCampaign kept sending full pages of {collection}; gave up after {len(items)}")


def reference(client: ACClient, path: str, collection: str, *, optional: bool = False,
              need: set[str] | None = None, cap: int | None = None) -> list[dict] | None:
    """The items, from the cache when fresh. `need`: ids the caller looks up; one missing from a cache
    older than REFRESH_AFTER_SECONDS refetches (a tag created since). None when more than `cap` items."""
    key = _cache_key(client, path)
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
    if hit and hit[0] > now:
        fresh = hit[2] is None or not need or need <= by_id(hit[2]).keys()
        if fresh or now - hit[1] < REFRESH_AFTER_SECONDS:
            return hit[2]
    try:
        items: list[dict] | None = fetch_all(client, path, collection, cap=cap)
    except PermissionDeniedError:
        if not optional:
            raise
        items = []
    except TooMany:
        items = None
    except UpstreamInvalidError:
        if not optional:       # fields, pipelines, stages: the page cannot be built without them
            raise
        items = None           # more tags/lists/users than AC_MAX_REFERENCE_PAGES: names left out
    with _lock:
        _cache[key] = (now + get_settings().reference_cache_seconds, now, items)
    return items


def derived(items: list[dict] | None, build: Callable[[list[dict]], T]) -> T:
    """`build(items)` for a cached reference list, built once per list: the cache replaces a list when it
    refreshes and never changes one, so a warm page does not index an account's tags, fields or custom field
    values again (the real-latency round: an account's 540 custom field values cost 0.2 ms a page). The entry holds the
    list itself, so its id cannot be reused while the entry lives. `build` must be a module-level function."""
    if not items:
        return build([])
    key = (id(items), build)
    with _lock:
        hit = _derived.get(key)
    if hit is not None and hit[0] is items:
        return hit[1]   # type: ignore[return-value]
    value = build(items)
    with _lock:
        if len(_derived) >= MAX_DERIVED:
            _derived.clear()
        _derived[key] = (items, value)
    return value


def _by_id(items: list[dict]) -> dict[str, dict]:
    return {str(item.get("id")): item for item in items}


def by_id(items: list[dict] | None) -> dict[str, dict]:
    """{id: item} of reference items (built once per cached list: `derived`). Read it; never change it."""
    return derived(items, _by_id)


@caches.register
def clear() -> None:
    with _lock:
        _cache.clear()
        _derived.clear()
