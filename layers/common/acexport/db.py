"""The Mongo client: one per warm container, short timeouts so an unreachable Mongo is a 503 within
seconds instead of a hang (pymongo's default server selection timeout is 30 s).

Connections (docs/architecture.md, "Mongo connections"): a Lambda container serves one invocation at a
time and uses at most a few threads that touch Mongo (the worker's page prefetch, the budget), so the
pool is small: MONGODB_MAX_POOL_SIZE (default 4), idle connections closed after 60 s. Per server a
container opens at most maxPoolSize + 2 (pymongo's monitor and RTT connections); the whole service at
most (14 functions' warm containers) x (maxPoolSize + 2) per replica-set member.

An index that cannot be built (e.g. E11000 over legacy duplicates on real MongoDB) is logged with the
collection and index error and answered as a 503, never a 500 (issue 9, finding 5)."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from acexport import caches
from acexport.errors import ServiceUnavailable
from acexport.settings import get_settings, secret

logger = logging.getLogger(__name__)
INDEX_UNAVAILABLE = "Database not ready (an index could not be built); retry later"

_client: MongoClient | None = None
_lock = threading.Lock()
_indexed: set[str] = set()


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


def indexed_collection(name: str, create_indexes: Callable) -> Collection:
    """The collection `name`, its indexes created by `create_indexes(collection)` once per container."""
    coll = database()[name]
    with _lock:
        if name not in _indexed:
            try:
                create_indexes(coll)
            except (DuplicateKeyError, OperationFailure) as exc:
                logger.error("index build failed on %s (code %s): the collection holds records the index "
                             "refuses; see docs/architecture.md", name, getattr(exc, "code", None))
                raise ServiceUnavailable(INDEX_UNAVAILABLE) from None
            except PyMongoError as exc:
                raise ServiceUnavailable("Database unavailable; retry later") from exc
            _indexed.add(name)
    return coll


@caches.register
def reset_client() -> None:
    """Close and forget the client (tests that restart Mongo)."""
    global _client
    with _lock:
        if _client is not None:
            _client.close()
        _client = None
        _indexed.clear()  # a new client may reach another server


@contextlib.contextmanager
def mongo_errors() -> Iterator[None]:
    """Translate driver failures (unreachable, dropped connection, timeouts) into a 503.
    DuplicateKeyError passes through: it is an answer, not a failure."""
    try:
        yield
    except DuplicateKeyError:
        raise
    except PyMongoError as exc:
        raise ServiceUnavailable("Database unavailable; retry later") from exc
