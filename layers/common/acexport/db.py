"""The Mongo client: one per warm container, short timeouts so an unreachable Mongo is a 503 within
seconds instead of a hang (pymongo's default server selection timeout is 30 s).

Connections (docs/architecture.md, "Mongo connections"): a Lambda container serves one invocation at a
time and uses at most a few threads that touch Mongo (the worker's page prefetch, the budget), so the
pool is small: MONGODB_MAX_POOL_SIZE (default 4), idle connections closed after 60 s. Per server a
container opens at most maxPoolSize + 2 (pymongo's monitor and RTT connections); the whole service at
most (the functions' warm containers) x (maxPoolSize + 2) per replica-set member.

Indexes are not created here, nor anywhere in a request: `python -m acexport.setup_db` (acexport.setup_db)
creates them at deploy time, and the local stack runs it when it starts. A missing index is not fatal to
a request, but what a unique index guarantees (one connection per caller, the active-job quota) is then
not enforced: `collection(name, required=...)` checks once per container, read only, that those indexes
exist and logs an ERROR naming the command when one is missing (the second security round, finding 5; the operations
round)."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, PyMongoError

from acexport import caches
from acexport.errors import ServiceUnavailableError
from acexport.settings import get_settings, secret

logger = logging.getLogger(__name__)

_client: MongoClient | None = None
_lock = threading.Lock()
_checked: set[str] = set()   # collections whose required indexes were looked for in this container


def client() -> MongoClient:
    global _client
    with _lock:
        if _client is None:
            timeout = get_settings().mongodb_timeout_ms
            _client = MongoClient(
                secret("MONGODB_URI", "MONGODB_URI_SECRET_ARN"),
                serverSelectionTimeoutMS=timeout, connectTimeoutMS=timeout,
                socketTimeoutMS=max(5000, 2 * timeout), maxIdleTimeMS=60000,
                maxPoolSize=get_settings().mongodb_max_pool_size,
                appname="activecampaign-integration", tz_aware=True,
            )
        return _client


def database():
    name = get_settings().mongodb_database
    mongo = client()
    return mongo[name] if name else mongo.get_default_database("platform")


def collection(name: str, required: tuple[tuple[tuple[str, int], ...], ...] = ()) -> Collection:
    """The collection `name` of the service's database. Its indexes are made by acexport.setup_db; the
    `required` ones (index keys, e.g. `(("account_id", 1), ("owner", 1))`) are looked for once per container
    and a missing one is logged (never raised: the request goes on without the guarantee)."""
    coll = database()[name]
    if required and name not in _checked:
        _checked.add(name)
        try:
            present = {tuple((field, int(order)) for field, order in info["key"])
                       for info in coll.index_information().values()}
        except PyMongoError:   # unreachable now: the request's own call answers 503; look again next time
            _checked.discard(name)
            return coll
        missing = [keys for keys in required if tuple(keys) not in present]
        if missing:
            logger.error("missing index on %s: %s; run `python -m acexport.setup_db` (docs/deploy.md)", name,
                         "; ".join(", ".join(field for field, _ in keys) for keys in missing))
    return coll


@caches.register
def reset_client() -> None:
    """Close and forget the client (tests that restart Mongo)."""
    global _client
    with _lock:
        if _client is not None:
            _client.close()
        _client = None
        _checked.clear()   # a new client may reach another server


@contextlib.contextmanager
def mongo_errors() -> Iterator[None]:
    """Translate driver failures (unreachable, dropped connection, timeouts) into a 503.
    DuplicateKeyError passes through: it is an answer, not a failure."""
    try:
        yield
    except DuplicateKeyError:
        raise
    except PyMongoError as exc:
        raise ServiceUnavailableError("Database unavailable; retry later") from exc
